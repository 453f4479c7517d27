"""Explicit reasoning leakage (RIL) from <think> spans."""

from asru.eval.reasoning import explicit_ril, reasoning_metrics, ril


def test_explicit_ril_counts_only_reasoning():
    comps = ["<think>He was born in Oslo.</think> I don't know.", "<think>hmm</think> Oslo", "Oslo"]
    assert explicit_ril(comps, ["Oslo"] * 3) == 1 / 3
    assert explicit_ril([], []) is None


def test_ril_formula():
    assert ril(1, 2, 1) == 0.5
    assert ril(2, 4, 0) == 0.25
    assert ril(3, 4) == 0.75
    assert ril(0, 0) is None
    m = reasoning_metrics(["<think>Oslo</think>no", "fine"], ["Oslo", "Oslo"], n_implicit=2)
    assert m == {"think_rate": 0.5, "ril_explicit": 0.5, "ril": 0.75}
