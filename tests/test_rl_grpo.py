"""GRPO stage on the tiny Qwen3-VL: two LoRA steps with images, per-step metrics, merged save, resume."""

import json

import pytest
import torch
from safetensors.torch import load_file

from asru.core.errors import AsruError
from asru.core.models import load_model
from asru.stages.rl.stage import run_rl_stage
from tests.rl_fixtures import rl_config, small_benchmark


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_two_grpo_steps_with_images_and_lora(tiny_qwen3_vl_path, red_image, tmp_path):
    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    # batch_size 8 = 4 prompts per step, so text and image questions share a batch
    cfg = rl_config(tmp_path, batch_size=8, num_generations=2)
    out = run_rl_stage(cfg, str(tiny_qwen3_vl_path), data, tmp_path / "rl", reference_path=str(tiny_qwen3_vl_path))
    assert out == tmp_path / "rl" / "model"

    summary = json.loads((tmp_path / "rl" / "rl_summary.json").read_text())
    assert summary["global_step"] == 2 and summary["resumed_from"] is None
    assert summary["boundary"] == {"size": 8, "forget": 4, "retain": 4, "mode": "random"}
    assert summary["rewards"]["refusal_rate"] == 0.0 and summary["rewards"]["forget"] == 1.0
    steps = [h for h in summary["log_history"] if "reward" in h]
    assert [h["step"] for h in steps] == [1, 2]
    for h in steps:
        for key in ("rewards/forget/mean", "rewards/retain/mean", "rewards/fluency/mean", "rewards/odd_tokens/mean",
                    "rewards/refusal_rate/mean", "unlearn/forget_leak_rate", "kl", "completions/mean_length", "step_time"):
            assert key in h, key
        assert 0 < h["completions/mean_length"] <= 8
        assert 0.0 <= h["rewards/refusal_rate/mean"] <= 1.0
    state = json.loads((tmp_path / "rl" / "checkpoints" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and any("rewards/forget/mean" in h for h in state["log_history"])

    # a standard checkpoint with LoRA merged: no adapter tensors, same names as the input, some weights moved
    before, after = _weights(tiny_qwen3_vl_path), _weights(out)
    assert set(after) == set(before)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved and all("language_model" in k and "proj" in k for k in moved)
    lm = load_model(str(out), device="cpu")
    assert lm.is_vlm and not lm.model.generation_config.do_sample


def test_resume_continues_from_the_last_checkpoint(tiny_qwen3_vl_path, red_image, tmp_path):
    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    out_dir = tmp_path / "rl"
    run_rl_stage(rl_config(tmp_path, max_steps=2, save_steps=2), str(tiny_qwen3_vl_path), data, out_dir, None)
    assert (out_dir / "checkpoints" / "checkpoint-2").is_dir()
    run_rl_stage(rl_config(tmp_path, max_steps=4, save_steps=2), str(tiny_qwen3_vl_path), data, out_dir, None)
    summary = json.loads((out_dir / "rl_summary.json").read_text())
    assert summary["resumed_from"] == "checkpoint-2" and summary["global_step"] == 4
    assert [h["step"] for h in summary["log_history"] if "reward" in h] == [1, 2, 3, 4]
    # a shorter run than the checkpoints reach: the step-4 weights are not the 3-step run's, start afresh
    run_rl_stage(rl_config(tmp_path, max_steps=3, save_steps=2), str(tiny_qwen3_vl_path), data, out_dir, None)
    summary = json.loads((out_dir / "rl_summary.json").read_text())
    assert summary["resumed_from"] is None and summary["global_step"] == 3
    # other training inputs (a new learning rate): the old checkpoints are not resumed
    run_rl_stage(rl_config(tmp_path, max_steps=1, lr=1e-3), str(tiny_qwen3_vl_path), data, out_dir, None)
    summary = json.loads((out_dir / "rl_summary.json").read_text())
    assert summary["resumed_from"] is None and summary["global_step"] == 1


def test_hook_steering_is_refused_before_loading(tmp_path, red_image):
    cfg = rl_config(tmp_path)
    cfg.steer.mode = "gated"
    with pytest.raises(AsruError, match="steer.mode=gated .*hooks"):
        run_rl_stage(cfg, str(tmp_path / "does-not-exist"), small_benchmark(red_image), tmp_path / "rl", None)


def test_use_vllm_true_without_vllm_names_the_extra(tmp_path, red_image, monkeypatch):
    import asru.stages.rl.trainer as rt

    monkeypatch.setattr(rt, "vllm_installed", lambda: False)
    cfg = rl_config(tmp_path, use_vllm="true")
    with pytest.raises(AsruError, match=r"pip install 'asru\[vllm\]'"):
        run_rl_stage(cfg, str(tmp_path / "unused"), small_benchmark(red_image), tmp_path / "rl", None)


def test_full_finetuning_on_a_text_model(tiny_llama_path, red_image, tmp_path):
    data = small_benchmark(red_image, n_forget=2, n_retain=2)  # image questions are dropped for a text model
    cfg = rl_config(tmp_path, lora=False, max_steps=1, beta=0.1, lr=1e-3)
    out = run_rl_stage(cfg, str(tiny_llama_path), data, tmp_path / "rl", reference_path=str(tiny_llama_path))
    summary = json.loads((tmp_path / "rl" / "rl_summary.json").read_text())
    assert summary["global_step"] == 1 and summary["boundary"] == {"size": 4, "forget": 2, "retain": 2, "mode": "random"}
    before, after = _weights(tiny_llama_path), _weights(out)
    assert set(after) == set(before)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("layers" in k for k in moved)  # full fine-tuning: not only adapter targets


def test_llava_batch_mixing_image_and_text_questions(tiny_llava_path, red_image, tmp_path):
    # the demo model is a LLaVA: one step whose single batch holds image and text questions
    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    cfg = rl_config(tmp_path, batch_size=16, num_generations=2, max_steps=1)
    out = run_rl_stage(cfg, str(tiny_llava_path), data, tmp_path / "rl", reference_path=None)
    summary = json.loads((tmp_path / "rl" / "rl_summary.json").read_text())
    assert summary["global_step"] == 1 and summary["boundary"]["size"] == 8
    assert summary["last"]["num_tokens"] > 0 and summary["last"]["completions/mean_length"] > 0
    assert load_model(str(out), device="cpu").is_vlm


def test_bfloat16_base_with_float32_adapters(tiny_llava_path, red_image, tmp_path):
    # rl.dtype bfloat16: the frozen base runs in bfloat16, the LoRA adapters train in float32, the merged save is bf16
    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    cfg = rl_config(tmp_path, max_steps=1, dtype="bfloat16", lr=5e-2)
    out = run_rl_stage(cfg, str(tiny_llava_path), data, tmp_path / "rl", reference_path=str(tiny_llava_path))
    inputs = json.loads((tmp_path / "rl" / "checkpoints" / "rl_inputs.json").read_text())
    assert inputs["dtype"] == "bfloat16"
    adapter = load_file(str(next((tmp_path / "rl" / "checkpoints").glob("checkpoint-*")) / "adapter_model.safetensors"))
    assert adapter and {t.dtype for t in adapter.values()} == {torch.float32}
    before, after = _weights(tiny_llava_path), _weights(out)
    assert {t.dtype for t in after.values()} == {torch.bfloat16}
    moved = [k for k in before if "language_model" in k and "proj" in k
             and not torch.equal(before[k].to(torch.bfloat16), after[k])]
    assert moved


def test_rl_dtype_is_checked():
    from asru.config import build_config

    with pytest.raises(AsruError, match="rl.dtype"):
        build_config({"rl": {"dtype": "int8"}})


def test_open_questions_reach_the_forget_reward_through_trl(tiny_llama_path, red_image, tmp_path):
    import dataclasses

    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    data["forget"] = [dataclasses.replace(r, fact="birthplace") for r in data["forget"]]
    cfg = rl_config(tmp_path, max_steps=1, open_questions=True, forget_size=2, retain_size=2)
    run_rl_stage(cfg, str(tiny_llama_path), data, tmp_path / "rl", reference_path=str(tiny_llama_path))
    summary = json.loads((tmp_path / "rl" / "rl_summary.json").read_text())
    # 2 text forget questions + 3 open questions per forgotten person (the image ones are dropped for a text model)
    assert summary["global_step"] == 1 and summary["boundary"]["forget"] == 2 + 2 * 3
