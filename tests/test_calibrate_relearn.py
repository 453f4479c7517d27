"""scripts/calibrate_relearn.py: model arguments and the rule that picks a usable attack budget."""

import pytest
from script_loader import load_script

cr = load_script("calibrate_relearn")


def _row(model, before, after, keep_before=0.9, keep_after=0.9):
    return {"model": model, "relearn_leak_before": before, "relearn_leak_rate": after,
            "relearn_keep_acc_before": keep_before, "relearn_keep_acc": keep_after}


def test_parse_models():
    assert cr.parse_models(["idk=/a/b", "/x/oracle"]) == {"idk": "/a/b", "oracle": "/x/oracle"}
    with pytest.raises(SystemExit):
        cr.parse_models(["idk="])


def test_usable_needs_a_recovering_suppressor_and_intact_answers():
    recovers = [_row("idk", 0.0, 0.45), _row("asru", 0.0, 0.05), _row("vanilla", 0.8, 0.8)]
    assert cr.usable(recovers, ["idk"], 0.30, 0.05)
    assert not cr.usable(recovers, ["asru"], 0.30, 0.05)  # the named suppressor does not recover
    wrecks = recovers + [_row("oracle", 0.0, 0.1, keep_before=0.9, keep_after=0.6)]
    assert not cr.usable(wrecks, ["idk"], 0.30, 0.05)  # one model's other answers broke
    too_weak = [_row("idk", 0.0, 0.2)]
    assert not cr.usable(too_weak, ["idk"], 0.30, 0.05)


def test_a_budget_of_zero_is_refused():
    with pytest.raises(SystemExit, match="budget of 0"):
        cr.main(["--model", "x=/nowhere", "--steps", "0"])


def test_a_retain_mix_outside_0_1_is_refused():
    with pytest.raises(SystemExit, match="retain-mixes"):
        cr.main(["--model", "x=/nowhere", "--retain-mixes", "1"])
