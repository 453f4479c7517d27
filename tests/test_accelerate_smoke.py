"""Redirection and GRPO under `accelerate launch --cpu --num_processes 2` on a tiny Qwen3-VL (scripts/accelerate_smoke.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_redirection_and_grpo_under_accelerate_launch(tmp_path):
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no",
           str(ROOT / "scripts" / "accelerate_smoke.py"), "--work", str(tmp_path / "work"), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["num_processes"] == 2 and r["ok"] is True
    red = r["redirect"]
    assert red["prompts_per_process"] == 4 and red["steps"] == 4  # 2 forget + 2 retain batches of 2, 2 epochs... per process
    assert red["weights_equal_across_processes"] and red["max_diff_across_processes"] == 0.0 and red["weight_changed"]
    assert red["forget_mse_after"] < red["forget_mse_before"]
    grpo = r["grpo"]
    assert grpo["global_step"] == 2 and grpo["weights_equal_across_processes"] and grpo["weight_changed"]
