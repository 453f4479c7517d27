"""SimNPO (Fan et al., 2024): NPO without a reference model, on the length-normalised log-likelihood:
``-(2 / beta) * mean log sigmoid(-(beta / |y|) * log p(F) - gamma) + w * NLL(R)``."""

from __future__ import annotations

from asru.stages.baselines.common import encode_batch, sequence_logprobs
from asru.stages.baselines.context import BaselineContext
from asru.stages.baselines.registry import register_baseline


@register_baseline("simnpo")
def simnpo_loss(ctx: BaselineContext, step: int):
    """Simple (reference-free, length-normalised) negative preference optimisation."""
    import torch.nn.functional as F

    enc, labels = encode_batch(ctx.lm, next(ctx.forget))
    logp, n, _, _ = sequence_logprobs(ctx.model, enc, labels)
    beta, gamma = ctx.cfg.simnpo_beta, ctx.cfg.simnpo_gamma
    loss = -(2.0 / beta) * F.logsigmoid(-beta * logp / n.clamp(min=1) - gamma).mean()
    return loss + ctx.retain_nll()
