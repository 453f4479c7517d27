"""Export a model for serving: merged weights, processor, chat template, model card, verified by reloading.

``export_model`` turns any model directory the pipeline produces (or a PEFT adapter directory) into a
plain ``save_pretrained`` checkpoint that ``transformers`` and ``vllm serve`` load unchanged:

1. load it with :func:`asru.core.models.load_model` (an adapter directory is loaded onto its base model and
   merged);
2. steering hooks recorded by the run: directional ablation is baked into the weights; ``add`` and
   ``gated`` hooks cannot be, so they are refused unless ``allow_hooks`` (their description is then written
   beside the checkpoint, in ``steering/``);
3. parameter names are checked against a freshly built model of the same architecture (on the meta
   device): no extra parameter (a LoRA leftover, a steering module) and none missing;
4. everything is written into ``<out>.tmp``; the checkpoint is reloaded from disk and its greedy answers to
   a few forget and retain prompts are compared with the in-memory model; only when they are identical is
   ``<out>.tmp`` renamed to ``<out>`` (a failed export leaves nothing behind).

``export_run`` finds the last finished stage's model in a run directory and exports it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from asru.config import ExportConfig
from asru.core import models
from asru.core.aliases import MODEL_ALIASES, resolve_model_name
from asru.core.errors import AsruError
from asru.core.models import cast_model
from asru.core.rundir import atomic_write_json, atomic_write_text, replace_directory
from asru.model_card import data_counts, render_model_card
from asru.stages.export.checkpoint import architecture_class, check_checkpoint, check_state_dict
from asru.stages.export.hooks import HOOK_SPEC_NAME, bake_hooks, find_hook_spec, refuse_unbakeable_hooks
from asru.stages.export.hub import push_export
from asru.stages.export.run_inputs import read_run_config, run_data
from asru.stages.export.source import Source, is_adapter_dir, load_for_export
from asru.stages.export.verify import greedy_answers, verification_prompts
from asru.stages.methods import PIPELINE_METHODS

LOG = logging.getLogger("asru.export")

# Processor/tokenizer files copied from the source model when saving the processor did not write them
# (e.g. a video processor config that an image-only processor cannot save but vLLM expects).
PROCESSOR_FILES = (
    "preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json", "chat_template.jinja",
    "chat_template.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
    "merges.txt", "tokenizer.model", "added_tokens.json",
)


def _prepare_out(out_dir: Path, overwrite: bool) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise AsruError(f"export path {out_dir} exists and is not a directory: choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise AsruError(f"export dir {out_dir} is not empty: pass --overwrite to replace it or choose another --out")
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        LOG.info("removing a stale partial export %s", tmp)
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _hyperparameters(conf: dict) -> dict:
    method = conf.get("method", "asru")
    out: dict = {"method": method}
    model = conf.get("model") or {}
    out["model"] = {k: model.get(k) for k in ("name", "dtype") if k in model}
    data = dict(conf.get("data") or {})
    if data.get("data_dir"):
        data["data_dir"] = "(user benchmark directory)"
    out["data"] = data
    sections = PIPELINE_METHODS.get(method, ("baseline",))
    for s in sections:
        if conf.get(s) is not None:
            out[s] = conf[s]
    return out


def _base_model(conf: dict | None, source: Source) -> tuple[str, str | None]:
    """(description, hub id or None) of the model the unlearning started from."""
    name = (conf or {}).get("model", {}).get("name") if conf else None
    name = name or source.base
    spec = MODEL_ALIASES.find(name)
    if spec is not None:
        hub = None if spec.hub_id.startswith("offline:") else spec.hub_id
        return f"{spec.note} (`{name}`)", hub
    if Path(name).exists():
        return f"local checkpoint `{name}`", None
    return f"`{name}`", name if name.count("/") == 1 else None


def _copy_processor_files(src: str, dst: Path) -> None:
    s = Path(src)
    if not s.is_dir():
        return
    for name in PROCESSOR_FILES:
        if (s / name).is_file() and not (dst / name).exists():
            shutil.copy2(s / name, dst / name)


def _chat_template(lm) -> str | None:
    return getattr(lm.processor, "chat_template", None) or getattr(lm.tokenizer, "chat_template", None)


def _run_inputs(run: Path | None, data, metrics: dict | None):
    """The run's config (``None`` without one), data and metrics; ``data`` and ``metrics`` given by the caller win."""
    conf = read_run_config(run) if run is not None and (run / "config.yaml").is_file() else None
    if data is None and run is not None:
        data = run_data(run)
    if metrics is None and run is not None and (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text())
    return conf, data, metrics


def _load_with_hooks(model_path: str, cfg: ExportConfig, tmp: Path):
    """Load the model with its recorded hooks baked in; unbakeable hooks are refused unless ``cfg.allow_hooks``,
    then described under ``tmp/steering``. Returns ``(lm, source, hooks_info)`` (``hooks_info``: ``None``
    when no hook is left out of the weights)."""
    spec = find_hook_spec(model_path)
    if spec is not None and spec.unbakeable and not cfg.allow_hooks:
        refuse_unbakeable_hooks(spec)
    lm, source = load_for_export(model_path, cfg, edit=spec is not None)
    hooks_info = None
    if spec is not None:
        source.baked += bake_hooks(lm, spec)
        if spec.unbakeable:
            dest = tmp / "steering"
            dest.mkdir()
            for f in spec.files:
                shutil.copy2(f, dest / f.name)
            atomic_write_json(dest / HOOK_SPEC_NAME, [h.to_json() for h in spec.unbakeable])
            hooks_info = {"kinds": [h.kind for h in spec.unbakeable], "layers": [h.layer for h in spec.unbakeable],
                          "file": f"steering/{HOOK_SPEC_NAME}"}
            LOG.warning("exporting weights WITHOUT the %s hook(s); their description is in %s",
                        "/".join(hooks_info["kinds"]), dest)
    return lm, source, hooks_info


def _prepare_for_saving(lm, source: Source) -> None:
    """Check the parameter names, cast to the stored dtype and give the generation config pad/eos tokens."""
    import torch

    check_state_dict(lm.model)
    cast_model(lm.model, getattr(torch, source.stored_dtype))
    gen = lm.model.generation_config
    if getattr(gen, "pad_token_id", None) is None:
        gen.pad_token_id = lm.tokenizer.pad_token_id
    if getattr(gen, "eos_token_id", None) is None:
        gen.eos_token_id = lm.tokenizer.eos_token_id


def _save_checkpoint(lm, source: Source, tmp: Path, out_dir: Path, cfg: ExportConfig) -> None:
    """Write the weights and the processor into ``tmp`` and check the saved keys."""
    LOG.info("writing %s (%s)", out_dir, source.stored_dtype)
    lm.model.save_pretrained(tmp, safe_serialization=True, max_shard_size=cfg.max_shard_size)
    lm.processor.save_pretrained(tmp)
    _copy_processor_files(source.path if not source.adapter else source.base, tmp)
    check_checkpoint(tmp, lm.model)


def _verify_reloaded(lm, source: Source, tmp: Path, out_dir: Path, prompts, expected: list, cfg: ExportConfig) -> None:
    """Reload ``tmp`` and require the in-memory model's chat template and greedy answers (``expected``)."""
    reloaded = models.load_model(str(tmp), dtype=source.stored_dtype, device=str(lm.device))
    if _chat_template(lm) != _chat_template(reloaded):
        raise AsruError("the export's chat template differs from the model's after reloading: the processor did not save it")
    got = greedy_answers(reloaded, prompts, cfg.verify_max_new_tokens)
    diff = [i for i, (a, b) in enumerate(zip(expected, got)) if a != b]
    if diff:
        i = diff[0]
        raise AsruError(f"export verification failed: the reloaded checkpoint's greedy answers differ from the in-memory "
                        f"model's on {len(diff)}/{len(prompts)} prompts (first: {prompts[i][0]} prompt #{i}); nothing was "
                        f"written to {out_dir}. Check the dtype (export.dtype) and that no hook or module is left on the model")
    del reloaded


def _write_model_card(tmp: Path, lm, source: Source, model_path: str, run: Path | None, stage: str | None, conf, data,
                      metrics, hooks_info, prompts, cfg: ExportConfig) -> None:
    """Write ``README.md`` (the model card) and ``asru_export.json`` into ``tmp``."""
    per_split: dict[str, int] = {}
    for split, _, _ in prompts:
        per_split[split] = per_split.get(split, 0) + 1
    verification = {"prompts": len(prompts), "per_split": per_split, "max_new_tokens": cfg.verify_max_new_tokens,
                    "identical": True, "keys_ok": True, "architecture": architecture_class(lm.model).__name__}
    if stage is None and run is not None and Path(model_path).parent.parent.resolve() == run.resolve():
        stage = Path(model_path).parent.name
    base_desc, base_hub = _base_model(conf, source)
    info = {
        "base_model": base_desc, "base_model_hub_id": base_hub, "source": str(model_path), "stage": stage,
        "method": (conf or {}).get("method"), "counts": data_counts(data) if data else None,
        "hyperparameters": _hyperparameters(conf) if conf else None, "metrics": metrics, "hooks": hooks_info,
        "verification": verification, "dtype": source.stored_dtype, "is_vlm": lm.is_vlm,
        "adapter_merged": source.adapter, "baked": source.baked,
    }
    atomic_write_text(tmp / "README.md", render_model_card(info))
    atomic_write_json(tmp / "asru_export.json", {k: info[k] for k in ("source", "stage", "method", "dtype", "adapter_merged", "baked", "hooks", "verification")})


def export_model(model_path: str, out_dir: str | Path, cfg: ExportConfig, run_dir: str | Path | None = None, *,
                 data=None, metrics: dict | None = None, stage: str | None = None) -> Path:
    """Export ``model_path`` to ``out_dir`` as a verified, servable checkpoint with a model card; returns ``out_dir``.

    ``run_dir`` (optional) supplies the config (hyper-parameters, base model), metrics and hook spec for the
    card; ``data`` (``{split: [Record]}``) and ``metrics`` override what is read from it; ``stage`` names the
    run stage the model came from (default: the folder it sits in, when inside ``run_dir``). Raises AsruError
    (leaving no partial ``out_dir``) when the model cannot be exported unchanged or verification fails.
    """
    out_dir = Path(out_dir)
    run = Path(run_dir) if run_dir is not None else None
    if not Path(model_path).exists() and not is_adapter_dir(model_path):
        resolve_model_name(model_path)
    tmp = _prepare_out(out_dir, cfg.overwrite)
    try:
        conf, data, metrics = _run_inputs(run, data, metrics)
        lm, source, hooks_info = _load_with_hooks(model_path, cfg, tmp)
        _prepare_for_saving(lm, source)
        prompts = verification_prompts(data, cfg.verify_prompts, lm.is_vlm)
        expected = greedy_answers(lm, prompts, cfg.verify_max_new_tokens)
        _save_checkpoint(lm, source, tmp, out_dir, cfg)
        _verify_reloaded(lm, source, tmp, out_dir, prompts, expected, cfg)
        _write_model_card(tmp, lm, source, model_path, run, stage, conf, data, metrics, hooks_info, prompts, cfg)
        replace_directory(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    LOG.info("export verified (%d prompts identical) -> %s", len(prompts), out_dir)
    if cfg.push_to_hub:
        push_export(lm, out_dir, cfg.push_to_hub, private=cfg.hub_private, max_shard_size=cfg.max_shard_size)
    return out_dir
