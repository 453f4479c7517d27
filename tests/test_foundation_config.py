"""Config building, YAML loading and run-directory rules."""

import json

import pytest

from asru.config import build_config, dump_yaml
from asru.config_yaml import load_yaml
from asru.core.errors import AsruError
from asru.core.rundir import atomic_write_json, prepare_run_dir


def test_defaults_and_overrides():
    cfg = build_config({"steer": {"layer": "5", "coeff": 2}, "rl": {"rewards": "forget=1,retain=0.5"}, "eval": {"splits": "forget,real"}})
    assert cfg.steer.layer == 5 and cfg.steer.coeff == 2.0
    assert cfg.rl.rewards == {"forget": 1.0, "retain": 0.5}
    assert cfg.eval.splits == ["forget", "real"]
    assert cfg.model.name == "demo"


def test_unknown_key_and_bad_values():
    with pytest.raises(AsruError, match=r"unknown config key\(s\) steer.layre"):
        build_config({"steer": {"layre": 3}})
    with pytest.raises(AsruError, match="unknown config key 'foo'"):
        build_config({"foo": 1})
    with pytest.raises(AsruError, match="steer.layer: cannot use 'x' as int"):
        build_config({"steer": {"layer": "x"}})
    with pytest.raises(AsruError, match="forget_ratio must be in"):
        build_config({"data": {"forget_ratio": 1.5}})
    with pytest.raises(AsruError, match="multiple of rl.num_generations"):
        build_config({"rl": {"batch_size": 6, "num_generations": 4}})
    with pytest.raises(AsruError, match="unknown method"):
        build_config({"method": "magic"})


def test_yaml_roundtrip_and_malformed(tmp_path):
    cfg = build_config({"steer": {"layer": 7}})
    f = tmp_path / "c.yaml"
    f.write_text(dump_yaml(cfg))
    again = build_config(load_yaml(f))
    assert again == cfg
    bad = tmp_path / "bad.yaml"
    bad.write_text("steer:\n  layer: [1\n")
    with pytest.raises(AsruError, match="bad.yaml:.* is not valid YAML"):
        load_yaml(bad)
    with pytest.raises(AsruError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")


def test_shipped_configs_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.glob("*.yaml")) + sorted((root / "qwen3-vl").glob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        build_config(load_yaml(f))


def test_run_dir_rules(tmp_path):
    run = prepare_run_dir(tmp_path / "r")
    atomic_write_json(run / "a.json", {"x": 1})
    assert json.loads((run / "a.json").read_text()) == {"x": 1}
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(AsruError, match="not empty: pass --overwrite"):
        prepare_run_dir(run)
    assert prepare_run_dir(run, overwrite=True) == run
    with pytest.raises(AsruError, match="holds no asru run"):  # a.json alone is no run to continue
        prepare_run_dir(run, resume=True)
    (run / "run.log").write_text("")
    assert prepare_run_dir(run, resume=True) == run
