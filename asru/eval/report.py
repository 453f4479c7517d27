"""``report.md`` (before / after tables per split) and a compact console table.

Accepted inputs: the pipeline's ``metrics.json`` dict (``{"before": {split: {...}}, "after": {...},
"stages": {stage: {...}}, ...}``) or a single evaluation (``{split: {...}}`` as returned by
:func:`asru.eval.runner.evaluate`).
"""

from __future__ import annotations

from pathlib import Path

from asru.core.rundir import atomic_write_text

# (key, label, direction on the forget split, direction elsewhere): +1 higher is better, -1 lower is better.
ROWS = (
    ("answer_acc", "answer accuracy", -1, +1),
    ("leak_rate", "leak rate", -1, -1),
    ("refusal_rate", "refusal rate", +1, -1),
    ("rougeL", "ROUGE-L", -1, +1),
    ("bleu", "BLEU", -1, +1),
    ("cloze_acc", "cloze accuracy", -1, +1),
    ("classification_acc", "classification accuracy (letters)", -1, +1),
    ("option_acc", "classification accuracy (option likelihood)", -1, +1),
    ("fluency", "fluency (ref. log-lik./token)", +1, +1),
    ("fluency_reward", "fluency reward (text terms)", +1, +1),
    ("fluency_reward_sampled", "fluency reward (sampled groups, as in GRPO)", +1, +1),
    ("fluency_reward_sampled_refusals", "fluency reward of sampled refusals", +1, +1),
    ("repetition", "repetition (3-gram)", -1, -1),
    ("distinct_2", "distinct-2", +1, +1),
    ("garbled_rate", "empty/garbled", -1, -1),
    ("refusal_diversity", "refusal diversity", +1, +1),
    ("refusal_contextual", "contextual refusals", +1, +1),
    ("ril_explicit", "reasoning leak (explicit RIL)", -1, -1),
    ("judge_contextual_refusal", "judge: contextual refusal (0-5)", +1, +1),
    ("judge_leakage", "judge: leakage (5 = none)", +1, +1),
    ("judge_naturalness", "judge: naturalness (1-5)", +1, +1),
    ("mia_auc", "MIA AUC (0.5 best)", 0, 0),
    ("paraphrase_leak_rate", "paraphrase leak rate", -1, -1),
    ("image_only_leak_rate", "image-only leak rate", -1, -1),
    ("relearn_leak_before", "relearn: leak before attack", -1, -1),
    ("relearn_leak_rate", "relearn: leak after attack", -1, -1),
    ("relearn_control_leak_rate", "relearn: leak after control", -1, -1),
    ("pca_similarity_mean", "PCA similarity (mean)", 0, 0),
    ("cka_mean", "linear CKA (mean)", 0, 0),
)
CONSOLE_KEYS = (("leak_rate", "leak"), ("refusal_rate", "refuse"), ("answer_acc", "acc"), ("cloze_acc", "cloze"),
                ("classification_acc", "cls"), ("option_acc", "opt"), ("rougeL", "R-L"), ("fluency", "fluency"))


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def _split_views(metrics: dict) -> tuple[dict | None, dict]:
    """``(before, after)``: split dicts of a pipeline metrics dict, or ``(None, metrics)`` for one evaluation."""
    if "after" in metrics or "before" in metrics:
        return metrics.get("before"), metrics.get("after") or {}
    return None, {k: v for k, v in metrics.items() if isinstance(v, dict)}


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def split_table(split: str, after: dict, before: dict | None = None) -> str:
    """Markdown table of one split: metric rows, before / after / change columns, then image / text (after)."""
    by = after.get("by_modality", {})
    header = ["metric"] + (["before", "after", "change"] if before is not None else ["value"]) + ["image", "text"]
    rows = []
    for key, label, *_ in ROWS:
        a = after.get(key)
        b = before.get(key) if before is not None else None
        if a is None and b is None:
            continue
        row = [label]
        if before is not None:
            change = a - b if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
            row += [_fmt(b), _fmt(a), ("+" if change is not None and change > 0 else "") + _fmt(change)]
        else:
            row.append(_fmt(a))
        row += [_fmt(by.get("image", {}).get(key)), _fmt(by.get("text", {}).get(key))]
        rows.append(row)
    return _md_table(header, rows)


def stages_table(metrics: dict) -> str | None:
    """Markdown table of key metrics after each stage (pipeline metrics with more than one stage), or None."""
    stages = metrics.get("stages") or {}
    if len(stages) < 2:
        return None
    before = metrics.get("before") or {}
    cols = (["vanilla"] if before else []) + list(stages)
    sources = ([before] if before else []) + list(stages.values())
    rows = []
    for split in next(iter(stages.values())):
        for key, label in (("leak_rate", "leak"), ("refusal_rate", "refusal"), ("answer_acc", "accuracy"), ("fluency", "fluency"),
                           ("fluency_reward", "fluency reward"), ("fluency_reward_sampled", "fluency reward (sampled)")):
            vals = [src.get(split, {}).get(key) for src in sources]
            if any(v is not None for v in vals):
                rows.append([f"{split} {label}"] + [_fmt(v) for v in vals])
    return _md_table(["metric"] + cols, rows)


def render_report(metrics: dict, title: str = "ASRU evaluation report") -> str:
    """The report as markdown text."""
    before, after = _split_views(metrics)
    parts = [f"# {title}", ""]
    info = [f"- {k}: `{metrics[k]}`" for k in ("method", "model", "vanilla", "final_model") if isinstance(metrics.get(k), str)]
    if info:
        parts += info + [""]
    parts += [
        ("Forget split: lower leak / accuracy and higher refusal mean more forgetting; MIA AUC near 0.5 means the "
         "forget set looks like unseen data. Other splits: accuracy should stay as before. Fluency is the mean "
         "per-token log-likelihood of the answers under the original model (closer to 0 is better)."),
        "",
    ]
    parts.append(format_table(metrics, markdown=True))
    parts.append("")
    for split, vals in after.items():
        parts += [f"## {split}", "", split_table(split, vals, before.get(split) if before else None), ""]
    st = stages_table(metrics)
    if st:
        parts += ["## After each stage", "", st, ""]
    if metrics.get("targets"):
        rows = [[t["target"], _fmt(t["bar"]), _fmt(t["value"]), "yes" if t["ok"] else "no"] for t in metrics["targets"]]
        parts += ["## Unlearning targets", "", _md_table(["target", "bar", "value", "met"], rows), ""]
    return "\n".join(parts)


def write_report(metrics: dict, path) -> Path:
    """Write ``report.md`` with the before / after tables (atomically) and return its path."""
    path = Path(path)
    atomic_write_text(path, render_report(metrics))
    return path


def format_table(metrics: dict, markdown: bool = False) -> str:
    """A compact table: one row per split, key metrics as ``before->after`` (or plain values)."""
    before, after = _split_views(metrics)
    header = ["split"] + [label for _, label in CONSOLE_KEYS]
    rows = []
    for split, vals in after.items():
        row = [split]
        for key, _ in CONSOLE_KEYS:
            a = vals.get(key)
            b = before.get(split, {}).get(key) if before else None
            row.append(f"{_fmt(b)}->{_fmt(a)}" if before is not None and (a is not None or b is not None) else _fmt(a))
        rows.append(row)
    if markdown:
        return _md_table(header, rows)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
