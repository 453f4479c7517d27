"""Saving and loading steering directions: safetensors tensors plus a JSON sidecar.

``<stem>.safetensors`` holds ``layer_<i>`` tensors (``[H]`` direction or ``[k, H]`` basis) and, when
given, ``retain_basis`` / ``subspace_<i>``; ``<stem>.json`` records the model id, an architecture
fingerprint, hidden size, layer(s), positions, a hash of the prompts used, each direction's norm and
free-form extras. Loading checks the fingerprint and hidden size against the model it is used with
and refuses a direction made for another architecture.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from asru.core.errors import AsruError
from asru.core.layers import hidden_size, num_layers, unwrap
from asru.core.rundir import atomic_write_bytes, atomic_write_json

FORMAT_VERSION = 1
_ARCH_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
              "num_key_value_heads", "vocab_size", "head_dim")


def model_fingerprint(model) -> str:
    """A short hash of the language model's architecture (not its weights or name).

    Fine-tuned, steered or baked versions of one base model share it; another architecture or size
    does not.
    """
    config = unwrap(model).config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    facts = {k: getattr(text, k, None) for k in _ARCH_KEYS}
    facts["top_model_type"] = getattr(config, "model_type", None)
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def model_id(model) -> str:
    """The model's name or path as recorded in its config."""
    config = unwrap(model).config
    return str(getattr(config, "name_or_path", "") or getattr(config, "_name_or_path", "") or "unknown")


def data_hash(prompts: Iterable[str]) -> str:
    """A short hash of the prompts (order-independent) a direction was computed from."""
    h = hashlib.sha256()
    for p in sorted(prompts):
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _paths(path) -> tuple[Path, Path]:
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_direction(path, model, directions: dict, *, position: str, prompts_hash: str = "", extra: dict | None = None,
                   tensors: dict | None = None) -> Path:
    """Write ``{layer: tensor}`` directions (plus optional extra ``tensors``) with their sidecar.

    ``path`` may be a stem or end in ``.safetensors``; returns the ``.safetensors`` path.
    """
    import torch
    from safetensors.torch import save

    st_path, js_path = _paths(path)
    H = hidden_size(model)
    out = {}
    for layer, v in directions.items():
        v = torch.as_tensor(v, dtype=torch.float32).detach().cpu().contiguous()
        if v.shape[-1] != H:
            raise AsruError(f"direction for layer {layer} has size {v.shape[-1]}, the model's hidden size is {H}")
        out[f"layer_{int(layer)}"] = v
    for name, t in (tensors or {}).items():
        out[name] = torch.as_tensor(t, dtype=torch.float32).detach().cpu().contiguous()
    meta = {
        "format_version": FORMAT_VERSION,
        "model_id": model_id(model),
        "model_fingerprint": model_fingerprint(model),
        "hidden_size": H,
        "num_layers": num_layers(model),
        "layers": sorted(int(k) for k in directions),
        "position": position,
        "data_hash": prompts_hash,
        "norms": {str(int(k)): float(torch.as_tensor(v, dtype=torch.float32).norm()) for k, v in directions.items()},
        **(extra or {}),
    }
    atomic_write_bytes(st_path, save(out))
    atomic_write_json(js_path, meta)
    return st_path


def load_direction(path, model=None) -> tuple[dict, dict, dict]:
    """Read ``(directions {layer: tensor}, other tensors, metadata)``; with ``model``, check it matches.

    A direction made for another architecture (fingerprint) or hidden size is refused with AsruError.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    st_path, js_path = _paths(path)
    if not st_path.is_file() or not js_path.is_file():
        raise AsruError(f"direction file {st_path} or its sidecar {js_path.name} is missing: run the steering stage first")
    try:
        meta = json.loads(js_path.read_text(encoding="utf-8"))
        tensors = load(st_path.read_bytes())
    except (json.JSONDecodeError, SafetensorError, OSError) as exc:
        raise AsruError(f"cannot read direction {st_path}: {exc}") from None
    if model is not None:
        H = hidden_size(model)
        if meta.get("hidden_size") != H:
            raise AsruError(f"direction {st_path.name} was made for hidden size {meta.get('hidden_size')} "
                            f"({meta.get('model_id')}), this model has {H}: recompute it for this model")
        fp = model_fingerprint(model)
        if meta.get("model_fingerprint") != fp:
            raise AsruError(f"direction {st_path.name} was made for another model ({meta.get('model_id')}, "
                            f"fingerprint {meta.get('model_fingerprint')} != {fp}): recompute it for this model")
    dirs = {int(k[len("layer_"):]): v for k, v in tensors.items() if k.startswith("layer_")}
    others = {k: v for k, v in tensors.items() if not k.startswith("layer_")}
    return dirs, others, meta
