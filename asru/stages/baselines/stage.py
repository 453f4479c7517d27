"""The baseline stage: train the registered loss ``cfg.method`` with LoRA and save the merged model."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

from asru.core import models
from asru.core.errors import AsruError
from asru.core.lora import save_merged
from asru.core.rundir import atomic_write_json
from asru.data.schema import Record
from asru.stages.baselines.common import add_lora, train_loop
from asru.stages.baselines.context import BaselineContext
from asru.stages.baselines.registry import BASELINES

LOG = logging.getLogger("asru.baselines")


def train_baseline(name: str, lm, forget: list[Record], retain: list[Record], cfg, progress: bool = False):
    """Attach LoRA to ``lm.model``, train the baseline ``name`` in place; returns ``(peft_model, losses)``."""
    import torch

    loss_fn = BASELINES.get(name)
    if not forget:
        raise AsruError("the forget split is empty: a baseline needs something to forget")
    torch.manual_seed(cfg.seed)
    model = add_lora(lm.model, cfg.lora_r, cfg.seed)
    ctx = BaselineContext(lm, model, forget, retain, cfg)
    trains = getattr(loss_fn, "trains", None)
    losses = train_loop(model, cfg.steps, cfg.lr, lambda step: loss_fn(ctx, step), cfg.max_grad_norm,
                        desc=f"baseline {name}", progress=progress,
                        trains=(lambda param: trains(param, cfg, model)) if trains else None)
    return model, losses


def run_baseline(cfg, model_path: str, data: dict[str, list[Record]], out_dir: Path) -> Path:
    """Run the baseline ``cfg.method`` on ``model_path`` and save the merged checkpoint in ``out_dir/model``."""
    name = cfg.method
    if name not in BASELINES:
        raise AsruError(f"method {name!r} is not a baseline: choose from {BASELINES.choices()}")
    if "forget" not in data:
        raise AsruError("the data has no forget split: a baseline needs something to forget")
    bcfg = cfg.baseline
    retain = list(data.get("retain", []))
    random.Random(bcfg.seed).shuffle(retain)
    retain = retain[: bcfg.retain_size]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lm = models.load_model(model_path, dtype=cfg.model.dtype, device=cfg.model.device, trust_remote_code=cfg.model.trust_remote_code)
    forget = list(data["forget"])
    if not lm.is_vlm:
        forget = [r for r in forget if r.image is None]
        retain = [r for r in retain if r.image is None]
        LOG.info("text-only model: image questions are left out of the baseline's training data")
    t0 = time.time()
    LOG.info("baseline %s: %d steps, %d forget / %d retain examples", name, bcfg.steps, len(forget), len(retain))
    model, losses = train_baseline(name, lm, forget, retain, bcfg, progress=True)
    path = save_merged(model, lm.processor, out_dir / "model")
    atomic_write_json(out_dir / "train_log.json", {
        "method": name, "steps": len(losses), "seconds": round(time.time() - t0, 1), "losses": losses,
        "config": {k: getattr(bcfg, k) for k in bcfg.__dataclass_fields__},
        "forget_examples": len(forget), "retain_examples": len(retain),
    })
    LOG.info("baseline %s: done in %.0f s, final loss %.3f", name, time.time() - t0, losses[-1] if losses else float("nan"))
    return path
