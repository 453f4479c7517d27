"""Inference-time steering hooks recorded with a model: which can be baked into the weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from asru.core.errors import AsruError
from steering.bake import bake_ablation
from steering.hooks import HookSpec
from steering.io import load_direction

HOOK_SPEC_NAME = "hooks.json"


@dataclass
class RecordedHooks:
    """Inference-time steering recorded by the steering stage: ``hooks.json`` beside its model.

    The file holds one hook (a dict) or a list of them, as :meth:`steering.hooks.HookSpec.to_json`
    writes them; the direction file (and its ``.json`` sidecar) sit beside ``hooks.json``.
    """

    file: Path
    hooks: list[HookSpec]

    @property
    def kinds(self) -> list[str]:
        """The hook kinds, in order."""
        return [h.kind for h in self.hooks]

    @property
    def unbakeable(self) -> list[HookSpec]:
        """The hooks that cannot be folded into the weights (:attr:`steering.hooks.HookSpec.bakeable`)."""
        return [h for h in self.hooks if not h.bakeable]

    @property
    def files(self) -> list[Path]:
        """``hooks.json`` and the direction files (with sidecars) its hooks name."""
        out = [self.file]
        for h in self.hooks:
            st = self.file.parent / h.direction_file
            for f in (st, st.with_suffix(".json")):
                if f.is_file() and f not in out:
                    out.append(f)
        return out


def find_hook_spec(model_path: str | Path) -> RecordedHooks | None:
    """The hooks recorded for ``model_path``: ``hooks.json`` in the model directory (where the steering stage writes it)."""
    f = Path(model_path) / HOOK_SPEC_NAME
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
    except ValueError:
        raise AsruError(f"{f} is not valid JSON: re-run the steering stage") from None
    hooks = data if isinstance(data, list) else [data]
    return RecordedHooks(file=f, hooks=[HookSpec.from_json(h, str(f)) for h in hooks])


def bake_hooks(lm, spec: RecordedHooks) -> list[str]:
    """Bake every bakeable (``ablate``) hook of ``spec`` into the weights (:func:`steering.bake.bake_ablation`).

    Returns one description line per baked hook. The direction (or the R-MUSE subspace saved with it)
    is read from the hook's direction file, checked against the model.
    """
    done = []
    for h in spec.hooks:
        if not h.bakeable:
            continue
        dirs, others, _ = load_direction(spec.file.parent / h.direction_file, lm.model)
        vec = others.get(f"subspace_{h.layer}", dirs.get(h.layer))
        if vec is None:
            raise AsruError(f"{spec.file}: the direction file has no direction for layer {h.layer}; re-run the steering stage")
        names = bake_ablation(lm.model, vec)
        done.append(f"directional ablation of the layer-{h.layer} refusal direction ({len(names)} residual writers orthogonalised)")
    return done


def refuse_unbakeable_hooks(spec: RecordedHooks) -> None:
    """Raise the one-line error for a model steered with hooks that cannot be baked (without ``--allow-hooks``)."""
    kinds = "/".join(h.kind for h in spec.unbakeable)
    raise AsruError(
        f"the model was steered with {kinds} hooks ({spec.file}), which change activations at inference and cannot be "
        "written into the weights, so vLLM and transformers would serve the model WITHOUT the unlearning: re-run steering "
        "with steer.mode redirect (trained into the weights) or ablate (baked), or pass --allow-hooks to export the weights "
        "with the hook description beside them")
