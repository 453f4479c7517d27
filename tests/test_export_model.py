"""Export: LoRA merge, exact reload, architecture check, model card, verification, atomicity, hooks, hub push."""

from __future__ import annotations

import json

import pytest
from export_fixtures import (  # noqa: F401  (fixtures)
    FORGET_PEOPLE,
    METRICS,
    RETAIN_PEOPLE,
    finish_stage,
    lora_adapter_dir,
    make_records,
    write_benchmark,
    write_run_dir,
)

from asru.config import ExportConfig
from asru.core.errors import AsruError

FAST = {"verify_prompts": 2, "verify_max_new_tokens": 6}


@pytest.fixture(scope="module")
def exported_run(lora_adapter_dir, red_image, tmp_path_factory):  # noqa: F811
    """A run whose rl stage produced a LoRA adapter, exported with export_run -> (run, out)."""
    from asru.stages.export.run import export_run

    root = tmp_path_factory.mktemp("export-run")
    bench = write_benchmark(root / "bench", red_image)
    run = write_run_dir(root / "run", stages=("data", "steer", "rl", "eval", "export"), method="asru", metrics=METRICS, data_dir=bench)
    finish_stage(run, "steer", lora_adapter_dir)
    finish_stage(run, "rl", lora_adapter_dir)
    out = export_run(run, root / "out", ExportConfig(**FAST))
    return run, out


def _logits(model, lm, red_image):
    import torch

    from asru.core.prompting import encode_prompts

    enc_img = encode_prompts(lm, ["Who is the person in this image?"], [red_image])
    enc_txt = encode_prompts(lm, ["Where was Tamsk Orrelyn born?", "Hello"])
    with torch.no_grad():
        return model(**enc_img).logits, model(**enc_txt).logits


def test_lora_export_reloads_with_from_pretrained_and_identical_logits(exported_run, lora_adapter_dir, tiny_qwen3_vl_path, red_image):  # noqa: F811
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import Qwen3VLForConditionalGeneration

    from asru.core.models import load_model

    _, out = exported_run
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "chat_template.jinja", "README.md",
            "tokenizer.json", "processor_config.json"} <= names
    assert "adapter_config.json" not in names and not out.with_name(out.name + ".tmp").exists()
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        keys = set(fh.keys())
    assert not [k for k in keys if "lora" in k or "base_layer" in k]

    reloaded = Qwen3VLForConditionalGeneration.from_pretrained(out, dtype=torch.float32).eval()
    lm = load_model(str(tiny_qwen3_vl_path))
    base_img, base_txt = _logits(lm.model, lm, red_image)
    peft_model = PeftModel.from_pretrained(lm.model, str(lora_adapter_dir)).eval()
    peft_img, peft_txt = _logits(peft_model, lm, red_image)
    # the adapters were trained: the export is not the base model
    assert (peft_txt - base_txt).abs().max() > 1e-3 and (peft_img - base_img).abs().max() > 1e-3
    merged = peft_model.merge_and_unload().eval()
    m_img, m_txt = _logits(merged, lm, red_image)
    r_img, r_txt = _logits(reloaded, lm, red_image)
    assert torch.equal(r_img, m_img) and torch.equal(r_txt, m_txt)  # bit-identical to the in-memory merged model
    assert torch.allclose(r_txt, peft_txt, atol=1e-4) and torch.allclose(r_img, peft_img, atol=1e-4)


def test_model_card_records_metrics_counts_and_no_private_data(exported_run):
    run, out = exported_run
    card = (out / "README.md").read_text()
    assert "base_model" not in card.split("---")[1]  # the offline demo model has no hub id
    assert "Method: ASRU" in card and "stage `rl`" in card and "LoRA adapters merged" in card
    assert "| forget | leak_rate | 0.900 | 0.050 |" in card
    assert "| forget | refusal_rate | 0.000 | 0.920 |" in card
    assert "| retain | rougeL | 0.850 | 0.840 |" in card
    assert "| forget | 2 | 3 | 1 | 2 |" in card and "| retain | 1 | 2 | 1 | 1 |" in card
    assert "coeff: 3.0" in card and "num_generations: 8" in card  # hyper-parameters from config.yaml
    assert "(user benchmark directory)" in card and str(run) not in card.split("## Hyper-parameters")[1]
    for secret in FORGET_PEOPLE + RETAIN_PEOPLE + ("Veltmoor", "Lamplighter"):
        assert secret not in card
    assert "forget: 2, retain: 2" in card and "all identical" in card
    info = json.loads((out / "asru_export.json").read_text())
    assert info["adapter_merged"] is True and info["stage"] == "rl" and info["verification"]["prompts"] == 4


def test_incomplete_run_names_the_missing_stage(tmp_path, lora_adapter_dir):  # noqa: F811
    from asru.stages.export.run import export_run, final_stage_model

    with pytest.raises(AsruError, match="not a run directory"):
        export_run(tmp_path, tmp_path / "out", ExportConfig())
    run = write_run_dir(tmp_path / "run", stages=("steer", "rl"), method="asru")
    finish_stage(run, "steer", lora_adapter_dir)
    with pytest.raises(AsruError, match="the rl stage did not finish"):
        export_run(run, tmp_path / "out", ExportConfig())
    (run / "rl" / "model").mkdir(parents=True)  # started, no stage.json, partial model
    (run / "rl" / "model" / "config.json").write_text("{}")
    with pytest.raises(AsruError, match="rl stage did not finish"):
        final_stage_model(run)
    finish_stage(run, "rl", run / "rl" / "model")
    with pytest.raises(AsruError, match="rl stage's model .* missing or partly written"):
        final_stage_model(run)
    assert not (tmp_path / "out").exists()

    run2 = write_run_dir(tmp_path / "run2", stages=("steer", "eval"), method="asru")
    with pytest.raises(AsruError, match="steer stage did not finish"):
        final_stage_model(run2)
    finish_stage(run2, "steer", lora_adapter_dir)
    assert final_stage_model(run2) == ("steer", lora_adapter_dir)  # rl was not planned: steer is final
    run3 = write_run_dir(tmp_path / "run3", stages=("steer",), method="npo")
    with pytest.raises(AsruError, match="npo stage"):
        final_stage_model(run3)


def test_out_dir_rules(tmp_path, tiny_qwen3_vl_path):
    from asru.stages.export.stage import export_model

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(AsruError, match="not empty: pass --overwrite"):
        export_model(str(tiny_qwen3_vl_path), out, ExportConfig(**FAST))
    assert (out / "keep.txt").read_text() == "x" and not (tmp_path / "out.tmp").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(AsruError, match="not a directory"):
        export_model(str(tiny_qwen3_vl_path), tmp_path / "file", ExportConfig(**FAST))


def test_verification_failure_leaves_nothing(tmp_path, tiny_qwen3_vl_path, monkeypatch):
    """Corrupt the written weights: the reloaded answers differ, the export fails and nothing is left."""
    import torch
    from safetensors.torch import load_file, save_file

    import asru.stages.export.stage as ex

    real_check = ex.check_checkpoint

    def corrupt_then_check(ckpt_dir, model):
        real_check(ckpt_dir, model)
        f = ckpt_dir / "model.safetensors"
        sd = load_file(str(f))
        g = torch.Generator().manual_seed(1)
        for k in sd:
            if k.endswith("embed_tokens.weight") or "layers.0.mlp" in k:
                sd[k] = torch.randn(sd[k].shape, generator=g) * 0.5
        save_file(sd, str(f), metadata={"format": "pt"})

    monkeypatch.setattr(ex, "check_checkpoint", corrupt_then_check)
    out = tmp_path / "out"
    out.mkdir()  # an existing empty out dir must survive a failed export untouched
    with pytest.raises(AsruError, match="verification failed: .* differ .* nothing was written"):
        ex.export_model(str(tiny_qwen3_vl_path), out, ExportConfig(**FAST))
    assert out.is_dir() and not any(out.iterdir())
    assert not (tmp_path / "out.tmp").exists()


def test_extra_parameter_is_refused(tiny_qwen3_vl_path):
    import torch
    from transformers import AutoConfig

    from asru.stages.export.checkpoint import check_state_dict, fresh_meta_model

    class Holder:
        config = AutoConfig.from_pretrained(tiny_qwen3_vl_path)

    model = fresh_meta_model(Holder)
    check_state_dict(model)  # a plain model passes
    with torch.device("meta"):
        model.model.language_model.layers[1].mlp.steer = torch.nn.Linear(4, 4)
    with pytest.raises(AsruError, match="2 extra parameter.*layers.1.mlp.steer"):
        check_state_dict(model)


def test_checkpoint_with_unknown_tensor_is_refused(tmp_path, tiny_qwen3_vl_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig

    from asru.stages.export.checkpoint import check_checkpoint, fresh_meta_model

    class Holder:
        config = AutoConfig.from_pretrained(tiny_qwen3_vl_path)

    model = fresh_meta_model(Holder)
    ck = tmp_path / "ck"
    shutil.copytree(tiny_qwen3_vl_path, ck)
    check_checkpoint(ck, model)
    sd = load_file(str(ck / "model.safetensors"))
    sd["model.language_model.layers.0.mlp.down_proj.lora_A.weight"] = torch.zeros(2, 2)
    save_file(sd, str(ck / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(AsruError, match="1 unknown tensor.*lora_A"):
        check_checkpoint(ck, model)
    del sd["model.language_model.layers.0.mlp.down_proj.lora_A.weight"], sd["model.language_model.norm.weight"]
    save_file(sd, str(ck / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(AsruError, match="1 missing.*language_model.norm.weight"):
        check_checkpoint(ck, model)


def test_text_model_export_with_chat_template(tmp_path, tiny_llama_path):
    from asru.stages.export.stage import export_model

    out = export_model(str(tiny_llama_path), tmp_path / "out", ExportConfig(**FAST))
    template = (tiny_llama_path / "chat_template.jinja").read_text()
    assert "<|im_start|>" in template and (out / "chat_template.jinja").read_text() == template
    card = (out / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "generic: 2" in card and "Not recorded" in card


def test_llava_export_keeps_the_checkpoint_layout(tmp_path, tiny_llava_path):
    """LLaVA (the demo model's architecture) saves with legacy tensor names: the export keeps exactly them."""
    from asru.stages.export.checkpoint import checkpoint_keys
    from asru.stages.export.stage import export_model

    out = export_model(str(tiny_llava_path), tmp_path / "out", ExportConfig(**FAST))
    keys = checkpoint_keys(out)
    assert keys == checkpoint_keys(tiny_llava_path)
    assert any(k.startswith("language_model.model.layers.") for k in keys)
    assert "image-text-to-text" in (out / "README.md").read_text()
