"""Export from a run directory: its last complete stage model, its data and its config."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from asru.config import ExportConfig
from asru.core.errors import AsruError
from asru.stages.export.checkpoint import WEIGHT_FILES
from asru.stages.export.run_inputs import read_run_config
from asru.stages.export.stage import export_model
from asru.stages.methods import PIPELINE_METHODS

LOG = logging.getLogger("asru.export")


def _model_complete(path: Path) -> bool:
    """True when ``path`` holds a loadable checkpoint (config + weights) or a PEFT adapter."""
    if (path / "adapter_config.json").is_file():
        return any((path / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin"))
    return (path / "config.json").is_file() and any((path / f).is_file() for f in WEIGHT_FILES)


def other_runs_stage_model(run: Path, stage: str, recorded: Path) -> Path | None:
    """This run's own path for a stage model recorded as ``<other run>/<stage>/<name>``, else None.

    A run directory copied elsewhere keeps the absolute paths of the run it was copied from in its
    ``stage.json`` files; the model it should export is the one inside the copy.
    """
    origin = recorded.absolute().parent.parent
    if recorded.parent.name != stage or not (origin / "config.yaml").is_file():
        return None
    if origin.resolve() == run.resolve():
        return None
    return run / stage / recorded.name


def final_stage_model(run_dir: str | Path) -> tuple[str, Path]:
    """``(stage, model_dir)`` of the run's last finished model-producing stage.

    Looks at ``rl``, then ``steer`` (method ``asru``), ``steer`` (``steer_only``) or the baseline's stage
    (other methods). A stage is finished when its ``stage.json`` names a complete model directory. A
    stage that was planned (in the run's ``stages``) or started (its directory exists) but did not finish
    makes the run incomplete: AsruError naming that stage.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise AsruError(f"run directory {run} does not exist: pass the --output-dir of an asru-train run")
    conf = read_run_config(run)
    method = conf.get("method", "asru")
    planned = set(conf.get("stages") or [])
    candidates = list(reversed(PIPELINE_METHODS.get(method, (method,))))  # the last stage's model is the run's
    for stage in candidates:
        sdir = run / stage
        rec_file = sdir / "stage.json"
        if rec_file.is_file():
            try:
                recorded = Path(json.loads(rec_file.read_text())["model"])
            except (ValueError, KeyError, TypeError):
                raise AsruError(f"{rec_file} is damaged: re-run the {stage} stage (asru-train --output-dir {run} --resume)") from None
            own = other_runs_stage_model(run, stage, recorded)
            if own is not None:  # a copied run: its own copy of the model, never the original run's
                if own.is_dir() and _model_complete(own):
                    return stage, own
                raise AsruError(f"run {run} has no {stage} model of its own ({own} is missing or partly written; its record "
                                f"points at {recorded} in another run): copy {stage}/{own.name} with the run, or re-run it "
                                f"with asru-train --output-dir {run} --resume")
            # The record may hold a path relative to the directory asru-train ran in: also look inside the run.
            for model in (recorded, sdir / recorded.name, sdir / "model"):
                if model.is_dir() and _model_complete(model):
                    return stage, model
            raise AsruError(f"run {run} is incomplete: the {stage} stage's model {recorded} is missing or partly written; "
                            f"re-run it with asru-train --output-dir {run} --resume")
        if sdir.exists() or stage in planned:
            raise AsruError(f"run {run} is incomplete: the {stage} stage did not finish (no {stage}/stage.json); "
                            f"finish it with asru-train --output-dir {run} --resume")
    raise AsruError(f"run {run} has no finished model stage (looked for {', '.join(f'{c}/stage.json' for c in candidates)}): "
                    f"run asru-train with the {' or '.join(candidates)} stage first")


def export_run(run_dir: str | Path, out_dir: str | Path | None = None, cfg: ExportConfig | None = None, *,
               overwrite: bool | None = None) -> Path:
    """Export the last finished stage's model of a run directory (``asru-export --run DIR --out DIR``).

    ``out_dir`` defaults to ``cfg.out`` or ``<run>/export``; ``overwrite`` (when given) overrides ``cfg.overwrite``.
    """
    cfg = cfg or ExportConfig()
    if overwrite is not None:
        cfg = dataclasses.replace(cfg, overwrite=overwrite)
    run = Path(run_dir)
    stage, model = final_stage_model(run)
    out = Path(out_dir or cfg.out or run / "export")
    LOG.info("exporting the %s stage's model %s -> %s", stage, model, out)
    return export_model(str(model), out, cfg, run_dir=run, stage=stage)
