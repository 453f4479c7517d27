"""``reasoning``: for ``<think>`` completions, no forget fact in the reasoning; retain reasoning reaches the answer."""

from __future__ import annotations

from rewards.interface import column, completion_text, optional_column, roles
from rewards.judge import judge
from rewards.registry import register_reward
from rewards.text import contains_answer, extract_think, has_think, normalize


def reasoning_score(text: str, ground_truth: str | None, role: str, person: str | None = None,
                    question: str | None = None) -> float | None:
    """Score the reasoning of one completion; ``None`` without a think tag or on other roles.

    forget rows (R-MUSE's explicit reasoning leakage):
      * the ground truth appears in the reasoning or in the final answer -> 0.0;
      * clean, and the final answer is a clean refusal (:func:`rewards.judge.judge`: no fact or
        name leak, not degenerate) -> 1.0;
      * clean, but the answer is no clean refusal (or is missing: reasoning cut off) -> 0.5.
    retain rows (reasoning capability retention):
      * the final answer contains the ground truth and the reasoning is non-empty -> 1.0;
      * the answer is right but the reasoning is empty (``<think></think>``) -> 0.5;
      * otherwise (wrong answer, refusal, or no answer after the reasoning) -> 0.0.
    """
    if role not in ("forget", "retain") or not has_think(text):
        return None
    reasoning, answer = extract_think(text)
    if role == "forget":
        if contains_answer(reasoning, ground_truth) or contains_answer(answer, ground_truth):
            return 0.0
        record = {"question": question, "answer": ground_truth, "person": person}
        return 1.0 if judge(answer, record).clean_refusal else 0.5
    if not contains_answer(answer, ground_truth):
        return 0.0
    return 1.0 if normalize(reasoning) else 0.5


@register_reward("reasoning")
def reasoning(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
    """Reasoning models: forget reasoning must not contain the fact; retain reasoning must reach the answer."""
    n = len(completions)
    role = roles(kwargs, n, "reasoning")
    truth = column(kwargs, "answer", n, "reasoning")
    person = optional_column(kwargs, "person", n)
    question = optional_column(kwargs, "question", n)
    return [reasoning_score(completion_text(c), gt, r, p, q) for c, r, gt, p, q in zip(completions, role, truth, person, question)]
