"""The steering search's plumbing on tiny models: the study resumes and reproduces, the choice follows its
rule, the chosen config round-trips, and bad input gets one-line errors."""

import json

import pytest

from asru.config import build_config
from asru.core.errors import AsruError

FAST = {"refusal_prompts": 6, "retain_prompts": 6, "select_prompts": 2, "report_limit": 4, "max_new_tokens": 4,
        "select_max_new_tokens": 4, "epochs": 1, "lr": 1e-2, "min_samples": 1}


def _cfg(**steer):
    return build_config({"model": {"device": "cpu", "dtype": "float32"}, "steer": {**FAST, **steer}})


def scripted_screen(lm, dirs, layers, coeff, screen, base_logprobs, max_new_tokens, prompt_only=True):
    """A made-up screening result, a known function of the trial: layer 2 refuses with a strong shift, two
    layers refuse more and cost more KL, and a shift above 4 loses the retain answers."""
    refusal = min(1.0, coeff / 4) * (1.0 if 2 in layers else 0.5) * (1.0 if len(layers) == 2 else 0.9)
    return {"refusal": round(refusal, 4), "leak": 0.0, "retain": 0.0 if coeff > 4 else 1.0,
            "kl": round(0.01 * coeff * len(layers), 5), "example": "scripted"}


def test_search_chooses_and_writes_a_reusable_config(tiny_llama_path, steer_bench, tmp_path, monkeypatch, everything_refuses):
    from asru.config_yaml import load_yaml
    from asru.stages.steer import search
    from asru.stages.steer.stage import run_steer_stage

    monkeypatch.setattr(search, "screen", scripted_screen)
    monkeypatch.setattr(search, "retain_flags", lambda lm, records, n: [True] * len(records))
    cfg = _cfg(search=True, search_trials=8, candidate_layers=[1, 2], search_coeff=[1.0, 5.0], search_finalists=0)
    run_steer_stage(cfg, str(tiny_llama_path), steer_bench, tmp_path / "steer")
    out = json.loads((tmp_path / "steer" / "search" / "trials.json").read_text())
    trials = out["trials"]
    assert len(trials) == 8 and (tmp_path / "steer" / "search" / "pareto.png").stat().st_size > 0
    for t in trials:  # the scripted scores were recorded as they were produced
        assert t["feasible"] == (t["coeff"] <= 4)
        assert t["kl"] == pytest.approx(0.01 * t["coeff"] * len(t["layers"]), abs=1e-4)
    front = [t for t in trials if t["pareto"]]
    best = max(t["refusal"] for t in front)
    expect = min((t for t in front if t["refusal"] >= best - 0.05), key=lambda t: (t["kl"], -t["refusal"], t["number"]))
    assert [t["number"] for t in trials if t["chosen"]] == [expect["number"]]
    assert out["chosen"] == {"layers": expect["layers"], "coeff": expect["coeff"], "trial": expect["number"]}
    report = json.loads((tmp_path / "steer" / "steer_report.json").read_text())
    assert report["layers"] == expect["layers"] and report["layer_choice"].startswith("search")
    # chosen.yaml is a config: the chosen layers and shift fixed, the search off, everything else the run's
    again = build_config(load_yaml(tmp_path / "steer" / "chosen.yaml"))
    assert again.steer.layers == expect["layers"] and again.steer.coeff == pytest.approx(expect["coeff"])
    assert again.steer.search is False and again.steer.epochs == cfg.steer.epochs and again.model == cfg.model


def test_a_search_that_finds_no_refusal_says_so_and_keeps_its_trials(tiny_llama_path, steer_bench, tmp_path, monkeypatch, everything_refuses):
    from asru.stages.steer import search
    from asru.stages.steer.stage import run_steer_stage

    monkeypatch.setattr(search, "screen", lambda *a, **k: {"refusal": 0.0, "leak": 1.0, "retain": 1.0, "kl": 0.01, "example": "x"})
    monkeypatch.setattr(search, "retain_flags", lambda lm, records, n: [True] * len(records))
    with pytest.raises(AsruError, match="made a held-out forget prompt refuse"):
        run_steer_stage(_cfg(search=True, search_trials=4, candidate_layers=[1, 2], search_finalists=0), str(tiny_llama_path),
                        steer_bench, tmp_path / "steer")
    out = json.loads((tmp_path / "steer" / "search" / "trials.json").read_text())
    assert out["chosen"] is None and len(out["trials"]) == 4 and not (tmp_path / "steer" / "chosen.yaml").exists()


def _finalist_scores():
    return [{"refusal": 1.0, "leak": 0.0, "retain": 0.5, "kl": 0.01},   # refuses, but loses retain answers
            {"refusal": 0.9, "leak": 0.0, "retain": 1.0, "kl": 0.50},
            {"refusal": 0.95, "leak": 0.0, "retain": 1.0, "kl": 0.20}]  # feasible, within the margin, lowest KL


def test_finalists_are_redirected_then_put_back_and_the_choice_follows_them(tiny_llama_path, steer_bench, tmp_path,
                                                                           monkeypatch, everything_refuses):
    """Three finalists, each redirected for real and scored (scripted scores, in the order they are checked);
    the chosen one is trained from the untouched weights: the checkpoint equals the same search's with the
    finalists' training left out. A second run reuses search/finalists.json instead of redirecting them again."""
    import torch

    from asru.core.models import load_model
    from asru.stages.steer import finalists, search
    from asru.stages.steer.stage import run_steer_stage

    monkeypatch.setattr(search, "screen", scripted_screen)
    monkeypatch.setattr(search, "retain_flags", lambda lm, records, n: [True] * len(records))
    scripted = iter(_finalist_scores())
    monkeypatch.setattr(search, "score", lambda *a, **k: next(scripted))
    cfg = _cfg(search=True, search_trials=8, candidate_layers=[1, 2], search_coeff=[1.0, 5.0], search_finalists=3,
               search_finalist_epochs=1, search_finalist_share=0.5, redirect_position="answer", redirect_answers="refusal")
    out = run_steer_stage(cfg, str(tiny_llama_path), steer_bench, tmp_path / "steer")
    result = json.loads((tmp_path / "steer" / "search" / "trials.json").read_text())
    finals = result["finalists"]
    assert [f["number"] for f in finals] == [t.number for t in finalists.finalist_trials(
        [search.Trial(**{k: v for k, v in t.items()}) for t in result["trials"]], 3)]
    assert [f["feasible"] for f in finals] == [False, True, True] and [f["chosen"] for f in finals] == [False, False, True]
    assert all(t["feasible"] for t in result["trials"])  # the hooks' retain answers no longer rule trials out
    pick = finals[2]
    assert result["chosen"] == {"layers": pick["layers"], "coeff": pick["coeff"], "trial": pick["number"]}
    # the same search with the finalists' training left out ends in the same weights: each was put back
    scripted = iter(_finalist_scores())
    monkeypatch.setattr(finalists, "train_redirection", lambda *a, **k: [])
    untouched = run_steer_stage(cfg, str(tiny_llama_path), steer_bench, tmp_path / "untrained-finalists")
    searched, plain = load_model(str(out)).model.state_dict(), load_model(str(untouched)).model.state_dict()
    assert all(torch.equal(searched[k], plain[k]) for k in plain)
    base = load_model(str(tiny_llama_path)).model.state_dict()
    assert not all(torch.equal(searched[k], base[k]) for k in base)  # and the chosen settings were trained

    def never(*a, **k):
        raise AssertionError("a finalist was redirected again")

    monkeypatch.setattr(finalists, "train_redirection", never)
    run_steer_stage(cfg, str(tiny_llama_path), steer_bench, tmp_path / "steer")
    again = json.loads((tmp_path / "steer" / "search" / "trials.json").read_text())
    assert again["chosen"] == result["chosen"]


def test_finalist_trials_and_their_choice():
    from asru.stages.steer.finalists import Finalist, choose_finalist, finalist_trials
    from asru.stages.steer.search import Trial

    def t(n, layers, coeff, refusal, kl):
        return Trial(number=n, layers=layers, coeff=coeff, refusal=refusal, leak=0.0, retain=0.0, kl=kl, feasible=True)

    rows = [t(0, [23], 2.98, 1.0, 4.0), t(1, [23], 4.33, 1.0, 6.4), t(2, [17, 21], 2.55, 0.75, 3.0), t(3, [19], 3.24, 0.5, 1.5),
            t(4, [9], 1.1, 0.0, 0.01), t(5, [23], 2.981, 1.0, 4.1)]
    # the best trial of each layer set by refusal, then KL (1 and 5 steer 0's layer less well; 4 never refuses)
    assert [r.number for r in finalist_trials(rows, 2)] == [0, 2]
    assert [r.number for r in finalist_trials(rows, 9)] == [0, 2, 3]
    rows.append(t(6, [15, 23], 3.85, 1.0, 7.0))  # a second layer set at full refusal comes before lower refusals
    assert [r.number for r in finalist_trials(rows, 3)] == [0, 6, 2]
    finals = [Finalist(0, [23], 2.98, 1.0, 0.0, 0.4, 0.3, feasible=False), Finalist(2, [17, 21], 2.55, 0.97, 0.0, 1.0, 0.6),
              Finalist(3, [19], 3.24, 0.5, 0.0, 1.0, 0.1)]
    assert choose_finalist(finals, 0.05).number == 2
    # within the refusal margin the one that leaks less wins over the lower KL (seed 1 / forget ratio 0.3)
    tied = [Finalist(10, [7, 13], 3.98, 0.45, 0.5, 0.94, 0.53), Finalist(3, [15, 17], 2.66, 0.45, 0.375, 0.88, 0.56)]
    assert choose_finalist(tied, 0.05).number == 3
    tied[0].leak = 0.375  # the same leak: the lower KL
    assert choose_finalist(tied, 0.05).number == 10
    with pytest.raises(AsruError, match="no finalist refused"):
        choose_finalist([finals[0]], 0.05)


def test_fixed_layers_win_over_the_search(tiny_llama_path, steer_bench, tmp_path, monkeypatch, everything_refuses):
    from asru.stages.steer import search
    from asru.stages.steer.stage import run_steer_stage

    def never(*a, **k):
        raise AssertionError("the search ran although steer.layers was given")

    monkeypatch.setattr(search, "screen", never)
    run_steer_stage(_cfg(search=True, layers=[1]), str(tiny_llama_path), steer_bench, tmp_path / "steer")
    assert json.loads((tmp_path / "steer" / "steer_report.json").read_text())["layers"] == [1]
    assert not (tmp_path / "steer" / "search").exists()


def _objective(trial):
    from asru.stages.steer.search import _suggest

    layers, coeff = _suggest(trial, {"layers": [3, 5, 7], "max_layers": 2, "coeff": [1.0, 5.0]})
    trial.set_user_attr("layers", layers)
    trial.set_user_attr("retain_drop_excess", 0.0)
    trial.set_constraint("retain_drop", 0.0)
    return -abs(coeff - 3) - 0.1 * abs(layers[0] - 5), coeff * len(layers)


def _params(study):
    return [(t.params["layer_a"], t.params.get("layer_b"), round(t.params["coeff"], 6)) for t in study.trials]


def test_a_resumed_study_asks_the_same_trials(tmp_path):
    from asru.stages.steer.search import open_study, run_trials

    straight = open_study(tmp_path / "a" / "study.journal", "fp")
    run_trials(straight, 7, 0, _objective)
    first = open_study(tmp_path / "b" / "study.journal", "fp")
    run_trials(first, 3, 0, _objective)  # interrupted after 3 trials ...
    resumed = open_study(tmp_path / "b" / "study.journal", "fp")  # ... and opened again from its journal
    assert len(resumed.trials) == 3
    run_trials(resumed, 7, 0, _objective)
    assert len(resumed.trials) == 7 and _params(resumed) == _params(straight)
    other_seed = open_study(tmp_path / "c" / "study.journal", "fp")
    run_trials(other_seed, 7, 1, _objective)
    assert _params(other_seed) != _params(straight)


def test_a_study_of_another_model_or_benchmark_is_refused(tmp_path):
    from asru.stages.steer.search import open_study

    path = tmp_path / "search" / "study.journal"
    open_study(path, "model-a")
    with pytest.raises(AsruError, match=r"study.journal holds a steering search of another model"):
        open_study(path, "model-b")


def test_choice_needs_a_feasible_trial():
    from asru.stages.steer.search import Trial, choose

    rows = [Trial(number=0, layers=[1], coeff=2.0, refusal=0.9, leak=0.0, retain=0.0, kl=0.1, feasible=False)]
    with pytest.raises(AsruError, match="no trial kept the retain answers"):
        choose(rows, 0.05)
    # feasible trials that never refuse: no choice, rather than a shift that does nothing
    rows = [Trial(number=1, layers=[9, 17], coeff=1.1, refusal=0.0, leak=1.0, retain=1.0, kl=0.07, feasible=True, pareto=True)]
    with pytest.raises(AsruError, match="no trial that kept the retain answers made a held-out forget prompt refuse"):
        choose(rows, 0.05)


def test_screen_on_a_tiny_model_measures_the_shift(tiny_llama_path, steer_bench):
    from asru.core.models import load_model
    from asru.stages.steer.search import ScreenSet, screen
    from steering.layer_select import next_token_logprobs

    lm = load_model(str(tiny_llama_path), dtype="float32", device="cpu")
    torch = pytest.importorskip("torch")
    dirs = {1: torch.ones(lm.model.config.hidden_size)}
    forget = [r for r in steer_bench["forget"] if r.modality == "text"][:2]
    retain = [r for r in steer_bench["retain"] if r.modality == "text"][:2]
    s = ScreenSet(forget=forget, retain=retain, kl_questions=[r.question for r in retain], kl_images=[None] * 2)
    base = next_token_logprobs(lm, s.kl_questions, s.kl_images)
    still = screen(lm, dirs, [1], 0.0, s, base, 4)
    moved = screen(lm, dirs, [1], 8.0, s, base, 4, prompt_only=False)
    assert still["kl"] == pytest.approx(0.0, abs=1e-5) and moved["kl"] > 0.01
    # a prompt-only hook moves the next token after the prompt as much, and leaves decode steps alone
    prompt_only = screen(lm, dirs, [1], 8.0, s, base, 4, prompt_only=True)
    everywhere = screen(lm, dirs, [1], 8.0, s, base, 4, prompt_only=False)
    assert prompt_only["kl"] == pytest.approx(everywhere["kl"], rel=1e-4)
    assert 0 <= moved["refusal"] <= 1 and 0 <= moved["retain"] <= 1


@pytest.mark.parametrize("steer, message", [
    ({"search_trials": 0}, "steer.search_trials must be >= 1"),
    ({"search_coeff": [3.0, 1.0]}, "steer.search_coeff must be"),
    ({"search_max_layers": 3}, "steer.search_max_layers must be 1 or 2"),
    ({"search": True, "mode": "ablate"}, "a steering search over two layers works with the redirect and add modes"),
    ({"search_finalist_share": 0.0}, "steer.search_finalist_share in"),
    ({"search_finalist_epochs": 0}, "steer.search_finalist_epochs >= 1"),
    ({"search": True, "mode": "add"}, "finalists are checked by redirection"),
])
def test_search_settings_are_checked(steer, message):
    with pytest.raises(AsruError, match=message):
        build_config({"steer": steer})


def test_a_search_space_outside_the_model_is_refused(tiny_llama_path, steer_bench, tmp_path):
    from asru.stages.steer.stage import run_steer_stage

    with pytest.raises(AsruError, match="out of range: this model has"):
        run_steer_stage(_cfg(search=True, candidate_layers=[40, 41]), str(tiny_llama_path), steer_bench, tmp_path / "steer")


def test_finalists_are_judged_on_more_retain_questions_than_the_screen(steer_bench):
    """The screen's retain questions are the first of the finalists' pool, which holds up to four times as many
    spare retain generation questions: one lost answer is not already past the retain limit."""
    from types import SimpleNamespace

    from asru.stages.steer.search import FINALIST_RETAIN_FACTOR, screen_set

    retain = [r for r in steer_bench["retain"] if r.task == "generation"]
    prompts = SimpleNamespace(forget_records=list(steer_bench["forget"]), held_out=[0, 1], direction_ids=[2, 3],
                              retain_records=retain[:1])
    sc = _cfg(select_prompts=2, general_retain=0).steer
    s = screen_set(prompts, retain, [], sc, seed=0)
    spare = len(retain) - 1
    assert len(s.retain) == min(2, spare) and len(s.finalist_retain) == min(FINALIST_RETAIN_FACTOR * 2, spare)
    assert s.finalist_retain[:len(s.retain)] == s.retain and retain[0] not in s.finalist_retain
    assert len(s.finalist_retain) > len(s.retain)  # the fixture has spare questions beyond the screen's


def test_finalists_score_forget_image_questions_besides_the_screens(steer_bench):
    """The finalists' forget side adds image questions (free answer and fill-in-the-blank: where the question
    does not name the person) to the screen's held-out prompts, none of them twice."""
    from types import SimpleNamespace

    from asru.stages.steer.search import FINALIST_FORGET_FACTOR, FINALIST_FORGET_TASKS, screen_set

    forget = list(steer_bench["forget"])
    images = [r for r in forget if r.image and r.task in FINALIST_FORGET_TASKS]
    prompts = SimpleNamespace(forget_records=forget, held_out=[forget.index(images[0])], direction_ids=[0],
                              retain_records=[])
    s = screen_set(prompts, list(steer_bench["retain"]), [], _cfg(select_prompts=2, general_retain=0).steer, seed=0)
    assert s.forget == [images[0]]
    assert len(s.finalist_forget) == min(FINALIST_FORGET_FACTOR * 2, len(images) - 1) > 0
    assert all(r.image and r.task in FINALIST_FORGET_TASKS for r in s.finalist_forget)
    assert images[0] not in s.finalist_forget and len({r.id for r in s.finalist_forget}) == len(s.finalist_forget)
    assert {r.task for r in s.finalist_forget} == {"generation", "cloze"}  # the fixture has both kinds


def test_a_share_of_rows_leaves_out_the_held_out_records(steer_bench):
    from asru.stages.steer.prompts import SteerPrompts
    from asru.stages.steer.redirection import RedirectRows, share_of_rows

    recs = list(steer_bench["forget"])[:10]
    recs = recs + recs[:3]  # copies of the first three (augmented or other photos) share their record
    prompts = SteerPrompts([], [], [], recs, [r.question for r in recs], [r.image for r in recs], [], [], [], [], [])
    rows = RedirectRows(prompts, [f"a{i}" for i in range(len(recs))], ["q"] * 4, [None] * 4, ["r"] * 4, [])
    held = frozenset(r.id for r in recs[:3])
    for seed in range(5):
        part = share_of_rows(rows, 0.5, seed, held)
        assert len(part.prompts.forget_records) == round(7 * 0.5)  # half of the ten less the three held out
        assert not held & {r.id for r in part.prompts.forget_records}
        assert len(share_of_rows(rows, 0.5, seed).prompts.forget_records) == round(13 * 0.5)


def test_finalists_are_scored_on_the_finalist_retain_pool(tiny_llama_path, steer_bench, tmp_path, monkeypatch,
                                                          everything_refuses):
    from asru.stages.steer import finalists, search
    from asru.stages.steer.stage import run_steer_stage

    monkeypatch.setattr(search, "screen", scripted_screen)
    judged = []

    def judge_base(lm, records, n):
        """The unsteered answers: right on the screen's 2 (select_prompts), every second one wrong after them."""
        judged.append(len(records))
        return [i < 2 or i % 2 == 0 for i in range(len(records))]

    monkeypatch.setattr(search, "retain_flags", judge_base)
    scored, scored_forget, trained = [], [], []
    monkeypatch.setattr(search, "score", lambda *a, retain=None, forget=None, **k: scored.append(len(retain)) or
                        scored_forget.append({r.id for r in forget}) or {"refusal": 1.0, "leak": 0.0, "retain": 1.0, "kl": 0.01})
    train = finalists.train_redirection
    monkeypatch.setattr(finalists, "train_redirection", lambda lm, layers, dirs, rows, *a, **k:
                        trained.append({r.id for r in rows.prompts.forget_records}) or train(lm, layers, dirs, rows, *a, **k))
    cfg = _cfg(search=True, search_trials=4, candidate_layers=[1, 2], search_finalists=2, search_finalist_epochs=1,
               search_finalist_share=0.5, redirect_position="answer", redirect_answers="refusal")
    run_steer_stage(cfg, str(tiny_llama_path), steer_bench, tmp_path / "steer")
    result = json.loads((tmp_path / "steer" / "search" / "trials.json").read_text())
    pool = judged[0]
    assert judged == [pool] and pool > 3 and scored == [pool] * 2  # one judging of the finalists' larger pool
    assert len(trained) == 2 and all(t and not t & f for t, f in zip(trained, scored_forget))  # scored, never trained
    assert scored_forget[0] == scored_forget[1] and len(scored_forget[0]) == 2  # a text model: no image questions to add
    assert result["base_retain"] == 1.0  # the screen's 2 questions open the pool
    assert result["finalist_base_retain"] == round((2 + sum(1 for i in range(2, pool) if i % 2 == 0)) / pool, 4) < 1


def test_finalists_are_held_to_the_best_finalists_retain_accuracy(tmp_path):
    """Seed 5's finalists after their short redirection: 0.81, 0.59 and 0.56 of the retain answers against the
    unsteered 1.00. Only the first is within 0.1 of the best finalist, and it is chosen."""
    from asru.stages.steer.finalists import check_finalists, choose_finalist
    from asru.stages.steer.search import Trial

    trials = [Trial(number=n, layers=layers, coeff=3.0, refusal=1.0, leak=0.0, retain=0.0, kl=kl, feasible=True)
              for n, layers, kl in ((15, [7, 23], 5.8), (13, [15, 23], 7.0), (0, [13, 23], 12.4))]
    retain = iter([0.81, 0.59, 0.56])
    finals = check_finalists(trials, 3, lambda layers, coeff, m: {"refusal": 1.0, "leak": 0.0, "retain": next(retain), "kl": 0.1},
                             None, 0.1, tmp_path / "finalists.json", "fp")
    assert [f.feasible for f in finals] == [True, False, False]
    assert choose_finalist(finals, 0.05).number == 15
    saved = json.loads((tmp_path / "finalists.json").read_text())  # the file says the same
    assert [f["feasible"] for f in saved["finalists"]] == [True, False, False]
