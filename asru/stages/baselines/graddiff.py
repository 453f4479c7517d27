"""Gradient difference: ``-NLL(F) + w * NLL(R)``."""

from __future__ import annotations

from asru.stages.baselines.common import encode_batch, nll
from asru.stages.baselines.context import BaselineContext
from asru.stages.baselines.registry import register_baseline


@register_baseline("graddiff")
def graddiff_loss(ctx: BaselineContext, step: int):
    """Gradient difference: ascent on forget, descent on retain."""
    enc, labels = encode_batch(ctx.lm, next(ctx.forget))
    return -nll(ctx.model, enc, labels) + ctx.retain_nll()
