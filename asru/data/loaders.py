"""Load a benchmark directory, whatever its format, as ``{split: [Record, ...]}``.

Formats, told apart by what the directory holds:

- ``jsonl``: our own format (``asru-data generate``, or hand-made): ``<split>.jsonl`` files, an
  ``images/`` folder, optionally ``meta.json`` (see :mod:`asru.data.schema`);
- ``mllmu``: a downloaded MLLMU-Bench snapshot (``forget_5/`` ... parquet folders, :mod:`asru.data.mllmu`);
- ``clear``: a downloaded CLEAR snapshot (``forget01/`` ... parquet folders, :mod:`asru.data.clear`).

Every failure is an :class:`~asru.core.errors.AsruError` naming the directory or file and the fix: a
missing directory, a missing split (with the files that do exist), an unknown split name, an empty
split, a malformed line (``file:line``), a missing image.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from asru.core.errors import AsruError
from asru.data import clear, mllmu
from asru.data.schema import ALL_SPLITS, SPLITS, Record, read_jsonl

FORMATS = ("jsonl", "mllmu", "clear")


def detect_format(data_dir) -> str:
    """``"jsonl"``, ``"mllmu"`` or ``"clear"`` for an existing benchmark directory; AsruError otherwise."""
    d = _existing_dir(data_dir)
    if (d / "meta.json").is_file() or any((d / f"{s}.jsonl").is_file() for s in ALL_SPLITS):
        return "jsonl"
    if mllmu.is_mllmu_dir(d):
        return "mllmu"
    if clear.is_clear_dir(d):
        return "clear"
    found = ", ".join(sorted(p.name for p in d.iterdir())[:12]) or "nothing"
    raise AsruError(f"{d} is not a benchmark directory (found: {found}); expected <split>.jsonl files "
                    "(asru-data generate), an MLLMU-Bench snapshot (forget_5/ ...) or a CLEAR snapshot (forget01/ ...)")


def available_splits(data_dir, forget_pct: int | None = None) -> tuple[str, ...]:
    """The splits (of ``forget, retain, test, real, teach``) this benchmark directory provides."""
    d = _existing_dir(data_dir)
    fmt = detect_format(d)
    if fmt == "jsonl":
        have = {s for s in ALL_SPLITS if (d / f"{s}.jsonl").is_file()}
    elif fmt == "mllmu":
        have = set(mllmu.split_configs(d, forget_pct))
    else:
        have = set(clear.split_configs(d, forget_pct))
    return tuple(s for s in ALL_SPLITS if s in have)


def load_benchmark(data_dir, splits: Iterable[str] | str = SPLITS, *, forget_pct: int | None = None,
                   cache_dir=None, check_images: bool = True) -> dict[str, list[Record]]:
    """Load ``splits`` (names from ``forget, retain, test, real, teach``) of the benchmark in ``data_dir``.

    ``forget_pct`` picks the forget/retain pair of MLLMU-Bench (5, 10, 15) or CLEAR (1, 5, 10); by
    default the smallest present. ``cache_dir`` is where images of parquet benchmarks are written
    (default ``<data_dir>/_asru_images``). ``check_images`` verifies every image file opens (JSONL).
    Returns ``{split: records}`` in the order asked; no split is ever empty.
    """
    wanted = _check_splits(splits)
    d = _existing_dir(data_dir)
    fmt = detect_format(d)
    if fmt == "jsonl":
        out = {s: _load_jsonl_split(d, s, check_images) for s in wanted}
    elif fmt == "mllmu":
        out = mllmu.load_mllmu(d, wanted, forget_pct=forget_pct, cache_dir=cache_dir)
    else:
        out = clear.load_clear(d, wanted, forget_pct=forget_pct, cache_dir=cache_dir)
    for split, recs in out.items():
        if not recs:
            raise AsruError(f"{d}: split {split!r} has no records; regenerate or re-download the benchmark")
        _check_unique_ids(d, split, recs)
    return out


def _check_splits(splits) -> list[str]:
    if isinstance(splits, str):
        splits = [s.strip() for s in splits.split(",") if s.strip()]
    wanted = list(dict.fromkeys(splits))
    if not wanted:
        raise AsruError(f"no split asked for; choose from {', '.join(ALL_SPLITS)}")
    for s in wanted:
        if s not in ALL_SPLITS:
            raise AsruError(f"unknown split {s!r}; choose from {', '.join(ALL_SPLITS)}")
    return wanted


def _existing_dir(data_dir) -> Path:
    if data_dir is None or str(data_dir) == "":
        raise AsruError("no benchmark directory given: pass --data DIR (make one with 'asru-data generate --out DIR')")
    d = Path(data_dir)
    if not d.exists():
        raise AsruError(f"benchmark directory {d} does not exist: make one with 'asru-data generate --out {d}' "
                        "or pass the folder of a downloaded MLLMU-Bench / CLEAR snapshot")
    if not d.is_dir():
        raise AsruError(f"benchmark path {d} is not a directory")
    return d


def _load_jsonl_split(d: Path, split: str, check_images: bool) -> list[Record]:
    path = d / f"{split}.jsonl"
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in d.glob("*.jsonl"))) or "no .jsonl files"
        raise AsruError(f"{d}: split {split!r} not found (no {split}.jsonl; found: {found})")
    records = read_jsonl(path, base_dir=d, check_images=check_images)
    if not records:
        raise AsruError(f"{path}: split {split!r} is empty; regenerate the benchmark")
    for rec in records:
        if rec.split != split:
            raise AsruError(f"{path}: record {rec.id!r} says split {rec.split!r} but is in {split}.jsonl")
    return records


def _check_unique_ids(d: Path, split: str, recs: list[Record]) -> None:
    seen = set()
    for rec in recs:
        if rec.id in seen:
            raise AsruError(f"{d}: split {split!r} holds the id {rec.id!r} twice; ids must be unique")
        seen.add(rec.id)
