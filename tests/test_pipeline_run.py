"""The stage graph end to end on a tiny model: data -> baseline -> eval -> export, then --resume reuse."""

import json

import pytest

from asru import cli


@pytest.fixture()
def tiny_bench(tmp_path):
    from asru.data.synthetic import generate_benchmark

    out = tmp_path / "bench"
    generate_benchmark(out, people=4, forget_ratio=0.25, seed=1, image_size=32)
    return out


def _argv(model, data, run, *extra):
    return ["--model", str(model), "--data", str(data), "--output-dir", str(run), "--method", "ga",
            "--baseline.steps", "2", "--baseline.batch_size", "2", "--eval.limit", "4", "--eval.max_new_tokens", "4",
            "--eval.mia", "false", "--eval.robustness", "false", "--eval.quality", "false", "--eval.progress", "false",
            "--export.verify_prompts", "1", *extra]


def test_pipeline_baseline_eval_export_and_resume(tmp_path, tiny_llava_path, tiny_bench, monkeypatch, capsys):
    monkeypatch.setenv("ASRU_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert cli.train_main(_argv(tiny_llava_path, tiny_bench, run)) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "ga"
    for key in ("before", "after"):
        assert set(metrics[key]) >= {"forget", "retain", "test", "real"}
        for split in ("forget", "retain"):
            assert {"leak_rate", "refusal_rate", "rougeL", "cloze_acc", "classification_acc"} <= set(metrics[key][split])
            assert 0.0 <= metrics[key][split]["leak_rate"] <= 1.0
    stage = json.loads((run / "ga" / "stage.json").read_text())
    assert stage["model"].endswith("model") and (run / "export" / "config.json").is_file()
    assert (run / "export" / "README.md").is_file() and (run / "report.md").is_file()
    assert (run / "config.yaml").read_text().count("method: ga") == 1
    # a non-empty run dir is refused, and --resume reuses the finished stage (same fingerprint)
    assert cli.train_main(_argv(tiny_llava_path, tiny_bench, run)) == 2
    assert "not empty" in capsys.readouterr().err
    assert cli.train_main(_argv(tiny_llava_path, tiny_bench, run, "--resume")) == 0
    assert json.loads((run / "ga" / "stage.json").read_text())["fingerprint"] == stage["fingerprint"]
    assert "inputs unchanged, reusing" in (run / "run.log").read_text()
    # another run on the same inputs reuses the cached evaluations, answers and plots included
    run2 = tmp_path / "run2"
    assert cli.train_main(_argv(tiny_llava_path, tiny_bench, run2)) == 0
    assert "reusing cached evaluation" in (run2 / "run.log").read_text()
    for name in ("before", "ga"):
        first = (run / "eval" / name / "answers.jsonl").read_text()
        assert first and (run2 / "eval" / name / "answers.jsonl").read_text() == first
        assert json.loads((run2 / "eval" / name / "eval.json").read_text())["metrics"] == json.loads((run / "eval" / name / "eval.json").read_text())["metrics"]


def test_weights_digest_follows_the_weights(tmp_path, tiny_llama_path):
    """The evaluation cache key's weight digest: same bytes, same digest; one changed tensor, another."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from asru.pipeline import weights_digest

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_llama_path, a)
    shutil.copytree(tiny_llama_path, b)
    assert weights_digest(str(a)) == weights_digest(str(b)) != ""
    f = next(b.glob("*.safetensors"))
    tensors = load_file(f)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + torch.ones_like(tensors[name])
    save_file(tensors, f, metadata={"format": "pt"})
    assert weights_digest(str(a)) != weights_digest(str(b))
    assert weights_digest("some-org/some-model") == "" and weights_digest(str(tmp_path)) == ""


def test_eval_cache_key_follows_the_scoring_code(tmp_path, monkeypatch):
    """Editing a metric's source changes the evaluation cache key (stale scores are not reused)."""
    import shutil

    import asru.pipeline as pl
    import rewards

    src = tmp_path / "src"
    shutil.copytree(pl.Path(pl.__file__).parent, src / "asru")
    shutil.copytree(pl.Path(rewards.__file__).parent, src / "rewards")
    monkeypatch.setattr(pl, "__file__", str(src / "asru" / "pipeline.py"))
    monkeypatch.setattr(rewards, "__file__", str(src / "rewards" / "__init__.py"))
    first = pl.eval_code_fingerprint()
    assert pl.eval_code_fingerprint() == first
    text = src / "rewards" / "text.py"
    text.write_text(text.read_text() + "\n# a change\n")
    assert pl.eval_code_fingerprint() != first
