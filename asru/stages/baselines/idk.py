""""I don't know" fine-tuning: ``NLL(F with natural refusals as answers) + w * NLL(R)``."""

from __future__ import annotations

from asru.stages.baselines.common import encode_batch, nll
from asru.stages.baselines.context import BaselineContext
from asru.stages.baselines.registry import register_baseline


@register_baseline("idk")
def idk_loss(ctx: BaselineContext, step: int):
    """Fine-tuning towards 'I don't know' answers on the forget set."""
    enc, labels = encode_batch(ctx.lm, next(ctx.idk))
    return nll(ctx.model, enc, labels) + ctx.retain_nll()
