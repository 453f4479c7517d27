"""LoRA in one place for the RL stage, the fine-tuning baselines (and the relearning attack), the demo
VLM's teaching and the export: which modules get adapters, the LoRA settings, merging and saving.

Each caller names a scope; the scopes differ on purpose and each keeps the target set its caller had:

scope                          modules                                                        used by
``decoder_linears``            every ``nn.Linear`` inside the language model's decoder layers  baselines, relearning, text-only teaching
``text_projections``           attention and MLP projections outside the vision tower and     RL stage
                               the multimodal projector
``language_model_projections`` attention and MLP projections under a ``language_model`` module  demo teaching
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from asru.core.errors import AsruError
from asru.core.layers import decoder_layers
from asru.core.models import save_checkpoint

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
VISION_PARTS = ("visual", "vision_tower", "vision_model", "multi_modal_projector", "mm_projector")

# the pattern scopes go to PEFT as regular expressions (matched with ``re.fullmatch`` against module names)
PATTERNS = {
    "text_projections": r"^(?!.*(" + "|".join(VISION_PARTS) + r")).*\.(" + "|".join(PROJECTIONS) + r")$",
    "language_model_projections": r".*language_model.*\.(" + "|".join(PROJECTIONS) + r")",
}
SCOPES = ("decoder_linears", *PATTERNS)


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise AsruError(f"unknown LoRA scope {scope!r}: choose one of {', '.join(SCOPES)}")


def lora_targets(model, scope: str) -> list[str]:
    """Full names of the modules of ``model`` that get LoRA adapters under ``scope`` (in module order)."""
    _check_scope(scope)
    if scope == "decoder_linears":
        from torch import nn

        inside = {id(m) for layer in decoder_layers(model) for m in layer.modules()}
        return [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and id(m) in inside]
    return [name for name, _ in model.named_modules() if re.fullmatch(PATTERNS[scope], name)]


def lora_config(r: int, scope: str, model=None, dropout: float = 0.0, task_type: str | None = None):
    """A PEFT ``LoraConfig`` with ``lora_alpha = r`` on the modules of ``scope``.

    A pattern scope is handed to PEFT as its regular expression (``model`` is not needed, so a trainer
    can attach the adapters itself); ``decoder_linears`` lists the module names of ``model``.
    """
    from peft import LoraConfig

    _check_scope(scope)
    if scope in PATTERNS:
        targets = PATTERNS[scope]
    else:
        if model is None:
            raise AsruError(f"LoRA scope {scope} needs the model to list its modules")
        targets = lora_targets(model, scope)
        if not targets:
            raise AsruError(f"no linear layers found in the decoder layers of {type(model).__name__}; LoRA cannot be attached")
    return LoraConfig(r=r, lora_alpha=r, lora_dropout=dropout, target_modules=targets, task_type=task_type, bias="none")


def merge_adapters(model):
    """``model`` with its LoRA adapters merged into the weights (a model without adapters as it is)."""
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def save_merged(model, processor, out: Path, generation_config_from: str | None = None) -> Path:
    """Merge LoRA (if any) and save a standard safetensors checkpoint with the processor, atomically.

    ``generation_config_from`` (the folder the model was loaded from, or a hub id) restores that
    model's generation defaults, so a model trained with rollout sampling settings keeps the original
    ones; it is read from the folder or the local hub cache only (:func:`local_generation_config`).
    """
    merged = merge_adapters(model)
    if generation_config_from is not None:
        original = local_generation_config(generation_config_from)
        if original is not None:
            merged.generation_config = original
    return save_checkpoint(merged, processor, out)


def local_generation_config(source: str):
    """The ``GenerationConfig`` saved in the folder ``source`` or, for a hub id, in the local hub cache;
    None when there is none. Reads files only: the hub client is never called, so nothing waits on a
    network an offline machine does not have."""
    from huggingface_hub import try_to_load_from_cache
    from transformers import GenerationConfig

    path = Path(source) / "generation_config.json"
    if not path.is_file():
        try:
            cached = try_to_load_from_cache(str(source), "generation_config.json")
        except ValueError:  # not a repo id either
            cached = None
        path = Path(cached) if isinstance(cached, str) else None
    try:
        return GenerationConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))) if path else None
    except (OSError, ValueError):
        return None
