"""Redirection and GRPO under `accelerate launch` with 2 CPU processes on a tiny Qwen3-VL (scripts/accelerate_smoke.py).

accelerate 1.x starts a single process for ``--cpu --num_processes 2`` unless MPI is configured, so the
torchrun launcher (``--multi_gpu``) starts the two processes; without a GPU they run on the CPU (gloo).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # 40 s on an idle 2-core machine, 85 s under load
def test_redirection_and_grpo_under_accelerate_launch(tmp_path):
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no",
           str(ROOT / "scripts" / "accelerate_smoke.py"), "--work", str(tmp_path / "work"), "--out", str(out),
           "--expect-processes", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false",
           "CUDA_VISIBLE_DEVICES": ""}  # CPU processes even on a GPU machine
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["num_processes"] == 2 and r["backend"] == "gloo" and r["ok"] is True
    red = r["redirect"]
    # each process: 4 forget + 4 retain prompts in batches of 2 -> 2 + 2 batches per epoch, 2 epochs
    assert red["prompts_per_process"] == 4 and red["steps"] == 8
    assert red["weights_equal_across_processes"] and red["max_diff_across_processes"] == 0.0 and red["weight_changed"]
    assert red["forget_mse_after"] < red["forget_mse_before"]
    grpo = r["grpo"]
    assert grpo["global_step"] == 2 and grpo["weights_equal_across_processes"] and grpo["weight_changed"]
