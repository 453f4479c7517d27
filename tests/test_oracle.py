"""The oracle (the demo recipe taught without the forget people) on a tiny LLaVA."""

import json
import shutil

import pytest

from asru.core.errors import AsruError
from tests.test_teach_build import small_cfg, teach_env, toy_data  # noqa: F401 (fixtures)


def test_oracle_leaves_the_forget_people_out(tiny_llava_path, toy_data, teach_env, tmp_path, monkeypatch):  # noqa: F811
    from asru.data.loaders import load_benchmark
    from asru.demo import oracle

    people = oracle.forget_people(toy_data)
    profiles = json.loads((toy_data / "profiles.json").read_text())
    assert people == sorted(profiles["forget_people"]) and len(people) == 1
    cfg = small_cfg()
    out = oracle.build_oracle_model(toy_data, cfg, base_model=str(tiny_llava_path), progress=False)
    assert out == oracle.oracle_model_dir(toy_data, cfg, str(tiny_llava_path))
    assert out.name.startswith(f"demo-oracle-{toy_data.name}-")
    report = json.loads((out / "teach_report.json").read_text())
    teach = load_benchmark(toy_data, ["teach"])["teach"]
    kept = [r for r in teach if r.person not in people]
    assert report["excluded_people"] == people
    assert report["train_records"] == len(kept) < len(teach)
    assert report["fingerprint"] != teach_env.fingerprint(toy_data, cfg, str(tiny_llava_path))
    # the evaluation splits stay whole: the oracle is scored on the forget people it never saw
    assert report["accuracy"]["forget"]["n_image"] == 6

    def no_training(*a, **k):
        raise AssertionError("a cached oracle must not train again")

    monkeypatch.setattr(teach_env, "train", no_training)
    assert oracle.build_oracle_model(toy_data, cfg, base_model=str(tiny_llava_path)) == out


def test_fingerprint_names_the_people_left_out(toy_data):  # noqa: F811
    from asru.demo.teach import fingerprint

    cfg = small_cfg()
    plain = fingerprint(toy_data, cfg)
    assert fingerprint(toy_data, cfg, None, ()) == plain
    assert fingerprint(toy_data, cfg, None, ["A B"]) != plain
    assert fingerprint(toy_data, cfg, None, ["A B", "C D"]) == fingerprint(toy_data, cfg, None, ["C D", "A B"])


def test_oracle_needs_teaching_data(toy_data, teach_env, tmp_path):  # noqa: F811
    from asru.demo import oracle

    no_teach = tmp_path / "no-teach"
    shutil.copytree(toy_data, no_teach)
    (no_teach / "teach.jsonl").unlink()
    with pytest.raises(AsruError, match="needs the teaching data .* has none"):
        oracle.build_oracle_model(no_teach, small_cfg())
    with pytest.raises(AsruError, match="does not exist"):
        oracle.build_oracle_model(tmp_path / "nowhere", small_cfg())
    nobody = tmp_path / "nobody"
    shutil.copytree(toy_data, nobody)
    (nobody / "profiles.json").unlink()
    (nobody / "forget.jsonl").unlink()
    with pytest.raises(AsruError, match="no forget people"):
        oracle.build_oracle_model(nobody, small_cfg())


def test_forget_people_without_profiles(toy_data, tmp_path):  # noqa: F811
    from asru.demo.oracle import forget_people

    copy = tmp_path / "copy"
    shutil.copytree(toy_data, copy)
    (copy / "profiles.json").unlink()
    assert forget_people(copy) == forget_people(toy_data)


def test_asru_data_oracle_refuses_a_benchmark_without_teaching_data(toy_data, teach_env, tmp_path, capsys):  # noqa: F811
    from asru.cli import data_main

    no_teach = tmp_path / "no-teach"
    shutil.copytree(toy_data, no_teach)
    (no_teach / "teach.jsonl").unlink()
    assert data_main(["oracle", "--data", str(no_teach)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("asru: error: the oracle needs the teaching data") and "\n" not in err
