"""TRL GRPO wiring for the RL stage: rollout backend, GRPOConfig from RLConfig, a thin trainer subclass,
per-step unlearning metrics and a compact console log.

Rollouts come from the model's weights only. vLLM never sees forward hooks, and a hook-steered
model trained with GRPO would be saved without its hooks, so the stage refuses steering that lives in
hooks (``steer.mode`` add/gated) and a model that carries forward hooks on its decoder layers.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from pathlib import Path

from asru.core.checkpoints import guarded_checkpoint_save
from asru.core.errors import AsruError
from asru.core.layers import decoder_layers
from asru.core.lora import lora_config as core_lora_config
from rewards.interface import column, completion_text, optional_column, roles
from rewards.judge import judge
from steering.hooks import UNBAKEABLE_KINDS

LOG = logging.getLogger("asru.rl")

HOOK_MODES = UNBAKEABLE_KINDS  # steering modes that act through inference-time hooks
VLLM_HINT = "pip install 'asru[vllm]'"


# ---------------------------------------------------------------------------------------------
# Rollout backend
# ---------------------------------------------------------------------------------------------
def vllm_installed() -> bool:
    """True when the ``vllm`` package can be imported (checked without importing it: that is slow)."""
    return importlib.util.find_spec("vllm") is not None


def resolve_use_vllm(setting: str, device: str) -> bool:
    """``rl.use_vllm`` -> bool. auto = installed and on a GPU; true without vLLM is an error naming the extra."""
    setting = str(setting).lower()
    if setting == "false":
        return False
    if setting == "true":
        if not vllm_installed():
            raise AsruError(f"rl.use_vllm=true but vLLM is not installed: {VLLM_HINT} (or set rl.use_vllm=auto/false)")
        return True
    if setting != "auto":
        raise AsruError(f"rl.use_vllm must be auto, true or false, not {setting!r}")
    return vllm_installed() and str(device).startswith("cuda")


def cache_implementation(setting: str, device: str, use_vllm: bool) -> str | None:
    """KV cache for HF-generate rollouts: auto = static (compiled) on GPU, the default dynamic cache on CPU."""
    if use_vllm or setting == "dynamic":
        return None
    if setting == "static" or str(device).startswith("cuda"):
        return "static"
    return None


def check_rollout_source(cfg, model=None, model_path=None) -> None:
    """Refuse an RL stage whose rollouts would come from a model other than the one trained.

    * ``steer.mode`` add/gated steers through inference-time hooks: vLLM never runs them and the
      trained checkpoint would not contain them. Use ``steer.mode=redirect`` (trained into the weights)
      or bake the steering first.
    * a model directory with a ``hooks.json`` (the steering stage's record of unbaked hooks);
    * a model carrying forward hooks on its decoder layers (steering attached in memory).
    """
    mode = getattr(cfg.steer, "mode", "redirect")
    if mode in HOOK_MODES:
        raise AsruError(
            f"steer.mode={mode} steers with inference-time hooks, which GRPO rollouts (vLLM or a saved checkpoint) "
            f"never see: use steer.mode=redirect (trained into the weights) for the rl stage, or drop rl from --stages"
        )
    if model_path is not None and (Path(str(model_path)) / "hooks.json").is_file():
        raise AsruError(
            f"{model_path} is steered by inference-time hooks (hooks.json), which GRPO rollouts never see: "
            f"re-run the steer stage with steer.mode=redirect (or a baked ablation) before the rl stage"
        )
    if model is not None:
        try:
            layers = decoder_layers(model)
        except Exception:  # noqa: BLE001 - an unknown architecture simply has nothing to check here
            layers = []
        hooked = [i for i, layer in enumerate(layers) if layer._forward_hooks or layer._forward_pre_hooks]
        if hooked:
            raise AsruError(
                f"the model has forward hooks on decoder layer(s) {hooked}: GRPO rollouts must come from the weights; "
                f"bake the steering into the weights (or remove the hooks) before the rl stage"
            )


# ---------------------------------------------------------------------------------------------
# Metrics: a weight-0 'reward' that only measures
# ---------------------------------------------------------------------------------------------
def unlearning_stats(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
    """Logging only (weight 0): 1/0 refusal on forget rows (None on others), so TRL logs
    ``rewards/refusal_rate/mean`` = the refusal rate on forget prompts. Also logs through TRL's
    ``log_metric``: ``unlearn/forget_leak_rate`` (the judge's fact or identity leak),
    ``unlearn/forget_degenerate_rate`` and ``unlearn/retain_refusal_rate`` (:func:`rewards.judge.judge`)."""
    n = len(completions)
    role = roles(kwargs, n, "refusal_rate")
    truth = column(kwargs, "answer", n, "refusal_rate")
    person = optional_column(kwargs, "person", n)
    question = optional_column(kwargs, "question", n)
    texts = [completion_text(c) for c in completions]
    verdicts = [judge(t, {"answer": gt, "person": p, "question": q}) for t, gt, p, q in zip(texts, truth, person, question)]
    refusal = [v.refusal for v in verdicts]
    log = kwargs.get("log_metric")
    if log is not None:
        forget = [i for i in range(n) if role[i] == "forget"]
        retain = [i for i in range(n) if role[i] == "retain"]
        if forget:
            leaks = [verdicts[i].leak for i in forget]  # the judge counts leaks in the reasoning too
            log("unlearn/forget_leak_rate", sum(leaks) / len(forget))
            log("unlearn/forget_degenerate_rate", sum(verdicts[i].degenerate for i in forget) / len(forget))
        if retain:
            log("unlearn/retain_refusal_rate", sum(refusal[i] for i in retain) / len(retain))
    return [float(refusal[i]) if role[i] == "forget" else None for i in range(n)]


unlearning_stats.__name__ = "refusal_rate"


# ---------------------------------------------------------------------------------------------
# GRPOConfig
# ---------------------------------------------------------------------------------------------
_TRACKER_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",),
                    "trackio": ("trackio",), "comet_ml": ("comet_ml",), "clearml": ("clearml",)}


def check_report_to(trackers) -> list[str]:
    """``rl.report_to`` as TRL wants it; a tracker that is not installed is a one-line error."""
    out = []
    for name in trackers or []:
        name = str(name).strip().lower()
        if name in ("", "none"):
            continue
        mods = _TRACKER_MODULES.get(name)
        if mods is None:
            raise AsruError(f"rl.report_to: unknown tracker {name!r} (known: {', '.join(_TRACKER_MODULES)})")
        if not any(importlib.util.find_spec(m) is not None for m in mods):
            raise AsruError(f"rl.report_to: {name} is not installed: pip install {mods[0]} (or drop it from rl.report_to)")
        out.append(name)
    return out


def grpo_args(rl, output_dir, *, device: str, use_vllm: bool, bf16: bool, report_to=None, **overrides):
    """Map :class:`asru.config.RLConfig` onto TRL's ``GRPOConfig`` (checkpoints under ``output_dir``)."""
    from trl import GRPOConfig

    on_gpu = str(device).startswith("cuda")
    gc = {"auto": on_gpu, "true": True, "false": False}[rl.gradient_checkpointing]
    kwargs = dict(  # noqa: C408 - keyword form mirrors GRPOConfig
        output_dir=str(output_dir),
        per_device_train_batch_size=rl.batch_size,
        gradient_accumulation_steps=rl.grad_accum,
        num_generations=rl.num_generations,
        max_completion_length=rl.max_completion_length,
        temperature=rl.temperature,
        top_p=rl.top_p,
        learning_rate=rl.lr,
        weight_decay=rl.weight_decay,
        lr_scheduler_type="linear",
        beta=rl.beta,
        loss_type=rl.loss_type,
        num_train_epochs=rl.epochs,
        max_steps=rl.max_steps,
        logging_steps=rl.logging_steps,
        save_strategy="steps",
        save_steps=rl.save_steps,
        save_total_limit=rl.save_total_limit,
        report_to=check_report_to(report_to if report_to is not None else rl.report_to) or "none",
        remove_unused_columns=False,
        seed=rl.seed,
        data_seed=rl.seed,
        bf16=bf16,
        use_cpu=not on_gpu,
        gradient_checkpointing=gc,
        use_vllm=use_vllm,
        vllm_mode=rl.vllm_mode,
        vllm_gpu_memory_utilization=rl.vllm_gpu_memory_utilization,
        vllm_server_host=rl.vllm_server_host,
        vllm_server_port=rl.vllm_server_port,
        cache_implementation=cache_implementation(rl.cache_implementation, device, use_vllm),
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_completions=False,
        # TRL gathers a batch's images only on the processes whose batch has images, which deadlocks a
        # launch where one process draws text-only prompts; completions are not logged anyway
        log_multimodal=False,
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def lora_config(rl):
    """LoRA on the language model's attention and MLP projections (vision tower and projector left out)."""
    return core_lora_config(rl.lora_r, "text_projections", dropout=0.05, task_type="CAUSAL_LM")


# ---------------------------------------------------------------------------------------------
# Trainer subclass and callbacks
# ---------------------------------------------------------------------------------------------
def _trainer_class():
    from trl import GRPOTrainer

    class AsruGRPOTrainer(GRPOTrainer):
        """TRL's GRPOTrainer plus (1) compiled static-cache generation on GPU (TRL builds its generation
        config with ``disable_compile=True``, which would leave a static cache uncompiled) and (2) batches
        that mix text-only and image questions, and (3) checkpoint writes that a full disk cannot leave half done."""

        def _save_checkpoint(self, model, trial):
            path = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            guarded_checkpoint_save(lambda: super(AsruGRPOTrainer, self)._save_checkpoint(model, trial), path)

        def __init__(self, *args, compile_generation: bool = False, **kwargs):
            super().__init__(*args, **kwargs)
            if compile_generation and not self.use_vllm and getattr(self, "generation_config", None) is not None:
                self.generation_config.disable_compile = False

        def _generate(self, prompts):
            # TRL 1.16 marks a text-only prompt of a VLM batch with image list None, which the processor
            # rejects next to image prompts (TypeError in fetch_images); an empty list means the same and
            # lets text and image questions share a batch.
            out = super()._generate(prompts)
            images = out[6]
            if images is not None and any(im is None for im in images):
                images = [im if im is not None else [] for im in images]
                out = (*out[:6], images, *out[7:])
            return out

    return AsruGRPOTrainer


def make_trainer(**kwargs):
    """Build the GRPO trainer (``compile_generation`` on GPU with a static cache).

    transformers' own per-step printers (a raw dict per log, a progress bar) are removed: the
    :func:`console_callback` line replaces them; ``trainer_state.json`` keeps every logged value.
    """
    from transformers import PrinterCallback, ProgressCallback

    trainer = _trainer_class()(**kwargs)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def step_line(log: dict, max_steps: int | None = None) -> str:
    """One compact console line from a trainer log dict."""
    step = log.get("step", "?")
    parts = [f"rl step {step}" + (f"/{max_steps}" if max_steps else "")]
    parts.append(f"reward {_fmt(log.get('reward'))}")
    rewards = [(k.split('/')[1], v) for k, v in log.items() if k.startswith("rewards/") and k.endswith("/mean")]
    parts.append(" ".join(f"{name} {_fmt(v)}" for name, v in rewards if name != "refusal_rate"))
    parts.append(f"forget refusal {_fmt(log.get('rewards/refusal_rate/mean'))} leak {_fmt(log.get('unlearn/forget_leak_rate'))}")
    parts.append(f"retain refusal {_fmt(log.get('unlearn/retain_refusal_rate'))}")
    parts.append(f"kl {_fmt(log.get('kl'))}")
    parts.append(f"len {_fmt(log.get('completions/mean_length'))}")
    if log.get("step_time") is not None:
        parts.append(f"{log['step_time']:.1f} s/step")
    return " | ".join(p for p in parts if p)


def console_callback():
    """A TrainerCallback logging one line per logging step to the ``asru.stages.rl.stage`` logger (console + run.log)."""
    from transformers import TrainerCallback

    class RLConsole(TrainerCallback):
        def __init__(self):
            self.t0 = None

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.time()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and any(k.startswith("rewards/") for k in logs):
                LOG.info(step_line({**logs, "step": state.global_step}, state.max_steps))

    return RLConsole()
