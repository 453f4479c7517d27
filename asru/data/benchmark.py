"""Where the built-in synthetic benchmark is cached, and whether the cached one is current."""

from __future__ import annotations

import json
from pathlib import Path

from asru.config import DataConfig
from asru.core.models import cache_dir
from asru.data.synthetic import GENERATOR_VERSION


def default_data_dir(data: DataConfig) -> Path:
    """Cache location of the built-in synthetic benchmark for these generator settings."""
    return cache_dir() / "benchmarks" / f"synthetic-p{data.people}-f{data.forget_ratio}-s{data.seed}-i{data.image_size}"


def is_current_benchmark(path: Path) -> bool:
    """True when ``path`` holds a built-in benchmark written by this version of the generator."""
    try:
        return json.loads((path / "meta.json").read_text(encoding="utf-8")).get("generator_version") == GENERATOR_VERSION
    except (OSError, ValueError):
        return False
