"""Forget quality against an oracle model: truth ratios, the KS test and the plain distances."""

import math

import pytest
from eval_fixtures import rec, text_qa

from asru.core.prompting import answer_logprobs
from asru.eval.metrics import free_text_prompt
from asru.eval.oracle import ks_pvalue, oracle_comparison, perturbed_answers, truth_ratios


def _people():
    return text_qa(person="Aldric Ashgrove") + text_qa(person="Brenna Brightwater")


def test_perturbed_answers_are_other_peoples_values():
    records = _people()
    pool = [rec("c1", answer="Rome", person="C", fact="birthplace", split="retain")]
    out = perturbed_answers(records, pool, k=3, seed=0)
    for r, wrong in zip(records, out):
        assert wrong and r.answer not in wrong
    # the other forgotten person's value of the same fact first: one other person -> one value
    assert out[0] == [records[4].answer] or records[0].answer == records[4].answer
    assert perturbed_answers([rec("x", answer="Oslo", person="A", fact="f")], []) == [[]]


def test_truth_ratio_is_wrong_over_true_likelihood(tiny_llama):
    records = text_qa(n=2)
    perturbed = [["Lyon", "Rome"], []]  # the second record has no wrong answer: left out
    ratios = truth_ratios(tiny_llama, records, perturbed, batch_size=4)
    assert len(ratios) == 1
    q = free_text_prompt(records[0])
    (st, nt), (s1, n1), (s2, n2) = answer_logprobs(tiny_llama, [q] * 3, [records[0].answer, "Lyon", "Rome"], [None] * 3)
    want = (math.exp(s1 / n1 - st / nt) + math.exp(s2 / n2 - st / nt)) / 2
    assert ratios[0] == pytest.approx(want, rel=1e-4)


def test_ks_pvalue():
    assert ks_pvalue([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == pytest.approx(1.0)
    assert ks_pvalue([0.01 * i for i in range(20)], [1 + 0.01 * i for i in range(20)]) < 1e-6
    assert ks_pvalue([], [0.5]) is None


def test_a_model_against_itself_is_its_own_oracle(tiny_llama):
    from asru.eval.metrics import generate_answers

    records = _people()
    answers = generate_answers(tiny_llama, records, 4, 8)
    out = oracle_comparison(tiny_llama, tiny_llama, tiny_llama, records, answers, max_new_tokens=4, batch_size=8)
    assert out["forget_quality"] == pytest.approx(1.0)
    assert out["truth_ratio"] == pytest.approx(out["oracle_truth_ratio"], rel=1e-5)
    assert out["oracle_agreement"] == 1.0 and out["oracle_refusal_gap"] == 0.0 and out["oracle_leak_gap"] == 0.0
    assert out["oracle_fluency_gap"] == pytest.approx(0.0, abs=1e-6)
    assert out["oracle_n"] == 8 and out["truth_ratio_n"] == 8


def test_answers_that_leak_differ_from_an_oracle_that_refuses(tiny_llama, monkeypatch):
    import asru.eval.oracle as oracle_mod

    records = _people()
    monkeypatch.setattr(oracle_mod, "generate_answers", lambda *a, **k: ["I'm sorry, I don't know."] * len(records))
    leaking = [f"It is {r.answer}." for r in records]
    out = oracle_comparison(tiny_llama, tiny_llama, tiny_llama, records, leaking, max_new_tokens=4, batch_size=8)
    assert out["oracle_agreement"] == 0.0
    assert out["oracle_leak_gap"] == 1.0 and out["oracle_refusal_gap"] == -1.0 and out["oracle_refusal_rate"] == 1.0
