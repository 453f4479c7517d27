"""The demo VLM's teaching loop: LoRA on the language model, answer-only loss, the training steps."""

from __future__ import annotations

import logging
import math
import time

from asru.config import TeachConfig
from asru.core.errors import AsruError
from asru.core.lora import lora_config, lora_targets
from asru.core.models import pick_dtype
from asru.core.prompting import encode_with_answers
from asru.demo.align_vision import (
    align_vision,
    alignment_loss,
    embedding_norm,
    name_targets,
    norm_penalty,
    output_image_features,
)
from asru.demo.examples import ExampleSampler
from asru.demo.vision_params import is_vision_param

LOG = logging.getLogger("asru.data.teach")


def add_lora(lm, cfg: TeachConfig):
    """Wrap ``lm.model`` with LoRA on the language model's linear layers; make the vision side trainable.

    Returns ``(lora_params, vision_params)``. ``lm.model`` becomes the PEFT model.
    """
    from peft import get_peft_model

    base = lm.model
    scope = "language_model_projections" if lm.is_vlm else "decoder_linears"
    if not lora_targets(base, scope):
        raise AsruError("no language-model linear layers found for LoRA (expected ...language_model...q_proj etc.)")
    lcfg = lora_config(cfg.lora_r, scope, model=base)
    peft_model = get_peft_model(base, lcfg)
    vision = []
    for name, p in base.named_parameters():
        if "lora_" in name:
            continue
        if is_vision_param(name):
            p.requires_grad_(True)
            vision.append(p)
    lora = [p for n, p in peft_model.named_parameters() if "lora_" in n and p.requires_grad]
    if not vision and lm.is_vlm:
        raise AsruError("no vision tower / projector parameters found to train")
    lm.model = peft_model
    return lora, vision


def cast_language_model(model, dtype: str) -> None:
    """Cast every weight but the vision tower's and projector's to ``dtype`` (those stay float32, trained fully)."""
    torch_dtype = pick_dtype(dtype, "cpu")  # teach.dtype is float32 or bfloat16, never auto
    for name, p in model.named_parameters():
        if not is_vision_param(name):
            p.data = p.data.to(torch_dtype)


def answer_loss(lm, batch, model=None, feature_norm: float | None = None, feature_norm_weight: float = 0.1,
                general_kl: bool = True, align=None, first_token_weight: float = 0.0,
                item_losses: dict | None = None, reduction: str = "mean"):
    """Answer-only loss of one batch (each example's mean over its answer tokens, summed).

    ``reduction="sum"`` sums each example's answer-token losses instead of averaging them: every answer
    token weighs the same, so the fact inside a sentence answer ("Liora Blackmere was born in Dublin.")
    keeps a full token's weight instead of a twelfth of the example's.

    ``batch`` items are ``(question, answer, image or None)``, optionally with a 4th element ``True``
    for general-knowledge items: with ``general_kl`` those also get a KL term to the base model (the
    same model with its LoRA adapters disabled, exact for text-only inputs), which keeps the base
    model's whole answer distribution, not just its greedy answer. Image, text and general items share one
    forward (general items get a second one, with its adapters-off reference pass, when they get the KL
    term); logits are computed only at positions that predict an answer token. ``item_losses`` (a dict) receives each example's mean
    answer-token loss keyed by its ``item`` (6th element), for :meth:`ExampleSampler.record_losses`.
    ``feature_norm`` adds a penalty (weight ``feature_norm_weight``) keeping projected image features at
    that norm per token (the text embeddings' scale). ``align = (name_targets, weight, temperature)`` adds
    the contrastive vision alignment (:mod:`asru.demo.align_vision`) for image items whose 5th element
    (``person``) indexes a known person. ``first_token_weight`` adds each example's first answer token's
    loss again with that weight (the token that decides between an answer and a refusal).
    Returns ``(loss_sum, n_examples, n_tokens)``; call ``backward`` on ``loss_sum / n``.
    """
    import torch
    import torch.nn.functional as F

    model = model if model is not None else lm.model
    total, n_ex, n_tok = None, 0, 0
    is_general = [len(b) > 3 and bool(b[3]) for b in batch]  # Example.general
    kl = general_kl and hasattr(model, "disable_adapter") and torch.is_grad_enabled()
    # one forward for image and text items (bigger matrix products, half the per-op overhead on a CPU);
    # general items get their own when they need the adapters-off KL pass
    groups = ([b for b, g in zip(batch, is_general) if not (g and kl)], [b for b, g in zip(batch, is_general) if g and kl])
    for k, group in enumerate(groups):
        if not group:
            continue
        enc, labels = encode_with_answers(lm, [g[0] for g in group], [g[1] for g in group], [g[2] for g in group])
        tgt_mask = labels[:, 1:] != -100
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = tgt_mask
        out = model(**enc, logits_to_keep=keep, use_cache=False)
        logits = out.logits.reshape(-1, out.logits.shape[-1]).float()
        targets = labels[:, 1:][tgt_mask]
        tok_loss = F.cross_entropy(logits, targets, reduction="none")
        if k == 1:
            with torch.no_grad(), model.disable_adapter():
                ref = model(**enc, logits_to_keep=keep, use_cache=False).logits
            ref = ref.reshape(-1, ref.shape[-1]).float()
            tok_loss = tok_loss + F.kl_div(F.log_softmax(logits, -1), F.log_softmax(ref, -1), log_target=True,
                                           reduction="none").sum(-1)
        rows = tgt_mask.nonzero()[:, 0]
        per_ex = torch.zeros(len(group), device=tok_loss.device).index_add(0, rows, tok_loss)
        counts = tgt_mask.sum(1).clamp(min=1)
        loss = per_ex.sum() if reduction == "sum" else (per_ex / counts).sum()
        if item_losses is not None:
            for g, value in zip(group, (per_ex / counts).tolist()):
                if len(g) > 5 and g[5] is not None:
                    item_losses[g[5]] = value
        if first_token_weight:
            # the first answer token decides what kind of answer follows ("I'm sorry..." or "Dublin"); in a
            # per-example mean it weighs 1/20 in a long refusal and 1/3 in a short fact, so refusals of
            # unknown people are learnt as continuations but not as decisions without this extra term
            starts = torch.cumsum(tgt_mask.sum(1), 0) - tgt_mask.sum(1)
            loss = loss + first_token_weight * tok_loss[starts[tgt_mask.any(1)]].sum()
        feats = output_image_features(out)
        img_rows = [g for g in group if g[2] is not None]  # image features come in the order of these rows
        if img_rows and feature_norm and feats is not None:
            loss = loss + feature_norm_weight * norm_penalty(feats, feature_norm) * len(img_rows)
        persons = [g[4] if len(g) > 4 else None for g in img_rows]
        if img_rows and align is not None and feats is not None and any(p is not None for p in persons):
            targets, weight, temperature = align
            feats = feats.reshape(len(img_rows), -1, feats.shape[-1])
            sel = [i for i, p in enumerate(persons) if p is not None]
            labels = torch.tensor([persons[i] for i in sel], device=feats.device)
            loss = loss + weight * alignment_loss(feats[sel], targets.to(feats.device), labels, temperature, reduction="sum")
        total = loss if total is None else total + loss
        n_ex += len(group)
        n_tok += int(enc["attention_mask"].sum())
    return total, n_ex, n_tok


def train(lm, sampler: ExampleSampler, cfg: TeachConfig, progress: bool = True) -> dict:
    """Run ``cfg.steps`` optimisation steps (LoRA + vision side) with a progress bar; return statistics.

    With ``cfg.align_steps`` > 0 and at least two known people, the vision side is first aligned with the
    people's name embeddings (:func:`asru.demo.align_vision.align_vision`) and the alignment term (weight
    ``cfg.align_weight``) stays in the teaching loss.
    """
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    align, align_stats = None, None
    if cfg.align_steps > 0 and len(sampler.people) >= 2:
        align_stats = align_vision(lm, sampler.people, sampler.draw, cfg, progress=progress)
        if cfg.align_weight > 0:
            align = (name_targets(lm, sampler.people), cfg.align_weight, cfg.align_temperature)
    lora, vision = add_lora(lm, cfg)
    groups = [{"params": lora, "lr": cfg.lr}] + ([{"params": vision, "lr": cfg.vision_lr}] if vision else [])
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    warmup = max(1, min(10, cfg.steps // 10))
    feature_norm = embedding_norm(lm)  # image features are kept at the scale of the text embeddings

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = (step - warmup) / max(1, cfg.steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    lm.model.train()
    curve, tokens, t0 = [], 0, time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="teaching", disable=not progress, dynamic_ncols=True)
    ema = None
    for step in bar:
        batch = sampler.batch()
        opt.zero_grad(set_to_none=True)
        item_losses: dict[int, float] = {}
        loss_sum, n_ex, n_tok = answer_loss(lm, batch, feature_norm=feature_norm if cfg.feature_norm_weight > 0 else None,
                                            feature_norm_weight=cfg.feature_norm_weight, general_kl=cfg.general_kl,
                                            align=align, first_token_weight=cfg.first_token_weight,
                                            item_losses=item_losses, reduction=cfg.answer_reduction)
        loss = loss_sum / n_ex
        loss.backward()
        sampler.record_losses(item_losses)
        torch.nn.utils.clip_grad_norm_(lora + vision, 1.0)
        opt.step()
        sched.step()
        tokens += n_tok
        value = float(loss.detach())
        if not math.isfinite(value):
            raise AsruError(f"teaching diverged (loss {value} at step {step}): lower teach.lr / teach.vision_lr")
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        curve.append(round(value, 4))
        elapsed = time.perf_counter() - t0
        bar.set_postfix(loss=f"{ema:.3f}", tok_s=f"{tokens / elapsed:.0f}")
    bar.close()
    seconds = time.perf_counter() - t0
    lm.model.eval()
    tps = tokens / seconds if seconds > 0 else 0.0
    LOG.info("teaching: %d steps in %.0f s (%.2f s/step, %.0f tokens/s), loss %.3f -> %.3f",
             cfg.steps, seconds, seconds / cfg.steps, tps, curve[0], ema)
    return {
        "steps": cfg.steps, "seconds": round(seconds, 1), "sec_per_step": round(seconds / cfg.steps, 3),
        "tokens": tokens, "tokens_per_s": round(tps, 1), "loss_first": curve[0], "loss_last_ema": round(ema, 4),
        "loss_curve": curve, "threads": torch.get_num_threads(), "vision_alignment": align_stats,
    }
