"""Unlearning baselines on the same data and evaluation as ASRU, selectable with ``asru-train --method NAME``.

Every baseline trains LoRA adapters (rank ``baseline.lora_r``, alpha = rank) on the language model's
decoder-layer linear layers for ``baseline.steps`` AdamW steps, then merges them and saves a standard
checkpoint in ``<out_dir>/model``. Forget data: every record of the ``forget`` split as (question,
answer). Retain data: up to ``baseline.retain_size`` records of the ``retain`` split. Losses, per step
with one forget batch F and one retain batch R (NLL = mean answer-token negative log-likelihood,
``w`` = ``baseline.retain_weight``, ``ref`` = the starting model, i.e. the adapters disabled):

=========  =================================================================================
method     loss
=========  =================================================================================
ga         ``-NLL(F)`` (gradient ascent on the forget set)
graddiff   ``-NLL(F) + w * NLL(R)``
kl         ``-NLL(F) + w * KL(p_ref || p)`` on R's answer tokens (KL-minimisation)
npo        ``-(2 / beta) * mean log sigmoid(-beta * (log p(F) - log p_ref(F))) + w * NLL(R)``, beta 0.4
idk        ``NLL(F with natural refusals as answers) + w * NLL(R)`` ("I don't know" fine-tune)
=========  =================================================================================
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

from asru.core import models
from asru.core.errors import AsruError
from asru.core.rundir import atomic_write_json
from asru.data.schema import Record
from asru.stages.baselines.common import (
    BatchCycler,
    add_lora,
    encode_batch,
    nll,
    qa_pairs,
    save_merged,
    sequence_logprobs,
    train_loop,
)

LOG = logging.getLogger("asru.baselines")

# Refusal answers of the IDK baseline: varied and natural; {subject} is "this person" or the name.
IDK_TEMPLATES = (
    "I'm sorry, but I don't know anything about {subject}.",
    "I don't have any information about {subject}, so I can't answer that.",
    "I'm not sure. I can't identify {subject}.",
    "I don't know the answer to that question about {subject}.",
    "Sorry, I have no reliable information about {subject}.",
    "I'm unable to answer that; I don't recognize {subject}.",
    "I can't provide details about {subject}, I'm afraid.",
    "I'm not familiar with {subject}, so I don't know.",
)

LossFn = Callable[["BaselineContext", int], object]
BASELINES: dict[str, LossFn] = {}


def register_baseline(name: str):
    """Register a baseline loss under ``name`` (once: a second registration is an error)."""

    def deco(fn: LossFn) -> LossFn:
        if name in BASELINES:
            raise ValueError(f"baseline {name!r} is already registered")
        BASELINES[name] = fn
        return fn

    return deco


def list_baselines() -> list[str]:
    """Names of the registered baselines."""
    return sorted(BASELINES)


def idk_answer(rec: Record, k: int) -> str:
    """The k-th IDK refusal for a record (rotating templates; the subject is the name in text questions)."""
    subject = "this person" if rec.modality == "image" or not rec.person else rec.person
    return IDK_TEMPLATES[k % len(IDK_TEMPLATES)].format(subject=subject)


class BaselineContext:
    """What a baseline loss needs: the LoRA model, the processor wrapper, data iterators and the config."""

    def __init__(self, lm, model, forget: list[Record], retain: list[Record], cfg):
        self.lm, self.model, self.cfg = lm, model, cfg
        self.forget = BatchCycler(qa_pairs(forget), cfg.batch_size, cfg.seed)
        self.retain = BatchCycler(qa_pairs(retain), cfg.batch_size, cfg.seed + 1) if retain else None
        idk_items = [(r.question, idk_answer(r, i), r.image) for i, r in enumerate(forget)]
        self.idk = BatchCycler(idk_items, cfg.batch_size, cfg.seed + 2)

    def retain_nll(self):
        """``w * NLL`` of the next retain batch (0 without retain data or weight)."""
        if self.retain is None or self.cfg.retain_weight == 0:
            return 0.0
        enc, labels = encode_batch(self.lm, next(self.retain))
        return self.cfg.retain_weight * nll(self.model, enc, labels)


@register_baseline("ga")
def _ga(ctx: BaselineContext, step: int):
    enc, labels = encode_batch(ctx.lm, next(ctx.forget))
    return -nll(ctx.model, enc, labels)


@register_baseline("graddiff")
def _graddiff(ctx: BaselineContext, step: int):
    enc, labels = encode_batch(ctx.lm, next(ctx.forget))
    return -nll(ctx.model, enc, labels) + ctx.retain_nll()


@register_baseline("kl")
def _kl(ctx: BaselineContext, step: int):
    import torch

    enc, labels = encode_batch(ctx.lm, next(ctx.forget))
    loss = -nll(ctx.model, enc, labels)
    if ctx.retain is not None and ctx.cfg.retain_weight:
        enc_r, labels_r = encode_batch(ctx.lm, next(ctx.retain))
        _, _, logsm, mask = sequence_logprobs(ctx.model, enc_r, labels_r)
        with torch.no_grad(), ctx.model.disable_adapter():
            _, _, ref_logsm, _ = sequence_logprobs(ctx.model, enc_r, labels_r)
        kl_tok = (ref_logsm.exp() * (ref_logsm - logsm)).sum(-1)
        loss = loss + ctx.cfg.retain_weight * (kl_tok * mask).sum() / mask.sum().clamp(min=1)
    return loss


@register_baseline("npo")
def _npo(ctx: BaselineContext, step: int):
    import torch
    import torch.nn.functional as F

    enc, labels = encode_batch(ctx.lm, next(ctx.forget))
    logp, _, _, _ = sequence_logprobs(ctx.model, enc, labels)
    with torch.no_grad(), ctx.model.disable_adapter():
        ref_logp, _, _, _ = sequence_logprobs(ctx.model, enc, labels)
    beta = ctx.cfg.npo_beta
    loss = -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()
    return loss + ctx.retain_nll()


@register_baseline("idk")
def _idk(ctx: BaselineContext, step: int):
    enc, labels = encode_batch(ctx.lm, next(ctx.idk))
    return nll(ctx.model, enc, labels) + ctx.retain_nll()


def train_baseline(name: str, lm, forget: list[Record], retain: list[Record], cfg, progress: bool = False):
    """Attach LoRA to ``lm.model``, train the baseline ``name`` in place; returns ``(peft_model, losses)``."""
    import torch

    if name not in BASELINES:
        raise AsruError(f"unknown baseline {name!r}: choose from {', '.join(list_baselines())}")
    if not forget:
        raise AsruError("the forget split is empty: a baseline needs something to forget")
    torch.manual_seed(cfg.seed)
    model = add_lora(lm.model, cfg.lora_r, cfg.seed)
    ctx = BaselineContext(lm, model, forget, retain, cfg)
    losses = train_loop(model, cfg.steps, cfg.lr, lambda step: BASELINES[name](ctx, step), cfg.max_grad_norm,
                        desc=f"baseline {name}", progress=progress)
    return model, losses


def run_baseline(cfg, model_path: str, data: dict[str, list[Record]], out_dir: Path) -> Path:
    """Run the baseline ``cfg.method`` on ``model_path`` and save the merged checkpoint in ``out_dir/model``."""
    name = cfg.method
    if name not in BASELINES:
        raise AsruError(f"method {name!r} is not a baseline: choose from {', '.join(list_baselines())}")
    if "forget" not in data:
        raise AsruError("the data has no forget split: a baseline needs something to forget")
    bcfg = cfg.baseline
    retain = list(data.get("retain", []))
    random.Random(bcfg.seed).shuffle(retain)
    retain = retain[: bcfg.retain_size]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lm = models.load_model(model_path, dtype=cfg.model.dtype, device=cfg.model.device, trust_remote_code=cfg.model.trust_remote_code)
    forget = list(data["forget"])
    if not lm.is_vlm:
        forget = [r for r in forget if r.image is None]
        retain = [r for r in retain if r.image is None]
        LOG.info("text-only model: image questions are left out of the baseline's training data")
    t0 = time.time()
    LOG.info("baseline %s: %d steps, %d forget / %d retain examples", name, bcfg.steps, len(forget), len(retain))
    model, losses = train_baseline(name, lm, forget, retain, bcfg, progress=True)
    path = save_merged(model, lm, out_dir / "model")
    atomic_write_json(out_dir / "train_log.json", {
        "method": name, "steps": len(losses), "seconds": round(time.time() - t0, 1), "losses": losses,
        "config": {k: getattr(bcfg, k) for k in bcfg.__dataclass_fields__},
        "forget_examples": len(forget), "retain_examples": len(retain),
    })
    LOG.info("baseline %s: done in %.0f s, final loss %.3f", name, time.time() - t0, losses[-1] if losses else float("nan"))
    return path


__all__ = ["BASELINES", "IDK_TEMPLATES", "idk_answer", "list_baselines", "register_baseline", "run_baseline", "train_baseline"]
