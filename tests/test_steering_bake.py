"""Baked ablation (weight orthogonalisation) equals the ablation hooks; unbakeable modes are refused."""

import pytest
import torch

from asru.core.errors import AsruError
from steering.bake import bake_ablation, refuse_unbakeable, residual_writers
from steering.hooks import ablate_direction
from tests.steering_fixtures import QUESTIONS, logits, random_direction


def _check(lm, images=None, direction=None):
    r = direction if direction is not None else random_direction(lm, seed=7, scale=3.0)
    base, _ = logits(lm, QUESTIONS[:2], images)
    with ablate_direction(lm.model, r):
        hooked, _ = logits(lm, QUESTIONS[:2], images)
    assert (hooked - base).abs().max() > 1e-3  # the ablation matters
    names = bake_ablation(lm.model, r)
    baked, _ = logits(lm, QUESTIONS[:2], images)
    assert (baked - hooked).abs().max() < 1e-4
    return names


def test_llama_bake_equals_hook(tiny_llama):
    names = _check(tiny_llama)
    assert names[0] == "embed_tokens" and len(names) == 1 + 2 * 4
    # tied head was untied: the head keeps the original matrix
    head, emb = tiny_llama.model.get_output_embeddings(), tiny_llama.model.get_input_embeddings()
    assert head.weight.data_ptr() != emb.weight.data_ptr()


def test_llama_subspace_bake(tiny_llama):
    basis = torch.linalg.qr(torch.randn(64, 3, generator=torch.Generator().manual_seed(0)))[0].T
    _check(tiny_llama, direction=basis)


def test_qwen3_vl_bake_equals_hook_with_images(tiny_qwen3_vl, red_image):
    names = _check(tiny_qwen3_vl, [red_image, red_image])
    assert "model.visual.merger.linear_fc2" in names
    assert any("deepstack_merger_list" in n for n in names)


def test_qwen3_vl_text_only(tiny_qwen3_vl):
    _check(tiny_qwen3_vl)


def test_llava_bake_equals_hook(tiny_llava, red_image):
    names = _check(tiny_llava, [red_image, red_image])
    assert "model.multi_modal_projector.linear_2" in names


def test_projector_must_be_orthogonalised(tiny_qwen3_vl, red_image):
    """Leaving the vision projector out breaks the equality (why it is in the writer list)."""
    from steering.bake import orthogonalize_, untie_lm_head
    from steering.hooks import _unit_basis

    r = random_direction(tiny_qwen3_vl, seed=7, scale=3.0)
    with ablate_direction(tiny_qwen3_vl.model, r):
        hooked, _ = logits(tiny_qwen3_vl, QUESTIONS[:2], [red_image] * 2)
    untie_lm_head(tiny_qwen3_vl.model)
    basis = _unit_basis(r)
    for name, mod in residual_writers(tiny_qwen3_vl.model):
        if "visual" not in name:
            orthogonalize_(mod.weight, basis, rows_are_writes=isinstance(mod, torch.nn.Embedding))
    partial, _ = logits(tiny_qwen3_vl, QUESTIONS[:2], [red_image] * 2)
    assert (partial - hooked).abs().max() > 1e-4


def test_baked_checkpoint_round_trip(tiny_llama, tmp_path):
    from asru.core.models import load_model

    r = random_direction(tiny_llama, seed=2)
    bake_ablation(tiny_llama.model, r)
    expected, _ = logits(tiny_llama, QUESTIONS)
    tiny_llama.model.save_pretrained(tmp_path / "m", safe_serialization=True)
    tiny_llama.processor.save_pretrained(tmp_path / "m")
    again = load_model(str(tmp_path / "m"))
    got, _ = logits(again, QUESTIONS)
    assert (got - expected).abs().max() < 1e-5


def test_unbakeable_modes_refused():
    refuse_unbakeable("ablate")
    refuse_unbakeable("redirect")
    for kind in ("add", "gated"):
        with pytest.raises(AsruError, match="cannot be baked"):
            refuse_unbakeable(kind)


def test_wrong_size_direction(tiny_llama):
    with pytest.raises(AsruError, match="hidden size"):
        bake_ablation(tiny_llama.model, torch.ones(32))
