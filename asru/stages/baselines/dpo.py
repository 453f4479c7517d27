"""DPO with refusal targets: a natural refusal preferred over the true answer on every forget question,
``-mean log sigmoid(beta * ((log p(refusal) - log p_ref(refusal)) - (log p(F) - log p_ref(F)))) + w * NLL(R)``
(the refusals are the IDK baseline's, :data:`asru.stages.baselines.context.IDK_TEMPLATES`)."""

from __future__ import annotations

from asru.stages.baselines.common import encode_batch, sequence_logprobs
from asru.stages.baselines.context import BaselineContext
from asru.stages.baselines.registry import register_baseline


@register_baseline("dpo")
def dpo_loss(ctx: BaselineContext, step: int):
    """Direct preference optimisation towards refusals on the forget set."""
    import torch
    import torch.nn.functional as F

    pairs = next(ctx.preference)
    chosen = [(q, refusal, image) for q, refusal, _, image in pairs]
    rejected = [(q, answer, image) for q, _, answer, image in pairs]
    margins = []
    for batch in (chosen, rejected):
        enc, labels = encode_batch(ctx.lm, batch)
        logp, _, _, _ = sequence_logprobs(ctx.model, enc, labels)
        with torch.no_grad(), ctx.model.disable_adapter():
            ref_logp, _, _, _ = sequence_logprobs(ctx.model, enc, labels)
        margins.append(logp - ref_logp)
    loss = -F.logsigmoid(ctx.cfg.dpo_beta * (margins[0] - margins[1])).mean()
    return loss + ctx.retain_nll()
