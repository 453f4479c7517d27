"""Redirection trained into the down projection: forget states move to the target, retain states stay."""

import pytest
import torch

from asru.core.errors import AsruError
from asru.core.layers import decoder_layers
from steering.activations import collect_activations
from steering.hooks import add_steering
from steering.redirect import down_proj, forget_base_states, redirect
from tests.steering_fixtures import QUESTIONS, random_direction

FORGET = ["Where was Aldric Ashgrove born?", "What is Aldric Ashgrove's job?", "Who employs Aldric Ashgrove?",
          "What is Aldric Ashgrove's favorite hobby?"]
RETAIN = QUESTIONS


def test_redirect_moves_forget_keeps_retain(tiny_llama):
    model = tiny_llama.model
    v = random_direction(tiny_llama, seed=5, scale=0.5)
    before_f = collect_activations(tiny_llama, FORGET, layers=[2], position="last").pooled[2]
    before_r = collect_activations(tiny_llama, RETAIN, layers=[2], position="all").matrix(2)
    other = {n: p.detach().clone() for n, p in model.named_parameters() if "layers.2.mlp.down_proj" not in n}
    # tiny random weights have small MLP activations: a larger lr than the reference's 1e-4
    log = redirect(tiny_llama, 2, v, FORGET, RETAIN, coeff=3.0, alpha=1.0, lr=0.3, batch_size=2, epochs=10)
    after_f = collect_activations(tiny_llama, FORGET, layers=[2], position="last").pooled[2]
    after_r = collect_activations(tiny_llama, RETAIN, layers=[2], position="all").matrix(2)

    target = before_f + 3.0 * v
    dist_before = (before_f - target).pow(2).mean()
    dist_after = (after_f - target).pow(2).mean()
    assert dist_after < 0.2 * dist_before
    shift = (after_f - before_f).mean(0)
    assert torch.cosine_similarity(shift, v, dim=0) > 0.8
    retain_mse = (after_r - before_r).pow(2).mean()
    assert retain_mse < 0.1 * dist_before
    # the log agrees with what we measured
    assert log.after["forget_mse_to_target"] < 0.2 * log.before["forget_mse_to_target"]
    assert log.before["retain_mse"] == pytest.approx(0.0, abs=1e-10)
    assert len(log.steps) == 10 * 2 * 2 and {s["kind"] for s in log.steps} == {"forget", "retain"}
    assert log.steps[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    # only the one down projection changed; nothing is left trainable-flagged differently
    for n, p in model.named_parameters():
        if n in other:
            assert torch.equal(p, other[n]), n
    assert not any(blk._forward_hooks for blk in decoder_layers(model))


def test_retain_loss_keeps_retain_states(tiny_llama_path):
    """Without the retain loss (alpha=0) the retain states drift much more."""
    from asru.core.models import load_model

    results = {}
    for alpha in (0.0, 1.0):
        lm = load_model(str(tiny_llama_path))
        v = random_direction(lm, seed=5, scale=0.5)
        results[alpha] = redirect(lm, 2, v, FORGET, RETAIN, alpha=alpha, lr=0.3, epochs=10).after["retain_mse"]
    # (tiny random models: every prompt ends in the same template token, so the two losses partly conflict)
    assert results[1.0] < 0.6 * results[0.0]


def test_redirect_on_qwen3_vl_with_images(tiny_qwen3_vl, red_image):
    v = random_direction(tiny_qwen3_vl, seed=1, scale=0.5)
    log = redirect(tiny_qwen3_vl, 1, v, FORGET[:2], RETAIN[:2], [red_image] * 2, None, lr=0.3, epochs=10)
    assert log.after["forget_mse_to_target"] < 0.5 * log.before["forget_mse_to_target"]


def test_redirect_errors(tiny_llama):
    v = random_direction(tiny_llama)
    with pytest.raises(AsruError, match="forget set is empty"):
        redirect(tiny_llama, 1, v, [], RETAIN)
    with pytest.raises(AsruError, match="out of range"):
        redirect(tiny_llama, 9, v, FORGET, RETAIN)
    with pytest.raises(AsruError, match="direction has shape"):
        redirect(tiny_llama, 1, torch.ones(8), FORGET, RETAIN)
    assert down_proj(tiny_llama.model, 1).weight.shape == (64, 128)


def test_redirect_all_positions_moves_every_prompt_token(tiny_llama):
    """position='all' (RMU-style): every forget-prompt token moves toward frozen + c*v, not just the last."""
    v = random_direction(tiny_llama, seed=5, scale=0.5)
    before = collect_activations(tiny_llama, FORGET, layers=[2], position="all").matrix(2)
    log = redirect(tiny_llama, 2, v, FORGET, RETAIN, coeff=3.0, lr=0.3, batch_size=2, epochs=10, position="all")
    after = collect_activations(tiny_llama, FORGET, layers=[2], position="all").matrix(2)
    target = before + 3.0 * v
    assert (after - target).pow(2).mean() < 0.3 * (before - target).pow(2).mean()
    # the logged distance is the per-token MSE: 9 |v|^2 / H before any step
    assert log.before["forget_mse_to_target"] == pytest.approx(float((3.0 * v).pow(2).mean()), rel=1e-4)


ANSWERS = ["Dublin", "A painter.", "Zephyr Airlines", "Cycling"]


def _tap_states(lm, batches, layer):
    from steering.span_replay import LayerTap

    tap = LayerTap(lm.model, layer)
    with torch.no_grad():
        return [tap.run(b["enc"]).float() for b in batches]


def test_answer_positions_cover_question_template_and_answer(tiny_llama):
    """position='answer': the forget mask starts at the question and runs through the answer; retain: every token."""
    from steering.redirect import _prepare

    forget = _prepare(tiny_llama, FORGET[:1], None, 1, "answer", "forget", ANSWERS[:1])
    retain = _prepare(tiny_llama, RETAIN[:1], None, 1, "answer", "retain", ANSWERS[:1])
    b = forget[0]
    ids = b["enc"]["input_ids"][0]
    moved = tiny_llama.tokenizer.decode(ids[b["w"][0] > 0])
    assert moved.startswith(FORGET[0]) and "Dublin" in moved
    assert 0 < b["w"][0].sum() < b["enc"]["attention_mask"][0].sum()  # the system/template prefix stays out
    assert b["per_token"] and torch.equal(retain[0]["w"], retain[0]["enc"]["attention_mask"].float())
    # the decision position: the last prompt token, the one whose state predicts the answer's first token
    d = b["decision"][0]
    assert d.sum() == 1 and b["w"][0][d > 0] == 1
    after = tiny_llama.tokenizer.decode(ids[int(d.argmax()) + 1:])
    assert after.startswith("Dublin") and "decision" not in retain[0]


def test_decision_weight_moves_the_last_prompt_token_closer(tiny_llama_path):
    """The extra last-token term brings the decision state nearer its target than the plain per-token loss."""
    from asru.core.models import load_model
    from steering.redirect import _prepare

    dist = {}
    for weight in (0.0, 4.0):
        lm = load_model(str(tiny_llama_path))
        v = random_direction(lm, seed=5, scale=0.5)
        forget = _prepare(lm, FORGET, None, 2, "answer", "forget", ANSWERS)
        before = _tap_states(lm, forget, 2)
        redirect(lm, 2, v, FORGET, RETAIN, coeff=3.0, lr=0.005, batch_size=2, epochs=3, position="answer",
                 forget_answers=ANSWERS, retain_answers=ANSWERS, params="mlp", decision_weight=weight)
        after = _tap_states(lm, forget, 2)
        dist[weight] = sum(float((((h0 + 3.0 * v) - h1) ** 2 * b["decision"].unsqueeze(-1)).sum())
                           for h0, h1, b in zip(before, after, forget))
    assert dist[4.0] < 0.5 * dist[0.0]  # (0.35 measured; at lr 0.02 the shared template token makes the retain loss fight it)
    with pytest.raises(AsruError, match="decision_weight must be >= 0"):
        redirect(lm, 2, v, FORGET, RETAIN, decision_weight=-1.0)


def test_redirect_answer_positions_whole_mlp(tiny_llama):
    """Redirection of prompt + answer tokens, training the layer's whole MLP: masked forget states reach the target."""
    from steering.redirect import _prepare

    model = tiny_llama.model
    v = random_direction(tiny_llama, seed=5, scale=0.5)
    forget = _prepare(tiny_llama, FORGET, None, 2, "answer", "forget", ANSWERS)
    before = _tap_states(tiny_llama, forget, 2)
    untouched = {n: p.detach().clone() for n, p in model.named_parameters() if "layers.2.mlp." not in n}
    mlp_before = {n: p.detach().clone() for n, p in model.named_parameters() if "layers.2.mlp." in n}
    log = redirect(tiny_llama, 2, v, FORGET, RETAIN, coeff=3.0, lr=0.05, batch_size=2, epochs=10, position="answer",
                   forget_answers=ANSWERS, retain_answers=ANSWERS, params="mlp")
    after = _tap_states(tiny_llama, forget, 2)
    d_before = sum(float((((h0 + 3.0 * v) - h0) ** 2 * b["w"].unsqueeze(-1)).sum()) for h0, b in zip(before, forget))
    d_after = sum(float((((h0 + 3.0 * v) - h1) ** 2 * b["w"].unsqueeze(-1)).sum()) for h0, h1, b in zip(before, after, forget))
    assert d_after < 0.3 * d_before
    assert log.after["forget_mse_to_target"] < 0.3 * log.before["forget_mse_to_target"]
    # gate, up and down projections of layer 2 all trained; nothing else moved
    params = dict(model.named_parameters())
    assert all(not torch.equal(params[n], p) for n, p in mlp_before.items()) and len(mlp_before) == 3
    assert all(torch.equal(params[n], p) for n, p in untouched.items())


def test_unshifted_answers_split_the_forget_mask(tiny_llama):
    """shift_answers=False: the question and template tokens move, the answer's tokens are kept instead."""
    from steering.redirect import _prepare

    both = _prepare(tiny_llama, FORGET[:1], None, 1, "answer", "forget", ANSWERS[:1])[0]
    split = _prepare(tiny_llama, FORGET[:1], None, 1, "answer", "forget", ANSWERS[:1], shift_answers=False)[0]
    assert torch.equal(split["w"] + split["keep"], both["w"])  # the same tokens, divided between the two
    ids = split["enc"]["input_ids"][0]
    assert tiny_llama.tokenizer.decode(ids[split["keep"][0] > 0]).startswith("Dublin")
    moved = tiny_llama.tokenizer.decode(ids[split["w"][0] > 0])
    assert moved.startswith(FORGET[0]) and "Dublin" not in moved
    assert split["w"][0][split["decision"][0] > 0] == 1  # the last prompt token still moves


@pytest.mark.parametrize("vlm", ["tiny_qwen3_vl", "tiny_llava"])
def test_image_tokens_join_the_moved_positions_of_image_questions(vlm, red_image, request):
    """image_tokens: the forget mask adds exactly the image's tokens (the face); text rows and the answer split stay."""
    from asru.core.models import image_token_id
    from steering.redirect import _prepare

    lm = request.getfixturevalue(vlm)
    token = image_token_id(lm.model)
    assert token is not None
    for images in ([red_image], [None]):
        plain = _prepare(lm, FORGET[:1], images, 1, "answer", "forget", ANSWERS[:1], shift_answers=False)[0]
        faced = _prepare(lm, FORGET[:1], images, 1, "answer", "forget", ANSWERS[:1], shift_answers=False, image_tokens=True)[0]
        is_image = (faced["enc"]["input_ids"] == token).float()
        assert torch.equal(faced["w"], torch.maximum(plain["w"], is_image)) and torch.equal(faced["keep"], plain["keep"])
        assert (is_image.sum() > 0) == (images[0] is not None) and (plain["w"] * is_image).sum() == 0  # not moved before


def test_image_token_id_of_a_text_model_is_none(tiny_llama):
    from asru.core.models import image_token_id

    assert image_token_id(tiny_llama.model) is None


def test_redirect_prompt_only_keeps_the_answer_tokens(tiny_llama):
    """Prompt tokens reach frozen + c*v while the paired answer's tokens stay near their own states."""
    from steering.redirect import _prepare

    v = random_direction(tiny_llama, seed=5, scale=0.5)
    batches = _prepare(tiny_llama, FORGET, None, 2, "answer", "forget", ANSWERS, shift_answers=False)
    before = _tap_states(tiny_llama, batches, 2)
    log = redirect(tiny_llama, 2, v, FORGET, RETAIN, coeff=3.0, lr=0.05, batch_size=2, epochs=10, position="answer",
                   forget_answers=ANSWERS, retain_answers=ANSWERS, params="mlp", shift_answers=False)
    after = _tap_states(tiny_llama, batches, 2)

    def dist(mask, shift):
        return sum(float((((h0 + shift) - h1) ** 2 * b[mask].unsqueeze(-1)).sum()) for h0, h1, b in zip(before, after, batches))

    moved_to_target, moved_from_start = dist("w", 3.0 * v), dist("w", 0.0 * v)
    assert moved_to_target < 0.3 * moved_from_start  # the prompt tokens went most of the way
    kept_moved = dist("keep", 0.0 * v)
    kept_if_shifted = sum(float(((3.0 * v) ** 2 * b["keep"].unsqueeze(-1)).sum()) for b in batches)
    assert kept_moved < 0.1 * kept_if_shifted  # the answer tokens did not follow
    assert log.after["forget_answer_mse"] < 0.1 * float((3.0 * v).pow(2).mean())
    assert log.before["forget_answer_mse"] == pytest.approx(0.0, abs=1e-10)


def test_redirect_answer_and_params_errors(tiny_llama):
    v = random_direction(tiny_llama)
    with pytest.raises(AsruError, match="needs the forget and retain answers"):
        redirect(tiny_llama, 1, v, FORGET, RETAIN, position="answer")
    with pytest.raises(AsruError, match="one answer per question"):
        redirect(tiny_llama, 1, v, FORGET, RETAIN, position="answer", forget_answers=ANSWERS[:1], retain_answers=ANSWERS)
    with pytest.raises(AsruError, match="unknown redirection parameters 'attn'"):
        redirect(tiny_llama, 1, v, FORGET, RETAIN, params="attn")


def test_redirect_span_trains_earlier_layers_too(tiny_llama):
    """span=1: layer 1's and layer 2's down projections train (loss at layer 2); nothing else moves."""
    model = tiny_llama.model
    v = random_direction(tiny_llama, seed=5, scale=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log = redirect(tiny_llama, 2, v, FORGET, RETAIN, coeff=3.0, lr=0.3, batch_size=2, epochs=5, span=1)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"model.layers.1.mlp.down_proj.weight", "model.layers.2.mlp.down_proj.weight"}
    assert log.after["forget_mse_to_target"] < 0.3 * log.before["forget_mse_to_target"]
    with pytest.raises(AsruError, match="redirect_span must be >= 0"):
        redirect(tiny_llama, 2, v, FORGET, RETAIN, span=-1)


def test_base_states_from_hooks_make_the_layer_reproduce_the_hooked_states(tiny_llama):
    """base_states taken under an add hook at layer 1: layer 2 learns the hooked model's layer-2 states + c*v."""
    v1 = random_direction(tiny_llama, seed=3, scale=0.5)
    v2 = random_direction(tiny_llama, seed=5, scale=0.5)
    plain = forget_base_states(tiny_llama, 2, FORGET, batch_size=2)
    with add_steering(tiny_llama.model, 1, v1, 3.0):
        hooked = forget_base_states(tiny_llama, 2, FORGET, batch_size=2)
        hooked_last = collect_activations(tiny_llama, FORGET, layers=[2], position="last").pooled[2]
    assert len(hooked) == len(plain) == 2 and not torch.allclose(hooked[0], plain[0])
    log = redirect(tiny_llama, 2, v2, FORGET, RETAIN, coeff=3.0, lr=0.3, batch_size=2, epochs=10, base_states=hooked)
    after = collect_activations(tiny_llama, FORGET, layers=[2], position="last").pooled[2]
    target = hooked_last + 3.0 * v2
    assert (after - target).pow(2).mean() < 0.2 * log.before["forget_mse_to_target"]
    assert log.after["forget_mse_to_target"] < 0.2 * log.before["forget_mse_to_target"]
    with pytest.raises(AsruError, match="base_states do not match"):
        redirect(tiny_llama, 2, v2, FORGET, RETAIN, batch_size=2, base_states=hooked[:1])


def _full_forward_tap(lm, layer):
    from steering.span_replay import LayerTap

    return LayerTap(lm.model, layer)


def test_span_replay_equals_full_forward_with_current_weights(tiny_llama):
    """Training steps replay only the trained layers; their output is the full forward's, after weight changes too."""
    from steering.redirect import _prepare
    from steering.span_replay import record_span

    batches = _prepare(tiny_llama, FORGET, None, 2, "last", "forget")
    tap = record_span(tiny_llama.model, 1, 2, batches)
    assert tap.span is not None and all("span" in b for b in batches)
    full = _full_forward_tap(tiny_llama, 2)
    for b in batches:
        assert torch.allclose(b["frozen"], full.run(b["enc"]), atol=1e-6)
    with torch.no_grad():
        for lay in (1, 2):
            down_proj(tiny_llama.model, lay).weight.add_(0.05 * torch.randn_like(down_proj(tiny_llama.model, lay).weight))
    for b in batches:
        replayed, direct = tap.run(b), full.run(b["enc"])
        assert not torch.allclose(replayed, b["frozen"], atol=1e-4)  # the weight change is seen
        assert torch.allclose(replayed, direct, atol=1e-5)


def test_span_replay_falls_back_when_model_adds_between_layers(tiny_qwen3_vl, red_image, caplog):
    """Qwen3-VL adds deepstack image features after layer 0: a span over it cannot be replayed alone."""
    from steering.redirect import _prepare
    from steering.span_replay import record_span

    batches = _prepare(tiny_qwen3_vl, FORGET[:2], [red_image] * 2, 2, "last", "forget")
    with caplog.at_level("INFO", logger="asru.steering"):
        tap = record_span(tiny_qwen3_vl.model, 0, 1, batches)
    assert tap.span is None and "full forward" in caplog.text
    assert all("span" not in b for b in batches)
    assert torch.allclose(tap.run(batches[0]), batches[0]["frozen"], atol=1e-6)
    # starting above the deepstack layer, the replay holds
    batches = _prepare(tiny_qwen3_vl, FORGET[:2], [red_image] * 2, 2, "last", "forget")
    assert record_span(tiny_qwen3_vl.model, 1, 2, batches).span is not None


def test_span_replay_is_checked_per_modality(tiny_qwen3_vl, red_image, caplog):
    """Text batches replay fine over the deepstack layer; the first image batch after them still shows the
    mismatch (only the first batch of each modality is compared with the full forward)."""
    from steering.redirect import _prepare
    from steering.span_replay import record_span

    batches = sorted(_prepare(tiny_qwen3_vl, FORGET[:4], [None, None, red_image, red_image], 2, "last", "forget"),
                     key=lambda b: "pixel_values" in b["enc"])  # the text batch first
    assert ["pixel_values" in b["enc"] for b in batches] == [False, True]
    text_only = [b for b in batches if "pixel_values" not in b["enc"]]
    assert record_span(tiny_qwen3_vl.model, 0, 1, text_only).span is not None
    with caplog.at_level("INFO", logger="asru.steering"):
        assert record_span(tiny_qwen3_vl.model, 0, 1, batches).span is None
    assert "full forward" in caplog.text


def test_redirect_without_measuring_trains_the_same(tiny_llama_path):
    """``measure=False`` leaves out the before/after distances, not a step of the training."""
    from asru.core.models import load_model

    lm = load_model(str(tiny_llama_path))
    v = random_direction(lm, seed=3)
    measured = redirect(lm, 2, v, FORGET, RETAIN, coeff=3.0, lr=0.3, epochs=2)
    quiet_lm = load_model(str(tiny_llama_path))
    quiet = redirect(quiet_lm, 2, v, FORGET, RETAIN, coeff=3.0, lr=0.3, epochs=2, measure=False)
    assert measured.before and measured.after and not quiet.before and not quiet.after
    assert [s["loss"] for s in quiet.steps] == [s["loss"] for s in measured.steps]
    assert torch.equal(down_proj(quiet_lm.model, 2).weight, down_proj(lm.model, 2).weight)


def test_redirect_settings_hold_the_defaults_once():
    import dataclasses

    from asru.config import SteerConfig
    from steering.redirect import RedirectSettings

    sc = SteerConfig()
    assert sc.redirect_settings() == RedirectSettings()  # the config's defaults are the settings' defaults
    sc = SteerConfig(coeff=5.0, lr=0.3, redirect_position="answer", redirect_params="mlp", redirect_span=2,
                     redirect_decision_weight=0.5, epochs=4, batch_size=3, alpha=2.0, weight_decay=0.0,
                     redirect_image_tokens=True)
    got = sc.redirect_settings(shift_answers=False, seed=7)
    assert dataclasses.asdict(got) == {"coeff": 5.0, "alpha": 2.0, "lr": 0.3, "batch_size": 3, "epochs": 4,
                                       "weight_decay": 0.0, "position": "answer", "params": "mlp", "span": 2,
                                       "decision_weight": 0.5, "shift_answers": False, "image_tokens": True,
                                       "replay": True, "seed": 7}


def test_redirect_with_a_settings_object_equals_keywords(tiny_llama_path):
    from asru.core.models import load_model
    from steering.redirect import RedirectSettings

    lm = load_model(str(tiny_llama_path))
    v = random_direction(lm, seed=3)
    by_keywords = redirect(lm, 2, v, FORGET, RETAIN, coeff=3.0, lr=0.3, epochs=2)
    by_settings = redirect(load_model(str(tiny_llama_path)), 2, v, FORGET, RETAIN, settings=RedirectSettings(lr=0.3, epochs=2))
    assert [s["loss"] for s in by_keywords.steps] == [s["loss"] for s in by_settings.steps]
    with pytest.raises(TypeError):
        redirect(load_model(str(tiny_llama_path)), 2, v, FORGET, RETAIN, learning_rate=0.3)
