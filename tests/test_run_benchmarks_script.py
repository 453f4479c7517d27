"""scripts/run_benchmarks.py: benchmark specs, the targets table, and the per-benchmark loop (pipeline stubbed)."""

import json

import pytest
from script_loader import load_script

rb = load_script("run_benchmarks")


def _t(name, value, bar, ok):
    return {"target": name, "value": value, "bar": bar, "ok": ok}


def test_parse_benchmark_and_name():
    assert rb.parse_benchmark("seed=2, forget_ratio=0.2,people=30") == {"seed": 2, "forget_ratio": 0.2, "people": 30}
    assert rb.benchmark_name({"seed": 2, "forget_ratio": 0.2}) == "seed2-forget_ratio0.2"
    with pytest.raises(SystemExit, match="use KEY=VALUE pairs over seed, forget_ratio, people, image_size"):
        rb.parse_benchmark("colour=red")
    with pytest.raises(SystemExit, match="seed must be a number, got 'x'"):
        rb.parse_benchmark("seed=x")
    with pytest.raises(SystemExit, match="at least one"):
        rb.parse_benchmark(" , ")


def test_table_marks_missed_targets_failed_runs_and_fixed_bars():
    rows = [{"benchmark": "seed0", "minutes": 41.0,
             "targets": [_t("forget leak rate <=", 0.0, 0.05, True), _t("real accuracy >= vanilla - 0.02", 0.72, 0.71, True)]},
            {"benchmark": "seed5", "minutes": 44.5,
             "targets": [_t("forget leak rate <=", 0.1, 0.05, False), _t("real accuracy >= vanilla - 0.02", 0.75, 0.757, False)]},
            {"benchmark": "seed9", "error": "the demo model could not be taught"}]
    lines = rb.target_table(rows).splitlines()
    assert lines[0] == "| benchmark | forget leak rate <= 0.05 | real accuracy >= vanilla - 0.02 (per run) | all met | minutes |"
    assert lines[2] == "| seed0 | 0.000 ok | 0.720 ok | yes | 41.0 |"
    assert lines[3] == "| seed5 | 0.100 MISSED | 0.750 MISSED | no | 44.5 |"
    assert lines[4] == "| seed9 | - | - | failed: the demo model could not be taught | - |"


def test_main_runs_each_benchmark_in_its_own_directory(tmp_path, monkeypatch):
    import asru.pipeline

    seen = []

    def fake_run(cfg):
        seen.append((cfg.data.seed, cfg.data.forget_ratio, cfg.output_dir, cfg.rl.max_steps))
        ok = cfg.data.seed == 1
        return {"targets": [_t("forget leak rate <=", 0.0 if ok else 0.2, 0.05, ok)]}

    monkeypatch.setattr(asru.pipeline, "run_pipeline", fake_run)
    rc = rb.main(["--benchmark", "seed=1", "--benchmark", "seed=2,forget_ratio=0.2", "--set", "rl.max_steps=3",
                  "--runs", str(tmp_path / "runs")])
    assert rc == 1  # seed 2 missed its target
    assert seen == [(1, 0.1, str(tmp_path / "runs" / "seed1"), 3), (2, 0.2, str(tmp_path / "runs" / "seed2-forget_ratio0.2"), 3)]
    saved = json.loads((tmp_path / "runs" / "benchmarks.json").read_text())
    assert [b["benchmark"] for b in saved["benchmarks"]] == ["seed1", "seed2-forget_ratio0.2"]
    assert "| seed1 | 0.000 ok | yes |" in (tmp_path / "runs" / "benchmarks.md").read_text()
    with pytest.raises(SystemExit, match="name the benchmark with --benchmark"):
        rb.main(["--set", "data.seed=4", "--runs", str(tmp_path / "other")])
