"""report.md and the console table from hand-made metrics."""

from asru.eval.report import format_table, render_report, write_report


def _split(leak, acc):
    vals = {"leak_rate": leak, "answer_acc": acc, "refusal_rate": 1 - leak, "fluency": -1.25}
    return {**vals, "by_modality": {"image": dict(vals), "text": {**vals, "leak_rate": 0.0}, "all": vals}}


def test_format_table_before_after():
    m = {"before": {"forget": _split(0.9, 0.9), "retain": _split(0.8, 0.8)}, "after": {"forget": _split(0.1, 0.1), "retain": _split(0.8, 0.75)}}
    t = format_table(m)
    lines = t.splitlines()
    assert lines[0].split()[:4] == ["split", "leak", "refuse", "acc"]
    assert lines[2].split()[:4] == ["forget", "0.900->0.100", "0.100->0.900", "0.900->0.100"]
    assert "0.800->0.750" in lines[3]


def test_format_table_single_eval():
    t = format_table({"forget": _split(0.5, 0.25)})
    assert t.splitlines()[2].split()[:4] == ["forget", "0.500", "0.500", "0.250"]


def test_write_report(tmp_path):
    m = {"method": "npo", "before": {"forget": _split(0.9, 0.9)}, "after": {"forget": {**_split(0.2, 0.3), "mia_auc": 0.55}},
         "stages": {"steer": {"forget": _split(0.5, 0.5)}, "rl": {"forget": _split(0.2, 0.3)}}}
    path = write_report(m, tmp_path / "report.md")
    text = path.read_text()
    assert "- method: `npo`" in text
    assert "| leak rate | 0.900 | 0.200 | -0.700 | 0.200 | 0.000 |" in text
    assert "| MIA AUC (0.5 best) | - | 0.550 | - | - | - |" in text
    assert "| forget leak | 0.900 | 0.500 | 0.200 |" in text
    assert text == render_report(m)
