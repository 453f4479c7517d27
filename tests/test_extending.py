"""docs/extending.md's examples, run: a method, a metric, a benchmark format and a model alias, each one
plugin file with one registration, used through the public entry points without editing the core."""

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from eval_fixtures import text_qa

from asru.cli import preset_for, train_main
from asru.config import EvalConfig, RunConfig, build_config
from asru.core import plugins
from asru.core.aliases import MODEL_ALIASES, resolve_model_name
from asru.core.errors import AsruError
from asru.core.models import load_model
from asru.data.formats import FORMATS
from asru.data.loaders import detect_format, load_benchmark
from asru.eval.registry import METRICS
from asru.eval.runner import evaluate
from asru.stages.baselines import BASELINES, encode_batch, nll, qa_pairs, run_baseline
from asru.stages.methods import check_method, method_names

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def doc_files() -> dict[str, str]:
    """The doc's example files: each ```python block preceded by ``<!-- file: NAME -->``."""
    return dict(re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL))


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    """Write a doc example to a file and load it as a plugin; the registries are restored afterwards."""
    for registry in (BASELINES, METRICS, FORMATS, MODEL_ALIASES):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    loaded = set(sys.modules)

    def load(name: str) -> Path:
        path = tmp_path / name
        path.write_text(doc_files()[name])
        plugins.load_plugin(str(path))
        return path

    yield load
    for mod in set(sys.modules) - loaded:
        if mod.startswith(plugins.MODULE_PREFIX):
            del sys.modules[mod]


def test_the_doc_has_one_example_per_registry():
    assert set(doc_files()) == {"fading_ga.py", "answer_words.py", "csv_format.py", "my_model.py"}


def test_a_method_from_one_file(plugin, tiny_llama_path, tmp_path):
    with pytest.raises(AsruError, match="unknown method 'fading_ga'"):
        check_method("fading_ga")
    path = plugin("fading_ga.py")
    assert "fading_ga" in method_names() and "fading_ga" in BASELINES.choices()
    cfg = build_config({"method": "fading_ga", "plugins": [str(path)],
                        "baseline": {"steps": 3, "batch_size": 4, "lr": 1e-2, "lora_r": 2, "retain_weight": 0.0}})
    forget = text_qa()
    lm = load_model(str(tiny_llama_path))
    enc, labels = encode_batch(lm, qa_pairs(forget))
    with torch.no_grad():
        before = float(nll(lm.model, enc, labels))
    out = run_baseline(cfg, str(tiny_llama_path), {"forget": forget, "retain": text_qa("retain", "Brenna Coldridge")},
                       tmp_path / "fading_ga")
    trained = load_model(str(out))
    with torch.no_grad():
        after = float(nll(trained.model, enc, labels))
    assert after > before + 0.05  # gradient ascent raised the forget loss
    log = json.loads((tmp_path / "fading_ga" / "train_log.json").read_text())
    assert log["method"] == "fading_ga" and log["steps"] == 3


def test_a_metric_from_one_file(plugin, tiny_llama_path, tmp_path):
    plugin("answer_words.py")
    cfg = EvalConfig(splits=["forget", "retain"], max_new_tokens=6, batch_size=4, quality=False, mia=False,
                     robustness=False, diagnostics=False, relearn=False, progress=False)
    data = {"forget": text_qa(), "retain": text_qa("retain", "Brenna Coldridge")}
    results = evaluate(cfg, str(tiny_llama_path), data, tmp_path / "eval")
    rows = [json.loads(line) for line in (tmp_path / "eval" / "answers.jsonl").read_text().splitlines()]
    for split in ("forget", "retain"):
        words = [len(r["answer"].split()) for r in rows if r["split"] == split]
        assert results[split]["answer_words"] == pytest.approx(sum(words) / len(words))
    stored = json.loads((tmp_path / "eval" / "eval.json").read_text())["metrics"]
    assert stored["forget"]["answer_words"] == results["forget"]["answer_words"]


def test_a_benchmark_format_from_one_file(plugin, tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "forget.csv").write_text("question,answer,person\nWhat is Aldric Ashgrove's job?,baker,Aldric Ashgrove\n")
    (bench / "retain.csv").write_text("question,answer,person\nWhere does Brenna Coldridge live?,Oslo,Brenna Coldridge\n")
    with pytest.raises(AsruError, match="not a benchmark directory"):
        detect_format(bench)
    plugin("csv_format.py")
    assert detect_format(bench) == "csv"
    data = load_benchmark(bench, ["forget", "retain"])
    assert [(r.question, r.answer, r.person) for r in data["forget"]] == [("What is Aldric Ashgrove's job?", "baker", "Aldric Ashgrove")]
    assert data["retain"][0].answer == "Oslo" and data["retain"][0].split == "retain"
    with pytest.raises(AsruError, match=r"split 'test' not found \(no test.csv\)"):
        load_benchmark(bench, ["test"])


def test_a_model_alias_from_one_file(plugin, tmp_path, capsys):
    with pytest.raises(AsruError, match="unknown model 'qwen2.5-vl-7b'"):
        resolve_model_name("qwen2.5-vl-7b")
    path = plugin("my_model.py")
    assert resolve_model_name("qwen2.5-vl-7b") == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert preset_for("qwen2.5-vl-7b").endswith("configs/qwen3-vl/base.yaml")
    rc = train_main(["--plugins", str(path), "--model", "qwen2.5-vl-7b", "--dry-run", "--output-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert rc in (0, None) and "Qwen/Qwen2.5-VL-7B-Instruct" in out
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_a_plugin_that_is_not_there_is_a_one_line_error(tmp_path):
    with pytest.raises(AsruError, match="not found"):
        plugins.load_plugin(str(tmp_path / "missing.py"))
    with pytest.raises(AsruError, match="no module named 'no_such_module_xyz'"):
        plugins.load_plugin("no_such_module_xyz")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(AsruError, match="error while executing .*RuntimeError: boom"):
        plugins.load_plugin(str(broken))
    assert RunConfig().method == "asru"
