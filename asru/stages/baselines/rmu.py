"""RMU (Li et al., 2024, the WMDP paper): at one decoder layer, push the forget questions' hidden states
towards a fixed random vector and hold the retain questions' states:
``mean ||h_l(F) - c * u||^2 + alpha * mean ||h_l(R) - h_l,frozen(R)||^2`` over the prompt and answer tokens,
``u`` a random unit vector (seeded), training only the MLPs of layers ``l - 2 .. l`` as the paper does
(the adapters elsewhere stay frozen). ``baseline.rmu_layer``, ``rmu_coeff`` (c) and ``rmu_alpha`` (alpha)
default to the paper's values for its 7B model (layer 7, c 6.5, alpha 1200)."""

from __future__ import annotations

import re

from asru.core.layers import check_layer
from asru.stages.baselines.common import encode_batch
from asru.stages.baselines.context import BaselineContext
from asru.stages.baselines.registry import register_baseline


def rmu_trains(name: str, cfg, model) -> bool:
    """True for the adapters of the MLPs of decoder layers ``rmu_layer - 2 .. rmu_layer``."""
    layer = check_layer(model, cfg.rmu_layer)
    m = re.search(r"layers\.(\d+)\.mlp\.", name)
    return bool(m) and max(0, layer - 2) <= int(m.group(1)) <= layer


def _hidden(model, enc, layer: int):
    """The output of decoder layer ``layer`` (0-based) for every token."""
    return model(**enc, output_hidden_states=True).hidden_states[layer + 1]


def _masked_mse(h, target, mask):
    per_token = ((h - target) ** 2).mean(-1)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


@register_baseline("rmu", trains=rmu_trains)
def rmu_loss(ctx: BaselineContext, step: int):
    """Representation misdirection for unlearning."""
    import torch

    layer = check_layer(ctx.model, ctx.cfg.rmu_layer)
    if step == 0:
        g = torch.Generator().manual_seed(ctx.cfg.seed)
        width = ctx.model.get_input_embeddings().weight.shape[1]
        u = torch.rand(width, generator=g)
        ctx.state["rmu_target"] = ctx.cfg.rmu_coeff * u / u.norm()
    enc, _ = encode_batch(ctx.lm, next(ctx.forget))
    h = _hidden(ctx.model, enc, layer).float()
    target = ctx.state["rmu_target"].to(h.device)
    loss = _masked_mse(h, target, enc["attention_mask"])
    if ctx.retain is not None and ctx.cfg.rmu_alpha:
        enc_r, _ = encode_batch(ctx.lm, next(ctx.retain))
        h_r = _hidden(ctx.model, enc_r, layer).float()
        with torch.no_grad(), ctx.model.disable_adapter():
            frozen = _hidden(ctx.model, enc_r, layer).float()
        loss = loss + ctx.cfg.rmu_alpha * _masked_mse(h_r, frozen, enc_r["attention_mask"])
    return loss
