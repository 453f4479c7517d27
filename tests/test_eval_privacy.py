"""Membership-inference AUC: exact on separable / identical / tied scores; counterfactual non-members."""

import itertools
import random

import pytest
from eval_fixtures import rec

from asru.eval.privacy import auc, counterfactual_answers, membership_inference, mia_auc


def _brute(pos, neg):
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)) / (len(pos) * len(neg))


def test_auc_exact():
    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1, 2], [3, 4]) == 0.0
    assert auc([1, 2, 3], [1, 2, 3]) == 0.5
    assert auc([1, 2], [2, 3]) == 0.125  # one tie out of four pairs
    rng = random.Random(0)
    pos = [rng.randint(0, 5) for _ in range(17)]
    neg = [rng.randint(0, 5) for _ in range(11)]
    assert auc(pos, neg) == pytest.approx(_brute(pos, neg))
    with pytest.raises(ValueError):
        auc([], [1])


def test_mia_auc_direction():
    assert mia_auc([0.1, 0.2, 0.3], [1.0, 2.0]) == 1.0  # members have lower loss -> perfectly separable
    assert mia_auc([0.5, 0.7], [0.5, 0.7]) == 0.5  # identical losses -> chance


def test_counterfactual_prefers_other_forget_people():
    members = [rec("a1", answer="Oslo", person="A", fact="birthplace"), rec("b1", answer="Lyon", person="B", fact="birthplace"),
               rec("a2", answer="baker", person="A", fact="occupation")]
    pool = [rec("c1", answer="Rome", person="C", fact="birthplace", split="retain"),
            rec("c2", answer="chef", person="C", fact="occupation", split="retain")]
    out = counterfactual_answers(members, pool, seed=0)
    assert out[0] == "Lyon" and out[1] == "Oslo"  # the other forgotten person's value of the same fact
    assert out[2] == "chef"  # no other forget value for occupation -> a retained person's value
    assert counterfactual_answers([rec("x", answer="Oslo", person="A", fact="f")], []) == [None]


def test_membership_inference_on_tiny_model(tiny_llama):
    members = [rec("a1", question="Where was Aldric born?", answer="Oslo", person="A", fact="birthplace"),
               rec("b1", question="Where was Brenna born?", answer="Lyon", person="B", fact="birthplace")]
    out = membership_inference(tiny_llama, members, [], batch_size=2)
    assert out["mia_n"] == 2 and 0.0 <= out["mia_auc"] <= 1.0
    assert out["mia_member_loss"] > 0 and out["mia_nonmember_loss"] > 0


def test_min_k_and_zlib_scores():
    from asru.eval.privacy import min_k_score, zlib_score

    assert min_k_score([-0.1, -2.0, -0.3, -4.0, -0.2], k=0.4) == pytest.approx(3.0)  # the two least likely tokens
    assert min_k_score([-1.5], k=0.4) == pytest.approx(1.5)  # at least one token
    import zlib

    assert zlib_score([-1.0, -3.0], "Oslo") == pytest.approx(2.0 / len(zlib.compress(b"Oslo")))


def test_membership_inference_attacks_on_tiny_model(tiny_llama):
    members = [rec("a1", question="Where was Aldric born?", answer="Oslo", person="A", fact="birthplace"),
               rec("b1", question="Where was Brenna born?", answer="Lyon", person="B", fact="birthplace")]
    out = membership_inference(tiny_llama, members, [], batch_size=2)
    for key in ("mia_auc", "mia_min_k_auc", "mia_zlib_auc"):
        assert 0.0 <= out[key] <= 1.0, key
    assert out["mia_reference_auc"] is None
    # the model as its own reference: every loss difference is 0, so members and non-members tie
    same = membership_inference(tiny_llama, members, [], batch_size=2, reference=tiny_llama)
    assert same["mia_reference_auc"] == 0.5
