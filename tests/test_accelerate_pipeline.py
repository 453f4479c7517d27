"""`asru-train` under `accelerate launch` with 2 CPU processes on a tiny LLaVA: the main process alone writes
the run directory (data cache, stage records, evaluation, metrics, export), once and completely; the RL
stage trains on both processes.

As in test_accelerate_smoke.py, the torchrun launcher (``--multi_gpu``) starts the two processes; without a
GPU they run on the CPU (gloo).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ["--data.people", "4", "--data.forget_ratio", "0.25", "--data.image_size", "32"]


def _launch(tmp_path, *args) -> subprocess.CompletedProcess:
    """``accelerate launch`` two processes of ``asru-train ARGS`` (model cache in ``tmp_path``)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(Path(sys.executable).parent / "asru-train"), *args]
    env = {**os.environ, "ASRU_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}  # CPU processes even on a GPU machine
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]  # torchrun fails when either process does
    return proc


def _no_leftovers(run: Path) -> set[str]:
    """The run directory's paths, after checking that no temp or hidden file is left in it."""
    names = {p.relative_to(run).as_posix() for p in run.rglob("*")}
    assert not [n for n in names if n.endswith(".tmp") or Path(n).name.startswith(".")]
    return names


def test_baseline_eval_export_write_the_run_dir_once(tmp_path, tiny_llava_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "stale.txt").write_text("from an older run\n")  # --overwrite: the main process clears it
    proc = _launch(tmp_path, "--model", str(tiny_llava_path), "--output-dir", str(run), "--overwrite", "--method", "ga",
                   *DATA, "--data.seed", "1", "--baseline.steps", "2", "--baseline.batch_size", "2", "--eval.limit", "2",
                   "--eval.max_new_tokens", "4", "--eval.mia", "false", "--eval.robustness", "false", "--eval.quality", "false",
                   "--eval.progress", "false", "--export.verify_prompts", "1")

    # one summary on the console, one writer of run.log, the stage run once
    assert proc.stdout.count("run finished in") == 1
    log = (run / "run.log").read_text()
    assert log.count("2 processes: the main process writes the run directory") == 1
    assert log.count(f"run directory {run}") == 1
    assert log.count("stage ga: starting") == 1 and log.count("stage ga: done") == 1
    assert log.count("generating the built-in synthetic benchmark") == 1

    # complete, with nothing stale left behind
    names = _no_leftovers(run)
    assert "stale.txt" not in names
    assert {"config.yaml", "run.log", "metrics.json", "report.md", "ga/stage.json", "ga/model/config.json",
            "eval/before/eval.json", "eval/ga/eval.json", "export/config.json", "export/asru_export.json"} <= names
    assert (run / "config.yaml").read_text().count("method: ga") == 1
    stage = json.loads((run / "ga" / "stage.json").read_text())
    assert stage["stage"] == "ga" and len(stage["fingerprint"]) == 16 and stage["model"] == str(run / "ga" / "model")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "ga" and metrics["final_model"] == stage["model"] and metrics["export"] == str(run / "export")
    assert set(metrics["before"]) >= {"forget", "retain"} and metrics["stages"]["ga"] == metrics["after"]
    assert 0.0 <= metrics["after"]["forget"]["leak_rate"] <= 1.0
    assert json.loads((run / "export" / "asru_export.json").read_text())["stage"] == "ga"
    # the data cache was filled once, by the main process
    assert [p.name for p in (tmp_path / "cache" / "benchmarks").iterdir()] == ["synthetic-p4-f0.25-s1-i32"]


def test_rl_stage_trains_on_both_processes_and_saves_once(tmp_path, tiny_llava_path):
    run = tmp_path / "run"
    # text and image prompts fall on different processes here (seed 0), which deadlocked TRL's image logging
    proc = _launch(tmp_path, "--model", str(tiny_llava_path), "--output-dir", str(run), "--stages", "data,rl",
                   "--steer.mode", "redirect", *DATA, "--rl.max_steps", "1", "--rl.num_generations", "2",
                   "--rl.batch_size", "2", "--rl.max_completion_length", "4", "--rl.forget_size", "2", "--rl.retain_size", "2",
                   "--rl.use_vllm", "false", "--rl.beta", "0", "--rl.save_steps", "1000")
    assert proc.stdout.count("run finished in") == 1
    log = (run / "run.log").read_text()
    assert log.count("rl step 1/1") == 1 and log.count("stage rl: done") == 1

    names = _no_leftovers(run)
    # both processes trained (one RNG state each in the checkpoint); the main process saved the merged model
    ckpt = "rl/checkpoints/checkpoint-1"
    assert {f"{ckpt}/rng_state_0.pth", f"{ckpt}/rng_state_1.pth", f"{ckpt}/adapter_model.safetensors",
            "rl/checkpoints/rl_inputs.json", "rl/model/model.safetensors", "rl/rl_summary.json", "rl/stage.json"} <= names
    summary = json.loads((run / "rl" / "rl_summary.json").read_text())
    assert summary["global_step"] == 1 and summary["boundary"]["size"] == 4
    stage = json.loads((run / "rl" / "stage.json").read_text())
    assert stage["stage"] == "rl" and stage["model"] == str(run / "rl" / "model")
    assert json.loads((run / "metrics.json").read_text())["final_model"] == stage["model"]
