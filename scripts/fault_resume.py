"""Fault test: kill -9 the pipeline during GRPO and during evaluation, resume, compare with an uninterrupted run.

Usage (heavy: the default pipeline three times over, about 30 min on 2 cores; run it alone)::

    python scripts/fault_resume.py [--workdir DIR] [--keep] [-- extra asru-train options]

1. an uninterrupted reference run: ``asru-train --output-dir <work>/reference`` (extra options appended);
2. the same command into ``<work>/faulted``, killed with SIGKILL (its whole process group) once GRPO has
   written its first complete checkpoint (``<run>/rl/checkpoints/checkpoint-N/trainer_state.json``);
3. ``--resume``, killed with SIGKILL once evaluation has started (``<run>/eval/`` exists) and before
   ``metrics.json`` is written;
4. ``--resume`` to completion.

Checked: every resume reuses each stage that had finished before the kill (its ``stage.json`` is byte for
byte the same and its log says ``stage X: inputs unchanged, reusing``), the GRPO resume continues from a
checkpoint, the last resume exits 0, and its ``metrics.json`` equals the reference run's once timings and
paths are left out. Each run gets its own ``ASRU_CACHE`` that links to the shared cache's models and
benchmarks but not to its evaluation cache, so both runs evaluate for real. Prints a verdict; exits 1 on
any mismatch or when a kill missed its window.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = "import sys; from asru.cli import train_main; sys.exit(train_main(sys.argv[1:]))"
# metrics.json keys that hold timings or paths, not results
IGNORED_KEYS = frozenset({"timings_s", "export", "vanilla", "final_model"})


class Missed(RuntimeError):
    """The run got past the point where it should have been killed."""


def shared_cache() -> Path:
    """The cache the runs' models and benchmarks come from."""
    return Path(os.environ.get("ASRU_CACHE", Path.home() / ".cache" / "asru"))


def private_cache(dst: Path, src: Path) -> Path:
    """A cache linking to every entry of ``src`` but its evaluation cache."""
    dst.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        for entry in src.iterdir():
            if entry.name != "eval-cache" and not (dst / entry.name).exists():
                (dst / entry.name).symlink_to(entry.resolve())
    return dst


def start(run: Path, cache: Path, extra: list[str], resume: bool) -> subprocess.Popen:
    """Start ``asru-train`` in its own process group."""
    env = dict(os.environ, ASRU_CACHE=str(cache), PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    argv = [sys.executable, "-c", TRAIN, "--output-dir", str(run), *(["--resume"] if resume else []), *extra]
    log = open(run.parent / f"{run.name}-{'resume' if resume else 'start'}-{time.time_ns()}.out", "wb")  # noqa: SIM115 - lives as long as the child
    return subprocess.Popen(argv, cwd=run.parent, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the run's whole process group (dataloader workers, vLLM and the like go with it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def complete_checkpoint(run: Path, stage: str) -> Path | None:
    """The first complete trainer checkpoint of ``stage``, if any."""
    for ckpt in sorted((run / stage / "checkpoints").glob("checkpoint-*")):
        if (ckpt / "trainer_state.json").is_file():
            return ckpt
    return None


def wait_and_kill(proc: subprocess.Popen, ready, missed, what: str, poll: float = 0.1, delay: float = 0.0) -> None:
    """Poll until ``ready()``; then (after ``delay`` s) SIGKILL. :class:`Missed` if ``missed()`` or the run ends first."""
    while not ready():
        if missed() or proc.poll() is not None:
            kill(proc)
            raise Missed(f"the run got past {what} before it could be killed (exit code {proc.returncode})")
        time.sleep(poll)
    time.sleep(delay)
    if missed() or proc.poll() is not None:
        kill(proc)
        raise Missed(f"the run got past {what} during the kill delay")
    kill(proc)


def finished_stages(run: Path) -> dict[str, bytes]:
    """``{stage: stage.json bytes}`` of the stages that have finished."""
    return {p.parent.name: p.read_bytes() for p in sorted(run.glob("*/stage.json"))}


def log_since(run: Path, offset: int) -> str:
    """What ``run.log`` got after byte ``offset`` (one invocation's part of the appended log)."""
    data = (run / "run.log").read_bytes() if (run / "run.log").is_file() else b""
    return data[offset:].decode("utf-8", "replace")


def log_size(run: Path) -> int:
    """The current size of ``run.log`` (0 before the first invocation)."""
    return (run / "run.log").stat().st_size if (run / "run.log").is_file() else 0


def reuse_problems(before: dict[str, bytes], after: dict[str, bytes], log: str, when: str) -> list[str]:
    """The stages finished before a kill that the next resume did not reuse as they were."""
    problems = []
    for stage, rec in before.items():
        if after.get(stage) != rec:
            problems.append(f"{when}: stage {stage} had finished before the kill but its stage.json changed (recomputed)")
        if f"stage {stage}: inputs unchanged, reusing" not in log:
            problems.append(f"{when}: the resume did not log reusing stage {stage}")
        if f"stage {stage}: starting" in log:
            problems.append(f"{when}: the resume started stage {stage} again")
    return problems


def comparable(obj, prefixes: tuple[str, ...]):
    """``obj`` without timing/path keys; strings with a run or cache path prefix have it replaced."""
    if isinstance(obj, dict):
        return {k: comparable(v, prefixes) for k, v in obj.items()
                if k not in IGNORED_KEYS and not k.endswith(("_s", "seconds", "_time"))}
    if isinstance(obj, list):
        return [comparable(v, prefixes) for v in obj]
    if isinstance(obj, str):
        for p in prefixes:
            obj = obj.replace(p, "<dir>")
    return obj


def differences(a, b, rtol: float = 0.0, path: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ (numbers within ``rtol`` count as equal), as ``key.path: a != b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}{k}: only in the {'reference' if k in a else 'resumed run'}" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], rtol, f"{path}{k}.")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, rtol, f"{path}{i}.")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        same = a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rtol, abs_tol=0.0)
        return [] if same else [f"{path.rstrip('.')}: {a} != {b}"]
    return [] if a == b else [f"{path.rstrip('.')}: {a!r} != {b!r}"]


def run_to_end(run: Path, cache: Path, extra: list[str], resume: bool, timeout: float) -> int:
    """Run ``asru-train`` to completion; its exit code."""
    proc = start(run, cache, extra, resume)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        return -1


def fault_run(work: Path, extra: list[str], grpo_stage: str, eval_delay: float, timeout: float) -> tuple[list[str], Path]:
    """Steps 2-4 of the module docstring; returns the problems found and the run directory."""
    run = work / "faulted"
    cache = private_cache(work / "cache-faulted", shared_cache())
    problems: list[str] = []

    proc = start(run.absolute(), cache, extra, resume=False)
    wait_and_kill(proc, lambda: complete_checkpoint(run, grpo_stage) is not None,
                  lambda: (run / grpo_stage / "stage.json").is_file(), f"GRPO (stage {grpo_stage})")
    print(f"killed during GRPO after {complete_checkpoint(run, grpo_stage).name}; finished: {', '.join(finished_stages(run)) or 'none'}")

    before, offset = finished_stages(run), log_size(run)
    proc = start(run.absolute(), cache, extra, resume=True)
    wait_and_kill(proc, lambda: (run / "eval").is_dir(), lambda: (run / "metrics.json").is_file(), "evaluation", delay=eval_delay)
    log = log_since(run, offset)
    print(f"killed during evaluation; finished: {', '.join(finished_stages(run))}")
    problems += reuse_problems(before, finished_stages(run), log, "resume after the GRPO kill")
    if "resuming from checkpoint-" not in log:
        problems.append("resume after the GRPO kill: GRPO did not continue from a checkpoint")

    before, offset = finished_stages(run), log_size(run)
    rc = run_to_end(run.absolute(), cache, extra, resume=True, timeout=timeout)
    problems += reuse_problems(before, finished_stages(run), log_since(run, offset), "resume after the evaluation kill")
    if rc != 0:
        problems.append(f"the last resume exited with {rc}")
    return problems, run


def main(argv: list[str] | None = None) -> int:
    """Run the fault test; print the verdict; 0 when it passes."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, help="Where the runs go (default: a temporary directory).")
    p.add_argument("--keep", action="store_true", help="Keep the work directory (always kept when --workdir is given).")
    p.add_argument("--reference", type=Path, help="An existing uninterrupted run directory of the same command (skips step 1).")
    p.add_argument("--grpo-stage", default="rl", help="The stage killed at its first checkpoint (default rl).")
    p.add_argument("--eval-delay", type=float, default=5.0, help="Seconds into evaluation before the kill (default 5).")
    p.add_argument("--rtol", type=float, default=0.0, help="Relative tolerance for metric values (default 0: equal).")
    p.add_argument("--timeout", type=float, default=3 * 3600, help="Seconds a run to completion may take.")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="Options for asru-train, after --.")
    args = p.parse_args(argv)
    extra = [a for a in args.extra if a != "--"] if args.extra[:1] == ["--"] else args.extra
    work = args.workdir or Path(tempfile.mkdtemp(prefix="asru-fault-"))
    work = work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        if args.reference:
            reference = args.reference.absolute()
        else:
            reference = work / "reference"
            rc = run_to_end(reference, private_cache(work / "cache-reference", shared_cache()), extra, False, args.timeout)
            if rc != 0:
                print(f"FAIL: the reference run exited with {rc} (see {work})")
                return 1
        try:
            problems, run = fault_run(work, extra, args.grpo_stage, args.eval_delay, args.timeout)
        except Missed as exc:
            print(f"FAIL (inconclusive): {exc}; see {work}")
            return 1
        if (run / "metrics.json").is_file() and (reference / "metrics.json").is_file():
            prefixes = tuple(str(p) for p in (reference, run, work, shared_cache()))
            ref = comparable(json.loads((reference / "metrics.json").read_text()), prefixes)
            got = comparable(json.loads((run / "metrics.json").read_text()), prefixes)
            problems += [f"metrics.json differs: {d}" for d in differences(ref, got, args.rtol)]
        else:
            problems.append("metrics.json is missing")
        minutes = (time.time() - t0) / 60
        if problems:
            print(f"FAIL after {minutes:.1f} min: " + str(len(problems)) + " problem(s)")
            for line in problems[:50]:
                print(f"  {line}")
            return 1
        print(f"PASS after {minutes:.1f} min: killed (SIGKILL) during GRPO and during evaluation, resumed to the end; "
              "every finished stage was reused and metrics.json equals the uninterrupted run's (timings and paths aside)")
        return 0
    finally:
        if not (args.workdir or args.keep):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
