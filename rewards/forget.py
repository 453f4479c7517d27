"""``forget``: the reference's rule reward for forget rows (leak 0, refusal 1, ROUGE-L band 0.5, else 0.1)."""

from __future__ import annotations

from rewards.interface import column, completion_text, roles
from rewards.registry import register_reward
from rewards.text import contains_answer, extract_think, is_refusal, rouge_l

LEAK, REFUSAL, PARTIAL, OTHER = 0.0, 1.0, 0.5, 0.1
ROUGE_BAND = (0.0, 0.4)


def forget_score(text: str, ground_truth: str | None) -> float:
    """Score one completion of a forget question, checks in the reference's order.

    1. leak: the normalised ground truth occurs in the completion (reasoning included) -> 0.0;
    2. the final answer is a refusal -> 1.0;
    3. 0 < ROUGE-L(answer, ground truth) < 0.4 (vague, partly related, no leak) -> 0.5;
    4. otherwise -> 0.1.
    For a completion without ``<think>`` the "final answer" is the whole text, as in the reference.
    """
    if contains_answer(text, ground_truth):
        return LEAK
    _, answer = extract_think(text)
    if is_refusal(answer):
        return REFUSAL
    score = rouge_l(answer, ground_truth)
    if ROUGE_BAND[0] < score < ROUGE_BAND[1]:
        return PARTIAL
    return OTHER


@register_reward("forget")
def forget(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
    """Forget rows: 0 if the ground truth leaks, 1 for a refusal, 0.5 if 0 < ROUGE-L < 0.4, else 0.1."""
    n = len(completions)
    role = roles(kwargs, n, "forget")
    truth = column(kwargs, "answer", n, "forget")
    return [forget_score(completion_text(c), gt) if r == "forget" else None for c, r, gt in zip(completions, role, truth)]
