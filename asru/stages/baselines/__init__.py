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
simnpo     ``-(2 / beta) * mean log sigmoid(-(beta / |y|) * log p(F) - gamma) + w * NLL(R)`` (reference-free NPO)
dpo        ``-mean log sigmoid(beta * (ratio(refusal) - ratio(F))) + w * NLL(R)``, ratio = log p - log p_ref
           (DPO with the idk refusals preferred over the true answers)
rmu        ``||h_l(F) - c * u||^2 + alpha * ||h_l(R) - h_l,ref(R)||^2`` at decoder layer l, u a random unit
           vector, only the MLPs of layers l-2..l trained (representation misdirection, WMDP)
=========  =================================================================================
"""

from __future__ import annotations

from asru.stages.baselines import dpo, ga, graddiff, idk, kl, npo, rmu, simnpo  # noqa: F401 - register the built-in losses
from asru.stages.baselines.common import encode_batch, nll, qa_pairs, sequence_logprobs
from asru.stages.baselines.context import IDK_TEMPLATES, BaselineContext, idk_answer
from asru.stages.baselines.registry import BASELINES, LossFn, list_baselines, register_baseline
from asru.stages.baselines.stage import run_baseline, train_baseline

__all__ = ["BASELINES", "IDK_TEMPLATES", "BaselineContext", "LossFn", "encode_batch", "idk_answer", "list_baselines", "nll",
           "qa_pairs", "register_baseline", "run_baseline", "sequence_logprobs", "train_baseline"]
