"""The Qwen3-VL presets inherit from configs/qwen3-vl/base.yaml and resolve to the values the standalone
preset files held before; ``inherits:`` is resolved relative to the file, recursively, with clear errors."""

from pathlib import Path

import pytest
import yaml

from asru import cli
from asru.config import build_config, to_dict
from asru.config_yaml import load_yaml
from asru.core.errors import AsruError

PRESETS = Path(__file__).resolve().parents[1] / "configs" / "qwen3-vl"

# The complete contents of the four preset files before they were split into base + size presets
# (comments dropped): each new preset must resolve to the same RunConfig.
_REFERENCE_STEER = {"position": "last", "coeff": 3.0, "alpha": 1.0, "lr": 1.0e-4, "batch_size": 2, "epochs": 3}
_REFERENCE_RL = {"forget_size": 200, "retain_size": 200, "num_generations": 8, "temperature": 1.5, "top_p": 0.95,
                 "lr": 1.0e-6, "weight_decay": 0.01, "beta": 0.1, "epochs": 6, "max_completion_length": 128,
                 "use_vllm": "auto"}
_GPU80 = {"grad_accum": 1, "lora": True, "gradient_checkpointing": "true", "cache_implementation": "auto"}
BEFORE = {
    "base.yaml": {
        "model": {"name": "qwen3-vl", "device": "cuda", "dtype": "bfloat16"},
        "steer": {"layer": 17, **_REFERENCE_STEER},
        "rl": {**_REFERENCE_RL, "boundary": "random", "batch_size": 16, "lora": False, "vllm_gpu_memory_utilization": 0.3},
        "eval": {"max_new_tokens": 64, "batch_size": 32},
    },
    "2b-80gb.yaml": {
        "model": {"name": "qwen3-vl", "device": "cuda", "dtype": "bfloat16", "attn_implementation": "sdpa"},
        "method": "asru",
        "steer": {"layer": 17, **_REFERENCE_STEER},
        "rl": {**_REFERENCE_RL, **_GPU80, "batch_size": 64, "vllm_gpu_memory_utilization": 0.3},
        "eval": {"max_new_tokens": 64, "batch_size": 64},
    },
    "4b-80gb.yaml": {
        "model": {"name": "qwen3-vl-4b", "device": "cuda", "dtype": "bfloat16", "attn_implementation": "sdpa"},
        "method": "asru",
        "steer": {"layer": None, **_REFERENCE_STEER},
        "rl": {**_REFERENCE_RL, **_GPU80, "batch_size": 32, "grad_accum": 2, "vllm_gpu_memory_utilization": 0.3},
        "eval": {"max_new_tokens": 64, "batch_size": 32},
    },
    "8b-80gb.yaml": {
        "model": {"name": "qwen3-vl-8b", "device": "cuda", "dtype": "bfloat16", "attn_implementation": "sdpa"},
        "method": "asru",
        "steer": {"layer": None, **_REFERENCE_STEER},
        "rl": {**_REFERENCE_RL, **_GPU80, "batch_size": 16, "grad_accum": 4, "vllm_gpu_memory_utilization": 0.35},
        "eval": {"max_new_tokens": 64, "batch_size": 16},
    },
}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_preset_resolves_to_the_values_of_the_standalone_file(name):
    resolved = build_config(load_yaml(PRESETS / name))
    assert to_dict(resolved) == to_dict(build_config(BEFORE[name]))


def test_size_presets_hold_only_what_differs_from_base():
    base = load_yaml(PRESETS / "base.yaml")
    for name in ("2b-80gb.yaml", "4b-80gb.yaml", "8b-80gb.yaml"):
        own = yaml.safe_load((PRESETS / name).read_text())
        assert own.pop("inherits") == "base.yaml"
        for section, values in own.items():
            for key, value in values.items():
                assert base.get(section, {}).get(key, "<unset>") != value, f"{name}: {section}.{key} repeats base.yaml"


def test_model_alias_preset_is_the_base_file():
    assert Path(cli.preset_for("qwen3-vl")) == PRESETS / "base.yaml"
    assert build_config(load_yaml(cli.preset_for("qwen3-vl"))).rl.lora is False


def test_inherits_is_relative_to_the_file_and_recursive(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "root.yaml").write_text("steer:\n  coeff: 2.0\n  layer: 4\nrl:\n  rewards: {forget: 1.0, retain: 1.0}\n")
    (tmp_path / "a" / "mid.yaml").write_text("inherits: ../root.yaml\nsteer:\n  layer: 6\n")
    (tmp_path / "a" / "leaf.yaml").write_text("inherits: mid.yaml\nsteer:\n  epochs: 5\nrl:\n  rewards: {retain: 0.5}\n")
    values = load_yaml(tmp_path / "a" / "leaf.yaml")
    assert "inherits" not in values
    cfg = build_config(values)
    assert (cfg.steer.coeff, cfg.steer.layer, cfg.steer.epochs) == (2.0, 6, 5)
    assert cfg.rl.rewards == {"forget": 1.0, "retain": 0.5}  # mappings merge key by key, as CLI overrides do


def _one_line_error(path) -> str:
    with pytest.raises(AsruError) as info:
        load_yaml(path)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_missing_parent_is_a_one_line_error(tmp_path):
    (tmp_path / "child.yaml").write_text("inherits: nowhere.yaml\nsteer:\n  layer: 3\n")
    msg = _one_line_error(tmp_path / "child.yaml")
    assert "inherits from" in msg and "nowhere.yaml" in msg and "does not exist" in msg


def test_inheritance_cycle_is_a_one_line_error(tmp_path):
    (tmp_path / "a.yaml").write_text("inherits: b.yaml\n")
    (tmp_path / "b.yaml").write_text("inherits: a.yaml\n")
    msg = _one_line_error(tmp_path / "a.yaml")
    assert "cycle" in msg and "a.yaml" in msg and "b.yaml" in msg
    (tmp_path / "self.yaml").write_text("inherits: self.yaml\n")
    assert "cycle" in _one_line_error(tmp_path / "self.yaml")


def test_inherits_must_name_a_file(tmp_path):
    (tmp_path / "c.yaml").write_text("inherits: [a.yaml, b.yaml]\n")
    assert "inherits must name a YAML file" in _one_line_error(tmp_path / "c.yaml")
