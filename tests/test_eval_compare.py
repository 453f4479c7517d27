"""scripts/compare_methods.py: override parsing, the markdown table and the scatter plot (no training)."""

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("compare_methods", Path(__file__).resolve().parents[1] / "scripts" / "compare_methods.py")
cm = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cm)


def test_parse_sets():
    assert cm.parse_sets(["eval.limit=8", "baseline.steps=2", "method=npo"]) == {"eval": {"limit": "8"}, "baseline": {"steps": "2"}, "method": "npo"}
    with pytest.raises(SystemExit):
        cm.parse_sets(["oops"])


def test_table_and_plot(tmp_path):
    rows = [{"method": "vanilla (before)", "metrics": {"forget": {"leak_rate": 0.9, "fluency": -0.5}, "retain": {"answer_acc": 0.8}}, "minutes": None},
            {"method": "npo", "metrics": {"forget": {"leak_rate": 0.25, "refusal_rate": 0.5, "fluency": -2.0}, "retain": {"answer_acc": 0.7}, "real": {"answer_acc": 1.0}}, "minutes": 2.5}]
    table = cm.markdown_table(rows).splitlines()
    assert table[0].startswith("| method | forget leak ↓ | forget refusal ↑ |")
    assert table[2].startswith("| vanilla (before) | 0.90 | - |") and table[2].endswith("| - |")
    assert table[3].startswith("| npo | 0.25 | 0.50 |") and table[3].endswith("| 2.5 |")
    cm.scatter(rows, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 5000
