"""Run directories: creation rules, atomic writes and logging to console + ``run.log``.

Under ``accelerate launch`` (several processes) only the main process writes the run directory: the
pipeline asks :func:`is_main_process` and lets it go first with :func:`main_process_first`; one process
(no launcher) is always the main process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from asru.core.errors import AsruError

LOG = logging.getLogger("asru")
# How long the other processes may wait while the main process alone runs a stage (steering, evaluation,
# export of a large model): the timeout of the process group, far above torch's default 10 min for NCCL.
PROCESS_WAIT = timedelta(hours=12)


def process_state():
    """accelerate's ``PartialState`` of this run: one process unless started by ``accelerate launch``.

    The first call sets up the process group (CPU processes when there is no GPU) with the
    :data:`PROCESS_WAIT` timeout.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available(), timeout=PROCESS_WAIT)


def is_main_process() -> bool:
    """True in the process that writes the run directory (always, without ``accelerate launch``)."""
    return process_state().is_main_process


def main_process_first():
    """A context in which the main process runs first and the others after it (reading what it wrote)."""
    return process_state().main_process_first()


def default_run_dir() -> Path:
    """``runs/<timestamp>`` under the current directory."""
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


def holds_run(path: str | Path) -> bool:
    """True when ``path`` holds (the start of) an asru run: its ``run.log``, ``metrics.json`` or a stage record."""
    path = Path(path)
    return (path / "run.log").is_file() or (path / "metrics.json").is_file() or any(path.glob("*/stage.json"))


def check_run_dir(run: Path, overwrite: bool = False, resume: bool = False) -> None:
    """The rules for using ``run`` as a run directory, checked without touching it: a non-empty directory
    needs ``overwrite`` or ``resume``; ``resume`` alone needs one that holds a run (:func:`holds_run`)."""
    if run.exists() and not run.is_dir():
        raise AsruError(f"output dir {run} exists and is not a directory: choose another --output-dir")
    if run.is_dir() and any(run.iterdir()):
        if not (overwrite or resume):
            raise AsruError(f"output dir {run} is not empty: pass --overwrite to replace it or --resume to continue it")
        if resume and not overwrite and not holds_run(run):
            raise AsruError(f"--resume: {run} holds no asru run (no run.log, metrics.json or stage records); "
                            "give the run directory to continue, or a new --output-dir")


def prepare_run_dir(path: str | Path | None, overwrite: bool = False, resume: bool = False) -> Path:
    """Create (or reuse) a run directory.

    A non-empty directory is refused unless ``overwrite`` (its contents are then replaced stage by
    stage) or ``resume`` (finished stages are reused) is set; ``resume`` alone is refused, without
    touching it, on a non-empty directory that holds no run (:func:`holds_run`).
    """
    run = Path(path) if path else default_run_dir()
    check_run_dir(run, overwrite, resume)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AsruError(f"cannot create output dir {run}: {exc.strerror}") from None
    return run


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + rename, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AsruError(f"cannot write {path}: {exc.strerror} (disk full or no permission?)") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically write a UTF-8 text file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def replace_directory(tmp: str | Path, target: str | Path) -> Path:
    """Move the finished directory ``tmp`` to ``target``, replacing an older ``target``.

    The older one is renamed aside first and deleted after, so ``target`` is at every moment either the
    old complete directory or the new one (a directory cannot be renamed over a non-empty one).
    """
    tmp, target = Path(tmp), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


@contextmanager
def directory_swap(target: str | Path, tmp: str | Path | None = None, create: bool = True) -> Iterator[Path]:
    """Write a directory beside ``target`` and put it in place only when the block finishes.

    Yields the temporary directory (``tmp``, default ``.<name>.tmp-<pid>`` beside ``target``; a stale
    one is removed first, a fresh one made when ``create``). When the block returns, it replaces
    ``target`` (:func:`replace_directory`); when it raises, it is deleted and ``target`` is untouched.
    """
    target = Path(target)
    tmp = Path(tmp) if tmp is not None else target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    if create:
        tmp.mkdir(parents=True)
    try:
        yield tmp
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def setup_logging(run_dir: str | Path | None = None, verbose: bool = False, main_process: bool = True) -> None:
    """Log INFO to the console and, when a run dir is given, everything to ``run.log`` in it.

    The other processes of a launch (``main_process=False``) log only warnings, to the console.
    """
    root = logging.getLogger("asru")
    root.setLevel(logging.DEBUG)
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if verbose else logging.INFO if main_process else logging.WARNING)
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root.addHandler(console)
    if run_dir is not None and main_process:
        fh = logging.FileHandler(Path(run_dir) / "run.log", encoding="utf-8")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(fh)
    root.propagate = False
