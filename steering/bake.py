"""Baking directional ablation into the weights (weight orthogonalisation), so it serves without hooks.

Directional ablation keeps the residual stream free of a direction ``r`` (or a subspace). The
residual stream is a sum of *writes*; if every write is orthogonal to ``r``, the stream never holds
an ``r`` component and the ablation hooks (:func:`steering.hooks.ablate_direction` with
``layers=None``) become no-ops, so the orthogonalised model's logits equal the hooked model's. The
writes that must be orthogonalised (``W <- W - r r^T W``; biases ``b <- b - (b . r) r``):

* the token embedding matrix (each row is written into the stream at layer 0);
* every decoder layer's attention output projection (``o_proj``) and MLP down projection
  (``down_proj``);
* for VLMs, every projector output that writes into the stream: the multimodal projector's last
  linear layer (its outputs replace the image-token embeddings) and, for Qwen3-VL, each DeepStack
  merger's last linear layer (added to the hidden states after the first layers).

Reads (q/k/v, gate/up projections, norms, the LM head) are untouched. A tied LM head is untied first
(the original matrix is kept for the head): the head reads ``norm(h)``, whose elementwise gain brings
``r`` back, so orthogonalising the head with the embeddings would change the logits.

Only ablation is bakeable. ``add`` and ``gated`` steering cannot be baked exactly (see
:mod:`steering.hooks`) and :func:`refuse_unbakeable` rejects them. Redirection (``mode: redirect``) is
already trained into the weights and needs no baking.
"""

from __future__ import annotations

from asru.core.errors import AsruError
from asru.core.layers import decoder_layers, hidden_size, unwrap
from steering.hooks import BAKEABLE, _unit_basis

_ATTN_OUT = ("o_proj", "out_proj", "dense", "c_proj")
_MLP_OUT = ("down_proj", "fc2", "dense_4h_to_h", "c_proj")
# Projectors whose outputs enter the language model's residual stream, by architecture.
_PROJECTOR_PATHS = (
    "model.visual.merger.linear_fc2",  # Qwen3-VL
    "model.visual.merger.mlp.2",  # Qwen2.5-VL / Qwen2-VL
    "model.multi_modal_projector.linear_2",  # LLaVA
    "model.connector.modality_projection.proj",  # SmolVLM / Idefics3
    "model.multi_modal_projector.linear",  # Gemma3-style single linear
)
_DEEPSTACK_PATH = "model.visual.deepstack_merger_list"
_UNSUPPORTED_NORMS = ("post_feedforward_layernorm", "post_attention_norm", "post_mlp_layernorm")


def _get(obj, path: str):
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() and hasattr(obj, "__getitem__") else getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _child(module, names):
    for name in names:
        sub = getattr(module, name, None)
        if sub is not None and hasattr(sub, "weight"):
            return name, sub
    return None, None


def residual_writers(model) -> list[tuple[str, object]]:
    """``(name, module)`` of every module whose output is written into the language residual stream."""
    from torch import nn

    base = unwrap(model)
    H = hidden_size(base)
    writers = [("embed_tokens", base.get_input_embeddings())]
    for i, block in enumerate(decoder_layers(base)):
        for norm_name in _UNSUPPORTED_NORMS:
            if hasattr(block, norm_name):
                raise AsruError(f"cannot bake ablation into {type(block).__name__}: it normalises sublayer outputs ({norm_name}); use the ablate hook instead")
        attn = getattr(block, "self_attn", None) or getattr(block, "attn", None) or getattr(block, "attention", None)
        mlp = getattr(block, "mlp", None) or getattr(block, "feed_forward", None)
        a_name, a_out = _child(attn, _ATTN_OUT) if attn is not None else (None, None)
        m_name, m_out = _child(mlp, _MLP_OUT) if mlp is not None else (None, None)
        if a_out is None or m_out is None:
            raise AsruError(f"cannot find the attention output / MLP down projection of layer {i} ({type(block).__name__}); baking is not supported for this architecture")
        writers += [(f"layers.{i}.{a_name}", a_out), (f"layers.{i}.{m_name}", m_out)]
    if getattr(base.config, "vision_config", None) is not None:
        found = False
        for path in _PROJECTOR_PATHS:
            mod = _get(base, path)
            if isinstance(mod, nn.Linear) and mod.out_features == H:
                writers.append((path, mod))
                found = True
                break
        if not found:
            raise AsruError(f"cannot find the multimodal projector of {type(base).__name__}; baking ablation is not supported for it (use the ablate hook)")
        stack = _get(base, _DEEPSTACK_PATH)
        if stack is not None:
            for j, merger in enumerate(stack):
                fc2 = getattr(merger, "linear_fc2", None)
                if not isinstance(fc2, nn.Linear) or fc2.out_features != H:
                    raise AsruError(f"unexpected DeepStack merger {j} in {type(base).__name__}; cannot bake ablation")
                writers.append((f"{_DEEPSTACK_PATH}.{j}.linear_fc2", fc2))
    return writers


def untie_lm_head(model) -> bool:
    """Give the LM head its own copy of a tied embedding matrix; True if it was tied."""
    import torch

    base = unwrap(model)
    head, emb = base.get_output_embeddings(), base.get_input_embeddings()
    if head is None or head.weight is not emb.weight and head.weight.data_ptr() != emb.weight.data_ptr():
        return False
    head.weight = torch.nn.Parameter(emb.weight.detach().clone(), requires_grad=emb.weight.requires_grad)
    for cfg in (base.config, getattr(base.config, "text_config", None)):
        if cfg is not None and hasattr(cfg, "tie_word_embeddings"):
            cfg.tie_word_embeddings = False
    if hasattr(base, "_tied_weights_keys"):
        base._tied_weights_keys = {}
    return True


def orthogonalize_(weight, basis, rows_are_writes: bool) -> None:
    """In place: remove the span of ``basis`` (orthonormal ``[k, H]``) from what ``weight`` writes.

    ``rows_are_writes``: an embedding ``[V, H]`` (each row is written); otherwise a linear weight
    ``[H, in]`` (each column is written). Computed in float32.
    """
    import torch

    with torch.no_grad():
        b = basis.to(device=weight.device, dtype=torch.float32)
        w = weight.data.to(torch.float32)
        if rows_are_writes:
            w = w - (w @ b.T) @ b
        else:
            w = w - b.T @ (b @ w)
        weight.data.copy_(w.to(weight.dtype))


def bake_ablation(model, direction) -> list[str]:
    """Fold directional ablation of ``direction`` (``[H]`` or a ``[k, H]`` basis) into the weights.

    Returns the names of the orthogonalised modules. Afterwards the model needs no hooks; its logits
    equal those of :func:`steering.hooks.ablate_direction` (``layers=None``) on the original weights.
    """
    from torch import nn

    basis = _unit_basis(direction)
    if basis.shape[1] != hidden_size(model):
        raise AsruError(f"direction has size {basis.shape[1]} but the model's hidden size is {hidden_size(model)}")
    writers = residual_writers(model)
    untie_lm_head(model)
    for name, mod in writers:
        orthogonalize_(mod.weight, basis, rows_are_writes=isinstance(mod, nn.Embedding))
        bias = getattr(mod, "bias", None)
        if bias is not None:
            orthogonalize_(bias.view(1, -1), basis, rows_are_writes=True)
    return [name for name, _ in writers]


def refuse_unbakeable(kind: str) -> None:
    """Raise AsruError for an intervention that cannot be folded into the weights exactly."""
    if kind in ("redirect",):
        return
    if not BAKEABLE.get(kind, False):
        raise AsruError(
            f"steering mode {kind!r} cannot be baked into the weights exactly (only 'ablate' and 'redirect' can): "
            f"use steer.mode ablate or redirect, or export with export.allow_hooks to ship the hook description"
        )
