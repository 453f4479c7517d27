"""scripts/fault_resume.py: what it compares, what counts as reuse, and its kill plumbing (no pipeline run)."""

import subprocess
import sys

import pytest
from script_loader import load_script


@pytest.fixture(scope="module")
def fr():
    return load_script("fault_resume")


def test_metrics_compare_without_timings_and_paths(fr):
    ref = {"method": "asru", "vanilla": "/a/cache/demo-vlm", "final_model": "/a/run/rl/model", "timings_s": {"rl": 10.0},
           "after": {"forget": {"leak_rate": 0.25, "seconds": 3.0}}, "export": "/a/run/export", "note": "/a/run/x"}
    got = {"method": "asru", "vanilla": "/b/cache/demo-vlm", "final_model": "/b/run/rl/model", "timings_s": {"rl": 99.0},
           "after": {"forget": {"leak_rate": 0.25, "seconds": 9.0}}, "export": "/b/run/export", "note": "/b/run/x"}
    a, b = fr.comparable(ref, ("/a/run",)), fr.comparable(got, ("/b/run",))
    assert fr.differences(a, b) == []
    got["after"]["forget"]["leak_rate"] = 0.5
    assert fr.differences(a, fr.comparable(got, ("/b/run",))) == ["after.forget.leak_rate: 0.25 != 0.5"]
    assert fr.differences({"x": 1.0}, {"x": 1.0 + 1e-9}, rtol=1e-6) == []
    assert fr.differences({"x": 1}, {"y": 1}) == ["x: only in the reference", "y: only in the resumed run"]


def test_reuse_is_checked_on_records_and_log(fr):
    before = {"steer": b'{"fingerprint": "a"}'}
    good_log = "stage steer: inputs unchanged, reusing /r/steer/model\nstage rl: starting\n"
    assert fr.reuse_problems(before, {"steer": b'{"fingerprint": "a"}', "rl": b"{}"}, good_log, "t") == []
    bad = fr.reuse_problems(before, {"steer": b'{"fingerprint": "b"}'}, "stage steer: starting\n", "t")
    assert bad == ["t: stage steer had finished before the kill but its stage.json changed (recomputed)",
                   "t: the resume did not log reusing stage steer", "t: the resume started stage steer again"]


def test_kill_takes_the_whole_process_group_and_a_missed_window_is_reported(fr, tmp_path):
    parent_and_grandchild = ("import subprocess, sys, time; "
                             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", parent_and_grandchild], start_new_session=True)
    flag = tmp_path / "ready"
    flag.write_text("")
    fr.wait_and_kill(child, flag.exists, lambda: False, "a test window")
    assert child.returncode == -9
    done = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    with pytest.raises(fr.Missed, match="got past the stage"):
        fr.wait_and_kill(done, lambda: False, lambda: False, "the stage")


def test_private_cache_links_everything_but_the_eval_cache(fr, tmp_path):
    src = tmp_path / "shared"
    for name in ("demo-vlm", "benchmarks", "eval-cache"):
        (src / name).mkdir(parents=True)
    dst = fr.private_cache(tmp_path / "mine", src)
    assert sorted(p.name for p in dst.iterdir()) == ["benchmarks", "demo-vlm"]
    assert (dst / "demo-vlm").resolve() == (src / "demo-vlm").resolve()
