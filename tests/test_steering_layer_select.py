"""Greedy multi-layer selection: each round scores the candidates with the chosen layers' hooks on."""

import pytest

import steering.layer_select as ls
from asru.core.errors import AsruError


def _fake_scores(table):
    """A score_layers stand-in: refusal by (fixed layers, candidate) from ``table``; records its calls."""
    calls = []

    def score(lm, directions, *, candidates, fixed, **kw):
        calls.append((tuple(fixed), tuple(candidates)))
        return [{"layer": c, "refusal": table[(tuple(fixed), c)], "kl": 0.0, "score": table[(tuple(fixed), c)],
                 "norm": 1.0, "example": "", **({"with": list(fixed)} if fixed else {})} for c in candidates]
    return score, calls


def test_greedy_selection_scores_pairs(monkeypatch):
    # alone, 11 and 15 score best; with 11 on, 17 (not 15) steers best
    table = {((), 11): 0.4, ((), 15): 0.38, ((), 17): 0.37, ((11,), 15): 0.41, ((11,), 17): 0.8}
    score, calls = _fake_scores(table)
    monkeypatch.setattr(ls, "score_layers", score)
    layers, rows = ls.select_layers(None, {}, 2, [11, 15, 17])
    assert layers == [11, 17]
    assert calls == [((), (11, 15, 17)), ((11,), (15, 17))]
    assert [(r["layer"], r.get("with")) for r in rows] == [(11, None), (15, None), (17, None), (15, [11]), (17, [11])]
    text = ls.format_table(rows, layers)
    marked = [line.split()[0] + ":" + line.split()[-2] for line in text.splitlines() if line.endswith("*")]
    assert marked == ["11:-", "17:11"]


def test_greedy_selection_stops_when_no_layer_helps(monkeypatch):
    table = {((), 11): 0.5, ((), 15): 0.2, ((11,), 15): 0.5}
    score, calls = _fake_scores(table)
    monkeypatch.setattr(ls, "score_layers", score)
    layers, _ = ls.select_layers(None, {}, 3, [11, 15])
    assert layers == [11] and len(calls) == 2
    with pytest.raises(AsruError, match="num_layers must be >= 1"):
        ls.select_layers(None, {}, 0, [11])


def test_save_scores_lists_all_chosen_layers(tmp_path):
    import json

    ls.save_scores(tmp_path / "s.json", [], [11, 17], "auto")
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["chosen"] == 11 and saved["chosen_layers"] == [11, 17]
