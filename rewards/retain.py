"""``retain``: answer correctness on retain rows (ground truth 1, refusal 0, ROUGE-L > 0.6 0.5, else 0.1)."""

from __future__ import annotations

from rewards.interface import column, completion_text, roles
from rewards.registry import register_reward
from rewards.text import contains_answer, extract_think, is_refusal, rouge_l

CORRECT, REFUSAL, CLOSE, OTHER = 1.0, 0.0, 0.5, 0.1
ROUGE_MIN = 0.6


def retain_score(text: str, ground_truth: str | None) -> float:
    """Score one completion of a retain question, checks in the reference's order.

    1. the final answer contains the normalised ground truth -> 1.0 (even if it also hedges);
    2. the final answer is a refusal -> 0.0;
    3. ROUGE-L(answer, ground truth) > 0.6 -> 0.5;
    4. otherwise -> 0.1.
    With a ``<think>`` span only the text after it counts (the answer must be *given*, not only
    reasoned about); without one the whole text is the answer, as in the reference.
    """
    _, answer = extract_think(text)
    if contains_answer(answer, ground_truth):
        return CORRECT
    if is_refusal(answer):
        return REFUSAL
    if rouge_l(answer, ground_truth) > ROUGE_MIN:
        return CLOSE
    return OTHER


@register_reward("retain")
def retain(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
    """Retain rows: 1 if the ground truth is in the answer, 0 for a refusal, 0.5 if ROUGE-L > 0.6, else 0.1."""
    n = len(completions)
    role = roles(kwargs, n, "retain")
    truth = column(kwargs, "answer", n, "retain")
    return [retain_score(completion_text(c), gt) if r == "retain" else None for c, r, gt in zip(completions, role, truth)]
