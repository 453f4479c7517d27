#!/usr/bin/env python
"""Run the whole default pipeline on several built-in benchmarks and print one table of the end-of-run targets.

A setting that works on one benchmark is a hypothesis: this script runs ``asru-train`` (the built-in default
config, or ``--config``) once per benchmark of the synthetic generator, each in its own run directory under
``--runs``, and tabulates every end-of-run target (:mod:`asru.eval.targets`) per benchmark. Each benchmark's
demo model is taught (or found in the cache) for its own data.

    python scripts/run_benchmarks.py                                   # seed 0 and three others
    python scripts/run_benchmarks.py --benchmark seed=1 --benchmark seed=2,forget_ratio=0.2,people=30
    python scripts/run_benchmarks.py --set rl.max_steps=20 --runs runs/benchmarks --resume

A benchmark is ``KEY=VALUE[,KEY=VALUE...]`` over the generator's settings (``seed``, ``forget_ratio``,
``people``, ``image_size``). Writes ``benchmarks.md`` (the table) and ``benchmarks.json`` (every run's
targets) atomically to ``--out`` after each benchmark, so a stopped script keeps what it finished; with
``--resume`` the finished stages of each run directory are reused. Exit status 1 when a run failed or missed
a target.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from asru.core.openmp import set_wait_policy

set_wait_policy()  # the CLI's OpenMP wait policy, before torch is imported
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_BENCHMARKS = ("seed=0", "seed=1", "seed=2,forget_ratio=0.2", "seed=3,forget_ratio=0.3,people=30")
GENERATOR_KEYS = {"seed": int, "forget_ratio": float, "people": int, "image_size": int}


def parse_benchmark(spec: str) -> dict:
    """``"seed=2,forget_ratio=0.2"`` -> ``{"seed": 2, "forget_ratio": 0.2}``; a one-line SystemExit for a bad spec."""
    out: dict = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in GENERATOR_KEYS:
            raise SystemExit(f"--benchmark {spec!r}: use KEY=VALUE pairs over {', '.join(GENERATOR_KEYS)}")
        try:
            out[key] = GENERATOR_KEYS[key](value)
        except ValueError:
            raise SystemExit(f"--benchmark {spec!r}: {key} must be a number, got {value!r}") from None
    if not out:
        raise SystemExit("--benchmark needs at least one KEY=VALUE")
    return out


def benchmark_name(settings: dict) -> str:
    """A run-directory name for a benchmark: ``seed2-forget_ratio0.2``."""
    return "-".join(f"{k}{v}" for k, v in settings.items())


def target_table(rows: list[dict]) -> str:
    """Markdown: one row per benchmark, one column per end-of-run target (value, and whether it is met)."""
    names: list[str] = []
    for row in rows:
        for t in row.get("targets") or []:
            if t["target"] not in names:
                names.append(t["target"])
    header = ["benchmark", *[f"{n} {_bar(rows, n)}" for n in names], "all met", "minutes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        by_name = {t["target"]: t for t in row.get("targets") or []}
        cells = [row["benchmark"]]
        for n in names:
            t = by_name.get(n)
            cells.append("-" if t is None else f"{t['value']:.3f} {'ok' if t['ok'] else 'MISSED'}")
        if row.get("error"):
            cells.append(f"failed: {row['error']}")
        else:
            cells.append("yes" if row.get("targets") and all(t["ok"] for t in row["targets"]) else "no")
        cells.append("-" if row.get("minutes") is None else f"{row['minutes']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _bar(rows: list[dict], name: str) -> str:
    """The bar of a target when every benchmark has the same one (fixed bars); per-benchmark bars differ."""
    bars = {t["bar"] for row in rows for t in row.get("targets") or [] if t["target"] == name}
    return f"{bars.pop():g}" if len(bars) == 1 and "vanilla" not in name and "steering" not in name else "(per run)"


def run_one(settings: dict, base: dict, runs: Path, resume: bool) -> tuple[dict, float]:
    """The pipeline on one benchmark; returns (metrics.json dict, minutes of this call)."""
    from asru.config import build_config
    from asru.config_yaml import merge
    from asru.pipeline import run_pipeline

    out = runs / benchmark_name(settings)
    again = resume and out.is_dir()
    cfg = build_config(merge(base, {"data": dict(settings), "output_dir": str(out), "resume": again,
                                    "overwrite": not again}))
    t = time.time()
    metrics = run_pipeline(cfg)
    return metrics, (time.time() - t) / 60


def main(argv: list[str] | None = None) -> int:
    """Entry point: run each benchmark, write the table after each one, print it at the end."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", action="append", metavar="KEY=VALUE,...",
                   help=f"A benchmark of the built-in generator (repeatable; default: {' | '.join(DEFAULT_BENCHMARKS)}).")
    p.add_argument("--config", help="Base config YAML (default: the shipped preset of the model, configs/default.yaml for the demo model).")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Config override for every benchmark (repeatable).")
    p.add_argument("--runs", default="runs/benchmarks", help="Parent directory of the per-benchmark run directories.")
    p.add_argument("--out", default=None, help="Where benchmarks.md / benchmarks.json go (default: --runs).")
    p.add_argument("--resume", action="store_true", help="Reuse each benchmark's existing run directory (unchanged stages are not re-run).")
    args = p.parse_args(argv)

    from asru.cli import script_config
    from asru.core.errors import AsruError
    from asru.core.rundir import atomic_write_json, atomic_write_text

    benchmarks = [parse_benchmark(s) for s in (args.benchmark or DEFAULT_BENCHMARKS)]
    if any(item.strip().startswith("data.") for item in args.set):
        raise SystemExit("--set data.*: name the benchmark with --benchmark instead")
    base, config_file = script_config(args.config, args.set)
    runs = Path(args.runs)
    out = Path(args.out) if args.out else runs
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for settings in benchmarks:
        name = benchmark_name(settings)
        print(f"=== benchmark {name} ===", flush=True)
        row: dict = {"benchmark": name, "settings": settings, "run": str(runs / name)}
        try:
            metrics, row["minutes"] = run_one(settings, base, runs, args.resume)
            row["targets"] = metrics.get("targets") or []
        except AsruError as exc:
            print(f"error: benchmark {name}: {exc}", file=sys.stderr)
            row["error"] = str(exc)
        rows.append(row)
        table = target_table(rows)
        atomic_write_json(out / "benchmarks.json", {"config": config_file, "overrides": args.set, "benchmarks": rows})
        atomic_write_text(out / "benchmarks.md", "\n".join([
            "# End-of-run targets per benchmark", "",
            (f"Generated by `python scripts/run_benchmarks.py` on {time.strftime('%Y-%m-%d %H:%M')} "
             f"(config: {config_file or 'dataclass defaults'}; overrides: {', '.join(args.set) or 'none'})."),
            "", table, ""]))
    print(table)
    print(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks.json'}")
    ok = all(not r.get("error") and r.get("targets") and all(t["ok"] for t in r["targets"]) for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
