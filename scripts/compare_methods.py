#!/usr/bin/env python
"""Compare ASRU with the unlearning baselines on the same data and evaluation, side by side.

Runs ``asru-train --method M`` (:func:`asru.pipeline.run_pipeline`) once per method, each in its own run
directory under ``--runs``; the vanilla model (the taught demo VLM by default) and its evaluation are
built once and reused by every run. Writes a markdown table (``docs/results/<date>-compare-methods.md``), the
raw numbers (``<date>-compare-methods.json``) and a scatter plot of forgetting vs retention vs quality
(``<date>-compare-methods.png``), dated by the day the script started.

    python scripts/compare_methods.py                                  # built-in default, all methods
    python scripts/compare_methods.py --methods asru,npo --set eval.limit=20 --set baseline.steps=5
    python scripts/compare_methods.py --config configs/default.yaml --runs runs/compare
    python scripts/compare_methods.py --render docs/results/<date>-compare-methods.json   # tables and plot again

``--set KEY=VALUE`` overrides any config key (dotted, e.g. ``rl.max_steps=2``), applied to every method.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from asru.core.openmp import set_wait_policy

set_wait_policy()  # the CLI's OpenMP wait policy, before torch is imported
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_METHODS = ("asru", "ga", "graddiff", "kl", "npo", "idk", "simnpo", "dpo", "rmu")
# (column label, split, metric key, format)
COLUMNS = (
    ("forget leak ↓", "forget", "leak_rate", "{:.2f}"),
    ("forget refusal ↑", "forget", "refusal_rate", "{:.2f}"),
    ("forget identity leak ↓", "forget", "identity_leak_rate", "{:.2f}"),
    ("forget quality vs oracle ↑", "forget", "forget_quality", "{:.3f}"),
    ("answers agree with oracle ↑", "forget", "oracle_agreement", "{:.2f}"),
    ("held-out leak before relearning", "forget", "relearn_leak_before", "{:.2f}"),
    ("relearn leak ↓", "forget", "relearn_leak_rate", "{:.2f}"),
    ("leak after control attack", "forget", "relearn_control_leak_rate", "{:.2f}"),
    ("retain acc after relearning", "forget", "relearn_keep_acc", "{:.2f}"),
    ("forget cls acc ↓", "forget", "classification_acc", "{:.2f}"),
    ("forget option acc ↓", "forget", "option_acc", "{:.2f}"),
    ("retain acc ↑", "retain", "answer_acc", "{:.2f}"),
    ("test acc", "test", "answer_acc", "{:.2f}"),
    ("real acc ↑", "real", "answer_acc", "{:.2f}"),
    ("model utility ↑", "forget", "model_utility", "{:.3f}"),
    ("fluency ↑", "forget", "fluency", "{:.2f}"),
    ("refusal naturalness ↑", "forget", "refusal_naturalness", "{:.2f}"),
    ("garbled ↓", "forget", "garbled_rate", "{:.2f}"),
    ("MIA AUC (0.5)", "forget", "mia_auc", "{:.2f}"),
    ("MIA min-k AUC (0.5)", "forget", "mia_min_k_auc", "{:.2f}"),
    ("MIA zlib AUC (0.5)", "forget", "mia_zlib_auc", "{:.2f}"),
    ("MIA vs oracle AUC (0.5)", "forget", "mia_reference_auc", "{:.2f}"),
)


SUMMARY = ("forget leak ↓", "forget refusal ↑", "forget identity leak ↓", "forget quality vs oracle ↑",
           "answers agree with oracle ↑", "held-out leak before relearning", "relearn leak ↓", "retain acc ↑", "real acc ↑", "model utility ↑", "fluency ↑",
           "MIA AUC (0.5)")
"""The columns of the short table at the top of the results file (the one the README quotes)."""


def _get(metrics: dict | None, split: str, key: str):
    return (metrics or {}).get(split, {}).get(key)


def _cell(v, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def markdown_table(rows: list[dict], labels: tuple[str, ...] | None = None) -> str:
    """The comparison table: one row per method (and the vanilla model first); ``labels`` picks columns (all by default)."""
    columns = [c for c in COLUMNS if labels is None or c[0] in labels]
    header = ["method"] + [c[0] for c in columns] + ["minutes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [row["method"]] + [_cell(_get(row["metrics"], split, key), fmt) for _, split, key, fmt in columns]
        cells.append("-" if row.get("minutes") is None else f"{row['minutes']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scatter(rows: list[dict], path: Path) -> None:
    """Forget leak rate (x) vs retain accuracy (y); colour = fluency under the vanilla model; size = real accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r["method"], _get(r["metrics"], "forget", "leak_rate"), _get(r["metrics"], "retain", "answer_acc"),
            _get(r["metrics"], "forget", "fluency"), _get(r["metrics"], "real", "answer_acc")) for r in rows]
    pts = [p for p in pts if p[1] is not None and p[2] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    flu = [p[3] for p in pts if p[3] is not None]
    vmin, vmax = (min(flu), max(flu)) if flu else (0, 1)
    sc = ax.scatter([p[1] for p in pts], [p[2] for p in pts], c=[p[3] if p[3] is not None else vmin for p in pts],
                    s=[60 + 340 * (p[4] or 0) for p in pts], cmap="viridis", vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1,
                    edgecolors="black")
    for name, x, y, *_ in pts:
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=9)
    ax.set_xlabel("forget leak rate (lower = more forgetting)")
    ax.set_ylabel("retain accuracy (higher = less collateral damage)")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=ax, label="fluency of forget answers (log-lik./token, vanilla model)")
    ax.set_title("Unlearning methods: forgetting vs retention vs quality\n(marker size = real-split accuracy)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_oracle(base: dict) -> str:
    """Build (or find cached) the oracle of the benchmark the config names; returns its directory."""
    from asru.config import build_config
    from asru.demo.oracle import build_oracle_model
    from asru.pipeline import ensure_data

    cfg = build_config(base)
    return str(build_oracle_model(ensure_data(cfg.data), cfg.teach))


def evaluate_oracle(base: dict, oracle: str, vanilla: str | None, out_dir: Path) -> dict:
    """The oracle's own evaluation, as every method's (the vanilla model as the reference)."""
    from asru.config import build_config
    from asru.data.loaders import load_benchmark
    from asru.eval.runner import evaluate
    from asru.pipeline import ensure_data, with_attack_data

    cfg = build_config(base)
    data_dir = ensure_data(cfg.data)
    data = with_attack_data(cfg.eval, load_benchmark(data_dir, cfg.eval.splits), data_dir)
    return evaluate(cfg.eval, oracle, data, out_dir, reference_path=vanilla, model_cfg=cfg.model)


def run_method(method: str, base: dict, runs: Path, resume: bool = False) -> tuple[dict, float]:
    """Run the pipeline for one method; returns (metrics.json dict, minutes).

    ``resume``: continue the method's run directory when it exists (stages whose inputs did not change
    are reused, as with ``asru-train --resume``) instead of starting it over.
    """
    from asru.config import build_config
    from asru.config_yaml import merge
    from asru.pipeline import run_pipeline

    again = resume and (runs / method).is_dir()
    values = merge(base, {"method": method, "output_dir": str(runs / method), "overwrite": not again, "resume": again})
    values.setdefault("stages", ["data", "teach", "steer", "rl", "eval"])
    cfg = build_config(values)
    t = time.time()
    metrics = run_pipeline(cfg)
    return metrics, cost_minutes(metrics.get("timings_s")) or (time.time() - t) / 60


def cost_minutes(timings: dict | None) -> float | None:
    """What a method's run cost: the sum of its stages' recorded seconds (a stage reused by ``--resume``
    counts what it took when it ran) and of this run's evaluation and export, in minutes."""
    parts = [v for k, v in (timings or {}).items() if k != "total" and isinstance(v, (int, float))]
    return sum(parts) / 60 if parts else None


ORACLE_ROW = "oracle (never taught the forget people)"


def rows_from_raw(raw: dict) -> list[dict]:
    """The table's rows from the raw JSON the script writes (vanilla, oracle, then the methods in run order)."""
    rows = [{"method": "vanilla (before)", "metrics": raw["vanilla"], "minutes": None}] if raw.get("vanilla") else []
    if raw.get("oracle"):
        rows.append({"method": ORACLE_ROW, "metrics": raw["oracle"], "minutes": None})
    return rows + [{"method": m, "metrics": v.get("after"), "minutes": cost_minutes(v.get("timings_s")) or v.get("minutes")}
                   for m, v in raw.get("methods", {}).items()]


def shown_path(path: str | None) -> str | None:
    """``path`` as the results file names it: relative to the checkout it lies in (a shipped preset reads
    ``configs/default.yaml`` wherever the checkout is), else as given."""
    if not path:
        return path
    root = Path(__file__).resolve().parents[1]
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return path


NOTES_HEADING = "## Reading"


def kept_notes(md: Path) -> str:
    """The hand-written part of an earlier ``<stem>.md``: from its :data:`NOTES_HEADING` line to the end
    (``""`` when there is none), so that regenerating the tables keeps what people wrote about them."""
    if not md.is_file():
        return ""
    text = md.read_text()
    at = text.find(f"\n{NOTES_HEADING}\n")
    return text[at + 1 :] if at >= 0 else ""


def write_results(rows: list[dict], raw: dict, docs: Path, stem: str) -> None:
    """``<stem>.md`` (the short table, then every column, then the earlier file's notes: :func:`kept_notes`)
    and ``<stem>.png`` in ``docs``."""
    from asru.core.rundir import atomic_write_text

    overrides = ", ".join(raw.get("overrides") or []) or "none"
    text = "\n".join([
        "# ASRU vs unlearning baselines", "",
        (f"Generated by `python scripts/compare_methods.py` on {raw.get('generated', '?')} "
         f"(config: {raw.get('config') or 'dataclass defaults'}; overrides: {overrides}). "
         "Same data, same vanilla model, same evaluation."),
        "",
        ("Forget split: leak = ground truth inside the answer, refusal = the shared refusal detector; retain / test / real: "
         "answer accuracy. Fluency = mean per-token log-likelihood of the forget answers under the vanilla model; "
         "refusal naturalness = mean of refusal diversity and contextual refusals; MIA AUC near 0.5 = the forget set "
         "looks like unseen data. The oracle is the demo recipe taught without the forget people: forget quality = "
         "KS-test p-value of the truth ratios against it (docs/evaluation.md), agreement = answers the judge puts in the "
         "same class as the oracle's. Relearning: LoRA fine-tune on half the forget facts (in the benchmark's teaching sentences), "
         "leak on the other (held-out) half; the control attack spends the same budget on other people's facts; retain acc after "
         "relearning = retain answers kept by the attacked model. Minutes = the method's stages (as long as each took when it ran) plus its evaluation and export."),
        "", markdown_table(rows, SUMMARY), "", "Every column:", "",
        markdown_table(rows), "", f"![forget vs retain vs quality]({stem}.png)", "",
    ])
    notes = kept_notes(docs / f"{stem}.md")
    atomic_write_text(docs / f"{stem}.md", text + ("\n" + notes if notes else ""))
    scatter(rows, docs / f"{stem}.png")
    print(markdown_table(rows, SUMMARY))
    print(f"wrote {docs / (stem + '.md')} and {docs / (stem + '.png')}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run every method and write the table and the plot."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="Comma-separated registered methods (default: %(default)s).")
    p.add_argument("--config", help="Base config YAML (default: the shipped preset of the model, configs/default.yaml for the demo model).")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Config override for every method (repeatable).")
    p.add_argument("--runs", default="runs/compare", help="Parent directory of the per-method run directories.")
    p.add_argument("--docs", default="docs/results", help="Where <date>-compare-methods.md/.png/.json are written.")
    p.add_argument("--resume", action="store_true", help="Reuse each method's existing run directory (unchanged stages are not re-run).")
    p.add_argument("--no-oracle", action="store_true",
                   help="Skip the oracle (the demo recipe taught without the forget people; built once, ~20 min on 2 CPU cores): "
                        "no oracle row and no forget-quality columns.")
    p.add_argument("--render", metavar="JSON",
                   help="Write the table and plot again from a finished run's <date>-compare-methods.json (beside it); runs nothing.")
    args = p.parse_args(argv)
    if args.render:
        raw_file = Path(args.render)
        if not raw_file.is_file():
            raise SystemExit(f"--render: {raw_file} does not exist (the .json a finished comparison wrote)")
        raw = json.loads(raw_file.read_text())
        write_results(rows_from_raw(raw), raw, raw_file.parent, raw_file.stem)
        return 0

    from asru.cli import script_config
    from asru.core.errors import AsruError
    from asru.core.rundir import atomic_write_json

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    base, config_file = script_config(args.config, args.set)
    # the comparison table has an option-likelihood accuracy column: score options unless told otherwise
    base.setdefault("eval", {}).setdefault("option_scoring", True)
    # and relearning and model-utility columns: both are measured on every model, the vanilla one and the oracle included
    base["eval"].setdefault("relearn", True)
    base["eval"].setdefault("utility", True)
    runs, docs = Path(args.runs), Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y-%m-%d')}-compare-methods"
    rows: list[dict] = []
    raw: dict = {"methods": {}, "overrides": args.set, "config": shown_path(config_file), "generated": time.strftime("%Y-%m-%d %H:%M")}
    oracle = None if args.no_oracle else build_oracle(base)
    if oracle:
        base["eval"]["oracle"] = oracle
    for method in methods:
        print(f"=== {method} ===", flush=True)
        try:
            metrics, minutes = run_method(method, base, runs, args.resume)
        except AsruError as exc:
            print(f"error: {method}: {exc}", file=sys.stderr)
            return 1
        if not rows and metrics.get("before"):
            rows.append({"method": "vanilla (before)", "metrics": metrics["before"], "minutes": None})
            raw["vanilla"] = metrics["before"]
            if oracle:
                rows.append({"method": ORACLE_ROW,
                             "metrics": evaluate_oracle(base, oracle, metrics.get("vanilla"), runs / "oracle"), "minutes": None})
                raw["oracle"] = rows[-1]["metrics"]
        rows.append({"method": method, "metrics": metrics.get("after"), "minutes": minutes})
        raw["methods"][method] = {"after": metrics.get("after"), "minutes": round(minutes, 2), "run": str(runs / method),
                                  "timings_s": metrics.get("timings_s")}
        atomic_write_json(docs / f"{stem}.json", raw)
    write_results(rows, raw, docs, stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
