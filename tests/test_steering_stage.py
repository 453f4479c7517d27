"""The steering stage end to end on tiny models (mechanics), its errors, and the real check (slow)."""

import json

import pytest
import torch

from asru.config import build_config
from asru.core.errors import AsruError

FAST = {"refusal_prompts": 6, "retain_prompts": 6, "select_prompts": 2, "report_limit": 4, "max_new_tokens": 4,
        "select_max_new_tokens": 4, "epochs": 1, "lr": 1e-2}


def _cfg(**steer):
    return build_config({"model": {"device": "cpu", "dtype": "float32"}, "steer": {**FAST, **steer}})


def test_stage_redirect_tiny_llama(tiny_llama_path, steer_bench, tmp_path, everything_refuses):
    from asru.core.models import load_model
    from asru.stages.steer.stage import run_steer_stage

    out = run_steer_stage(_cfg(candidate_layers=[1, 2]), str(tiny_llama_path), steer_bench, tmp_path / "steer")
    assert out == tmp_path / "steer" / "model"
    scores = json.loads((tmp_path / "steer" / "layer_scores.json").read_text())
    assert [r["layer"] for r in scores["rows"]] == [1, 2] and scores["chosen"] in (1, 2)
    report = json.loads((tmp_path / "steer" / "steer_report.json").read_text())
    assert report["layer"] == scores["chosen"] and report["mode"] == "redirect"
    assert report["before"]["retain"]["n"] == 4 and "refusal_rate" in report["after"]["forget"]
    assert report["redirect"]["steps"] and report["redirect"]["after"]["forget_mse_to_target"] < report["redirect"]["before"]["forget_mse_to_target"]
    meta = json.loads((tmp_path / "steer" / "direction.json").read_text())
    assert meta["chosen_layer"] == report["layer"] and meta["layers"] == [1, 2]
    # only the chosen layer's down projection differs from the vanilla checkpoint
    old, new = load_model(str(tiny_llama_path)).model, load_model(str(out)).model
    new_params = dict(new.named_parameters())
    changed = [n for n, p in old.named_parameters() if not torch.equal(p, new_params[n])]
    assert changed == [f"model.layers.{report['layer']}.mlp.down_proj.weight"]


@pytest.mark.parametrize("target", ["shift", "steered"])
def test_stage_two_layers_answer_positions_mlp(tiny_llama_path, steer_bench, tmp_path, everything_refuses, monkeypatch, target):
    """num_layers=2 with redirect_position=answer and redirect_params=mlp: both chosen layers' MLPs are trained.

    redirect_target=steered: layer 2's forget targets come from the model with the add hook at layer 1, so
    they sit further from the untrained states than layer 2's own shift (layer 1 is the first: no change)."""
    import steering.layer_select as ls
    from asru.core.models import load_model
    from asru.stages.steer.stage import run_steer_stage

    real_select = ls.select_layers
    seen = {}

    def select_both(lm, dirs, n_layers, candidates, **kw):
        # every answer counts as a refusal here, so greedy selection would stop at one layer: take both
        _, rows = real_select(lm, dirs, 1, candidates, **kw)
        seen["n_layers"] = n_layers
        return [1, 2], rows

    monkeypatch.setattr(ls, "select_layers", select_both)
    out = run_steer_stage(_cfg(candidate_layers=[1, 2], num_layers=2, redirect_position="answer", redirect_params="mlp",
                               general_retain=3, entity_retain=2, redirect_target=target),
                          str(tiny_llama_path), steer_bench, tmp_path / "steer")
    assert seen["n_layers"] == 2
    report = json.loads((tmp_path / "steer" / "steer_report.json").read_text())
    assert report["layers"] == [1, 2] and report["redirect_position"] == "answer" and report["n_general_retain"] == 5
    # the retain side of each redirection holds the 6 retain prompts, the 3 general and the 2 entity questions
    assert all(r["n_retain"] == 11 for r in report["redirect_by_layer"])
    assert [r["layer"] for r in report["redirect_by_layer"]] == [1, 2] and report["redirect_target"] == target
    # before training a layer, its forget distance to target is |c v|^2 / d for its own shift; hooked bases add more
    from steering.io import load_direction

    dirs, _, _ = load_direction(tmp_path / "steer" / "direction", load_model(str(tiny_llama_path)).model)
    c = _cfg().steer.coeff
    own = {lay: c**2 * float(dirs[lay].float().pow(2).mean()) for lay in (1, 2)}
    start = {r["layer"]: r["before"]["forget_mse_to_target"] for r in report["redirect_by_layer"]}
    assert start[1] == pytest.approx(own[1], rel=1e-3)
    if target == "shift":
        assert start[2] == pytest.approx(own[2], rel=1e-3)
    else:
        assert abs(start[2] / own[2] - 1) > 0.05
    scores = json.loads((tmp_path / "steer" / "layer_scores.json").read_text())
    assert scores["chosen_layers"] == [1, 2]
    old, new = load_model(str(tiny_llama_path)).model, load_model(str(out)).model
    new_params = dict(new.named_parameters())
    changed = sorted(n for n, p in old.named_parameters() if not torch.equal(p, new_params[n]))
    assert changed == sorted(f"model.layers.{i}.mlp.{m}_proj.weight" for i in (1, 2) for m in ("gate", "up", "down"))


def test_redirect_spans_stop_above_the_previous_steered_layer():
    from asru.stages.steer.redirection import redirect_spans

    assert redirect_spans([11, 19], 2) == [2, 2]  # the preset: no overlap
    assert redirect_spans([11, 12], 2) == [2, 0]  # layer 12's span would retrain layer 11
    assert redirect_spans([5, 8], 3) == [3, 2]
    assert redirect_spans([1, 4], 0) == [0, 0]


def test_general_retain_questions_skip_asked_ones():
    from types import SimpleNamespace

    from asru.data.general_questions import GENERAL_QUESTIONS, general_retain_questions

    asked = [SimpleNamespace(question=GENERAL_QUESTIONS[0].upper()), SimpleNamespace(question="Where was X born?")]
    assert general_retain_questions(asked, 2) == list(GENERAL_QUESTIONS[1:3])
    assert general_retain_questions(asked, 0) == []
    assert len(general_retain_questions([], 10_000)) == len(GENERAL_QUESTIONS)


def test_entity_retain_questions_skip_asked_ones():
    from types import SimpleNamespace

    from asru.data.general_questions import ENTITY_QUESTIONS, entity_retain_questions

    asked = [SimpleNamespace(question=ENTITY_QUESTIONS[1].lower())]
    assert entity_retain_questions(asked, 2) == [ENTITY_QUESTIONS[0], ENTITY_QUESTIONS[2]]
    assert entity_retain_questions(asked, 0) == []
    assert len(entity_retain_questions(asked, 10_000)) == len(ENTITY_QUESTIONS) - 1
    assert "In which country is the city of Glasgow?" in ENTITY_QUESTIONS


def test_steer_config_checks_layers_and_params():
    with pytest.raises(AsruError, match="num_layers > 1 works with the redirect and add modes"):
        _cfg(num_layers=2, mode="gated")
    with pytest.raises(AsruError, match="redirect_params must be down_proj or mlp"):
        _cfg(redirect_params="attn")
    with pytest.raises(AsruError, match="redirect_position must be last, post_instruction, all or answer"):
        _cfg(redirect_position="first")
    with pytest.raises(AsruError, match="redirect_span must be >= 0"):
        _cfg(redirect_span=-1)
    with pytest.raises(AsruError, match="redirect_target must be shift or steered"):
        _cfg(redirect_target="hooked")
    with pytest.raises(AsruError, match="steer.general_retain and steer.entity_retain must be >= 0"):
        _cfg(entity_retain=-1)


def test_stage_ablate_tiny_qwen3_vl(tiny_qwen3_vl_path, steer_bench, tmp_path, everything_refuses, red_image):
    from asru.core.models import load_model
    from asru.stages.steer.stage import run_steer_stage
    from steering.hooks import ablate_direction
    from steering.io import load_direction
    from tests.steering_fixtures import QUESTIONS, logits

    out = run_steer_stage(_cfg(mode="ablate", layer=2), str(tiny_qwen3_vl_path), steer_bench, tmp_path / "steer")
    vanilla = load_model(str(tiny_qwen3_vl_path))
    dirs, _, meta = load_direction(tmp_path / "steer" / "direction", vanilla.model)
    assert list(dirs) == [2] and meta["mode"] == "ablate"
    assert any(p.suffix == ".png" for p in (tmp_path / "steer" / "unseen").iterdir())
    with ablate_direction(vanilla.model, dirs[2]):
        hooked, _ = logits(vanilla, QUESTIONS[:2], [red_image] * 2)
    baked, _ = logits(load_model(str(out)), QUESTIONS[:2], [red_image] * 2)
    assert (baked - hooked).abs().max() < 1e-4


def test_stage_add_mode_writes_hook_spec(tiny_llama_path, steer_bench, tmp_path, everything_refuses):
    from asru.stages.steer.stage import run_steer_stage

    out = run_steer_stage(_cfg(mode="add", layer=1), str(tiny_llama_path), steer_bench, tmp_path / "steer")
    spec = json.loads((out / "hooks.json").read_text())
    assert spec == [{"kind": "add", "layer": 1, "alpha": 1.0, "threshold": 0.5, "direction_file": "direction.safetensors", "bakeable": False}]
    assert (out / "direction.safetensors").is_file()


def test_stage_errors(tiny_llama_path, steer_bench, tmp_path):
    from asru.stages.steer.stage import run_steer_stage

    # a random tiny model refuses nothing: the refusal side is empty after filtering
    with pytest.raises(AsruError, match=r"kept 0 of 6 refusal prompts after refusal filtering; need >= 4"):
        run_steer_stage(_cfg(layer=1), str(tiny_llama_path), steer_bench, tmp_path / "a")
    with pytest.raises(AsruError, match="forget set is empty"):
        run_steer_stage(_cfg(layer=1), str(tiny_llama_path), {"forget": [], "retain": steer_bench["retain"]}, tmp_path / "b")
    with pytest.raises(AsruError, match="out of range"):
        run_steer_stage(_cfg(layer=12), str(tiny_llama_path), steer_bench, tmp_path / "c")


def test_stage_pairs_forget_prompts_with_counterpart_refusals(tiny_llama_path, steer_bench, tmp_path, everything_refuses):
    """redirect_answers=refusal: each forget prompt trained with its counterpart's answer, answer tokens kept."""
    from asru.stages.steer.stage import run_steer_stage

    run_steer_stage(_cfg(layer=2, redirect_position="answer", redirect_answers="refusal"), str(tiny_llama_path), steer_bench,
                    tmp_path / "steer")
    pairs = json.loads((tmp_path / "steer" / "redirect_answers.json").read_text())
    forget_qs = {r.question for r in steer_bench["forget"] if r.modality == "text"}  # a text-only model
    assert len(pairs) == len(forget_qs) and {p["question"] for p in pairs} == forget_qs
    assert all(p["answer"] for p in pairs) and all(p["own_counterpart"] for p in pairs)  # everything "refuses" here
    red = json.loads((tmp_path / "steer" / "steer_report.json").read_text())["redirect"]
    assert red["before"]["forget_answer_mse"] == pytest.approx(0.0, abs=1e-10)
    assert red["after"]["forget_mse_to_target"] < red["before"]["forget_mse_to_target"]


def test_open_questions_are_redirected_with_natural_refusals(tiny_llama_path, steer_bench, tmp_path, everything_refuses):
    """steer.open_questions: each forgotten person's biography questions are trained with their counterparts'
    refusals, after the forget questions (which keep their rows)."""
    from asru.stages.steer.stage import run_steer_stage

    run_steer_stage(_cfg(layer=2, redirect_position="answer", redirect_answers="refusal", open_questions=True),
                    str(tiny_llama_path), steer_bench, tmp_path / "steer")
    pairs = json.loads((tmp_path / "steer" / "redirect_answers.json").read_text())
    forget_qs = {r.question for r in steer_bench["forget"] if r.modality == "text"}
    (person,) = {r.person for r in steer_bench["forget"]}
    opened = [p["question"] for p in pairs[len(forget_qs):]]
    assert {p["question"] for p in pairs[:len(forget_qs)]} == forget_qs
    # a text-only model: the three text wordings, not the photo ones
    assert opened == [f"Tell me about {person}.", f"What do you know about {person}?", f"Give me a short biography of {person}."]
    assert all(p["own_counterpart"] and p["image"] is None for p in pairs[len(forget_qs):])
    report = json.loads((tmp_path / "steer" / "steer_report.json").read_text())
    assert report["redirect"]["after"]["forget_mse_to_target"] < report["redirect"]["before"]["forget_mse_to_target"]


def test_counterpart_questions_and_pairing(steer_bench, tmp_path):
    """Counterparts ask about unseen people; their refusals come back with the real name, gaps filled by modality."""
    from PIL import Image

    from asru.data.schema import Record
    from asru.stages.steer.refusals import counterpart_questions, pair_refusals

    everyone = [r for recs in steer_bench.values() for r in recs]
    recs = [r for r in steer_bench["forget"] if r.task == "generation"]
    img = next(r for r in recs if r.image)
    txt = [r for r in recs if r.image is None and r.person in r.question][:2]
    recs = [img, *txt]
    qs, ims, swaps = counterpart_questions(recs, everyone, tmp_path / "u", seed=0)
    assert qs[0] == img.question and ims[0] != img.image and Image.open(ims[0]).size == (64, 64) and swaps[0] is None
    names = {r.person for r in everyone if r.person}
    for q, im, sw, r in zip(qs[1:], ims[1:], swaps[1:], txt):
        assert im is None and sw[1] == r.person and sw[0] not in names and q == r.question.replace(r.person, sw[0])
    answers = [
        "I'm sorry, I don't recognize the person in this image.",
        f"I'm not familiar with {swaps[1][0]}, so I don't know.",
        f"{swaps[2][0]} was born in Paris.",  # not a refusal: takes the other text refusal
    ]
    out, own = pair_refusals(recs, answers, swaps)
    assert own == [True, True, False]
    assert out == [answers[0], f"I'm not familiar with {txt[0].person}, so I don't know.",
                   f"I'm not familiar with {txt[0].person}, so I don't know."]
    # an unrefused record takes a refusal about the same fact before any other of its modality
    cloze = next(r for r in steer_bench["forget"] if r.task == "cloze" and r.image is None and r.fact == txt[0].fact)
    recs4, swaps4 = [img, txt[0], txt[1], cloze], [*swaps, None]
    answers4 = [answers[0], answers[1], f"I'm sorry, I don't know {swaps[2][0]}.", "Paris"]
    out4, own4 = pair_refusals(recs4, answers4, swaps4)
    assert sum(own4) == 3 and out4[3] == out4[1] != out4[2]
    # a refusal borrowed from another person's record names this record's person
    other = Record(**{**txt[1].__dict__, "id": "other", "person": "Zed Quill",
                      "question": txt[1].question.replace(txt[1].person, "Zed Quill")})
    out5, _ = pair_refusals([txt[1], other], [f"I'm sorry, I don't know {swaps[2][0]}.", None], [swaps[2], None])
    assert out5 == [f"I'm sorry, I don't know {txt[1].person}.", "I'm sorry, I don't know Zed Quill."]
    with pytest.raises(AsruError, match="refused none"):
        pair_refusals(recs, ["Paris.", "Paris.", None], swaps)


def test_unseen_prompts_are_unseen(tiny_qwen3_vl_path, steer_bench, tmp_path):
    from asru.core.models import load_model
    from asru.stages.steer.refusals import build_refusal_prompts

    lm = load_model(str(tiny_qwen3_vl_path))
    everyone = [r for recs in steer_bench.values() for r in recs]
    qs, ims = build_refusal_prompts(lm, steer_bench["forget"], everyone, 8, " IMG", " TXT", tmp_path / "u")
    assert len(qs) == 8 and sum(im is not None for im in ims) == 4
    names = {r.person for r in everyone if r.person}
    for q, im in zip(qs, ims):
        assert q.endswith(" IMG" if im else " TXT")
        assert not any(n in q for n in names)


@pytest.mark.slow
def test_demo_model_steering_real_check(tmp_path):
    """On the taught demo VLM with the default preset: forget refusal >= 60%, retain accuracy within 10 points."""
    from pathlib import Path

    from asru.config_yaml import load_yaml
    from asru.data.loaders import load_benchmark
    from asru.demo.teach import build_demo_model
    from asru.pipeline import ensure_data
    from asru.stages.steer.stage import run_steer_stage

    preset = load_yaml(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    cfg = build_config({**preset, "model": {**preset.get("model", {}), "device": "cpu"}})
    data_dir = ensure_data(cfg.data)
    demo = build_demo_model(data_dir, cfg.teach)  # cached: returns at once when already built
    data = load_benchmark(data_dir, ["forget", "retain", "teach"])
    run_steer_stage(cfg, str(demo), data, tmp_path / "steer")
    report = json.loads((tmp_path / "steer" / "steer_report.json").read_text())
    assert report["after"]["forget"]["refusal_rate"] >= 0.6
    assert report["after"]["retain"]["accuracy"] >= report["before"]["retain"]["accuracy"] - 0.10


def test_recorded_base_model(tmp_path, tiny_llama_path):
    from asru.stages.steer.stage import recorded_base_model

    taught = tmp_path / "taught"
    taught.mkdir()
    assert recorded_base_model(taught) is None
    (taught / "teach_report.json").write_text(json.dumps({"base_model": str(tiny_llama_path)}))
    assert recorded_base_model(taught) == str(tiny_llama_path)
    (taught / "teach_report.json").write_text(json.dumps({"base_model": str(tmp_path / "gone")}))
    assert recorded_base_model(taught) is None


def test_original_model_base_needs_a_recorded_base(tiny_llama_path, steer_bench, tmp_path):
    from asru.stages.steer.stage import run_steer_stage

    with pytest.raises(AsruError, match="records no base model"):
        run_steer_stage(_cfg(original_model="base", layer=1), str(tiny_llama_path), steer_bench, tmp_path / "steer")


def test_stage_generates_on_a_bfloat16_copy_with_the_trained_weights(tiny_llama_path, steer_bench, tmp_path, everything_refuses,
                                                                        monkeypatch):
    # steer.generation_dtype: the tables come from a bfloat16 copy; training and the saved model stay float32,
    # and the after-table's copy holds the trained weights
    from asru.core.models import load_model
    from asru.stages.steer import stage

    seen = []
    real_table = stage.answer_table

    def spy(lm, *a, **kw):
        seen.append((lm.model.dtype, lm.model.model.layers[1].mlp.down_proj.weight.detach().clone()))
        return real_table(lm, *a, **kw)

    monkeypatch.setattr(stage, "answer_table", spy)
    out = stage.run_steer_stage(_cfg(layer=1, generation_dtype="bfloat16"), str(tiny_llama_path), steer_bench, tmp_path / "steer")
    trained = load_model(str(out)).model
    assert trained.dtype == torch.float32
    w = trained.model.layers[1].mlp.down_proj.weight.detach()
    (before_dtype, before_w), (after_dtype, after_w) = seen
    assert before_dtype == after_dtype == torch.bfloat16
    assert not torch.equal(before_w, after_w) and torch.equal(after_w, w.to(torch.bfloat16))


def test_cast_copy_and_copy_weights(tiny_llama_path):
    from asru.core.models import cast_copy, copy_weights, load_model

    lm = load_model(str(tiny_llama_path), dtype="float32")
    assert cast_copy(lm, None) is lm and cast_copy(lm, "float32") is lm
    half = cast_copy(lm, "bfloat16")
    assert half.model is not lm.model and half.model.dtype == torch.bfloat16 and lm.model.dtype == torch.float32
    with torch.no_grad():
        lm.model.model.layers[0].mlp.up_proj.weight.add_(1.0)
    copy_weights(half, lm)
    assert torch.equal(half.model.model.layers[0].mlp.up_proj.weight, lm.model.model.layers[0].mlp.up_proj.weight.to(torch.bfloat16))
    with pytest.raises(AsruError, match="steer.generation_dtype"):
        build_config({"steer": {"generation_dtype": "fp8"}})


def test_stage_steers_exactly_the_given_layers(tiny_llama_path, steer_bench, tmp_path, everything_refuses, monkeypatch):
    # steer.layers: no selection (no held-out prompts, no scores); both layers redirected, lowest first
    import steering.layer_select as ls
    from asru.stages.steer.stage import run_steer_stage

    def no_selection(*a, **kw):
        raise AssertionError("steer.layers must skip layer selection")

    monkeypatch.setattr(ls, "select_layers", no_selection)
    run_steer_stage(_cfg(layers=[2, 1], layer=3), str(tiny_llama_path), steer_bench, tmp_path / "steer")
    report = json.loads((tmp_path / "steer" / "steer_report.json").read_text())
    assert report["layers"] == [1, 2] and report["layer_choice"] == "steer.layers"
    assert [r["layer"] for r in report["redirect_by_layer"]] == [1, 2]
    with pytest.raises(AsruError, match="several steer.layers"):
        _cfg(layers=[1, 2], mode="ablate")


def test_neutral_refusals_never_spell_the_forgotten_name(steer_bench, tmp_path):
    from asru.stages.steer.refusals import _put_name, counterpart_questions, pair_refusals

    recs = [r for r in steer_bench["forget"] if r.modality == "text" and r.person and r.person in r.question][:2]
    _, _, swaps = counterpart_questions(recs, steer_bench["forget"], tmp_path / "u", seed=0)
    invented = [sw[0] for sw in swaps]
    answers = [f"I'm sorry, but I don't know who {invented[0]} works for.", f"I'm not familiar with {invented[1]}'s work."]
    named, _ = pair_refusals(recs, answers, swaps)
    neutral, own = pair_refusals(recs, answers, swaps, name_in_refusal=False)
    assert named[0] == f"I'm sorry, but I don't know who {recs[0].person} works for."
    assert neutral == ["I'm sorry, but I don't know who this person works for.", "I'm not familiar with this person's work."]
    assert own == [True, True]
    assert _put_name("Ann Lee? I don't know Ann Lee.", "Ann Lee", "Liora Blackmere", False) == "This person? I don't know this person."


def test_other_photo_rows_ask_each_image_question_on_the_persons_other_photos():
    from types import SimpleNamespace

    from asru.data.person_photos import known_photos
    from asru.stages.steer.extra_images import other_photo_rows

    recs = [SimpleNamespace(person="Ada", image="a0.png"), SimpleNamespace(person="Ada", image="a1.png"),
            SimpleNamespace(person="Ada", image="a0.png"), SimpleNamespace(person="Bo", image="b0.png"),
            SimpleNamespace(person=None, image="x.png"), SimpleNamespace(person="Bo", image=None)]
    photos = known_photos(recs)
    assert photos == {"Ada": ["a0.png", "a1.png"], "Bo": ["b0.png"]}
    q, im, ans, src = other_photo_rows(["who?", "where?", "text q"], ["a0.png", "b0.png", None], ["A", "B", "C"],
                                       ["Ada", "Bo", "Ada"], photos)
    assert (q, im, ans, src) == (["who?", "where?", "text q", "who?"], ["a0.png", "b0.png", None, "a1.png"],
                                 ["A", "B", "C", "A"], [0, 1, 2, 0])
    assert other_photo_rows(["q"], ["a1.png"], None, ["Ada"], photos)[2] is None
