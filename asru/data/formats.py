"""The benchmark-format registry: how a benchmark directory is recognised and read.

A format is one :class:`BenchmarkFormat` registered with :func:`register_format`; the loader tries
the registered formats in order and uses the first whose ``detect`` accepts the directory. The
built-in formats (``jsonl``, ``mllmu``, ``clear``) are registered in :mod:`asru.data.loaders`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from asru.core.registry import Registry
from asru.data.schema import Record


@dataclass(frozen=True)
class BenchmarkFormat:
    """A benchmark format.

    ``detect(dir)`` says whether a directory holds this format; ``splits(dir, forget_pct)`` lists the
    splits it provides; ``load(dir, splits, forget_pct=, cache_dir=, check_images=)`` returns
    ``{split: records}`` and raises :class:`~asru.core.errors.AsruError` naming the missing file for a
    split the directory lacks. ``looks_like`` describes the directory for the "not a benchmark" message.
    """

    name: str
    detect: Callable[[Path], bool]
    splits: Callable[[Path, int | None], Iterable[str]]
    load: Callable[..., dict[str, list[Record]]]
    looks_like: str


FORMATS: Registry[BenchmarkFormat] = Registry("benchmark format", "register one with asru.data.formats.register_format")


def register_format(fmt: BenchmarkFormat) -> BenchmarkFormat:
    """Register a benchmark format (tried after the ones registered before it)."""
    return FORMATS.add(fmt.name, fmt)
