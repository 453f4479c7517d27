"""The one resolver for a model's language decoder layers (never the vision blocks)."""

from __future__ import annotations

from asru.core.errors import AsruError

# Attribute paths from the unwrapped top model to its language model's layer list, most specific first:
# VLMs in transformers 5 (Qwen3-VL, Qwen2.5-VL, LLaVA, SmolVLM/Idefics3), then plain causal LMs.
_LAYER_PATHS = (
    "model.language_model.layers",
    "model.text_model.layers",
    "language_model.model.layers",
    "language_model.layers",
    "model.layers",
    "transformer.h",
    "layers",
)


def unwrap(model):
    """The underlying transformers model of a PEFT / accelerate / DDP wrapper."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        if hasattr(model, "get_base_model") and callable(model.get_base_model):
            model = model.get_base_model()
        elif hasattr(model, "module") and type(model).__name__ in {"DistributedDataParallel", "DataParallel"}:
            model = model.module
    return model


def _get_path(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def decoder_layers(model):
    """Return the ``nn.ModuleList`` of the language model's decoder layers.

    Works for Qwen3-VL, Qwen2.5-VL, LLaVA, SmolVLM, Llama/SmolLM2, Qwen3 and their PEFT-wrapped forms.
    """
    from torch import nn

    base = unwrap(model)
    for path in _LAYER_PATHS:
        layers = _get_path(base, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return layers
    raise AsruError(f"cannot find the decoder layers of {type(base).__name__}: this architecture is not supported yet")


def num_layers(model) -> int:
    """Number of language decoder layers."""
    return len(decoder_layers(model))


def check_layer(model, layer: int) -> int:
    """Validate a layer index (negative counts from the end); return it as a non-negative index."""
    n = num_layers(model)
    if not -n <= layer < n:
        raise AsruError(f"layer {layer} is out of range: this model has {n} decoder layers (use 0..{n - 1}, or -{n}..-1 to count from the end)")
    return layer % n


def hidden_size(model) -> int:
    """Hidden size of the language model."""
    config = unwrap(model).config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return text.hidden_size


def layer_output(output):
    """The hidden-state tensor of a decoder layer's output (a Tensor in transformers 5, a tuple before)."""
    return output[0] if isinstance(output, (tuple, list)) else output


def replace_layer_output(output, hidden):
    """Return ``output`` with its hidden state replaced, keeping its type (Tensor or tuple)."""
    if isinstance(output, tuple):
        return (hidden,) + tuple(output[1:])
    if isinstance(output, list):
        return [hidden] + list(output[1:])
    return hidden
