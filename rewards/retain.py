"""``retain``: answer correctness on retain rows (ground truth 1, refusal 0, ROUGE-L > 0.6 0.5, else 0.1)."""

from __future__ import annotations

from rewards.interface import column, completion_text, optional_column, roles
from rewards.judge import judge
from rewards.registry import register_reward
from rewards.text import extract_think, rouge_l

CORRECT, REFUSAL, CLOSE, OTHER = 1.0, 0.0, 0.5, 0.1
ROUGE_MIN = 0.6


def retain_score(text: str, ground_truth: str | None, question: str | None = None) -> float:
    """Score one completion of a retain question with the shared judge (:func:`rewards.judge.judge`).

    1. the final answer states the ground truth (``fact_leak``) -> 1.0, even if it also hedges;
    2. the final answer is a refusal (the speaker declines: "She couldn't help laughing" or a quoted
       "I don't know" are answers, not refusals) -> 0.0;
    3. ROUGE-L(answer, ground truth) > 0.6 -> 0.5;
    4. otherwise -> 0.1.
    With a ``<think>`` span only the text after it counts (the answer must be *given*, not only
    reasoned about); without one the whole text is the answer, as in the reference.
    """
    _, answer = extract_think(text)
    verdict = judge(answer, {"question": question, "answer": ground_truth})
    if verdict.fact_leak:
        return CORRECT
    if verdict.refusal:
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
    question = optional_column(kwargs, "question", n)
    return [retain_score(completion_text(c), gt, q) if r == "retain" else None
            for c, r, gt, q in zip(completions, role, truth, question)]
