"""Inference-time steering as removable forward hooks (context managers).

=============  ==================================================================  =====================
kind           what it does to the residual stream                                 bakeable into weights
=============  ==================================================================  =====================
add            ``h + alpha * v`` at every token, at one layer's output            no (see below)
ablate         ``h - (h . r) r`` (r = unit direction, or a subspace basis) at      yes, exactly, when
               every point the model reads the residual: each decoder layer's      applied at all layers
               input, its attention output and its output                          (:mod:`steering.bake`)
gated          ``h + alpha * v'`` only at tokens where ``cos(h, v) > threshold``;  no
               ``v'`` is ``v`` with the retain subspace projected out
=============  ==================================================================  =====================

Why ``add`` and ``gated`` cannot be baked exactly: ``add`` is a constant offset at one layer, which a
weight matrix can only express as a bias of the layer's MLP down projection; Llama/Qwen-style
checkpoints have no such bias (``mlp_bias`` would add biases to every MLP layer), so a standard
checkpoint cannot hold it. ``gated`` makes a per-token, data-dependent decision (a threshold on a
cosine), which no linear weight edit reproduces. Ablation is a fixed linear projection applied to
every write into the residual stream, so it folds into those writers' weights.

All hooks accept decoder layers that return a Tensor (transformers 5) or a tuple, work under
``generate`` (with the KV cache they act on each new token), act on every batch row independently
(padding is harmless: padded positions are masked by attention) and are removed when the ``with``
block ends, restoring the exact original logits.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from asru.core.errors import AsruError
from asru.core.layers import check_layer, decoder_layers, layer_output, replace_layer_output
from steering.directions import project_out

HOOK_KINDS = ("add", "ablate", "gated")
BAKEABLE = {"add": False, "ablate": True, "gated": False}  # the one rule: which kinds fold exactly into the weights
UNBAKEABLE_KINDS = tuple(kind for kind in HOOK_KINDS if not BAKEABLE[kind])
DEFAULT_DIRECTION_FILE = "direction.safetensors"


@dataclass
class GateStats:
    """Counts of a gated hook: tokens seen and tokens where it fired (per forward call appended)."""

    seen: int = 0
    fired: int = 0
    last_mask: object = None
    history: list = field(default_factory=list)


def _unit_basis(direction):
    """Orthonormal rows ``[k, H]`` from a direction ``[H]`` (normalised) or a basis ``[k, H]``."""
    import torch

    d = torch.as_tensor(direction, dtype=torch.float32)
    if d.ndim == 1:
        n = d.norm()
        if n == 0:
            raise AsruError("cannot steer with a zero direction")
        return (d / n).unsqueeze(0)
    q, _ = torch.linalg.qr(d.T)
    return q.T.contiguous()


def ablate_tensor(h, basis):
    """``h`` with its component in the span of ``basis`` (orthonormal rows) removed, in h's dtype."""
    b = basis.to(device=h.device, dtype=h.dtype)
    return h - (h @ b.T) @ b


def _attention_module(layer):
    for name in ("self_attn", "attn", "attention", "self_attention"):
        mod = getattr(layer, name, None)
        if mod is not None:
            return mod
    raise AsruError(f"cannot find the attention module of {type(layer).__name__}; ablation needs it")


@contextmanager
def add_steering(model, layer: int, vector, alpha: float = 1.0, prompt_only: bool = False):
    """Add ``alpha * vector`` to the output of decoder layer ``layer`` at every token; with ``prompt_only``
    only in forwards over several tokens (the prompt, not the tokens generated one at a time after it)."""
    import torch

    block = decoder_layers(model)[check_layer(model, layer)]
    v = torch.as_tensor(vector, dtype=torch.float32) * float(alpha)

    def hook(_m, _i, output):
        h = layer_output(output)
        if prompt_only and h.shape[-2] == 1:
            return output
        return replace_layer_output(output, h + v.to(device=h.device, dtype=h.dtype))

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def add_steering_layers(model, layers, directions, alpha: float = 1.0, prompt_only: bool = False):
    """:func:`add_steering` at every layer in ``layers`` at once (``directions[L]`` at layer ``L``)."""
    with ExitStack() as stack:
        for layer in layers:
            stack.enter_context(add_steering(model, layer, directions[layer], alpha, prompt_only))
        yield


@contextmanager
def ablate_direction(model, direction, layers=None):
    """Directional ablation ``h - (h . r) r`` of a unit direction (or a subspace basis).

    ``layers=None`` ablates everywhere the residual stream is read: the input of every decoder layer
    (embeddings, image features, DeepStack additions), every attention output (before the MLP reads
    it) and every layer output. This is exactly what :func:`steering.bake.bake_ablation` folds into
    the weights. A list of layers ablates only those layers' outputs (not bakeable).
    """
    basis = _unit_basis(direction)
    blocks = decoder_layers(model)
    handles = []

    def out_hook(_m, _i, output):
        return replace_layer_output(output, ablate_tensor(layer_output(output), basis))

    def pre_hook(_m, args, kwargs):
        if args:
            return (ablate_tensor(args[0], basis),) + tuple(args[1:]), kwargs
        key = "hidden_states"
        if key in kwargs:
            kwargs = dict(kwargs)
            kwargs[key] = ablate_tensor(kwargs[key], basis)
        return args, kwargs

    try:
        if layers is None:
            for block in blocks:
                handles.append(block.register_forward_pre_hook(pre_hook, with_kwargs=True))
                handles.append(_attention_module(block).register_forward_hook(out_hook))
                handles.append(block.register_forward_hook(out_hook))
        else:
            for i in layers:
                handles.append(blocks[check_layer(model, i)].register_forward_hook(out_hook))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def gated_steering(model, layer: int, vector, threshold: float, alpha: float = 1.0, retain_basis=None):
    """Add ``alpha * v'`` at layer ``layer``'s output only at tokens with ``cos(h, v) > threshold``.

    ``v'`` is ``vector`` with the span of ``retain_basis`` (orthonormal rows) projected out, so the
    edit does not move retain-relevant directions. Yields a :class:`GateStats` counting fired tokens;
    ``stats.last_mask`` is the ``[B, T]`` boolean mask of the latest forward call.
    """
    import torch

    block = decoder_layers(model)[check_layer(model, layer)]
    v = torch.as_tensor(vector, dtype=torch.float32)
    v_edit = project_out(v, retain_basis) * float(alpha)
    v_unit = v / v.norm().clamp(min=1e-12)
    stats = GateStats()

    def hook(_m, _i, output):
        h = layer_output(output)
        hf = h.to(torch.float32)
        cos = (hf @ v_unit.to(h.device)) / hf.norm(dim=-1).clamp(min=1e-12)
        fire = cos > threshold
        stats.seen += fire.numel()
        stats.fired += int(fire.sum())
        stats.last_mask = fire.detach().cpu()
        stats.history.append(stats.last_mask)
        delta = fire.unsqueeze(-1).to(h.dtype) * v_edit.to(device=h.device, dtype=h.dtype)
        return replace_layer_output(output, h + delta)

    handle = block.register_forward_hook(hook)
    try:
        yield stats
    finally:
        handle.remove()


@dataclass
class HookSpec:
    """A serialisable description of an inference-time intervention (saved beside a checkpoint)."""

    kind: str
    layer: int
    alpha: float = 1.0
    threshold: float = 0.0
    direction_file: str = DEFAULT_DIRECTION_FILE

    def __post_init__(self):
        if self.kind not in HOOK_KINDS:
            raise AsruError(f"unknown hook kind {self.kind!r}: use one of {', '.join(HOOK_KINDS)}")

    @property
    def bakeable(self) -> bool:
        """Whether this intervention can be folded exactly into the weights."""
        return BAKEABLE[self.kind]

    def to_json(self) -> dict:
        """Plain dict for ``hooks.json``."""
        return {"kind": self.kind, "layer": self.layer, "alpha": self.alpha, "threshold": self.threshold,
                "direction_file": self.direction_file, "bakeable": self.bakeable}

    @classmethod
    def from_json(cls, obj, source: str) -> HookSpec:
        """Read one ``hooks.json`` entry (older files name the kind ``mode``); ``source`` names the file in errors."""
        kind = obj.get("kind", obj.get("mode")) if isinstance(obj, dict) else None
        if kind not in HOOK_KINDS or not isinstance(obj.get("layer"), int):
            raise AsruError(f"{source}: each hook needs a kind ({', '.join(HOOK_KINDS)}) and a layer; re-run the steering stage")
        return cls(kind, obj["layer"], alpha=obj.get("alpha", 1.0), threshold=obj.get("threshold", 0.0),
                   direction_file=obj.get("direction_file", DEFAULT_DIRECTION_FILE))


@contextmanager
def apply_hook(model, spec: HookSpec, vector, retain_basis=None):
    """Enter the hook a :class:`HookSpec` describes (``vector`` is the direction at ``spec.layer``)."""
    if spec.kind == "add":
        cm = add_steering(model, spec.layer, vector, spec.alpha)
    elif spec.kind == "ablate":
        cm = ablate_direction(model, vector)
    else:
        cm = gated_steering(model, spec.layer, vector, spec.threshold, spec.alpha, retain_basis)
    with cm as out:
        yield out
