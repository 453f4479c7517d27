"""The RL stage: GRPO refinement of the refusal boundary with TRL's ``GRPOTrainer``.

    run_rl_stage(cfg, model_path, data, out_dir, reference_path) -> <out_dir>/model

1. refuse hook-based steering (rollouts must come from the weights, see :mod:`asru.stages.rl.trainer`);
2. load the model (``cfg.model`` dtype/device), build the boundary set (:mod:`asru.stages.rl.boundary`);
3. load the rewards of ``cfg.rl.rewards`` (name -> weight) through the rewards registry; a reward
   factory that takes a ``ref_model`` (``fluency``) gets the reference model at ``reference_path``;
   a weight-0 metric adds the forget refusal rate and leak rate to the per-step logs;
4. train (LoRA or full), checkpointing to ``<out_dir>/checkpoints`` every ``rl.save_steps``; a
   re-run with the same inputs resumes from the last checkpoint (a changed setup starts afresh);
5. merge LoRA and save a standard checkpoint with its processor to ``<out_dir>/model``; write
   ``<out_dir>/rl_summary.json`` (timings, per-step log history) next to it.

Under ``accelerate launch`` every process trains (TRL distributes the steps); the main process alone
clears stale checkpoints and writes the merged model and the summary, and the others wait for it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from asru.core import models
from asru.core.checkpoints import last_complete_checkpoint
from asru.core.errors import AsruError
from asru.core.lora import save_merged
from asru.core.models import pick_device, pick_dtype
from asru.core.rundir import atomic_write_json, is_main_process, main_process_first, process_state
from asru.stages.rl.boundary import build_boundary_set
from asru.stages.rl.trainer import (
    check_rollout_source,
    console_callback,
    grpo_args,
    lora_config,
    make_trainer,
    resolve_use_vllm,
    unlearning_stats,
)
from rewards import is_factory, load_rewards
from rewards.registry import resolve_reward

LOG = logging.getLogger("asru.rl")

# RL settings that only say how long / how to run, not what is trained: changing them keeps checkpoints.
_RUN_ONLY = {
    "max_steps", "epochs", "save_steps", "logging_steps", "save_total_limit", "report_to", "use_vllm",
    "vllm_mode", "vllm_gpu_memory_utilization", "cache_implementation", "gradient_checkpointing",
}


def _wants_ref_model(spec: str, value) -> bool:
    """True when reward ``spec`` is a factory accepting ``ref_model`` and not told to ignore it."""
    import inspect

    _, obj = resolve_reward(spec)
    if not is_factory(obj):
        return False
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    if "ref_model" not in params:
        return False
    return not (isinstance(value, dict) and value.get("use_ref_model") is False)


def rl_dtype(cfg) -> str:
    """The weight dtype of the GRPO stage's models: ``rl.dtype``, else ``model.dtype``."""
    return cfg.rl.dtype or cfg.model.dtype


def reward_context(cfg, reference_path: str | None, device: str) -> tuple[dict, object | None]:
    """The context offered to reward factories, loading the reference model only if a reward wants it."""
    if not reference_path or not any(_wants_ref_model(s, v) for s, v in cfg.rl.rewards.items()):
        return {}, None
    LOG.info("loading the reference model for the rewards: %s", reference_path)
    ref = models.load_model(reference_path, dtype=rl_dtype(cfg), device=device, trust_remote_code=cfg.model.trust_remote_code)
    ref.model.requires_grad_(False)
    return {"ref_model": ref.model, "tokenizer": ref.tokenizer, "processor": ref.processor}, ref


def load_reward_funcs(cfg, context: dict) -> tuple[list, list[float]]:
    """``(reward_funcs, reward_weights)`` of ``cfg.rl.rewards`` plus the weight-0 ``refusal_rate`` metric."""
    funcs, weights = load_rewards(cfg.rl.rewards, context=context)
    if all(w == 0 for w in weights):
        raise AsruError("rl.rewards: every weight is 0, so GRPO has nothing to optimise; give at least one reward a weight")
    names = [getattr(f, "__name__", "") for f in funcs]
    if "refusal_rate" in names:
        raise AsruError("rl.rewards: the name refusal_rate is reserved for the logged forget refusal rate; rename that reward")
    return funcs + [unlearning_stats], weights + [0.0]


def stage_inputs(cfg, model_path: str, reference_path: str | None, ids: list[str]) -> dict:
    """What the trained weights depend on (checkpoints from other inputs are not resumed)."""
    rl = {k: v for k, v in asdict(cfg.rl).items() if k not in _RUN_ONLY}
    return {"model": str(model_path), "reference": str(reference_path), "rl": rl, "boundary_ids": sorted(ids),
            "dtype": rl_dtype(cfg)}


def last_checkpoint(ckpt_dir: Path, inputs: dict, max_steps: int = -1) -> str | None:
    """The last trainer checkpoint written for the same inputs, else None (stale checkpoints are removed).

    A longer ``max_steps`` than before continues from the last checkpoint; a checkpoint already past
    ``max_steps`` (a shorter run asked for) cannot give the shorter run's weights: start afresh.
    """
    if not ckpt_dir.is_dir():
        return None
    marker = ckpt_dir / "rl_inputs.json"
    same = marker.is_file() and json.loads(marker.read_text()) == json.loads(json.dumps(inputs, default=str))
    last = last_complete_checkpoint(ckpt_dir) if same else None  # a partly written one (killed, disk full) is skipped
    step = int(Path(last).name.rsplit("-", 1)[1]) if last else 0
    if same and not (max_steps > 0 and step > max_steps):
        return last
    if any(ckpt_dir.glob("checkpoint-*")):
        why = "come from other inputs" if not same else f"reach step {step}, past rl.max_steps {max_steps}"
        LOG.warning("rl: checkpoints in %s %s; starting afresh", ckpt_dir, why)
    shutil.rmtree(ckpt_dir)
    return None


def run_rl_stage(cfg, model_path: str, data: dict, out_dir: Path, reference_path: str | None = None) -> Path:
    """GRPO on the boundary set; returns ``<out_dir>/model`` (LoRA merged). See the module docstring."""
    t0 = time.time()
    rl = cfg.rl
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_rollout_source(cfg, model_path=model_path)
    device = pick_device(cfg.model.device)
    use_vllm = resolve_use_vllm(rl.use_vllm, device)
    dtype = pick_dtype(rl_dtype(cfg), device)

    lm = models.load_model(model_path, dtype=rl_dtype(cfg), device=device, trust_remote_code=cfg.model.trust_remote_code,
                    attn_implementation=cfg.model.attn_implementation)
    check_rollout_source(cfg, lm.model)
    dataset = build_boundary_set(data, rl, lm)
    context, ref = reward_context(cfg, reference_path, device)
    funcs, weights = load_reward_funcs(cfg, context)

    ckpt_dir = out_dir / "checkpoints"
    inputs = stage_inputs(cfg, model_path, reference_path, dataset["id"])
    with main_process_first():  # the main process removes stale checkpoints and writes the marker, then the others look
        resume = last_checkpoint(ckpt_dir, inputs, rl.max_steps)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if is_main_process():
            atomic_write_json(ckpt_dir / "rl_inputs.json", json.loads(json.dumps(inputs, default=str)))

    import torch

    bf16 = str(device).startswith("cuda") and dtype == torch.bfloat16
    args = grpo_args(rl, ckpt_dir, device=device, use_vllm=use_vllm, bf16=bf16, reward_weights=weights)
    lm.model.train()
    trainer = make_trainer(
        model=lm.model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=lm.processor,
        peft_config=lora_config(rl) if rl.lora else None,
        callbacks=[console_callback()],
        compile_generation=args.cache_implementation == "static" and str(device).startswith("cuda"),
    )
    LOG.info(
        "rl: GRPO on %d prompts, %s, %d rollouts/prompt, %s rollouts, %s%s",
        len(dataset), f"LoRA r={rl.lora_r}" if rl.lora else "full fine-tuning", rl.num_generations,
        "vLLM" if use_vllm else f"HF generate ({args.cache_implementation or 'dynamic'} cache)", device,
        f", resuming from {Path(resume).name}" if resume else "",
    )
    t_train = time.time()
    trainer.train(resume_from_checkpoint=resume)
    train_s = time.time() - t_train
    trainer.save_state()

    model_dir = out_dir / "model"
    if is_main_process():  # every process holds the same trained weights
        save_merged(trainer.model, lm.processor, model_dir, generation_config_from=lm.source)
    history = trainer.state.log_history
    steps = [h for h in history if "reward" in h]
    step_times = [h["step_time"] for h in steps if h.get("step_time") is not None]
    summary = {
        "global_step": trainer.state.global_step,
        "resumed_from": Path(resume).name if resume else None,
        "use_vllm": use_vllm,
        "device": str(device),
        "boundary": {"size": len(dataset), "forget": dataset["role"].count("forget"), "retain": dataset["role"].count("retain"),
                     "mode": rl.boundary},
        "rewards": dict(zip([getattr(f, "__name__", "?") for f in funcs], weights)),
        "train_seconds": round(train_s, 1),
        "seconds_per_step": round(sum(step_times) / len(step_times), 2) if step_times else None,
        "stage_seconds": round(time.time() - t0, 1),
        "first": steps[0] if steps else None,
        "last": steps[-1] if steps else None,
        "log_history": history,
    }
    if is_main_process():
        atomic_write_json(out_dir / "rl_summary.json", summary)
    process_state().wait_for_everyone()  # the others return once the model is saved
    LOG.info("rl: %d steps in %.0f s (%s s/step); model saved to %s", trainer.state.global_step, train_s,
             summary["seconds_per_step"], model_dir)
    del trainer, ref
    return model_dir
