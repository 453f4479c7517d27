"""GRPO with vLLM colocate rollouts, for real, on CPU (the vLLM CI job: scripts/ci_vllm.sh).

Runs the RL stage with ``rl.use_vllm=true`` on the real SmolLM2 and on a tiny Qwen3-VL (head_dim 32) with
images, and checks that the weights trained by GRPO reach the vLLM engine: TRL syncs them (LoRA merged)
at the start of each step, so after step 2's sync the engine holds the weights of step 1, and an
explicit sync at the end of training brings the final weights.
"""

import json

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.vllm

SUFFIX = "layers.1.self_attn.o_proj"  # o_proj is not fused by vLLM: same tensor on both sides


@pytest.fixture(scope="module", autouse=True)
def cpu_vllm(tmp_path_factory):
    """The test-only patches CPU vLLM needs (tests/vllm_fixtures.py)."""
    from tests.vllm_fixtures import apply_cpu_vllm_patches

    apply_cpu_vllm_patches(tmp_path_factory.mktemp("vllm-site"))


def _run(monkeypatch, cfg, model_path, data, out_dir):
    """run_rl_stage with a callback that records the trainer's and vLLM's weights at the key moments."""
    from transformers import TrainerCallback

    import asru.stages.rl.stage as rl_stage
    from asru.stages.rl.stage import run_rl_stage
    from tests.vllm_fixtures import merged_weight, vllm_param

    seen = {}

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            seen[f"trainer_step{state.global_step}"] = merged_weight(model, SUFFIX)

        def on_train_end(self, args, state, control, model=None, **kw):
            trainer = seen["trainer"]
            seen["vllm_before_final_sync"] = vllm_param(trainer, SUFFIX + ".weight")
            trainer.vllm_generation.sync_weights()
            seen["vllm_after_final_sync"] = vllm_param(trainer, SUFFIX + ".weight")
            seen["trainer_final"] = merged_weight(model, SUFFIX)

    real = rl_stage.make_trainer

    def make(**kw):
        kw["callbacks"] = list(kw.get("callbacks") or []) + [Probe()]
        seen["trainer"] = real(**kw)
        return seen["trainer"]

    monkeypatch.setattr(rl_stage, "make_trainer", make)  # the name the stage calls
    out = run_rl_stage(cfg, str(model_path), data, out_dir, reference_path=None)
    return out, seen


def _same_weights(engine, trainer_w, other_w):
    """vLLM holds the weights in its own dtype (bf16 on CPU): ``engine`` must equal ``trainer_w`` rounded to
    that dtype (up to one rounding step where fp32 merge/unmerge noise crosses a boundary) and be clearly
    nearer to it than to ``other_w`` (the weights before the update)."""
    dtype = engine.dtype
    target = trainer_w.to(dtype).float()
    engine = engine.float()
    torch.testing.assert_close(engine, target, rtol=torch.finfo(dtype).eps, atol=1e-6)
    exact = (engine == target).float().mean().item()
    assert exact > 0.99, f"only {exact:.3f} of the elements equal the trainer's weights in vLLM's dtype"
    assert (engine - target).abs().mean() < (engine - other_w.to(target.dtype).float()).abs().mean()


def _check_sync(model_path, out, seen, out_dir):
    summary = json.loads((out_dir / "rl_summary.json").read_text())
    assert summary["use_vllm"] is True and summary["global_step"] == 2
    assert all(h["completions/mean_length"] > 0 for h in summary["log_history"] if "reward" in h)
    name = next(k for k in load_file(str(model_path / "model.safetensors")) if k.endswith(SUFFIX + ".weight"))
    initial = load_file(str(model_path / "model.safetensors"))[name].float()
    step1, final = seen["trainer_step1"], seen["trainer_final"]
    assert not torch.allclose(step1, initial, atol=1e-6), "GRPO step 1 did not change the weight"
    assert not torch.allclose(final, step1, atol=1e-6), "GRPO step 2 did not change the weight"
    # TRL's own sync at the start of step 2 pushed the (merged) weights of step 1
    _same_weights(seen["vllm_before_final_sync"], step1, initial)
    # an explicit sync brings the final weights
    _same_weights(seen["vllm_after_final_sync"], final, step1)
    saved = load_file(str(out / "model.safetensors"))[name].float()
    torch.testing.assert_close(saved, final, atol=1e-5, rtol=1e-5)


def test_grpo_vllm_colocate_smollm2(monkeypatch, tmp_path, red_image):
    from asru.core.models import materialize_smollm2
    from tests.rl_fixtures import rl_config, small_benchmark

    model_path = materialize_smollm2()
    data = small_benchmark(red_image, n_forget=2, n_retain=2)  # a text model: text questions only
    cfg = rl_config(tmp_path, use_vllm="true", vllm_mode="colocate", lr=1e-3, max_completion_length=8)
    cfg.rl.rewards = {k: v for k, v in cfg.rl.rewards.items() if k != "fluency"}
    out, seen = _run(monkeypatch, cfg, model_path, data, tmp_path / "rl")
    _check_sync(model_path, out, seen, tmp_path / "rl")


def test_grpo_vllm_colocate_tiny_qwen3_vl_with_images(monkeypatch, tmp_path, red_image):
    from tests.rl_fixtures import rl_config, small_benchmark
    from tests.vllm_fixtures import vllm_ready_qwen3_vl

    model_path = vllm_ready_qwen3_vl(tmp_path / "qwen3vl-hd32")
    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    cfg = rl_config(tmp_path, use_vllm="true", vllm_mode="colocate", batch_size=8, lr=5e-3)
    out, seen = _run(monkeypatch, cfg, model_path, data, tmp_path / "rl")
    _check_sync(model_path, out, seen, tmp_path / "rl")
    summary = json.loads((tmp_path / "rl" / "rl_summary.json").read_text())
    assert summary["boundary"]["size"] == 8  # image and text questions
