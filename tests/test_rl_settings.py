"""RL settings without training: rollout backend choice, GRPOConfig mapping, hook checks, metrics reward."""

import pytest

import asru.stages.rl.trainer as rt
from asru.config import build_config
from asru.core.errors import AsruError


def test_use_vllm_resolution(monkeypatch):
    monkeypatch.setattr(rt, "vllm_installed", lambda: True)
    assert rt.resolve_use_vllm("auto", "cuda") is True
    assert rt.resolve_use_vllm("auto", "cpu") is False  # auto needs a GPU
    assert rt.resolve_use_vllm("true", "cpu") is True  # explicit: the CPU build of vLLM (CI job)
    assert rt.resolve_use_vllm("false", "cuda") is False
    monkeypatch.setattr(rt, "vllm_installed", lambda: False)
    assert rt.resolve_use_vllm("auto", "cuda") is False
    with pytest.raises(AsruError, match=r"pip install 'asru\[vllm\]'"):
        rt.resolve_use_vllm("true", "cuda")


def test_cache_implementation_choice():
    assert rt.cache_implementation("auto", "cuda", use_vllm=False) == "static"
    assert rt.cache_implementation("auto", "cuda:1", use_vllm=True) is None
    assert rt.cache_implementation("auto", "cpu", use_vllm=False) is None
    assert rt.cache_implementation("static", "cpu", use_vllm=False) == "static"
    assert rt.cache_implementation("dynamic", "cuda", use_vllm=False) is None


def test_grpo_args_map_the_config(tmp_path):
    rl = build_config({"rl": {"num_generations": 4, "batch_size": 8, "temperature": 1.2, "top_p": 0.9, "lr": 3e-5,
                              "weight_decay": 0.02, "beta": 0.05, "max_steps": 7, "max_completion_length": 24,
                              "save_steps": 3, "logging_steps": 2, "seed": 5, "loss_type": "grpo"}}).rl
    args = rt.grpo_args(rl, tmp_path, device="cpu", use_vllm=False, bf16=False, reward_weights=[1.0, 0.0])
    assert (args.num_generations, args.per_device_train_batch_size, args.max_completion_length) == (4, 8, 24)
    assert (args.temperature, args.top_p, args.learning_rate, args.weight_decay, args.beta) == (1.2, 0.9, 3e-5, 0.02, 0.05)
    assert (args.max_steps, args.save_steps, args.logging_steps, args.seed, args.loss_type) == (7, 3, 2, 5, "grpo")
    assert args.remove_unused_columns is False and args.report_to == [] and args.bf16 is False
    assert args.gradient_checkpointing is False and args.cache_implementation is None and args.use_vllm is False
    assert args.reward_weights == [1.0, 0.0] and args.output_dir == str(tmp_path)
    assert args.epsilon == 0.2  # TRL's clipping default is kept


def test_report_to_is_checked(monkeypatch):
    assert rt.check_report_to([]) == [] and rt.check_report_to(["none"]) == []
    monkeypatch.setattr(rt.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(AsruError, match="pip install tensorboard"):
        rt.check_report_to(["tensorboard"])
    with pytest.raises(AsruError, match="unknown tracker 'foo'"):
        rt.check_report_to(["foo"])
    monkeypatch.setattr(rt.importlib.util, "find_spec", lambda name: object() if name == "wandb" else None)
    assert rt.check_report_to(["WandB"]) == ["wandb"]


def test_lora_targets_only_the_language_model():
    import re

    pattern = rt.lora_config(build_config({}).rl).target_modules
    assert re.fullmatch(pattern, "model.language_model.layers.3.self_attn.q_proj")
    assert re.fullmatch(pattern, "model.layers.0.mlp.down_proj")
    assert not re.fullmatch(pattern, "model.visual.blocks.0.mlp.up_proj")
    assert not re.fullmatch(pattern, "model.vision_tower.encoder.layers.0.self_attn.q_proj")
    assert not re.fullmatch(pattern, "model.multi_modal_projector.linear_1")


def test_check_rollout_source_refuses_hooks(tiny_llama):
    cfg = build_config({})
    rt.check_rollout_source(cfg, tiny_llama.model)  # redirect, no hooks: fine
    for mode in ("add", "gated"):
        cfg.steer.mode = mode
        with pytest.raises(AsruError, match=f"steer.mode={mode}"):
            rt.check_rollout_source(cfg)
    cfg.steer.mode = "redirect"
    from asru.core.layers import decoder_layers

    handle = decoder_layers(tiny_llama.model)[2].register_forward_hook(lambda m, i, o: o)
    with pytest.raises(AsruError, match=r"forward hooks on decoder layer\(s\) \[2\]"):
        rt.check_rollout_source(cfg, tiny_llama.model)
    handle.remove()
    rt.check_rollout_source(cfg, tiny_llama.model)


def test_check_rollout_source_refuses_a_hooks_json_model(tmp_path):
    cfg = build_config({})
    rt.check_rollout_source(cfg, model_path=tmp_path)
    (tmp_path / "hooks.json").write_text("{}")
    with pytest.raises(AsruError, match="hooks.json"):
        rt.check_rollout_source(cfg, model_path=tmp_path)


def test_unlearning_stats_values():
    logged = {}
    comps = ["I'm not sure who that is.", "She was born in Town1.", "Town1, I think", "I don't know."]
    out = rt.unlearning_stats(
        prompts=["p"] * 4, completions=comps, role=["forget", "forget", "retain", "retain"],
        answer=["Town1"] * 4, log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    assert out == [1.0, 0.0, None, None]
    assert logged == {"unlearn/forget_leak_rate": 0.5, "unlearn/retain_refusal_rate": 0.5}
    conv = [[{"role": "assistant", "content": "I cannot provide that information."}]]
    assert rt.unlearning_stats(prompts=["p"], completions=conv, role=["forget"], answer=["x"]) == [1.0]
    assert rt.unlearning_stats.__name__ == "refusal_rate"


def test_step_line_is_compact():
    line = rt.step_line({"step": 3, "reward": 1.25, "rewards/forget/mean": 0.5, "rewards/refusal_rate/mean": 0.75,
                         "unlearn/forget_leak_rate": 0.0, "kl": 0.0012, "completions/mean_length": 14.0, "step_time": 8.04}, 20)
    assert line == ("rl step 3/20 | reward 1.25 | forget 0.5 | forget refusal 0.75 leak 0 | retain refusal - | kl 0.0012 "
                    "| len 14 | 8.0 s/step")


def test_rewards_with_only_zero_weights_are_refused():
    from asru.stages.rl.stage import load_reward_funcs

    cfg = build_config({"rl": {"rewards": {"forget": 0.0}}})
    with pytest.raises(AsruError, match="every weight is 0"):
        load_reward_funcs(cfg, {})
    funcs, weights = load_reward_funcs(build_config({"rl": {"rewards": {"forget": 1.0, "retain": 0.5}}}), {})
    assert [f.__name__ for f in funcs] == ["forget", "retain", "refusal_rate"] and weights == [1.0, 0.5, 0.0]
