#!/usr/bin/env python
"""The redirection and GRPO under ``accelerate launch`` (several processes), on a tiny random Qwen3-VL.

    accelerate launch --multi_gpu --num_processes 2 scripts/accelerate_smoke.py --work DIR --out result.json

On a machine without GPUs this starts two CPU processes (torchrun launcher, gloo backend): in accelerate
1.x, ``accelerate launch --cpu --num_processes 2`` starts a single process unless MPI is set up
(``--mpirun_hostfile``), so the torchrun launcher is used and the processes run on the CPU.

* redirection (:func:`steering.redirect.redirect`): each process trains on its shard of the forget and
  retain prompts; the trained weight's gradient is averaged over the processes (an all-reduce hook), so
  every process ends with the same weights, as data-parallel training should;
* GRPO (:func:`asru.stages.rl.stage.run_rl_stage`, TRL's GRPOTrainer under DDP, LoRA): two steps whose batch is split
  over the processes; the merged weights must be identical on every process and differ from the start.

Process 0 writes the JSON with the checks (``ok`` true when all pass); exit status 1 when one fails. The
same launch with a GPU config (configs/accelerate/*.yaml) runs it on GPUs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def varied_length_reward(prompts, completions, **kwargs) -> list[float]:
    """A reward that differs between completions (their length), so GRPO advantages are non-zero."""
    out = []
    for c in completions:
        if isinstance(c, list):  # conversational: [{"role": "assistant", "content": str | parts}]
            content = c[0].get("content", "") if c else ""
            c = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append(float(len(c) % 11) / 10.0)
    return out


def _all_equal(tensor) -> tuple[bool, float]:
    """Whether ``tensor`` is identical on every process, and the largest difference to process 0's."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return True, 0.0
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, tensor.detach().float().cpu())
    diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
    return diff == 0.0, diff


def run_redirect(base: Path, rank: int, world: int, layer: int = 1) -> dict:
    """Data-parallel redirection: shard the prompts, average the gradient of the one trained weight."""
    import torch
    import torch.distributed as dist

    from asru.core.models import load_model
    from steering.redirect import down_proj, redirect

    lm = load_model(str(base), device="cpu", dtype="float32")
    torch.manual_seed(0)
    v = torch.randn(lm.model.config.text_config.hidden_size) * 2
    forget = [f"Where was person number {i} born?" for i in range(8)]
    retain = [f"What is {i} plus {i}?" for i in range(8)]
    weight = down_proj(lm.model, layer).weight
    start = weight.detach().clone()

    def average(grad):
        if world > 1:
            grad = grad.clone()
            dist.all_reduce(grad)
            grad /= world
        return grad

    handle = weight.register_hook(average)
    try:
        log = redirect(lm, layer, v, forget[rank::world], retain[rank::world], batch_size=2, epochs=2, lr=1e-2)
    finally:
        handle.remove()
    same, diff = _all_equal(weight)
    return {"steps": len(log.steps), "prompts_per_process": len(forget[rank::world]),
            "forget_mse_before": log.before["forget_mse_to_target"], "forget_mse_after": log.after["forget_mse_to_target"],
            "weights_equal_across_processes": same, "max_diff_across_processes": diff,
            "weight_changed": bool((weight.detach() - start).abs().max() > 0), "seconds": round(log.seconds, 2)}


def _effective_weight(model, suffix: str):
    """The LoRA-merged weight of the module whose name ends with ``suffix`` (float32 copy)."""
    for name, module in model.named_modules():
        if name.endswith(suffix) and hasattr(module, "base_layer"):
            w = module.base_layer.weight.detach().float().clone()
            if not module.merged:
                for adapter in module.active_adapters:
                    w = w + module.get_delta_weight(adapter).detach().float()
            return w
    raise KeyError(suffix)


def run_grpo(base: Path, work: Path, rank: int) -> dict:
    """Two GRPO steps through the RL stage under DDP (each process writes its own output folder).

    The trained (LoRA-merged) weight is read from each process's trainer at the end of training, since in
    a distributed run only the main process writes weights in ``save_pretrained``.
    """
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    import asru.stages.rl.stage as rl_stage
    from asru.config import build_config
    from asru.data.schema import Record
    from asru.stages.rl.stage import run_rl_stage

    suffix = "language_model.layers.1.self_attn.o_proj"
    seen = {}

    class Probe(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kw):
            seen["trained"] = _effective_weight(model, suffix)
            seen["step"] = state.global_step

    real = rl_stage.make_trainer  # the name the RL stage calls

    def make(**kw):
        kw["callbacks"] = list(kw.get("callbacks") or []) + [Probe()]
        return real(**kw)

    def rec(i, split, q, a):
        return Record(id=f"{split}{i}", split=split, task="generation", modality="text", question=q, answer=a,
                      person=f"{split}-p{i % 2}", fact="birthplace")

    data = {"forget": [rec(i, "forget", f"Where was Zorbina number {i} born?", "Veltmoor") for i in range(4)],
            "retain": [rec(i, "retain", f"Where was Belvane number {i} born?", "Ostrava") for i in range(4)]}
    cfg = build_config({
        "model": {"device": "cpu", "dtype": "float32"},
        "steer": {"mode": "redirect"},
        "rl": {"forget_size": 4, "retain_size": 4, "num_generations": 2, "batch_size": 2, "max_completion_length": 6,
               "max_steps": 2, "lora": True, "lora_r": 4, "lr": 1e-2, "beta": 0.0, "temperature": 1.0, "use_vllm": "false",
               "rewards": {f"{Path(__file__).resolve()}:varied_length_reward": 1.0}, "save_steps": 1000, "logging_steps": 1},
    })
    t = time.time()
    shutil.rmtree(work / f"rl-process{rank}", ignore_errors=True)  # a fresh run, never a resume
    rl_stage.make_trainer = make
    try:
        run_rl_stage(cfg, str(base), data, work / f"rl-process{rank}", reference_path=None)
    finally:
        rl_stage.make_trainer = real
    start = load_file(str(base / "model.safetensors"))[f"model.{suffix}.weight"]
    same, diff = _all_equal(seen["trained"])
    return {"global_step": seen["step"], "weights_equal_across_processes": same, "max_diff_across_processes": diff,
            "weight_changed": bool((seen["trained"] - start).abs().max() > 0), "seconds": round(time.time() - t, 1)}


def main(argv=None) -> int:
    """Run the parts on every process; process 0 writes the results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True, help="Working folder shared by the processes.")
    p.add_argument("--out", required=True, help="Result JSON (written by process 0).")
    p.add_argument("--parts", default="redirect,grpo", help="Comma-separated: redirect, grpo.")
    p.add_argument("--expect-processes", type=int, default=2, help="Fail unless this many processes took part.")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch
    from accelerate import PartialState

    from asru.testing.tiny import tiny_qwen3_vl

    state = PartialState(cpu=not torch.cuda.is_available())
    rank, world = state.process_index, state.num_processes
    work = Path(args.work)
    base = work / "base"
    if state.is_main_process and not (base / "model.safetensors").is_file():
        tiny_qwen3_vl(base)
    state.wait_for_everyone()
    result: dict = {"num_processes": world, "backend": str(state.backend), "device": str(state.device)}
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if "redirect" in parts:
        result["redirect"] = run_redirect(base, rank, world)
    state.wait_for_everyone()
    if "grpo" in parts:
        result["grpo"] = run_grpo(base, work, rank)
    state.wait_for_everyone()
    checks = []
    if "redirect" in result:
        r = result["redirect"]
        checks += [r["weights_equal_across_processes"], r["weight_changed"], r["forget_mse_after"] < r["forget_mse_before"]]
    if "grpo" in result:
        g = result["grpo"]
        checks += [g["weights_equal_across_processes"], g["weight_changed"], g["global_step"] == 2]
    result["ok"] = all(checks) and world == args.expect_processes
    if state.is_main_process:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
