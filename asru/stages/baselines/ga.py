"""Gradient ascent on the forget set: ``-NLL(F)``."""

from __future__ import annotations

from asru.stages.baselines.common import encode_batch, nll
from asru.stages.baselines.context import BaselineContext
from asru.stages.baselines.registry import register_baseline


@register_baseline("ga")
def ga_loss(ctx: BaselineContext, step: int):
    """Gradient ascent on the forget set."""
    enc, labels = encode_batch(ctx.lm, next(ctx.forget))
    return -nll(ctx.model, enc, labels)
