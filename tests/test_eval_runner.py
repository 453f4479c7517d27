"""evaluate() end to end on a tiny VLM and a tiny synthetic benchmark, and its one-line errors."""

import json
import shutil

import pytest

from asru.config import EvalConfig
from asru.core.errors import AsruError
from asru.eval.metrics import METRIC_KEYS
from asru.eval.runner import evaluate


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from asru.data.loaders import load_benchmark
    from asru.data.synthetic import generate_benchmark

    d = tmp_path_factory.mktemp("bench")
    generate_benchmark(d, people=4, seed=0, overwrite=True)
    return load_benchmark(d)


def test_evaluate_tiny(tiny_llava_path, bench, tmp_path):
    cfg = EvalConfig(max_new_tokens=4, batch_size=8, limit=10, progress=False)
    m = evaluate(cfg, str(tiny_llava_path), bench, tmp_path / "eval")
    assert list(m) == ["forget", "retain", "test", "real"]
    for vals in m.values():
        for key in METRIC_KEYS:
            assert key in vals
            assert vals[key] is None or 0.0 <= vals[key] <= 1.0
        assert set(vals["by_modality"]) == {"image", "text", "all"}
        assert vals["by_modality"]["all"]["n"] == 10
    assert m["real"]["by_modality"]["image"]["n"] == 0
    for key in ("mia_auc", "paraphrase_leak_rate", "image_only_leak_rate", "fluency", "garbled_rate"):
        assert key in m["forget"]
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["metrics"] == json.loads(json.dumps(m)) and saved["records"] == 40
    rows = (tmp_path / "eval" / "answers.jsonl").read_text().splitlines()
    assert len(rows) == 40 and (tmp_path / "eval" / "eval.png").is_file()


def test_bad_inputs(tiny_llava_path, bench, tmp_path):
    cfg = EvalConfig(max_new_tokens=2, limit=2, progress=False)
    no_weights = tmp_path / "noweights"
    no_weights.mkdir()
    shutil.copy(tiny_llava_path / "config.json", no_weights / "config.json")
    with pytest.raises(AsruError, match="has no weights"):
        evaluate(cfg, str(no_weights), bench, tmp_path / "a")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AsruError, match="no config.json"):
        evaluate(cfg, str(empty), bench, tmp_path / "b")
    with pytest.raises(AsruError, match="has no 'real' split"):
        evaluate(cfg, str(tiny_llava_path), {k: v for k, v in bench.items() if k != "real"}, tmp_path / "c")
    with pytest.raises(AsruError, match="split 'test' is empty") as err:
        evaluate(cfg, str(tiny_llava_path), {**bench, "test": []}, tmp_path / "d")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "a").exists()  # nothing is written before the inputs are checked


def test_evaluate_with_reference_diagnostics_and_relearn(tiny_llava_path, bench, tmp_path):
    from asru.testing.tiny import tiny_llava

    other = tiny_llava(tmp_path / "other", seed=1)  # same processor, different weights
    cfg = EvalConfig(max_new_tokens=3, batch_size=8, limit=6, progress=False, diagnostics=True, diagnostics_samples=4,
                     relearn=True, relearn_steps=1, splits=["forget", "real"])
    m = evaluate(cfg, str(tiny_llava_path), bench, tmp_path / "eval", reference_path=str(other))
    f = m["forget"]
    assert 0.0 <= f["cka_mean"] <= 1.0 + 1e-9 and 0.0 <= f["pca_similarity_mean"] <= 1.0 + 1e-9
    for key in ("relearn_leak_before", "relearn_leak_rate", "relearn_control_leak_rate"):
        assert key in f
    diag = json.loads((tmp_path / "eval" / "diagnostics.json").read_text())
    assert len(diag["cka"]) == 4 and all(isinstance(x, float) for x in diag["cka"])
    assert (tmp_path / "eval" / "diagnostics" / "fisher.png").is_file()
    assert f["fluency"] is None or f["fluency"] < 0


def test_eval_dtype_loads_models_in_that_dtype(tiny_llava_path, bench, tmp_path, monkeypatch):
    """eval.dtype overrides model.dtype for the evaluated model and the reference; the run still scores."""
    import torch

    import asru.core.models
    from asru.config import ModelConfig

    seen = []
    real_load = asru.core.models.load_model

    def spy(path, **kw):
        lm = real_load(path, **kw)
        seen.append(next(lm.model.parameters()).dtype)
        return lm

    monkeypatch.setattr(asru.core.models, "load_model", spy)
    ref = tmp_path / "ref"
    shutil.copytree(tiny_llava_path, ref)
    cfg = EvalConfig(max_new_tokens=3, batch_size=8, limit=4, progress=False, dtype="bfloat16", fluency_groups=0)
    m = evaluate(cfg, str(tiny_llava_path), bench, tmp_path / "eval", reference_path=str(ref),
                 model_cfg=ModelConfig(dtype="float32"))
    assert seen == [torch.bfloat16, torch.bfloat16]
    assert 0.0 <= m["retain"]["answer_acc"] <= 1.0 and 0.0 <= m["forget"]["mia_auc"] <= 1.0
    with pytest.raises(AsruError, match="eval.dtype must be"):
        EvalConfig(dtype="int8")


def test_forgotten_people_rates_on_the_test_split(tmp_path):
    """The test split's questions about forgotten people are scored apart from the other people's."""
    from eval_fixtures import rec

    from asru.eval.builtin_metrics import forgotten_people
    from asru.eval.registry import EvalContext

    img_q = "Where was the person in this image born?"
    forget = [rec("f1", "generation", "image", img_q, "Izalto", split="forget", person="Liora Blackmere")]
    test = [rec("t1", "generation", "image", img_q, "Izalto", split="test", person="Liora Blackmere"),
            rec("t2", "generation", "image", img_q, "Izalto", split="test", person="Liora Blackmere"),
            rec("t3", "generation", "image", img_q, "Lyon", split="test", person="Helena Adler")]
    answers = ["I'm sorry, but I don't know where Liora was born.", "I don't know who this is.", "Helena Adler was born in Lyon."]
    ctx = EvalContext(cfg=None, lm=None, ref=None, data={"forget": forget, "test": test}, limited={"forget": forget, "test": test},
                      out_dir=tmp_path, split="test", free=test, answers=answers)
    out = forgotten_people(ctx)
    assert out["forgotten_n"] == 2 and out["forgotten_image_n"] == 2
    assert out["forgotten_identity_leak_rate"] == 0.5 and out["forgotten_leak_rate"] == 0.5
    assert out["forgotten_refusal_rate"] == 1.0
    ctx.split, ctx.free, ctx.answers = "forget", forget, answers[:1]
    assert forgotten_people(ctx) == {}


def test_evaluate_against_an_oracle(tiny_llava_path, bench, tmp_path):
    from asru.testing.tiny import tiny_llava

    oracle = tiny_llava(tmp_path / "oracle", seed=1)
    cfg = EvalConfig(max_new_tokens=3, batch_size=8, limit=6, progress=False, splits=["forget", "retain"], quality=False,
                     mia=False, robustness=False, oracle=str(oracle))
    m = evaluate(cfg, str(tiny_llava_path), bench, tmp_path / "eval")
    f = m["forget"]
    assert 0.0 <= f["forget_quality"] <= 1.0 and f["oracle_n"] > 0
    assert 0.0 <= f["oracle_agreement"] <= 1.0 and -1.0 <= f["oracle_refusal_gap"] <= 1.0
    assert "forget_quality" not in m["retain"]
    same = evaluate(EvalConfig(**{**cfg.__dict__, "oracle": str(tiny_llava_path)}), str(tiny_llava_path), bench, tmp_path / "self")
    assert same["forget"]["forget_quality"] == pytest.approx(1.0) and same["forget"]["oracle_agreement"] == 1.0


@pytest.mark.parametrize("bad", [{"relearn_steps": 0}, {"relearn_lr": 0.0}, {"relearn_retain_mix": 1.0}, {"relearn_retain_mix": -0.1}])
def test_relearn_budget_of_zero_or_a_bad_retain_mix_is_refused(bad):
    with pytest.raises(AsruError, match="relearn"):
        EvalConfig(**bad)


def test_the_relearning_attack_gets_the_teach_split_only_when_it_trains_on_it(tmp_path):
    from asru.data.loaders import load_benchmark
    from asru.data.synthetic import generate_benchmark
    from asru.pipeline import with_attack_data

    generate_benchmark(tmp_path, people=4, seed=0, overwrite=True)
    data = load_benchmark(tmp_path, ["forget", "retain"])
    scored = with_attack_data(EvalConfig(relearn=True), data, tmp_path)
    assert list(scored) == ["forget", "retain", "teach"] and scored["teach"]
    assert with_attack_data(EvalConfig(relearn=True, relearn_form="qa"), data, tmp_path) is data
    assert with_attack_data(EvalConfig(relearn=False), data, tmp_path) is data
    with pytest.raises(AsruError, match="relearn_form"):
        EvalConfig(relearn_form="sentences")


def test_a_teach_entry_trains_the_relearning_attack_and_is_never_scored(tiny_llava_path, tmp_path, monkeypatch):
    from asru.data.loaders import load_benchmark
    from asru.data.synthetic import generate_benchmark
    from asru.eval import builtin_metrics

    generate_benchmark(tmp_path / "b", people=4, seed=0, overwrite=True)
    data = load_benchmark(tmp_path / "b", ["forget", "retain", "real", "teach"])
    seen = {}
    monkeypatch.setattr(builtin_metrics, "relearn_attack", lambda *a, **kw: seen.update(kw) or {"relearn_leak_rate": 0.5})
    cfg = EvalConfig(max_new_tokens=2, batch_size=8, limit=4, progress=False, quality=False, robustness=False, mia=False,
                     relearn=True, splits=["forget"])
    m = evaluate(cfg, str(tiny_llava_path), data, tmp_path / "eval")
    assert list(m) == ["forget"] and m["forget"]["relearn_leak_rate"] == 0.5
    assert seen["teach"] == data["teach"]
