"""Direction files: round trip with metadata, refusal for another model."""

import json

import pytest
import torch

from asru.core.errors import AsruError
from steering.io import data_hash, load_direction, model_fingerprint, save_direction
from tests.steering_fixtures import random_direction


def test_round_trip(tiny_llama, tmp_path):
    v = random_direction(tiny_llama)
    path = save_direction(tmp_path / "direction", tiny_llama.model, {2: v, 3: 2 * v}, position="last",
                          prompts_hash=data_hash(["a", "b"]), extra={"chosen_layer": 2},
                          tensors={"retain_basis": torch.eye(64)[:2]})
    assert path.name == "direction.safetensors" and (tmp_path / "direction.json").is_file()
    dirs, others, meta = load_direction(path, tiny_llama.model)
    assert torch.equal(dirs[2], v) and torch.equal(dirs[3], 2 * v)
    assert others["retain_basis"].shape == (2, 64)
    assert meta["layers"] == [2, 3] and meta["hidden_size"] == 64 and meta["position"] == "last"
    assert meta["norms"]["3"] == pytest.approx(float(2 * v.norm()), rel=1e-6)
    assert meta["chosen_layer"] == 2 and meta["data_hash"] == data_hash(["b", "a"])


def test_refuses_another_model(tiny_llama, tiny_qwen3_vl, tmp_path):
    save_direction(tmp_path / "d", tiny_llama.model, {1: random_direction(tiny_llama)}, position="last")
    # same hidden size (64), different architecture
    with pytest.raises(AsruError, match="another model"):
        load_direction(tmp_path / "d.safetensors", tiny_qwen3_vl.model)
    meta = json.loads((tmp_path / "d.json").read_text())
    meta["hidden_size"] = 576
    (tmp_path / "d.json").write_text(json.dumps(meta))
    with pytest.raises(AsruError, match="hidden size 576"):
        load_direction(tmp_path / "d", tiny_llama.model)
    with pytest.raises(AsruError, match="missing"):
        load_direction(tmp_path / "nope", tiny_llama.model)
    assert model_fingerprint(tiny_llama.model) != model_fingerprint(tiny_qwen3_vl.model)


def test_fingerprint_survives_baking(tiny_llama):
    from steering.bake import bake_ablation

    fp = model_fingerprint(tiny_llama.model)
    bake_ablation(tiny_llama.model, random_direction(tiny_llama))
    assert model_fingerprint(tiny_llama.model) == fp
