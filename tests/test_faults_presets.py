"""The smollm2 alias gets its own preset (refusal suffixes), and a refusal filter that keeps too few
prompts names the suffix as the fix."""

import pytest

from asru import cli
from asru.config import RunConfig
from asru.core.errors import AsruError
from steering.directions import require_samples


def test_smollm2_has_its_own_preset_with_refusal_suffixes():
    assert cli.preset_for("smollm2").endswith("configs/smollm2.yaml")
    args = cli.train_parser().parse_args(["--model", "smollm2"])
    cfg = cli.config_from_args(args, cli._shortcuts(args))
    defaults = RunConfig().steer
    assert cfg.steer.refusal_suffix_text == defaults.refusal_suffix_text != ""
    assert cfg.steer.refusal_suffix == defaults.refusal_suffix != ""
    assert cfg.model.name == "smollm2" and cfg.rl.max_steps == 40  # the rest is the offline default's
    demo = cli.config_from_args(cli.train_parser().parse_args([]), {})
    assert demo.steer.refusal_suffix_text == ""  # the demo VLM keeps its suffix-free preset


def test_refusal_filter_hint_names_the_suffix(tiny_llama_path, tmp_path):
    from asru.config import build_config
    from asru.data.loaders import load_benchmark
    from asru.data.synthetic import generate_benchmark
    from asru.stages.steer.stage import run_steer_stage

    generate_benchmark(tmp_path / "bench", people=4, forget_ratio=0.25, seed=0)
    data = load_benchmark(tmp_path / "bench", ["forget", "retain"])
    cfg = build_config({"model": {"device": "cpu", "dtype": "float32"},
                        "steer": {"layer": 1, "refusal_prompts": 6, "retain_prompts": 6, "max_new_tokens": 4}})
    # a random tiny model refuses nothing: the refusal side is empty after filtering
    with pytest.raises(AsruError, match=r"kept 0 of 6 refusal prompts after refusal filtering; need >= 4 \(steer.min_samples\) "
                                        r"to average a direction: the model refuses too few of them: set steer.refusal_suffix_text"):
        run_steer_stage(cfg, str(tiny_llama_path), data, tmp_path / "steer")
    with pytest.raises(AsruError, match="add more prompts or lower steer.min_samples"):
        require_samples(1, 10, 4, "forget prompts")
