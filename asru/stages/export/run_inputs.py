"""What a run directory recorded: its configuration and its benchmark."""

from __future__ import annotations

import logging
from pathlib import Path

from asru.config import build_config
from asru.core.errors import AsruError
from asru.data.benchmark import default_data_dir
from asru.data.loaders import load_benchmark

LOG = logging.getLogger("asru.export")


def read_run_config(run: Path) -> dict:
    import yaml

    f = run / "config.yaml"
    if not f.is_file():
        raise AsruError(f"{run} is not a run directory (no config.yaml): pass the --output-dir of an asru-train run")
    try:
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise AsruError(f"{f} is not valid YAML: the run directory is damaged; re-run asru-train") from None
    if not isinstance(data, dict):
        raise AsruError(f"{f} must hold a mapping: the run directory is damaged; re-run asru-train")
    return data


def run_data(run_dir: str | Path):
    """The benchmark splits a run used (``forget``/``retain`` at least), or None when they cannot be found.

    Used only for the model card's counts and the verification prompts; never generates data.
    """
    try:
        conf = read_run_config(Path(run_dir))
        data_cfg = build_config({"data": conf.get("data") or {}}).data
    except AsruError as exc:
        LOG.debug("no run config for the benchmark: %s", exc)
        return None
    if data_cfg.data_dir:
        path = Path(data_cfg.data_dir)
    else:
        path = default_data_dir(data_cfg)
    if not path.is_dir():
        LOG.info("benchmark %s not found: the model card will not record counts", path)
        return None
    try:
        return load_benchmark(path, ["forget", "retain"], check_images=False)
    except AsruError as exc:
        LOG.info("cannot load the benchmark %s (%s): the model card will not record counts", path, exc)
        return None
