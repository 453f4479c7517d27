"""The built-in metrics beyond the task scores, each registered by name (see :mod:`asru.eval.registry`)."""

from __future__ import annotations

import functools
import json
import logging

from asru.core.models import load_model
from asru.core.rundir import atomic_write_json, atomic_write_text
from asru.eval.diagnostics import run_diagnostics
from asru.eval.judge import judge_answers
from asru.eval.oracle import oracle_comparison
from asru.eval.privacy import membership_inference
from asru.eval.quality import quality_metrics, sampled_fluency
from asru.eval.registry import EvalContext, register_metric
from asru.eval.robustness import image_only_robustness, paraphrase_robustness, relearn_attack, relearn_records
from asru.eval.utility import UTILITY_SPLITS, model_utility, split_utility
from rewards.judge import judge

LOG = logging.getLogger("asru.eval")


@register_metric("quality", "answers", enabled=lambda cfg: cfg.quality)
def quality(ctx: EvalContext) -> dict:
    """Fluency under the reference model and text quality of the answers (every forget answer is scored)."""
    if not ctx.free:
        return {}
    cap = None if ctx.split == "forget" else ctx.cfg.fluency_samples
    return quality_metrics(ctx.lm, ctx.free, ctx.answers, ctx.ref, ctx.cfg.batch_size, cap, ctx.cfg.seed)


@register_metric("sampled_fluency", "answers", enabled=lambda cfg: cfg.quality and cfg.fluency_groups > 0)
def sampled(ctx: EvalContext) -> dict:
    """Fluency of sampled (not greedy) forget answers, as GRPO sees them."""
    if ctx.split != "forget" or not ctx.free:
        return {}
    cfg = ctx.cfg
    return sampled_fluency(ctx.lm, ctx.free, ctx.ref, cfg.fluency_groups, cfg.max_new_tokens, cfg.batch_size, cfg.seed)


@register_metric("llm_judge", "answers", enabled=lambda cfg: bool(cfg.judge_url))
def llm_judge(ctx: EvalContext) -> dict:
    """Scores from an OpenAI-compatible judge model on the first ``eval.judge_samples`` forget answers."""
    if ctx.split != "forget" or not ctx.free:
        return {}
    cfg = ctx.cfg
    k = min(cfg.judge_samples, len(ctx.free))
    return judge_answers([r.question for r in ctx.free[:k]], [r.answer for r in ctx.free[:k]], ctx.answers[:k],
                         cfg.judge_url, cfg.judge_model, cfg.judge_api_key_env)


@register_metric("forgotten_people", "answers")
def forgotten_people(ctx: EvalContext) -> dict:
    """Leak, identity-leak and refusal rates on a non-forget split's questions about the forgotten people
    (the test split shows them in new renders); ``{}`` on the forget split itself or without such questions."""
    forgotten = {r.person for r in ctx.forget if r.person}
    if ctx.split == "forget" or not forgotten:
        return {}
    pairs = [(r, a) for r, a in zip(ctx.free, ctx.answers) if r.person in forgotten]
    if not pairs:
        return {}
    verdicts = [(r, judge(a, r)) for r, a in pairs]
    out = {}
    for view, chosen in (("", verdicts), ("image_", [(r, v) for r, v in verdicts if r.image])):
        if chosen:
            n = len(chosen)
            out[f"forgotten_{view}leak_rate"] = sum(v.leak for _, v in chosen) / n
            out[f"forgotten_{view}identity_leak_rate"] = sum(v.identity_leak for _, v in chosen) / n
            out[f"forgotten_{view}refusal_rate"] = sum(v.refusal for _, v in chosen) / n
            out[f"forgotten_{view}n"] = n
    return out


@register_metric("mia", "forget", enabled=lambda cfg: cfg.mia)
def mia(ctx: EvalContext) -> dict:
    """Membership inference (loss, min-k%, zlib and, with ``eval.oracle``, reference-model AUCs) of the
    forget split against counterfactual answers."""
    pool = [r for s, recs in ctx.data.items() if s != "forget" for r in recs]
    reference = _oracle_model(ctx.cfg.oracle, ctx.cfg.dtype) if ctx.cfg.oracle else None
    return membership_inference(ctx.lm, ctx.forget, pool, ctx.cfg.batch_size, ctx.cfg.seed, reference=reference)


@register_metric("robustness", "forget", enabled=lambda cfg: cfg.robustness)
def robustness(ctx: EvalContext) -> dict:
    """Leaks under paraphrased, open and image-only questions about the forgotten people; every answer with
    the judge's labels goes to ``robustness_answers.jsonl``."""
    cfg = ctx.cfg
    rows: list[dict] = []
    out = paraphrase_robustness(ctx.lm, ctx.forget, cfg.max_new_tokens, cfg.batch_size, cfg.progress, rows=rows)
    out.update(image_only_robustness(ctx.lm, ctx.forget, cfg.max_new_tokens, cfg.batch_size, cfg.progress, rows=rows))
    atomic_write_text(ctx.out_dir / "robustness_answers.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return out


@register_metric("diagnostics", "forget", enabled=lambda cfg: cfg.diagnostics)
def diagnostics(ctx: EvalContext) -> dict:
    """Representation diagnostics against the reference model (per-layer values in diagnostics.json)."""
    if ctx.ref is None:
        LOG.info("diagnostics skipped: they compare against a reference model (pass a different reference)")
        return {}
    free_forget = [r for r in ctx.forget if r.task in ("generation", "cloze")][: ctx.cfg.diagnostics_samples]
    diag = run_diagnostics(ctx.lm, ctx.ref, free_forget, ctx.out_dir / "diagnostics",
                           batch_size=max(2, ctx.cfg.batch_size // 2), seed=ctx.cfg.seed)
    atomic_write_json(ctx.out_dir / "diagnostics.json", diag)
    return diag["summary"]


@functools.lru_cache(maxsize=1)
def _oracle_model(path: str, dtype: str | None):
    """The oracle model, loaded once for the oracle and membership-inference metrics (and kept while a
    comparison evaluates several models against it)."""
    return load_model(path, dtype=dtype) if dtype else load_model(path)


@register_metric("oracle", "answers", enabled=lambda cfg: bool(cfg.oracle))
def oracle(ctx: EvalContext) -> dict:
    """Forget quality and plain distances against a model that never learnt the forget set (``eval.oracle``)."""
    if ctx.split != "forget" or not ctx.free:
        return {}
    cfg = ctx.cfg
    oracle_lm = _oracle_model(cfg.oracle, cfg.dtype)
    pool = [r for s in ("retain", "test") for r in ctx.data.get(s, [])]
    return oracle_comparison(ctx.lm, oracle_lm, ctx.ref or ctx.lm, ctx.free, ctx.answers, pool,
                             max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, seed=cfg.seed)


@register_metric("utility", "forget", enabled=lambda cfg: cfg.utility)
def utility(ctx: EvalContext) -> dict:
    """Model utility over the retain and real splits (:mod:`asru.eval.utility`), from their greedy answers."""
    out: dict = {}
    for split in UTILITY_SPLITS:
        if split not in ctx.answered:
            continue
        records, answers = ctx.answered[split]
        pool = [r for s, recs in ctx.data.items() if s not in (split, "forget") for r in recs]
        out.update(split_utility(ctx.lm, split, records, answers, ctx.data.get(split, []), pool,
                                 batch_size=ctx.cfg.batch_size, seed=ctx.cfg.seed))
    parts = [out.get(f"utility_{s}_{k}") for s in UTILITY_SPLITS for k in ("prob", "rouge", "truth_ratio")]
    out["model_utility"] = model_utility(parts)
    return out


@register_metric("relearn", "forget", enabled=lambda cfg: cfg.relearn)
def relearn(ctx: EvalContext) -> dict:
    """The relearning attack: fine-tune on half the forget facts, measure leaks on the other half."""
    cfg = ctx.cfg
    retain = ctx.data.get("retain", [])
    teach = ctx.teach if cfg.relearn_form == "teach" else []
    control, keep, mix = relearn_records(retain, ctx.data.get("real", []), keep_from=ctx.limited.get("retain", retain),
                                         teach=teach, forget=ctx.forget)
    return relearn_attack(ctx.lm, ctx.forget, control, cfg.relearn_steps, cfg.relearn_lr, cfg.relearn_lora_r,
                          cfg.seed, cfg.max_new_tokens, cfg.batch_size, cfg.progress, keep=keep,
                          mix=mix, mix_share=cfg.relearn_retain_mix, teach=teach)
