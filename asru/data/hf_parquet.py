"""Shared helpers for benchmarks published as Hugging Face parquet configs (MLLMU-Bench, CLEAR).

A config is either a folder of ``*.parquet`` shards (``forget_5/train-00000-of-00001.parquet``, the
layout of a dataset snapshot) or a single ``<config>.parquet`` file. Image cells are Hugging Face
``Image`` features: ``{"bytes": ..., "path": ...}``; their bytes are written once to a
content-addressed cache folder so records can point at files.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from asru.core.errors import AsruError
from asru.core.rundir import atomic_write_bytes
from asru.data.schema import Record


def pick_forget_pct(d: Path, forget_pct: int | None, available: list[int], benchmark: str, folders: str,
                    article: str = "a") -> int:
    """The forget percentage to load: ``forget_pct`` if ``d`` has it, else the first of ``available``."""
    if not available:
        raise AsruError(f"{d}: no {folders} folder: not {article} {benchmark} snapshot")
    if forget_pct is None:
        return available[0]
    if forget_pct not in available:
        raise AsruError(f"{d}: {benchmark} forget percentage {forget_pct} not available (found: {available})")
    return forget_pct


def record_or_error(where: str, **kw):
    """A Record from mapped benchmark fields (question/answer stripped); an invalid one is an AsruError naming ``where``."""
    for key in ("question", "answer"):
        if kw.get(key) is not None:
            kw[key] = str(kw[key]).strip()
    try:
        return Record(**kw)
    except (ValueError, TypeError) as exc:
        raise AsruError(f"{where}: invalid question: {exc}") from None


def config_files(data_dir: Path, config: str) -> list[Path]:
    """The parquet shards of ``config`` in ``data_dir`` (folder of shards or one file); [] if absent."""
    folder = data_dir / config
    if folder.is_dir():
        return sorted(folder.rglob("*.parquet"))
    single = data_dir / f"{config}.parquet"
    return [single] if single.is_file() else []


def has_config(data_dir: Path, config: str) -> bool:
    """Whether ``config`` exists in ``data_dir``."""
    return bool(config_files(data_dir, config))


def read_config(data_dir: Path, config: str) -> list[tuple[Path, int, dict]]:
    """All rows of ``config`` as ``(shard path, row number, row dict)``; AsruError if unreadable."""
    import pyarrow.parquet as pq
    files = config_files(data_dir, config)
    if not files:
        raise AsruError(f"{data_dir}: config {config!r} not found (expected {config}/*.parquet or {config}.parquet)")
    rows = []
    for path in files:
        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            raise AsruError(f"{path}: cannot read parquet file ({exc})") from None
        for i, row in enumerate(table.to_pylist()):
            rows.append((path, i, row))
    return rows


def require_columns(path: Path, row: dict, columns: tuple[str, ...]) -> None:
    """Raise AsruError naming the file if a row lacks one of ``columns``."""
    missing = [c for c in columns if c not in row]
    if missing:
        raise AsruError(f"{path}: missing column(s) {missing} (found: {sorted(row)}); is this the right dataset?")


class ImageCache:
    """Writes image bytes to ``folder/<sha1>.<ext>`` once and returns the file path."""

    def __init__(self, folder: Path, data_dir: Path):
        self.folder = folder
        self.data_dir = data_dir

    def store(self, cell, where: str) -> str:
        """Path of the image in an HF ``Image`` cell (dict with bytes/path, raw bytes, or a path string).

        ``where`` names the file and row for error messages.
        """
        data, ref = None, None
        if isinstance(cell, dict):
            data, ref = cell.get("bytes"), cell.get("path")
        elif isinstance(cell, (bytes, bytearray)):
            data = bytes(cell)
        elif isinstance(cell, str):
            ref = cell
        if not data:
            if ref:
                p = Path(ref) if Path(ref).is_absolute() else self.data_dir / ref
                if p.is_file():
                    return str(p)
            raise AsruError(f"{where}: image is missing (no bytes and no readable path)")
        ext = _image_ext(data, where)
        name = hashlib.sha1(data).hexdigest()[:20] + ext
        target = self.folder / name
        if not target.is_file():
            try:
                atomic_write_bytes(target, data)
            except AsruError:
                raise AsruError(f"cannot write image cache {self.folder}: pass a writable cache_dir") from None
        return str(target)


def default_cache_dir(data_dir: Path, name: str) -> Path:
    """``<data_dir>/_asru_images`` when writable, else ``~/.cache/asru/<name>-<hash of data_dir>``."""
    local = data_dir / "_asru_images"
    if os.access(data_dir, os.W_OK):
        return local
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(os.environ.get("ASRU_CACHE", Path.home() / ".cache" / "asru")) / f"{name}-{digest}"


def _image_ext(data: bytes, where: str) -> str:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "png").lower()
            im.verify()
    except Exception:  # noqa: BLE001 - PIL raises many types for bad bytes
        raise AsruError(f"{where}: image bytes are not a readable image") from None
    return {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif", "bmp": ".bmp"}.get(fmt, ".img")
