"""Benchmark: the default pipeline from an empty cache, stage by stage, against a baseline revision.

Usage (heavy: about an hour on 2 cores for both runs; run it alone)::

    python scripts/bench_pipeline.py --baseline ae8ac6d [--args "--data.seed 1"] [--keep DIR] [--out bench.json]

Each run is ``asru-train`` on the built-in default with a fresh, empty ``ASRU_CACHE`` (so the demo model is
built and taught inside the timed run), in a temporary run directory. The baseline revision is checked out in
a temporary git worktree and run with the same Python environment. While a run goes, the resident memory of
its process tree is sampled twice a second; stage windows come from the run's own log (``stage X: starting``
/ ``done`` lines) and the stage timings in ``metrics.json``. Printed per stage: wall time, share of the run,
peak RSS, tokens/s where the stage records them, and the ratio current / baseline. Timings on a shared machine
vary by +-20% between identical runs: the ratio measured in one invocation is the figure that counts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("data", "vanilla", "steer", "rl", "eval", "export")
LAUNCH = "import sys; from asru.cli import train_main; sys.exit(train_main(sys.argv[1:]))"
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \w+ [\w.]+: (.*)$")


class RssSampler(threading.Thread):
    """Samples the summed RSS of a process and its children (bytes) with timestamps until stopped."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.samples.append((time.time(), rss))
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self.join()


def log_events(run_log: Path) -> list[tuple[float, str]]:
    """(unix time, message) of every line of a run's ``run.log``."""
    events = []
    for line in run_log.read_text(encoding="utf-8", errors="replace").splitlines():
        m = LOG_LINE.match(line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1000
            events.append((t, m.group(3)))
    return events


def stage_windows(events: list[tuple[float, str]], timings: dict, t_start: float, t_end: float) -> dict[str, tuple[float, float]]:
    """Start and end time of each stage: model stages from their log lines, the rest from metrics.json's timings."""
    marks: dict[str, dict[str, float]] = {}
    for t, msg in events:
        m = re.match(r"stage (\w+): (starting|done|inputs unchanged)", msg)
        if m:
            marks.setdefault(m.group(1), {})["start" if m.group(2) == "starting" else "end"] = t
    windows: dict[str, tuple[float, float]] = {}
    model_stages = [s for s in ("steer", "rl") if "start" in marks.get(s, {}) and "end" in marks.get(s, {})]
    first = marks[model_stages[0]]["start"] if model_stages else t_end
    vanilla_start = first - float(timings.get("vanilla", 0.0))
    windows["data"] = (t_start, vanilla_start)
    windows["vanilla"] = (vanilla_start, first)
    for s in model_stages:
        windows[s] = (marks[s]["start"], marks[s]["end"])
    after = marks[model_stages[-1]]["end"] if model_stages else first
    if "eval" in timings:
        windows["eval"] = (after, after + float(timings["eval"]))
        after = windows["eval"][1]
    if "export" in timings:
        windows["export"] = (after, after + float(timings["export"]))
    return windows


def tokens_per_s(run_dir: Path, cache: Path) -> dict[str, float]:
    """Tokens/s that the stages record: teaching (teach_report.json) and GRPO (completion tokens / train time)."""
    out: dict[str, float] = {}
    for report in cache.glob("demo-vlm*/teach_report.json"):
        tps = json.loads(report.read_text()).get("train", {}).get("tokens_per_s")
        if tps:
            out["vanilla"] = float(tps)
    for state in sorted((run_dir / "rl").rglob("trainer_state.json"))[-1:]:
        hist = json.loads(state.read_text()).get("log_history", [])
        steps = [h for h in hist if "completions/mean_length" in h and "step_time" in h]
        if steps:
            toks = sum(h["completions/mean_length"] * h.get("num_completions", 1) for h in steps)
            secs = sum(h["step_time"] for h in steps)
            if secs:
                out["rl"] = toks / secs
    return out


def run_once(label: str, tree: Path, work: Path, extra: list[str]) -> dict:
    """One ``asru-train`` run of ``tree`` from an empty cache; its stage figures."""
    cache = work / f"cache-{label}"
    run_dir = work / f"run-{label}"
    shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ, ASRU_CACHE=str(cache), PYTHONPATH=str(tree), TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-c", LAUNCH, "--output-dir", str(run_dir), "--overwrite", *extra]
    print(f"[{label}] {tree}: {shlex.join(cmd[3:])}", flush=True)
    t0 = time.time()
    with open(work / f"{label}.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = RssSampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        sampler.stop()
    t1 = time.time()
    if rc != 0:
        raise SystemExit(f"[{label}] asru-train failed (exit {rc}); see {work / f'{label}.log'}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    timings = metrics.get("timings_s", {})
    windows = stage_windows(log_events(run_dir / "run.log"), timings, t0, t1)
    stages = {}
    for name, (a, b) in windows.items():
        rss = [r for t, r in sampler.samples if a <= t <= b]
        seconds = float(timings[name]) if name in timings else b - a
        stages[name] = {"seconds": round(seconds, 1), "peak_rss_gib": round(max(rss) / 2**30, 2) if rss else None}
    for name, tps in tokens_per_s(run_dir, cache).items():
        stages.setdefault(name, {})["tokens_per_s"] = round(tps, 1)
    total = t1 - t0
    for s in stages.values():
        s["share"] = round(s.get("seconds", 0.0) / total, 3)
    print(f"[{label}] done in {total / 60:.1f} min", flush=True)
    return {"tree": str(tree), "total_s": round(total, 1), "peak_rss_gib": round(max(r for _, r in sampler.samples) / 2**30, 2),
            "stages": stages, "targets": metrics.get("targets"), "run_dir": str(run_dir)}


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(results: dict) -> None:
    """Per-stage time, share, peak RSS, tokens/s and ratio current / baseline."""
    cur, base = results["current"], results.get("baseline")
    head = f"{'stage':8} {'current s':>10} {'share':>6} {'RSS GiB':>8} {'tok/s':>7}"
    if base:
        head += f" {'baseline s':>11} {'RSS GiB':>8} {'tok/s':>7} {'ratio':>6}"
    print(head)
    for name in [*STAGES, "total"]:
        c = cur["stages"].get(name, {}) if name != "total" else {"seconds": cur["total_s"], "share": 1.0, "peak_rss_gib": cur["peak_rss_gib"]}
        if not c:
            continue
        line = (f"{name:8} {_fmt(c.get('seconds'), '10.1f')} {_fmt(c.get('share'), '6.2f')} {_fmt(c.get('peak_rss_gib'), '8.2f')}"
                f" {_fmt(c.get('tokens_per_s'), '7.1f')}")
        if base:
            b = base["stages"].get(name, {}) if name != "total" else {"seconds": base["total_s"], "peak_rss_gib": base["peak_rss_gib"]}
            ratio = c["seconds"] / b["seconds"] if b.get("seconds") else None
            line += (f" {_fmt(b.get('seconds'), '11.1f')} {_fmt(b.get('peak_rss_gib'), '8.2f')} {_fmt(b.get('tokens_per_s'), '7.1f')}"
                     f" {_fmt(ratio, '6.2f')}")
        print(line)
    for label in ("current", "baseline"):
        r = results.get(label)
        if r and r.get("targets"):
            print(f"{label} end-of-run targets:")
            for t in r["targets"]:
                print(f"  [{'ok' if t['ok'] else '--'}] {t['target']} {t['bar']:.3f}: {t['value']:.3f}")


def main(argv=None) -> int:
    """Run the current checkout (and the baseline revision) and print the per-stage comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", metavar="REV", help="git revision to run in the same invocation (a temporary worktree)")
    ap.add_argument("--args", default="", help="extra asru-train arguments for both runs, e.g. \"--data.seed 1\"")
    ap.add_argument("--keep", type=Path, help="keep the run directories, caches and logs here (default: a temp dir, removed)")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    ap.add_argument("--current-first", action="store_true", help="run the current checkout before the baseline")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="asru-bench-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    extra = shlex.split(args.args)
    results: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB",
                     "args": extra, "baseline_rev": args.baseline}
    base_tree = None
    try:
        if args.baseline:
            base_tree = work / "baseline-tree"
            shutil.rmtree(base_tree, ignore_errors=True)
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=True)
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(base_tree), args.baseline],
                           check=True, capture_output=True)
        order = [("current", ROOT)] + ([("baseline", base_tree)] if base_tree else [])
        if base_tree and not args.current_first:
            order.reverse()
        for label, tree in order:
            results[label] = run_once(label, tree, work, extra)
    finally:
        if base_tree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False, capture_output=True)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
