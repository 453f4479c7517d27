"""Checkpoint writes that a full disk or a kill cannot turn into a broken resume.

A trainer checkpoint (``checkpoint-N``) is complete once ``trainer_state.json`` is in it: the trainer
writes that file last, after the weights, optimizer and RNG states, and removes older checkpoints only
after it. :func:`guarded_checkpoint_save` removes the partial folder of a write that failed (disk full)
and turns the OSError into one line; :func:`last_complete_checkpoint` skips (and removes) the partial
folder a killed run left, so ``--resume`` continues from the newest complete one.
"""

from __future__ import annotations

import errno
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from asru.core.errors import AsruError

LOG = logging.getLogger("asru.checkpoints")
COMPLETE_MARKER = "trainer_state.json"
_STEP = re.compile(r"^checkpoint-(\d+)$")


def disk_error(exc: OSError, path: str | Path) -> AsruError:
    """The one-line error for a failed write of ``path``; a full disk names the fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return AsruError(f"cannot write {path}: {exc.strerror or 'no space left on device'} (disk full): free space "
                         "(or point --output-dir at a larger disk), then rerun with --resume; earlier checkpoints are intact")
    return AsruError(f"cannot write {path}: {exc.strerror or exc}")


def checkpoint_step(path: str | Path) -> int | None:
    """N of a ``checkpoint-N`` folder, else None."""
    m = _STEP.match(Path(path).name)
    return int(m.group(1)) if m else None


def is_complete(path: str | Path) -> bool:
    """True when the checkpoint folder holds its trainer state (written last)."""
    return (Path(path) / COMPLETE_MARKER).is_file()


def last_complete_checkpoint(ckpt_dir: str | Path) -> str | None:
    """The newest complete ``checkpoint-N`` in ``ckpt_dir`` (partial ones are removed), else None."""
    ckpt_dir = Path(ckpt_dir)
    found = sorted((checkpoint_step(p), p) for p in ckpt_dir.glob("checkpoint-*") if p.is_dir() and checkpoint_step(p) is not None)
    for _, path in found:
        if not is_complete(path):
            LOG.warning("removing the partly written checkpoint %s (interrupted write)", path)
            shutil.rmtree(path, ignore_errors=True)
    complete = [p for _, p in found if p.is_dir()]
    return str(complete[-1]) if complete else None


def guarded_checkpoint_save(save: Callable[[], None], path: str | Path) -> None:
    """Run ``save`` (writing the checkpoint folder ``path``); on an OSError remove what it wrote of
    ``path`` and raise :func:`disk_error`. Other checkpoints are not touched."""
    path = Path(path)
    try:
        save()
    except OSError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise disk_error(exc, path) from None
