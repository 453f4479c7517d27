#!/usr/bin/env python
"""The steering stage with fixed settings and with the steering search, side by side in one run.

Runs the data, teach and steer stages twice on the same model and benchmark (the preset of the model, or
``--config``): once with fixed layers (``--fixed-layers``, the demo VLM's hand-tuned pair by default) and the
config's ``coeff``, once with ``steer.search`` on and the fixed layers cleared, each in its own run directory
under ``--runs``. Prints each steering stage's
minutes and their ratio (the search's cost, the figure the search must keep within 1.3x), the search's
choice, and both stages' before/after tables; writes ``steer_search.json`` to ``--runs``.

    python scripts/bench_steer_search.py                                  # the demo VLM, built-in benchmark
    python scripts/bench_steer_search.py --set model.name=demo-text --set steer.search_trials=24
    python scripts/bench_steer_search.py --set data.seed=5 --set data.forget_ratio=0.2 --resume

Timings on a shared 2-core machine vary by +-20% between identical runs: the ratio within one run is the
figure that counts.
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


def run_steering(base: dict, out: Path, resume: bool) -> dict:
    """The data, teach and steer stages with ``base`` into ``out``; the steering stage's report and minutes."""
    from asru.config import build_config
    from asru.config_yaml import merge
    from asru.pipeline import run_pipeline

    again = resume and out.is_dir()
    cfg = build_config(merge(base, {"stages": ["data", "teach", "steer"], "output_dir": str(out), "resume": again,
                                    "overwrite": not again}))
    run_pipeline(cfg)
    report = json.loads((out / "steer" / "steer_report.json").read_text())
    stage = json.loads((out / "steer" / "stage.json").read_text())
    return {"minutes": round(stage["seconds"] / 60, 2), "layers": report["layers"], "choice": report["layer_choice"],
            "timings": report.get("timings"), "before": _table(report["before"]), "after": _table(report["after"])}


def _table(side: dict) -> dict:
    return {split: {k: side[split][k] for k in ("refusal_rate", "accuracy")} for split in side}


def main(argv: list[str] | None = None) -> int:
    """Entry point: fixed settings, then the search, then the comparison."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="Base config YAML (default: the shipped preset of the model).")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Config override for both runs (repeatable).")
    p.add_argument("--fixed-layers", default="15,23", help="The fixed side's steer.layers (default: the demo VLM's hand-tuned pair).")
    p.add_argument("--runs", default="runs/steer-search", help="Parent directory of the two run directories.")
    p.add_argument("--resume", action="store_true", help="Reuse finished stages of existing run directories.")
    args = p.parse_args(argv)

    from asru.cli import script_config
    from asru.config_yaml import merge
    from asru.core.errors import AsruError
    from asru.core.rundir import atomic_write_json

    base, config_file = script_config(args.config, args.set)
    try:
        layers = [int(x) for x in args.fixed_layers.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--fixed-layers {args.fixed_layers!r}: give layer numbers separated by commas, e.g. 15,23") from None
    if not layers:
        raise SystemExit("--fixed-layers: give at least one layer, e.g. 15,23")
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    t = time.time()
    try:
        fixed = run_steering(merge(base, {"steer": {"layers": layers, "layer": None, "search": False}}), runs / "fixed", args.resume)
        searched = run_steering(merge(base, {"steer": {"layers": [], "layer": None, "search": True}}), runs / "search", args.resume)
    except AsruError as exc:
        raise SystemExit(f"asru: error: {exc}") from None
    search = json.loads((runs / "search" / "steer" / "search" / "trials.json").read_text())
    ratio = searched["minutes"] / fixed["minutes"] if fixed["minutes"] else float("nan")
    result = {"date": time.strftime("%Y-%m-%d"), "config": config_file, "set": args.set, "fixed": fixed, "search": searched,
              "chosen": search["chosen"], "trials": len(search["trials"]), "ratio": round(ratio, 3),
              "wall_minutes": round((time.time() - t) / 60, 1)}
    atomic_write_json(runs / "steer_search.json", result)
    print(f"steering stage: fixed {fixed['minutes']:.1f} min (layers {fixed['layers']}), "
          f"search {searched['minutes']:.1f} min ({result['trials']} trials, chose layers {search['chosen']['layers']}, "
          f"c {search['chosen']['coeff']:.2f}): ratio {ratio:.2f} (must be <= 1.3)")
    for name, row in (("fixed", fixed), ("search", searched)):
        f, r = row["after"].get("forget", {}), row["after"].get("retain", {})
        print(f"  {name:<6} after: forget refusal {f.get('refusal_rate', float('nan')):.2f}, "
              f"retain accuracy {r.get('accuracy', float('nan')):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
