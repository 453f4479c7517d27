"""The one-GPU memory presets for Qwen3-VL 2B/4B/8B are valid configs with consistent GRPO batches."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("size,alias", [("2b", "qwen3-vl"), ("4b", "qwen3-vl-4b"), ("8b", "qwen3-vl-8b")])
def test_preset_is_a_valid_run_config(size, alias):
    from asru.config import build_config
    from asru.config_yaml import load_yaml
    from asru.core.models import MODEL_ALIASES

    path = ROOT / "configs" / "qwen3-vl" / f"{size}-80gb.yaml"
    cfg = build_config(load_yaml(path))
    assert cfg.model.name == alias and alias in MODEL_ALIASES
    assert cfg.model.device == "cuda" and cfg.model.dtype == "bfloat16"
    assert cfg.rl.batch_size * cfg.rl.grad_accum == 64  # 8 prompts x 8 rollouts per optimiser step
    assert cfg.rl.batch_size % cfg.rl.num_generations == 0
    assert cfg.rl.lora and cfg.rl.num_generations == 8 and cfg.rl.beta == 0.1 and cfg.rl.temperature == 1.5
    assert cfg.steer.coeff == 3.0 and cfg.steer.batch_size == 2
    assert cfg.steer.layer is None or 0 <= cfg.steer.layer < MODEL_ALIASES[alias].num_layers
    text = path.read_text()
    assert "Peak GPU memory (measured" in text
    measured = json.loads((ROOT / "docs" / "gpu" / f"bench_gpu_preset_{size}.json").read_text())
    # measured with the file's earlier standalone name; tests/test_config_presets.py pins the same resolved values
    assert measured["preset"] == f"configs/qwen3-vl-{size}-80gb.yaml" and measured["grpo"]["completions_per_step"] == 64
    assert (measured["grpo"]["micro_batch"], measured["grpo"]["grad_accum"]) == (cfg.rl.batch_size, cfg.rl.grad_accum)
    assert f"GRPO step {measured['grpo']['peak_memory_gib']:.1f} GiB allocated" in text  # the header quotes the measurement
