"""Leave no trace of a run that failed before doing anything.

A run creates its directory (and ``runs/`` above it) before it has loaded data or a model; when it then
stops on bad input (an unknown model or split), the directory holds nothing but ``config.yaml`` and
``run.log``. :func:`removed_on_early_failure` removes such directories again, and only those this run
created: a folder the user had, or one in which a stage has started, is never removed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# What a run writes before its first stage: removing a directory holding only these loses nothing.
SETUP_FILES = frozenset({"config.yaml", "run.log"})


def missing_dirs(path: str | Path) -> list[Path]:
    """``path`` and each of its ancestors that does not exist yet, deepest first."""
    out, p = [], Path(path).absolute()
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def holds_only_setup(path: Path) -> bool:
    """True when ``path`` holds nothing but :data:`SETUP_FILES` (a stage folder means a stage started)."""
    return all(child.name in SETUP_FILES and child.is_file() for child in path.iterdir())


def _close_log_files(path: Path) -> None:
    """Detach the ``asru`` loggers' file handlers writing under ``path`` (their file is about to go)."""
    root = logging.getLogger("asru")
    for h in list(root.handlers):
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).is_relative_to(path):
            root.removeHandler(h)
            h.close()


def remove_created(created: list[Path]) -> None:
    """Remove the directories of ``created`` (from :func:`missing_dirs`) that hold nothing of value."""
    if not created:
        return
    run = created[0]
    if run.is_dir() and holds_only_setup(run):
        _close_log_files(run)
        shutil.rmtree(run, ignore_errors=True)
    for parent in created[1:]:
        try:
            parent.rmdir()  # only when empty: another run may have appeared there meanwhile
        except OSError:
            break


@contextmanager
def removed_on_early_failure(path: str | Path | None) -> Iterator[None]:
    """Run the body; if it raises, remove ``path`` and its parents when this body created them and
    they still hold only setup files. ``None`` (nothing to guard) just runs the body."""
    created = missing_dirs(path) if path is not None else []
    try:
        yield
    except BaseException:
        remove_created(created)
        raise
