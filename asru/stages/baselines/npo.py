"""Negative preference optimisation: ``-(2 / beta) * mean log sigmoid(-beta * (log p(F) - log p_ref(F))) + w * NLL(R)``."""

from __future__ import annotations

from asru.stages.baselines.common import encode_batch, sequence_logprobs
from asru.stages.baselines.context import BaselineContext
from asru.stages.baselines.registry import register_baseline


@register_baseline("npo")
def npo_loss(ctx: BaselineContext, step: int):
    """Negative preference optimisation."""
    import torch
    import torch.nn.functional as F

    enc, labels = encode_batch(ctx.lm, next(ctx.forget))
    logp, _, _, _ = sequence_logprobs(ctx.model, enc, labels)
    with torch.no_grad(), ctx.model.disable_adapter():
        ref_logp, _, _, _ = sequence_logprobs(ctx.model, enc, labels)
    beta = ctx.cfg.npo_beta
    loss = -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()
    return loss + ctx.retain_nll()
