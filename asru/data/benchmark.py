"""Where the built-in synthetic benchmark is cached."""

from __future__ import annotations

from pathlib import Path

from asru.config import DataConfig
from asru.core.models import cache_dir


def default_data_dir(data: DataConfig) -> Path:
    """Cache location of the built-in synthetic benchmark for these generator settings."""
    return cache_dir() / "benchmarks" / f"synthetic-p{data.people}-f{data.forget_ratio}-s{data.seed}-i{data.image_size}"
