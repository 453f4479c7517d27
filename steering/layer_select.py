"""Choosing the steering layer by what steering there does.

For each candidate layer L, with an ``add`` hook (``h + coeff * v_L`` at L's output):

* ``refusal`` — share of held-out forget prompts whose greedy (short) answer is a refusal
  (:func:`rewards.refusal.is_refusal`);
* ``kl`` — mean KL(original || steered) of retain prompts' next-token distributions at the last
  prompt token (what steering costs on what must be kept).

``score = refusal - kl_weight * kl``; the best-scoring layer wins (ties: the earlier layer). The table
is printed and saved (``layer_scores.json``). An explicit layer (``--layer N``) skips the scoring.

Several layers (``steer.num_layers``) are chosen greedily (:func:`select_layers`): after the first,
each further candidate is scored with the add hooks of the layers already chosen held on (``fixed``),
because two layers that each score well alone need not steer well together.
Cost: per candidate one short batched generation on a few forget prompts and one forward on a few
retain prompts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import rewards.refusal
from asru.core.errors import AsruError
from asru.core.layers import check_layer, num_layers
from asru.core.prompting import encode_prompts, generate, logits_window, modality_batches
from asru.core.rundir import atomic_write_json
from steering.hooks import add_steering_layers

LOG = logging.getLogger("asru.steering")


def default_candidates(model, every: int = 2) -> list[int]:
    """Every ``every``-th layer from a quarter to four fifths of the depth (layers 7..23 of a 30-layer model).

    Wider than the middle half: on the demo VLM both greedy selection and the steering search chose layer 23
    of 30 (77% of the depth), which a 25%..75% range leaves out.
    """
    n = num_layers(model)
    lo, hi = max(0, n // 4), max(1, (4 * n) // 5)
    return list(range(lo, hi, every)) or [n // 2]


def next_token_logprobs(lm, questions: Sequence[str], images: Sequence | None = None, batch_size: int = 8):
    """``[N, V]`` float32 log-probabilities of the next token after each prompt, in input order."""
    import torch

    n = len(questions)
    images = list(images) if images is not None else [None] * n
    out = [None] * n
    for idx in modality_batches(images, n, batch_size):
        enc = encode_prompts(lm, [questions[i] for i in idx], [images[i] for i in idx])
        with torch.no_grad():
            logits = lm.model(**enc, use_cache=False, **logits_window(lm.model, 1)).logits[:, -1].float()
        lp = torch.log_softmax(logits, -1).cpu()
        for row, i in enumerate(idx):
            out[i] = lp[row]
    return torch.stack(out, 0)


def mean_kl(base_logprobs, new_logprobs) -> float:
    """Mean over rows of KL(base || new) for log-probability matrices."""

    p = base_logprobs.exp()
    return float((p * (base_logprobs - new_logprobs)).sum(-1).clamp(min=0).mean()) if len(p) else 0.0


def score_layers(
    lm,
    directions: dict,
    forget_questions: Sequence[str],
    retain_questions: Sequence[str],
    forget_images: Sequence | None = None,
    retain_images: Sequence | None = None,
    *,
    candidates: Sequence[int] | None = None,
    coeff: float = 1.0,
    kl_weight: float = 0.5,
    max_new_tokens: int = 16,
    batch_size: int = 8,
    fixed: Sequence[int] = (),
) -> list[dict]:
    """Score each candidate layer (see module docstring); rows sorted by layer.

    ``fixed``: layers whose add hooks (same ``coeff``) stay on while each candidate is scored; they are
    not candidates themselves and each row records them under ``with``.
    """
    if not forget_questions:
        raise AsruError("layer selection needs held-out forget prompts, and there are none")
    fixed = sorted({check_layer(lm.model, int(f)) for f in fixed})
    cands = sorted({check_layer(lm.model, int(c)) for c in (candidates or directions)} - set(fixed))
    missing = [c for c in cands + fixed if c not in directions]
    if missing:
        raise AsruError(f"no direction computed for candidate layer(s) {missing}")
    base_lp = next_token_logprobs(lm, retain_questions, retain_images, batch_size) if retain_questions else None
    rows = []
    for layer in cands:
        v = directions[layer]
        with add_steering_layers(lm.model, [*fixed, layer], directions, coeff):
            answers = generate(lm, list(forget_questions), forget_images, max_new_tokens=max_new_tokens, batch_size=batch_size)
            kl = mean_kl(base_lp, next_token_logprobs(lm, retain_questions, retain_images, batch_size)) if base_lp is not None else 0.0
        refusal = sum(rewards.refusal.is_refusal(a) for a in answers) / len(answers)
        rows.append({"layer": layer, "refusal": round(refusal, 4), "kl": round(kl, 5),
                     "score": round(refusal - kl_weight * kl, 5), "norm": round(float(v.norm()), 4),
                     "example": answers[0][:80], **({"with": fixed} if fixed else {})})
        LOG.debug("layer %d: refusal %.2f kl %.4f", layer, refusal, kl)
    return rows


def best_layer(rows: list[dict]) -> int:
    """The layer with the highest score (the earliest among equals)."""
    if not rows:
        raise AsruError("no layer scores to choose from")
    return max(rows, key=lambda r: (r["score"], -r["layer"]))["layer"]


def select_layers(lm, directions: dict, n_layers: int, candidates: Sequence[int], **score_kwargs) -> tuple[list[int], list[dict]]:
    """Choose ``n_layers`` layers greedily (see module docstring); returns ``(layers, all rows)``.

    ``score_kwargs`` go to :func:`score_layers` (prompts, images, coeff, kl_weight, ...). Stops early
    when a round finds no candidate that keeps or raises the refusal rate of the layers chosen so far.
    """
    if n_layers < 1:
        raise AsruError("steer.num_layers must be >= 1")
    chosen: list[int] = []
    all_rows: list[dict] = []
    best_refusal = -1.0
    while len(chosen) < n_layers:
        left = [c for c in candidates if c not in chosen]
        if not left:
            break
        rows = score_layers(lm, directions, candidates=left, fixed=chosen, **score_kwargs)
        all_rows.extend(rows)
        layer = best_layer(rows)
        refusal = next(r["refusal"] for r in rows if r["layer"] == layer)
        if chosen and refusal <= best_refusal:
            LOG.info("layer selection: no further layer raises the refusal rate above %.2f; keeping %s", best_refusal, chosen)
            break
        chosen.append(layer)
        best_refusal = refusal
    return sorted(chosen), all_rows


def format_table(rows: list[dict], chosen: int | Sequence[int] | None = None) -> str:
    """The scores as a fixed-width text table (``*`` marks the chosen layers; ``with`` the hooks held on)."""
    chosen = {chosen} if isinstance(chosen, int) else set(chosen or ())
    lines = ["layer  refusal      kl    score    |v|  with", "-----  -------  ------  -------  -----  ----"]
    for r in rows:
        mark = " *" if r["layer"] in chosen and _last_round(rows, r) else ""
        with_txt = ",".join(str(x) for x in r.get("with", [])) or "-"
        lines.append(f"{r['layer']:>5}  {r['refusal']:>7.2f}  {r['kl']:>6.3f}  {r['score']:>7.3f}  {r['norm']:>5.1f}  {with_txt}{mark}")
    return "\n".join(lines)


def _last_round(rows: list[dict], row: dict) -> bool:
    """Whether ``row`` is its layer's last row (a chosen layer is no candidate in later rounds)."""
    return row is [r for r in rows if r["layer"] == row["layer"]][-1]


def save_scores(path, rows: list[dict], chosen: int | Sequence[int], how: str, settings: dict | None = None) -> None:
    """Write ``layer_scores.json``: the rows, the chosen layer(s) and how they were chosen.

    ``chosen`` is the first (or only) layer; ``chosen_layers`` lists all of them.
    """
    layers = [chosen] if isinstance(chosen, int) else list(chosen)
    atomic_write_json(path, {"chosen": layers[0], "chosen_layers": layers, "how": how, "settings": settings or {}, "rows": rows})
