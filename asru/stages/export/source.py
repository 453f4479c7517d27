"""The model to export: adapter or full checkpoint, its stored dtype, loaded for export."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from asru.config import ExportConfig
from asru.core import models
from asru.core.errors import AsruError
from asru.core.lora import merge_adapters
from asru.core.models import LoadedModel, load_processor, pick_device

LOG = logging.getLogger("asru.export")


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
        merged = merge_adapters(peft_model)
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
