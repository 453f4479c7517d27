"""Inference-time hooks: exact removal, add/ablate effects, gating, generate, tuple outputs, padding."""

import pytest
import torch

from asru.core.errors import AsruError
from asru.core.layers import decoder_layers
from steering.activations import collect_activations
from steering.hooks import HookSpec, ablate_direction, add_steering, gated_steering
from tests.steering_fixtures import QUESTIONS, logits, random_direction


def test_add_hook_changes_and_restores_exact_logits(tiny_llama):
    base, _ = logits(tiny_llama, QUESTIONS)
    v = random_direction(tiny_llama, scale=2.0)
    with add_steering(tiny_llama.model, 2, v, alpha=1.5):
        steered, _ = logits(tiny_llama, QUESTIONS)
    after, _ = logits(tiny_llama, QUESTIONS)
    assert (steered - base).abs().max() > 1e-2
    assert torch.equal(after, base)
    assert all(not blk._forward_hooks for blk in decoder_layers(tiny_llama.model))


def test_prompt_only_add_hook_leaves_one_token_steps_alone(tiny_llama):
    """prompt_only shifts a forward over several tokens (the prompt) and not one over a single token (a
    decode step of generation)."""
    v = random_direction(tiny_llama, scale=2.0)
    ids = torch.tensor([[5, 9, 13]])
    with torch.no_grad():
        base_many, base_one = tiny_llama.model(input_ids=ids).logits, tiny_llama.model(input_ids=ids[:, :1]).logits
        with add_steering(tiny_llama.model, 2, v, alpha=1.5, prompt_only=True):
            many, one = tiny_llama.model(input_ids=ids).logits, tiny_llama.model(input_ids=ids[:, :1]).logits
    assert (many - base_many).abs().max() > 1e-2
    assert torch.equal(one, base_one)


def test_add_hook_shifts_the_layer_output_by_alpha_v(tiny_llama):
    v = random_direction(tiny_llama)
    plain = collect_activations(tiny_llama, QUESTIONS, layers=[2], position="all")
    with add_steering(tiny_llama.model, 2, v, alpha=0.5):
        steered = collect_activations(tiny_llama, QUESTIONS, layers=[2], position="all")
    diff = steered.matrix(2) - plain.matrix(2)
    assert torch.allclose(diff, (0.5 * v).expand_as(diff), atol=1e-5)


def test_removed_even_on_error(tiny_llama):
    v = random_direction(tiny_llama)
    with pytest.raises(RuntimeError), add_steering(tiny_llama.model, 1, v):
        raise RuntimeError("boom")
    assert all(not blk._forward_hooks for blk in decoder_layers(tiny_llama.model))


def test_ablation_removes_the_direction_everywhere(tiny_llama):
    r = random_direction(tiny_llama, seed=3)
    r_hat = r / r.norm()
    base, _ = logits(tiny_llama, QUESTIONS)
    with ablate_direction(tiny_llama.model, r):
        acts = collect_activations(tiny_llama, QUESTIONS, layers=[0, 1, 2, 3], position="all")
        ablated, _ = logits(tiny_llama, QUESTIONS)
    for layer in range(4):
        assert (acts.matrix(layer) @ r_hat).abs().max() < 1e-4
    assert (ablated - base).abs().max() > 1e-3
    assert torch.equal(logits(tiny_llama, QUESTIONS)[0], base)


def test_hooks_padding_safe(tiny_llama):
    v = random_direction(tiny_llama)
    with add_steering(tiny_llama.model, 1, v):
        left, _ = logits(tiny_llama, QUESTIONS, padding_side="left")
        right, rm_ = logits(tiny_llama, QUESTIONS, padding_side="right")
    for i in range(len(QUESTIONS)):
        l_last = left[i, -1]
        r_last = right[i, int(rm_[i].sum()) - 1]
        assert torch.allclose(l_last, r_last, atol=1e-4)


def test_hooks_under_generate_and_restored(tiny_llama):
    from asru.core.prompting import generate

    plain = generate(tiny_llama, QUESTIONS[:2], max_new_tokens=6)
    v = random_direction(tiny_llama, scale=50.0)
    with add_steering(tiny_llama.model, 0, v):
        steered = generate(tiny_llama, QUESTIONS[:2], max_new_tokens=6)
    assert steered != plain
    assert generate(tiny_llama, QUESTIONS[:2], max_new_tokens=6) == plain


def test_gate_fires_only_near_the_concept(tiny_llama):
    """Gate with v = the mean activation of two prompts: fires on them, not on unrelated prompts."""
    target_qs = QUESTIONS[:2]
    other_qs = ["Hello", "What is two plus two?"]
    acts = collect_activations(tiny_llama, target_qs + other_qs, layers=[2], position="last")
    h = acts.pooled[2]
    v = h[:2].mean(0)
    cos = torch.nn.functional.cosine_similarity(h, v.unsqueeze(0), dim=1)
    threshold = float((cos[:2].min() + cos[2:].max()) / 2)
    assert cos[:2].min() > threshold > cos[2:].max()
    with gated_steering(tiny_llama.model, 2, v, threshold=threshold, alpha=1.0) as stats:
        fired = []
        for q in target_qs + other_qs:
            logits(tiny_llama, [q])
            fired.append(bool(stats.last_mask[0, -1]))
    assert fired == [True, True, False, False]
    assert stats.fired >= 2
    with gated_steering(tiny_llama.model, 2, v, threshold=1.0) as stats:
        logits(tiny_llama, QUESTIONS)
    assert stats.fired == 0 and stats.seen > 0


def test_gated_edit_has_no_retain_component(tiny_llama):
    v = random_direction(tiny_llama)
    basis = torch.eye(64)[:3]
    plain = collect_activations(tiny_llama, QUESTIONS, layers=[1], position="all")
    with gated_steering(tiny_llama.model, 1, v, threshold=-1.0, retain_basis=basis):
        steered = collect_activations(tiny_llama, QUESTIONS, layers=[1], position="all")
    diff = steered.matrix(1) - plain.matrix(1)
    assert diff[:, :3].abs().max() < 1e-5
    assert torch.allclose(diff[0, 3:], v[3:], atol=1e-5)


def test_tuple_returning_layers(tiny_llama):
    """Layers returning tuples (older transformers) are handled by the same hooks."""
    blocks = decoder_layers(tiny_llama.model)
    base, _ = logits(tiny_llama, QUESTIONS)
    v = random_direction(tiny_llama)
    with add_steering(tiny_llama.model, 1, v):
        expected, _ = logits(tiny_llama, QUESTIONS)

    def to_tuple(_m, _i, out):
        return (out,)

    def from_tuple(_m, _i, out):
        return out[0] if isinstance(out, tuple) else out

    # the tuple-producing hook runs first, our hook sees a tuple, a last hook unwraps it for the model
    h1 = blocks[1].register_forward_hook(to_tuple)
    try:
        with add_steering(tiny_llama.model, 1, v):
            h2 = blocks[1].register_forward_hook(from_tuple)
            try:
                got, _ = logits(tiny_llama, QUESTIONS)
            finally:
                h2.remove()
    finally:
        h1.remove()
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.equal(logits(tiny_llama, QUESTIONS)[0], base)


def test_hook_spec():
    assert HookSpec("ablate", 3).bakeable
    assert not HookSpec("add", 3).bakeable and not HookSpec("gated", 3).bakeable
    with pytest.raises(AsruError, match="hook kind"):
        HookSpec("rotate", 3)


def test_hook_spec_round_trips_through_hooks_json():
    spec = HookSpec("gated", 2, alpha=3.0, threshold=0.25, direction_file="d.safetensors")
    assert HookSpec.from_json(spec.to_json(), "hooks.json") == spec
    assert HookSpec.from_json({"mode": "ablate", "layer": 1}, "hooks.json") == HookSpec("ablate", 1)  # older files
    for bad in ({"kind": "rotate", "layer": 1}, {"kind": "add"}, "add"):
        with pytest.raises(AsruError, match="hooks.json: each hook needs a kind"):
            HookSpec.from_json(bad, "hooks.json")


def test_recorded_hooks_split_by_the_one_bakeable_rule(tmp_path):
    import json

    from asru.stages.export.hooks import find_hook_spec

    hooks = [HookSpec("ablate", 1), HookSpec("add", 2, alpha=2.0), HookSpec("gated", 3)]
    (tmp_path / "hooks.json").write_text(json.dumps([h.to_json() for h in hooks]))
    recorded = find_hook_spec(tmp_path)
    assert recorded.hooks == hooks and recorded.kinds == ["ablate", "add", "gated"]
    assert recorded.unbakeable == hooks[1:]
