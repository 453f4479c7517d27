"""KL-minimisation: ``-NLL(F) + w * KL(p_ref || p)`` on the retain answers' tokens."""

from __future__ import annotations

from asru.stages.baselines.common import encode_batch, nll, sequence_logprobs
from asru.stages.baselines.context import BaselineContext
from asru.stages.baselines.registry import register_baseline


@register_baseline("kl")
def kl_loss(ctx: BaselineContext, step: int):
    """KL minimisation on retain with ascent on forget."""
    import torch

    enc, labels = encode_batch(ctx.lm, next(ctx.forget))
    loss = -nll(ctx.model, enc, labels)
    if ctx.retain is not None and ctx.cfg.retain_weight:
        enc_r, labels_r = encode_batch(ctx.lm, next(ctx.retain))
        _, _, logsm, mask = sequence_logprobs(ctx.model, enc_r, labels_r)
        with torch.no_grad(), ctx.model.disable_adapter():
            _, _, ref_logsm, _ = sequence_logprobs(ctx.model, enc_r, labels_r)
        kl_tok = (ref_logsm.exp() * (ref_logsm - logsm)).sum(-1)
        loss = loss + ctx.cfg.retain_weight * (kl_tok * mask).sum() / mask.sum().clamp(min=1)
    return loss
