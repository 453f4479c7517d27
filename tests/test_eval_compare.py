"""scripts/compare_methods.py: override parsing, the markdown table and the scatter plot (no training)."""

from pathlib import Path

import pytest
from script_loader import load_script

cm = load_script("compare_methods")


def test_parse_overrides():
    from asru.config_yaml import parse_overrides
    from asru.core.errors import AsruError

    assert parse_overrides(["eval.limit=8", "baseline.steps=2", "method=npo"]) == {"eval": {"limit": "8"}, "baseline": {"steps": "2"}, "method": "npo"}
    with pytest.raises(AsruError, match="needs KEY=VALUE, got 'oops'"):
        parse_overrides(["oops"])
    with pytest.raises(SystemExit, match="--set: an override needs KEY=VALUE"):
        cm.main(["--set", "oops", "--no-oracle", "--docs", "/nonexistent-never-written"])


def test_table_and_plot(tmp_path):
    rows = [{"method": "vanilla (before)", "metrics": {"forget": {"leak_rate": 0.9, "fluency": -0.5}, "retain": {"answer_acc": 0.8}}, "minutes": None},
            {"method": "npo", "metrics": {"forget": {"leak_rate": 0.25, "refusal_rate": 0.5, "fluency": -2.0}, "retain": {"answer_acc": 0.7}, "real": {"answer_acc": 1.0}}, "minutes": 2.5}]
    table = cm.markdown_table(rows).splitlines()
    assert table[0].startswith("| method | forget leak ↓ | forget refusal ↑ |")
    assert table[2].startswith("| vanilla (before) | 0.90 | - |") and table[2].endswith("| - |")
    assert table[3].startswith("| npo | 0.25 | 0.50 |") and table[3].endswith("| 2.5 |")
    cm.scatter(rows, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 5000


def test_oracle_row_is_evaluated_like_a_method(tiny_llava_path, tmp_path):
    from asru.data.synthetic import generate_benchmark

    data = tmp_path / "bench"
    generate_benchmark(data, people=2, forget_ratio=0.5, seed=0, image_size=32)
    base = {"data": {"data_dir": str(data)}, "eval": {"max_new_tokens": 3, "batch_size": 8, "limit": 4, "progress": False,
                                                        "quality": False, "robustness": False, "splits": ["forget", "retain"],
                                                        "oracle": str(tiny_llava_path)}}
    m = cm.evaluate_oracle(base, str(tiny_llava_path), None, tmp_path / "oracle")
    # the oracle against itself: indistinguishable truth ratios, the same answers
    assert m["forget"]["forget_quality"] == pytest.approx(1.0) and m["forget"]["oracle_agreement"] == 1.0
    assert "answer_acc" in m["retain"] and (tmp_path / "oracle" / "eval.json").is_file()


def test_render_rebuilds_the_tables_from_the_raw_json(tmp_path):
    import json

    raw = {"vanilla": {"forget": {"leak_rate": 0.9}}, "oracle": {"forget": {"leak_rate": 0.0, "refusal_rate": 0.8}},
           "methods": {"npo": {"after": {"forget": {"leak_rate": 0.25}, "retain": {"answer_acc": 0.7}}, "minutes": 2.5}},
           "overrides": ["eval.relearn_steps=15"], "config": "configs/default.yaml", "generated": "2026-12-07 06:52"}
    f = tmp_path / "2026-12-07-compare-methods.json"
    f.write_text(json.dumps(raw))
    assert [r["method"] for r in cm.rows_from_raw(raw)] == ["vanilla (before)", cm.ORACLE_ROW, "npo"]
    assert cm.main(["--render", str(f)]) == 0
    text = (tmp_path / "2026-12-07-compare-methods.md").read_text()
    assert "on 2026-12-07 06:52" in text and "overrides: eval.relearn_steps=15" in text
    short = next(line for line in text.splitlines() if line.startswith("| method"))
    assert short.count("|") == len(cm.SUMMARY) + 3  # method, the summary columns, minutes
    assert "| oracle (never taught the forget people) | 0.00 | 0.80 |" in text and "| npo | 0.25 | - |" in text
    assert (tmp_path / "2026-12-07-compare-methods.png").is_file()
    # what people wrote under the tables survives a re-render; the tables are regenerated
    md = tmp_path / "2026-12-07-compare-methods.md"
    md.write_text(text.replace("| npo | 0.25 |", "| npo | 0.99 |") + "\n## Reading\n\n- npo leaks a quarter.\n")
    assert cm.main(["--render", str(f)]) == 0
    again = md.read_text()
    assert again.endswith("## Reading\n\n- npo leaks a quarter.\n") and again.count("## Reading") == 1
    assert "| npo | 0.25 | - |" in again and "0.99" not in again
    with pytest.raises(SystemExit, match="does not exist"):
        cm.main(["--render", str(tmp_path / "missing.json")])


def test_cost_counts_reused_stages_as_they_ran():
    # a resumed run: steering and GRPO reused (their recorded seconds), evaluation and export of this run
    assert cm.cost_minutes({"vanilla": 0.0, "steer": 600.0, "rl": 300.0, "eval": 240.0, "export": 6.0, "total": 250.0}) == pytest.approx(19.1)
    assert cm.cost_minutes({}) is None and cm.cost_minutes(None) is None


def test_the_results_name_a_shipped_config_relative_to_the_checkout(tmp_path):
    root = Path(cm.__file__).resolve().parents[1]
    assert cm.shown_path(str(root / "configs" / "default.yaml")) == "configs/default.yaml"
    assert cm.shown_path(str(tmp_path / "mine.yaml")) == str(tmp_path / "mine.yaml") and cm.shown_path(None) is None
