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

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from asru.config import ExportConfig, build_config
from asru.core import models, prompting
from asru.core.errors import AsruError
from asru.core.layers import unwrap
from asru.core.models import MODEL_ALIASES, LoadedModel, cast_model, load_processor, pick_device, resolve_model_name
from asru.core.rundir import atomic_write_json, atomic_write_text
from asru.data.benchmark import default_data_dir
from asru.data.loaders import load_benchmark
from asru.model_card import data_counts, render_model_card
from steering.bake import bake_ablation
from steering.io import load_direction

LOG = logging.getLogger("asru.stages.export.stage")

HOOK_SPEC_NAME = "hooks.json"
BAKEABLE_HOOKS = ("ablate",)
UNBAKEABLE_HOOKS = ("add", "gated")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# Processor/tokenizer files copied from the source model when saving the processor did not write them
# (e.g. a video processor config that an image-only processor cannot save but vLLM expects).
PROCESSOR_FILES = (
    "preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json", "chat_template.jinja",
    "chat_template.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
    "merges.txt", "tokenizer.model", "added_tokens.json",
)
GENERIC_PROMPTS = ("What is the capital of France?", "Name three colours of the rainbow.")


# ---------------------------------------------------------------------------------------------------------
# Run directories


def _model_complete(path: Path) -> bool:
    """True when ``path`` holds a loadable checkpoint (config + weights) or a PEFT adapter."""
    if (path / "adapter_config.json").is_file():
        return any((path / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin"))
    return (path / "config.json").is_file() and any((path / f).is_file() for f in WEIGHT_FILES)


def _read_run_config(run: Path) -> dict:
    import yaml

    f = run / "config.yaml"
    if not f.is_file():
        raise AsruError(f"{run} is not a run directory (no config.yaml): pass the --output-dir of an asru-train run")
    try:
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise AsruError(f"{f} is not valid YAML: the run directory is damaged; re-run asru-train") from None
    if not isinstance(data, dict):
        raise AsruError(f"{f} must hold a mapping: the run directory is damaged; re-run asru-train")
    return data


def other_runs_stage_model(run: Path, stage: str, recorded: Path) -> Path | None:
    """This run's own path for a stage model recorded as ``<other run>/<stage>/<name>``, else None.

    A run directory copied elsewhere keeps the absolute paths of the run it was copied from in its
    ``stage.json`` files; the model it should export is the one inside the copy.
    """
    origin = recorded.absolute().parent.parent
    if recorded.parent.name != stage or not (origin / "config.yaml").is_file():
        return None
    if origin.resolve() == run.resolve():
        return None
    return run / stage / recorded.name


def final_stage_model(run_dir: str | Path) -> tuple[str, Path]:
    """``(stage, model_dir)`` of the run's last finished model-producing stage.

    Looks at ``rl``, then ``steer`` (method ``asru``), ``steer`` (``steer_only``) or the baseline's stage
    (other methods). A stage is finished when its ``stage.json`` names a complete model directory. A
    stage that was planned (in the run's ``stages``) or started (its directory exists) but did not finish
    makes the run incomplete: AsruError naming that stage.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise AsruError(f"run directory {run} does not exist: pass the --output-dir of an asru-train run")
    conf = _read_run_config(run)
    method = conf.get("method", "asru")
    planned = set(conf.get("stages") or [])
    candidates = {"asru": ["rl", "steer"], "steer_only": ["steer"]}.get(method, [method])
    for stage in candidates:
        sdir = run / stage
        rec_file = sdir / "stage.json"
        if rec_file.is_file():
            try:
                recorded = Path(json.loads(rec_file.read_text())["model"])
            except (ValueError, KeyError, TypeError):
                raise AsruError(f"{rec_file} is damaged: re-run the {stage} stage (asru-train --output-dir {run} --resume)") from None
            own = other_runs_stage_model(run, stage, recorded)
            if own is not None:  # a copied run: its own copy of the model, never the original run's
                if own.is_dir() and _model_complete(own):
                    return stage, own
                raise AsruError(f"run {run} has no {stage} model of its own ({own} is missing or partly written; its record "
                                f"points at {recorded} in another run): copy {stage}/{own.name} with the run, or re-run it "
                                f"with asru-train --output-dir {run} --resume")
            # The record may hold a path relative to the directory asru-train ran in: also look inside the run.
            for model in (recorded, sdir / recorded.name, sdir / "model"):
                if model.is_dir() and _model_complete(model):
                    return stage, model
            raise AsruError(f"run {run} is incomplete: the {stage} stage's model {recorded} is missing or partly written; "
                            f"re-run it with asru-train --output-dir {run} --resume")
        if sdir.exists() or stage in planned:
            raise AsruError(f"run {run} is incomplete: the {stage} stage did not finish (no {stage}/stage.json); "
                            f"finish it with asru-train --output-dir {run} --resume")
    raise AsruError(f"run {run} has no finished model stage (looked for {', '.join(f'{c}/stage.json' for c in candidates)}): "
                    f"run asru-train with the {' or '.join(candidates)} stage first")


def run_data(run_dir: str | Path):
    """The benchmark splits a run used (``forget``/``retain`` at least), or None when they cannot be found.

    Used only for the model card's counts and the verification prompts; never generates data.
    """
    try:
        conf = _read_run_config(Path(run_dir))
        data_cfg = build_config({"data": conf.get("data") or {}}).data
    except AsruError as exc:
        LOG.debug("no run config for the benchmark: %s", exc)
        return None
    if data_cfg.data_dir:
        path = Path(data_cfg.data_dir)
    else:
        path = default_data_dir(data_cfg)
    if not path.is_dir():
        LOG.info("benchmark %s not found: the model card will not record counts", path)
        return None
    try:
        return load_benchmark(path, ["forget", "retain"], check_images=False)
    except AsruError as exc:
        LOG.info("cannot load the benchmark %s (%s): the model card will not record counts", path, exc)
        return None


def export_run(run_dir: str | Path, out_dir: str | Path | None = None, cfg: ExportConfig | None = None, *,
               overwrite: bool | None = None) -> Path:
    """Export the last finished stage's model of a run directory (``asru-export --run DIR --out DIR``).

    ``out_dir`` defaults to ``cfg.out`` or ``<run>/export``; ``overwrite`` (when given) overrides ``cfg.overwrite``.
    """
    cfg = cfg or ExportConfig()
    if overwrite is not None:
        cfg = dataclasses.replace(cfg, overwrite=overwrite)
    run = Path(run_dir)
    stage, model = final_stage_model(run)
    out = Path(out_dir or cfg.out or run / "export")
    LOG.info("exporting the %s stage's model %s -> %s", stage, model, out)
    return export_model(str(model), out, cfg, run_dir=run, stage=stage)


# ---------------------------------------------------------------------------------------------------------
# Loading and merging


@dataclass
class Source:
    """What was loaded for the export."""

    path: str
    base: str
    adapter: bool = False
    stored_dtype: str = "float32"
    baked: list[str] = field(default_factory=list)


def is_adapter_dir(path: str | Path) -> bool:
    """True for a PEFT adapter directory (``adapter_config.json``)."""
    return (Path(path) / "adapter_config.json").is_file()


def _dtype_name(dtype) -> str:
    name = str(dtype).replace("torch.", "") if dtype is not None else "float32"
    return name if name in ("float32", "bfloat16", "float16") else "float32"


def stored_dtype(path: str) -> str:
    """The dtype a checkpoint's config says its weights are stored in (float32 when unknown)."""
    from transformers import AutoConfig

    try:
        conf = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return "float32"
    return _dtype_name(getattr(conf, "dtype", None) or getattr(conf, "torch_dtype", None))


def load_for_export(model_path: str, cfg: ExportConfig, edit: bool = False):
    """Load ``model_path`` (a checkpoint or a PEFT adapter directory, merged) -> ``(LoadedModel, Source)``.

    Weights are loaded in float32 when they will be changed (a LoRA merge, or ``edit``: baking) or on the
    CPU, so the edit is exact before the cast to the saved dtype; otherwise in the saved dtype directly.
    """
    device = pick_device(cfg.device)
    path = Path(model_path)
    if is_adapter_dir(path):
        conf = json.loads((path / "adapter_config.json").read_text())
        base = conf.get("base_model_name_or_path")
        if not base:
            raise AsruError(f"{path}/adapter_config.json names no base model (base_model_name_or_path): cannot merge the adapter")
        src_dtype = stored_dtype(base)
    else:
        base = str(model_path)
        src_dtype = stored_dtype(base)
    target = src_dtype if cfg.dtype == "auto" else cfg.dtype
    load_dtype = "float32" if device == "cpu" or edit or is_adapter_dir(path) else target
    lm = models.load_model(base, dtype=load_dtype, device=device)
    source = Source(path=str(model_path), base=base, adapter=is_adapter_dir(path), stored_dtype=target)
    if source.adapter:
        from peft import PeftModel

        LOG.info("merging the LoRA adapter %s into %s", path, base)
        peft_model = PeftModel.from_pretrained(lm.model, str(path))
        merged = peft_model.merge_and_unload()
        merged.eval()
        processor = lm.processor
        if (path / "tokenizer_config.json").is_file() or (path / "processor_config.json").is_file():
            try:  # the processor saved with the adapter (it may carry a changed chat template)
                processor = load_processor(str(path), lm.is_vlm)
            except (OSError, ValueError, AsruError) as exc:
                LOG.info("using the base model's processor (the adapter's did not load: %s)", str(exc).splitlines()[0])
        tokenizer = getattr(processor, "tokenizer", processor)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        lm = LoadedModel(model=merged, processor=processor, tokenizer=tokenizer, is_vlm=lm.is_vlm, source=str(path))
    return lm, source


# ---------------------------------------------------------------------------------------------------------
# Steering hooks


@dataclass
class HookSpec:
    """Inference-time steering recorded by the steering stage: ``hooks.json`` beside its model.

    The file holds one hook (a dict) or a list of them, as :class:`steering.hooks.HookSpec` writes
    them (``kind``, ``layer``, ``alpha``, ``threshold``, ``direction_file``, ``bakeable``); the direction
    file (and its ``.json`` sidecar) sit beside ``hooks.json``.
    """

    file: Path
    hooks: list[dict]

    @property
    def kinds(self) -> list[str]:
        """The hook kinds, in order."""
        return [h["kind"] for h in self.hooks]

    @property
    def unbakeable(self) -> list[dict]:
        """The hooks that cannot be folded into the weights (``add``, ``gated``)."""
        return [h for h in self.hooks if h["kind"] in UNBAKEABLE_HOOKS]

    @property
    def files(self) -> list[Path]:
        """``hooks.json`` and the direction files (with sidecars) its hooks name."""
        out = [self.file]
        for h in self.hooks:
            st = self.file.parent / h.get("direction_file", "direction.safetensors")
            for f in (st, st.with_suffix(".json")):
                if f.is_file() and f not in out:
                    out.append(f)
        return out


def find_hook_spec(model_path: str | Path) -> HookSpec | None:
    """The hooks recorded for ``model_path``: ``hooks.json`` in the model directory (where the steering stage writes it)."""
    f = Path(model_path) / HOOK_SPEC_NAME
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
    except ValueError:
        raise AsruError(f"{f} is not valid JSON: re-run the steering stage") from None
    hooks = data if isinstance(data, list) else [data]
    for h in hooks:
        kind = h.get("kind", h.get("mode")) if isinstance(h, dict) else None
        if kind not in BAKEABLE_HOOKS + UNBAKEABLE_HOOKS or not isinstance(h.get("layer"), int):
            raise AsruError(f"{f}: each hook needs a kind ({', '.join(BAKEABLE_HOOKS + UNBAKEABLE_HOOKS)}) and a layer; "
                            "re-run the steering stage")
        h["kind"] = kind
    return HookSpec(file=f, hooks=hooks)


def bake_hooks(lm, spec: HookSpec) -> list[str]:
    """Bake every ``ablate`` hook of ``spec`` into the weights (:func:`steering.bake.bake_ablation`).

    Returns one description line per baked hook. The direction (or the R-MUSE subspace saved with it)
    is read from the hook's direction file, checked against the model.
    """
    done = []
    for h in spec.hooks:
        if h["kind"] not in BAKEABLE_HOOKS:
            continue
        dirs, others, _ = load_direction(spec.file.parent / h.get("direction_file", "direction.safetensors"), lm.model)
        layer = h["layer"]
        vec = others.get(f"subspace_{layer}", dirs.get(layer))
        if vec is None:
            raise AsruError(f"{spec.file}: the direction file has no direction for layer {layer}; re-run the steering stage")
        names = bake_ablation(lm.model, vec)
        done.append(f"directional ablation of the layer-{layer} refusal direction ({len(names)} residual writers orthogonalised)")
    return done


def _refuse_hooks(spec: HookSpec) -> None:
    kinds = "/".join(h["kind"] for h in spec.unbakeable)
    raise AsruError(
        f"the model was steered with {kinds} hooks ({spec.file}), which change activations at inference and cannot be "
        "written into the weights, so vLLM and transformers would serve the model WITHOUT the unlearning: re-run steering "
        "with steer.mode redirect (trained into the weights) or ablate (baked), or pass --allow-hooks to export the weights "
        "with the hook description beside them")


# ---------------------------------------------------------------------------------------------------------
# Architecture checks


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


def check_state_dict(model) -> None:
    """Raise AsruError when the in-memory model has parameters the base architecture lacks (or misses some)."""
    fresh = fresh_meta_model(model)
    have, want = set(model.state_dict()), set(fresh.state_dict())
    extra, missing = sorted(have - want), sorted(want - have)
    if extra or missing:
        raise AsruError(
            f"the model to export does not match a plain {type(fresh).__name__}: "
            + (f"{len(extra)} extra parameter(s) (e.g. {extra[0]})" if extra else "")
            + ("; " if extra and missing else "") + (f"{len(missing)} missing (e.g. {missing[0]})" if missing else "")
            + "; merge adapters / remove steering modules before exporting")


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
        raise AsruError(
            f"the written checkpoint does not match {architecture_class(model).__name__}: "
            + (f"{len(extra)} unknown tensor(s) (e.g. {extra[0]})" if extra else "")
            + ("; " if extra and missing else "") + (f"{len(missing)} missing (e.g. {missing[0]})" if missing else "")
            + "; transformers/vLLM would not load it unchanged")


# ---------------------------------------------------------------------------------------------------------
# Verification


def verification_prompts(data, n: int, is_vlm: bool) -> list[tuple[str, str, object]]:
    """Up to ``n`` forget and ``n`` retain prompts ``(split, question, image)``, image and text questions interleaved.

    Without benchmark data, a few general prompts (and one image prompt for a VLM) stand in.
    """
    out: list[tuple[str, str, object]] = []
    for split in ("forget", "retain"):
        recs = list((data or {}).get(split) or [])
        img = [r for r in recs if r.image and is_vlm]
        txt = [r for r in recs if not r.image]
        mixed = [r for pair in zip(img, txt) for r in pair] + img[len(txt):] + txt[len(img):]
        out += [(split, r.question, r.image) for r in mixed[:n]]
    if not out:
        out = [("generic", q, None) for q in GENERIC_PROMPTS]
        if is_vlm:
            from PIL import Image

            out.append(("generic", "Describe this image.", Image.new("RGB", (64, 64), (40, 120, 200))))
    return out


def greedy_answers(lm, prompts, max_new_tokens: int) -> list[str]:
    """Greedy answers to ``(split, question, image)`` prompts, in order."""
    return prompting.generate(lm, [q for _, q, _ in prompts], [im for _, _, im in prompts], max_new_tokens=max_new_tokens, batch_size=8)


# ---------------------------------------------------------------------------------------------------------
# The export


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
    sections = {"asru": ["steer", "rl"], "steer_only": ["steer"]}.get(method, ["baseline"])
    for s in sections:
        if conf.get(s) is not None:
            out[s] = conf[s]
    return out


def _base_model(conf: dict | None, source: Source) -> tuple[str, str | None]:
    """(description, hub id or None) of the model the unlearning started from."""
    name = (conf or {}).get("model", {}).get("name") if conf else None
    name = name or source.base
    spec = MODEL_ALIASES.get(name)
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


def export_model(model_path: str, out_dir: str | Path, cfg: ExportConfig, run_dir: str | Path | None = None, *,
                 data=None, metrics: dict | None = None, stage: str | None = None) -> Path:
    """Export ``model_path`` to ``out_dir`` as a verified, servable checkpoint with a model card; returns ``out_dir``.

    ``run_dir`` (optional) supplies the config (hyper-parameters, base model), metrics and hook spec for the
    card; ``data`` (``{split: [Record]}``) and ``metrics`` override what is read from it; ``stage`` names the
    run stage the model came from (default: the folder it sits in, when inside ``run_dir``). Raises AsruError
    (leaving no partial ``out_dir``) when the model cannot be exported unchanged or verification fails.
    """
    import torch

    out_dir = Path(out_dir)
    run = Path(run_dir) if run_dir is not None else None
    if not Path(model_path).exists() and not is_adapter_dir(model_path):
        resolve_model_name(model_path)
    tmp = _prepare_out(out_dir, cfg.overwrite)
    try:
        conf = _read_run_config(run) if run is not None and (run / "config.yaml").is_file() else None
        if data is None and run is not None:
            data = run_data(run)
        if metrics is None and run is not None and (run / "metrics.json").is_file():
            metrics = json.loads((run / "metrics.json").read_text())
        spec = find_hook_spec(model_path)
        if spec is not None and spec.unbakeable and not cfg.allow_hooks:
            _refuse_hooks(spec)
        lm, source = load_for_export(model_path, cfg, edit=spec is not None)
        hooks_info = None
        if spec is not None:
            source.baked += bake_hooks(lm, spec)
            if spec.unbakeable:
                dest = tmp / "steering"
                dest.mkdir()
                for f in spec.files:
                    shutil.copy2(f, dest / f.name)
                atomic_write_json(dest / HOOK_SPEC_NAME, spec.unbakeable)
                hooks_info = {"kinds": [h["kind"] for h in spec.unbakeable], "layers": [h["layer"] for h in spec.unbakeable],
                              "file": f"steering/{HOOK_SPEC_NAME}"}
                LOG.warning("exporting weights WITHOUT the %s hook(s); their description is in %s",
                            "/".join(hooks_info["kinds"]), dest)

        check_state_dict(lm.model)
        cast_model(lm.model, getattr(torch, source.stored_dtype))
        gen = lm.model.generation_config
        if getattr(gen, "pad_token_id", None) is None:
            gen.pad_token_id = lm.tokenizer.pad_token_id
        if getattr(gen, "eos_token_id", None) is None:
            gen.eos_token_id = lm.tokenizer.eos_token_id

        prompts = verification_prompts(data, cfg.verify_prompts, lm.is_vlm)
        expected = greedy_answers(lm, prompts, cfg.verify_max_new_tokens)

        LOG.info("writing %s (%s)", out_dir, source.stored_dtype)
        lm.model.save_pretrained(tmp, safe_serialization=True, max_shard_size=cfg.max_shard_size)
        lm.processor.save_pretrained(tmp)
        _copy_processor_files(source.path if not source.adapter else source.base, tmp)
        check_checkpoint(tmp, lm.model)

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

        if out_dir.exists():
            old = out_dir.with_name(out_dir.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    LOG.info("export verified (%d prompts identical) -> %s", len(prompts), out_dir)
    if cfg.push_to_hub:
        push_export(lm, out_dir, cfg.push_to_hub, private=cfg.hub_private, max_shard_size=cfg.max_shard_size)
    return out_dir


def push_export(lm, out_dir: Path, repo: str, *, private: bool = True, max_shard_size: str = "5GB") -> None:
    """Push a verified export to the hub: the model and processor via ``push_to_hub``, then the model card."""
    message = "Upload unlearned model exported by asru"
    try:
        lm.model.push_to_hub(repo, private=private, max_shard_size=max_shard_size, commit_message=message)
        lm.processor.push_to_hub(repo, private=private, commit_message=message)
        from huggingface_hub import HfApi

        api = HfApi()
        api.upload_file(path_or_fileobj=str(out_dir / "README.md"), path_in_repo="README.md", repo_id=repo, commit_message=message)
        if (out_dir / "steering").is_dir():
            api.upload_folder(folder_path=str(out_dir / "steering"), path_in_repo="steering", repo_id=repo, commit_message=message)
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AsruError(f"cannot push to the hub repo {repo} ({first}): log in with `hf auth login` and check write access; "
                        f"the local export in {out_dir} is complete") from None
    LOG.info("pushed %s to the hub as %s", out_dir, repo)
