"""Checks of a saved checkpoint's keys against the model's own state dict."""

from __future__ import annotations

import json
from pathlib import Path

from asru.core.errors import AsruError
from asru.core.layers import unwrap

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def architecture_class(model):
    """The transformers class named by the config's ``architectures`` (the one serving code builds)."""
    import transformers

    base = unwrap(model)
    for name in getattr(base.config, "architectures", None) or []:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    return type(base)


def fresh_meta_model(model):
    """A freshly initialised model of the same architecture and config, on the meta device (no memory)."""
    import copy

    import torch

    cls = architecture_class(model)
    with torch.device("meta"):
        return cls._from_config(copy.deepcopy(model.config))


def _differences(extra: list[str], missing: list[str], extra_kind: str) -> str:
    """``"N <extra_kind> (e.g. x); M missing (e.g. y)"`` for the names that are present in excess or lacking."""
    parts = [f"{len(extra)} {extra_kind} (e.g. {extra[0]})"] if extra else []
    parts += [f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []
    return "; ".join(parts)


def check_state_dict(model) -> None:
    """Raise AsruError when the in-memory model has parameters the base architecture lacks (or misses some)."""
    fresh = fresh_meta_model(model)
    have, want = set(model.state_dict()), set(fresh.state_dict())
    extra, missing = sorted(have - want), sorted(want - have)
    if extra or missing:
        raise AsruError(f"the model to export does not match a plain {type(fresh).__name__}: "
                        f"{_differences(extra, missing, 'extra parameter(s)')}; merge adapters / remove steering modules before exporting")


def expected_checkpoint_keys(model) -> tuple[set[str], set[str]]:
    """``(required, allowed)`` tensor names of a checkpoint of this architecture as ``save_pretrained`` writes it."""
    fresh = fresh_meta_model(model)
    sd = fresh.state_dict()
    allowed = set(sd)
    try:
        from transformers.core_model_loading import revert_weight_conversion
        from transformers.modeling_utils import remove_tied_weights_from_state_dict

        required = set(revert_weight_conversion(fresh, remove_tied_weights_from_state_dict(dict(sd), fresh)))
    except ImportError:  # older/newer transformers without these helpers: tied names may be absent on disk
        tied = getattr(fresh, "_tied_weights_keys", None) or {}
        required = allowed - set(tied)
    return required, allowed | required


def checkpoint_keys(ckpt_dir: str | Path) -> set[str]:
    """Tensor names stored in a safetensors checkpoint (single file or sharded)."""
    from safetensors import safe_open

    d = Path(ckpt_dir)
    index = d / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["model.safetensors"]
    keys: set[str] = set()
    for f in files:
        if not (d / f).is_file():
            raise AsruError(f"{d} lacks the weights file {f}: the export was not written completely")
        with safe_open(str(d / f), framework="pt") as fh:
            keys |= set(fh.keys())
    return keys


def check_checkpoint(ckpt_dir: str | Path, model) -> None:
    """Raise AsruError when the saved checkpoint has tensors the architecture lacks, or misses required ones."""
    keys = checkpoint_keys(ckpt_dir)
    required, allowed = expected_checkpoint_keys(model)
    extra, missing = sorted(keys - allowed), sorted(required - keys)
    if extra or missing:
        raise AsruError(f"the written checkpoint does not match {architecture_class(model).__name__}: "
                        f"{_differences(extra, missing, 'unknown tensor(s)')}; transformers/vLLM would not load it unchanged")
