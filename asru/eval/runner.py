"""``evaluate()``: one model, the benchmark's splits, every metric; writes ``eval.json``, ``answers.jsonl`` and plots.

Returned (and stored under ``"metrics"`` in ``eval.json``): ``{split: {metric: value, ..., "by_modality":
{"image": {...}, "text": {...}, "all": {...}}}}``. Task metrics (:mod:`asru.eval.metrics`) and quality
(:mod:`asru.eval.quality`) for every split; on the forget split also membership inference
(:mod:`asru.eval.privacy`), paraphrase / image-only robustness and the optional relearning attack
(:mod:`asru.eval.robustness`), the optional LLM judge (:mod:`asru.eval.judge`) and, with a reference
model, the diagnostics summary (:mod:`asru.eval.diagnostics`, per-layer values in ``diagnostics.json``).
For reasoning models (answers with ``<think>`` spans) the task metrics score the final answer and
``think_rate`` / ``ril_explicit`` / ``ril`` are added (:mod:`asru.eval.reasoning`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from asru.core import models
from asru.core.errors import AsruError
from asru.core.rundir import atomic_write_json, atomic_write_text
from asru.data.schema import Record
from asru.eval import builtin_metrics  # noqa: F401 - registers the built-in metrics
from asru.eval.metrics import evaluate_split, score_split, split_tasks
from asru.eval.reasoning import reasoning_metrics
from asru.eval.registry import EvalContext, active_metrics
from rewards.judge import judge
from rewards.text import contains_answer, extract_think, has_think

LOG = logging.getLogger("asru.eval")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")


def check_model_dir(model_path: str) -> None:
    """A local model directory must hold a config and weights; anything else is left to load_model."""
    p = Path(model_path)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise AsruError(f"model directory {p} has no config.json: point --model at a saved model directory")
        if not any(any(p.glob(pat)) for pat in WEIGHT_PATTERNS):
            raise AsruError(f"model directory {p} has no weights (*.safetensors): save the model there with save_pretrained first")


def check_data(data: dict[str, list[Record]], splits: list[str]) -> None:
    """Every split asked for must be present and non-empty."""
    for split in splits:
        if split not in data:
            have = ", ".join(sorted(data)) or "none"
            raise AsruError(f"the data has no {split!r} split (it has: {have}): add it or evaluate other splits with --splits")
        if not data[split]:
            raise AsruError(f"split {split!r} is empty: regenerate the benchmark or drop it from --splits")


def subsample(records: list[Record], limit: int | None) -> list[Record]:
    """At most ``limit`` records, evenly spaced over the split (covers every person and task), in order."""
    records = list(records)
    if not limit or limit >= len(records):
        return records
    return [records[(i * len(records)) // limit] for i in range(limit)]


def usable(records: list[Record], is_vlm: bool, split: str = "") -> list[Record]:
    """The records a model can answer: a text-only model skips image questions (logged); none left is an error."""
    records = list(records)
    if is_vlm:
        return records
    kept = [r for r in records if r.image is None]
    if len(kept) < len(records):
        LOG.warning("text-only model: skipping %d image questions of split %s", len(records) - len(kept), split)
    if not kept:
        raise AsruError(f"split {split!r} has only image questions and the model is text-only: evaluate a VLM or drop the split")
    return kept


def load_evaluated(path: str, cfg_model=None, dtype: str | None = None):
    """The model at ``path`` as the evaluation loads it: the run's model settings (device, dtype,
    ``trust_remote_code``), with ``dtype`` (``eval.dtype``) winning when given."""
    kw = {}
    if cfg_model is not None:
        kw = {"dtype": cfg_model.dtype, "device": cfg_model.device, "trust_remote_code": cfg_model.trust_remote_code}
    if dtype:
        kw["dtype"] = dtype
    return models.load_model(path, **kw)


def answer_rows(split: str, free: list[Record], raw: list[str], answers: list[str], cls: list[Record],
                preds: list[int], opt_preds: list[int] | None) -> list[dict]:
    """One ``answers.jsonl`` row per question: the answer with the judge's labels, or the chosen option."""
    rows = []
    for r, raw_a, a in zip(free, raw, answers):
        v = judge(a, r)
        rows.append({"id": r.id, "split": split, "task": r.task, "modality": r.modality, "question": r.question,
                     "truth": r.answer, "answer": raw_a, "leak": contains_answer(a, r.answer), "refusal": v.refusal,
                     "identity_leak": v.identity_leak, "degenerate": v.degenerate})
    for k, (r, p) in enumerate(zip(cls, preds)):
        row = {"id": r.id, "split": split, "task": r.task, "modality": r.modality, "question": r.question,
               "truth": r.answer, "answer": "ABCD"[p], "correct": p == r.label}
        if opt_preds:
            row.update(option_choice=r.options[opt_preds[k]], option_correct=opt_preds[k] == r.label)
        rows.append(row)
    return rows


def _plot_summary(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = ["answer_acc", "leak_rate", "refusal_rate", "cloze_acc", "classification_acc", "rougeL"]
    splits = list(results)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(splits), 3.6))
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        vals = [results[s].get(key) for s in splits]
        ax.bar(np.arange(len(splits)) + (k - len(keys) / 2 + 0.5) * width, [v if v is not None else 0 for v in vals], width, label=key)
    ax.set_xticks(range(len(splits)), splits)
    ax.set_ylim(0, 1)
    ax.set_title("Task metrics by split")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(cfg, model_path: str, data: dict[str, list[Record]], out_dir: Path, reference_path: str | None = None,
             model_cfg=None) -> dict:
    """Evaluate ``model_path`` on ``cfg.splits`` of ``data``; write ``out_dir/eval.json`` and plots; return the metrics.

    ``reference_path`` (the original / vanilla model) scores fluency and is the reference of the
    diagnostics; without it the evaluated model scores its own fluency and diagnostics are skipped.
    ``model_cfg`` (a ModelConfig) sets dtype / device for loading. A ``"teach"`` entry of ``data`` is never
    scored: it reaches the metrics as ``EvalContext.teach``, the relearning attack's training data.
    """
    t_start = time.time()
    splits = list(cfg.splits)
    check_data(data, splits)
    check_model_dir(model_path)
    if reference_path:
        check_model_dir(reference_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lm = load_evaluated(model_path, model_cfg, cfg.dtype)
    same_ref = not reference_path or Path(str(reference_path)).resolve() == Path(str(model_path)).resolve()
    need_ref = cfg.quality or cfg.diagnostics
    ref = None
    if need_ref and not same_ref:
        ref = load_evaluated(reference_path, model_cfg, cfg.dtype)
    timings: dict[str, float] = {}
    results: dict[str, dict] = {}
    rows = []
    limited = {s: subsample(usable(data[s], lm.is_vlm, s), cfg.limit) for s in splits}
    scored = {s: recs for s, recs in data.items() if s != "teach"}
    ctx = EvalContext(cfg=cfg, lm=lm, ref=ref, data=scored, limited=limited, out_dir=out_dir, teach=list(data.get("teach", [])))
    answer_metrics = active_metrics(cfg, "answers")

    for split in splits:
        t = time.time()
        recs = limited[split]
        LOG.info("eval %s: %d records", split, len(recs))
        metrics, raw, preds, opt_preds = evaluate_split(lm, recs, cfg.max_new_tokens, cfg.batch_size, cfg.progress, split,
                                                        cfg.option_scoring)
        free, cls = split_tasks(recs)
        answers = raw
        if any(has_think(a) for a in raw):
            answers = [extract_think(a)[1] for a in raw]
            metrics = score_split(free, answers, cls, preds, opt_preds)
            metrics.update(reasoning_metrics(raw, [r.answer for r in free]))
        ctx.split, ctx.free, ctx.answers = split, free, answers
        ctx.answered[split] = (free, answers)
        for metric in answer_metrics:
            metrics.update(metric.fn(ctx))
        rows.extend(answer_rows(split, free, raw, answers, cls, preds, opt_preds))
        results[split] = metrics
        timings[split] = round(time.time() - t, 1)

    if "forget" in results:
        ctx.split, ctx.free, ctx.answers = "forget", [], []
        extra: dict = {}
        for metric in active_metrics(cfg, "forget"):
            t = time.time()
            extra.update(metric.fn(ctx))
            timings[metric.name] = round(time.time() - t, 1)
        results["forget"].update(extra)

    timings["total"] = round(time.time() - t_start, 1)
    n_records = sum(len(limited[s]) for s in splits)
    atomic_write_text(out_dir / "answers.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_json(out_dir / "eval.json", {
        "model": str(model_path), "reference": str(reference_path) if reference_path else None, "metrics": results,
        "timings": timings, "records": n_records, "records_per_second": round(n_records / max(timings["total"], 1e-9), 2),
    })
    try:
        _plot_summary(out_dir / "eval.png", results)
    except Exception as exc:  # noqa: BLE001 - a plot must never lose the metrics
        LOG.warning("could not draw eval.png: %s", exc)
    LOG.info("eval done in %.0f s (%d records)", timings["total"], n_records)
    return results
