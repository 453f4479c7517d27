"""Model utility (asru.eval.utility): distractors, the harmonic mean, per-split values on a tiny model, and
the evaluation's model_utility key."""

import math

import pytest
from eval_fixtures import rec

from asru.config import EvalConfig
from asru.core.prompting import answer_logprobs
from asru.eval.utility import model_utility, option_distractors, split_utility


def _real():
    gen = rec("real-000-generation", question="What is the capital of France?", answer="Paris")
    cls = rec("real-000-classification", task="classification", question="What is the capital of France?", answer="Paris",
              options=["London", "Paris", "Rome", "Berlin"], label=1)
    lone = rec("real-001-generation", question="What is 2 plus 3?", answer="5")
    return gen, cls, lone


def test_option_distractors_come_from_the_items_classification_twin():
    gen, cls, lone = _real()
    assert option_distractors([gen, lone], [gen, cls, lone]) == [["London", "Rome", "Berlin"], []]


def test_model_utility_is_the_harmonic_mean_and_zero_when_any_part_is():
    assert model_utility([0.5, 0.5, 1.0]) == pytest.approx(3 / (2 + 2 + 1))
    assert model_utility([0.9, 0.0, 1.0]) == 0.0
    assert model_utility([0.9, None]) is None and model_utility([]) is None


def test_split_utility_on_a_tiny_model(tiny_llama):
    gen, cls, lone = _real()
    out = split_utility(tiny_llama, "real", [gen, lone], ["It is Paris.", "Seven"], [gen, cls, lone])
    # the normalised answer probability, by hand from the same log-likelihoods
    scores = answer_logprobs(tiny_llama, [gen.question] * 4, ["Paris", "London", "Rome", "Berlin"])
    lp = [s / n for s, n in scores]
    share = math.exp(lp[0]) / sum(math.exp(v) for v in lp)
    assert out["utility_real_prob"] == pytest.approx(share, rel=1e-4)
    ratio = sum(math.exp(v - lp[0]) for v in lp[1:]) / 3
    assert out["utility_real_truth_ratio"] == pytest.approx(max(0.0, 1 - ratio), rel=1e-4, abs=1e-6)
    assert out["utility_real_rouge"] == pytest.approx(0.5)  # "Paris" recalled once, "5" not at all
    # retain: wrong answers are other people's values of the same fact
    people = [rec(f"retain-{i}-generation", question=f"What is Person{i}'s job?", answer=job, person=f"Person{i}", fact="job")
              for i, job in enumerate(["baker", "pilot", "nurse"])]
    kept = split_utility(tiny_llama, "retain", people, ["a baker", "pilot", "I don't know"], people)
    assert set(kept) == {"utility_retain_prob", "utility_retain_rouge", "utility_retain_truth_ratio"}
    assert 0 < kept["utility_retain_prob"] < 1 and kept["utility_retain_rouge"] == pytest.approx(2 / 3)
    assert split_utility(tiny_llama, "retain", [cls], ["B"], [cls]) == {}  # no generation question: nothing to score


def test_evaluation_reports_model_utility(tiny_llava_path, tmp_path):
    from asru.data.loaders import load_benchmark
    from asru.data.synthetic import generate_benchmark
    from asru.eval.runner import evaluate

    d = tmp_path / "bench"
    generate_benchmark(d, people=4, seed=0, overwrite=True)
    cfg = EvalConfig(max_new_tokens=3, batch_size=8, limit=12, progress=False, utility=True, mia=False, robustness=False,
                     quality=False)
    m = evaluate(cfg, str(tiny_llava_path), load_benchmark(d), tmp_path / "eval")
    parts = [m["forget"][f"utility_{s}_{k}"] for s in ("retain", "real") for k in ("prob", "rouge", "truth_ratio")]
    assert all(p is not None and 0 <= p <= 1 for p in parts)
    assert m["forget"]["model_utility"] == model_utility(parts)
    off = evaluate(EvalConfig(max_new_tokens=3, batch_size=8, limit=12, progress=False, mia=False, robustness=False,
                              quality=False), str(tiny_llava_path), load_benchmark(d), tmp_path / "eval2")
    assert "model_utility" not in off["forget"]
