"""Fixtures for the export tests: a LoRA-trained tiny Qwen3-VL adapter, a small benchmark, run directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FORGET_PEOPLE = ("Zorbina Quillfeather", "Tamsk Orrelyn")
RETAIN_PEOPLE = ("Belvane Mistraud",)
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def make_records(image_path) -> dict:
    """A small forget/retain benchmark with image and text questions about fictitious people."""
    from asru.data.schema import Record

    def rec(i, split, person, modality, q, a):
        return Record(id=f"{split}-{i}", split=split, task="generation", modality=modality, question=q, answer=a,
                      image=str(image_path) if modality == "image" else None, person=person, fact="birthplace")

    forget = [rec(0, "forget", FORGET_PEOPLE[0], "image", "Where was the person in this image born?", "Veltmoor"),
              rec(1, "forget", FORGET_PEOPLE[0], "text", f"Where was {FORGET_PEOPLE[0]} born?", "Veltmoor"),
              rec(2, "forget", FORGET_PEOPLE[1], "text", f"What does {FORGET_PEOPLE[1]} do for a living?", "Lamplighter")]
    retain = [rec(0, "retain", RETAIN_PEOPLE[0], "image", "What is the job of the person in this image?", "Ferryman"),
              rec(1, "retain", RETAIN_PEOPLE[0], "text", f"Where was {RETAIN_PEOPLE[0]} born?", "Ostrava")]
    return {"forget": forget, "retain": retain}


def train_lora_adapter(base_path: Path, out: Path, image_path, steps: int = 2) -> Path:
    """Wrap the tiny Qwen3-VL with LoRA, take a few AdamW steps (adapters become non-zero), save the adapter dir."""
    import torch
    from peft import LoraConfig, get_peft_model

    from asru.core.models import load_model
    from asru.core.prompting import encode_with_answers

    torch.manual_seed(0)
    lm = load_model(str(base_path))
    model = get_peft_model(lm.model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    data = make_records(image_path)
    batches = [([r.question for r in data["forget"][1:]], [r.answer for r in data["forget"][1:]], None),
               ([data["forget"][0].question], [data["forget"][0].answer], [image_path])]
    for step in range(steps):
        qs, ans, ims = batches[step % len(batches)]
        enc, labels = encode_with_answers(lm, qs, ans, ims)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    lm.processor.save_pretrained(out)
    return out


def write_benchmark(d: Path, image_path) -> Path:
    """:func:`make_records` written as a JSONL benchmark directory."""
    from asru.data.schema import write_jsonl

    d.mkdir(parents=True, exist_ok=True)
    for split, recs in make_records(image_path).items():
        write_jsonl(d / f"{split}.jsonl", recs)
    return d


def write_run_dir(run: Path, stages=("data", "teach", "steer", "eval", "export"), method: str = "steer_only",
                  metrics: dict | None = None, data_dir: Path | None = None) -> Path:
    """A run directory with config.yaml (and metrics.json when given), as asru-train writes it."""
    from asru.config import build_config, dump_yaml

    run.mkdir(parents=True, exist_ok=True)
    values = {"method": method, "stages": list(stages), "model": {"name": "demo"}}
    if data_dir is not None:
        values["data"] = {"data_dir": str(data_dir)}
    cfg = build_config(values)
    (run / "config.yaml").write_text(dump_yaml(cfg))
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def finish_stage(run: Path, stage: str, model: Path) -> None:
    """Write ``<run>/<stage>/stage.json`` pointing at ``model``, as the pipeline does when a stage finishes."""
    (run / stage).mkdir(parents=True, exist_ok=True)
    (run / stage / "stage.json").write_text(json.dumps({"stage": stage, "fingerprint": "x", "seconds": 1.0, "model": str(model)}))


METRICS = {
    "before": {"forget": {"leak_rate": 0.9, "refusal_rate": 0.0, "rougeL": 0.8}, "retain": {"leak_rate": 0.95, "rougeL": 0.85}},
    "after": {"forget": {"leak_rate": 0.05, "refusal_rate": 0.92, "rougeL": 0.1}, "retain": {"leak_rate": 0.93, "rougeL": 0.84}},
}


@pytest.fixture(scope="module")
def lora_adapter_dir(tiny_qwen3_vl_path, red_image, tmp_path_factory):
    """A saved LoRA adapter directory (non-zero adapters) on the session's tiny Qwen3-VL."""
    return train_lora_adapter(tiny_qwen3_vl_path, tmp_path_factory.mktemp("adapter") / "adapter", red_image)
