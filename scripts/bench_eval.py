#!/usr/bin/env python
"""Evaluation speed: samples/s of the full evaluation, and batched vs one-at-a-time generation / scoring.

    python scripts/bench_eval.py                      # demo model, built-in default benchmark
    python scripts/bench_eval.py --model DIR --data DIR --subset 32 --json out.json

Prints the wall time and records/s of :func:`asru.eval.runner.evaluate` with the default EvalConfig
(task metrics, quality, MIA, paraphrase / image-only robustness), then, on ``--subset`` free-text and
classification records, the time of batched (``--batch-size``) vs one-at-a-time generation and letter
scoring, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from asru.core.openmp import set_wait_policy

set_wait_policy()  # the CLI's OpenMP wait policy, before torch is imported
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="demo", help="Model alias or directory (default: the demo VLM).")
    p.add_argument("--data", help="Benchmark directory (default: the built-in synthetic benchmark).")
    p.add_argument("--batch-size", type=int, default=None, help="Batch size of the batched runs (default: eval.batch_size).")
    p.add_argument("--max-new-tokens", type=int, default=32, help="Generation length.")
    p.add_argument("--subset", type=int, default=32, help="Records per task type in the batched vs single comparison.")
    p.add_argument("--skip-full", action="store_true", help="Only run the batched vs single comparison.")
    p.add_argument("--json", help="Also write the figures to this JSON file.")
    args = p.parse_args(argv)

    from asru.config import DataConfig, EvalConfig
    from asru.core.models import load_model
    from asru.data.loaders import load_benchmark
    from asru.eval.metrics import classify, generate_answers, split_tasks
    from asru.eval.runner import evaluate, subsample
    from asru.pipeline import ensure_data

    data_dir = Path(args.data) if args.data else ensure_data(DataConfig())
    cfg = EvalConfig(max_new_tokens=args.max_new_tokens, progress=False)
    args.batch_size = args.batch_size or cfg.batch_size
    cfg.batch_size = args.batch_size
    data = load_benchmark(data_dir, cfg.splits)
    n_records = sum(len(v) for v in data.values())
    out: dict = {"model": args.model, "data": str(data_dir), "records": n_records, "batch_size": args.batch_size,
                 "max_new_tokens": args.max_new_tokens, "threads": os.environ.get("OMP_NUM_THREADS")}

    if not args.skip_full:
        with tempfile.TemporaryDirectory() as tmp:
            metrics, secs = _timed(lambda: evaluate(cfg, args.model, data, Path(tmp)))
            timings = json.loads((Path(tmp) / "eval.json").read_text())["timings"]
        out.update(full_eval_s=round(secs, 1), full_eval_records_per_s=round(n_records / secs, 2), timings_s=timings,
                   summary={s: {k: metrics[s].get(k) for k in ("leak_rate", "refusal_rate", "answer_acc", "classification_acc")} for s in metrics})
        print(f"full evaluation: {n_records} records in {secs:.1f} s = {n_records / secs:.2f} records/s  (target < 300 s)")
        print(f"  per part (s): {timings}")

    lm = load_model(args.model)
    pool = [r for recs in data.values() for r in recs]
    free, cls = split_tasks(pool)
    free, cls = subsample(free, args.subset), subsample(cls, args.subset)
    generate_answers(lm, free[:2], 4, 2)  # warm-up
    _, g_batched = _timed(lambda: generate_answers(lm, free, args.max_new_tokens, args.batch_size))
    _, g_single = _timed(lambda: generate_answers(lm, free, args.max_new_tokens, 1))
    _, c_batched = _timed(lambda: classify(lm, cls, args.batch_size))
    _, c_single = _timed(lambda: classify(lm, cls, 1))
    out.update(
        generation={"n": len(free), "batched_s": round(g_batched, 2), "single_s": round(g_single, 2),
                    "batched_per_s": round(len(free) / g_batched, 2), "single_per_s": round(len(free) / g_single, 2),
                    "speedup": round(g_single / g_batched, 2)},
        classification={"n": len(cls), "batched_s": round(c_batched, 2), "single_s": round(c_single, 2),
                        "batched_per_s": round(len(cls) / c_batched, 2), "single_per_s": round(len(cls) / c_single, 2),
                        "speedup": round(c_single / c_batched, 2)},
    )
    for name in ("generation", "classification"):
        r = out[name]
        print(f"{name}: {r['n']} records, batched {r['batched_per_s']}/s vs one-at-a-time {r['single_per_s']}/s -> {r['speedup']}x")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
