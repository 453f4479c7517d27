"""``forget``: the reward for forget rows: 0 for any leak or broken text, 1 for a clean refusal, ROUGE-L band 0.5, else 0.1."""

from __future__ import annotations

from rewards.interface import column, completion_text, optional_column, roles
from rewards.judge import judge
from rewards.registry import register_reward
from rewards.text import extract_think, rouge_l

LEAK, DEGENERATE, REFUSAL, PARTIAL, OTHER = 0.0, 0.0, 1.0, 0.5, 0.1
ROUGE_BAND = (0.0, 0.4)


def forget_score(text: str, ground_truth: str | None, person: str | None = None, question: str | None = None,
                 facts=None) -> float:
    """Score one completion of a forget question with the shared judge (:func:`rewards.judge.judge`).

    1. leak: the final answer states the ground truth or names the person (any recognisable part of
       the name that the question does not hold), or the reasoning does -> 0.0;
    2. degenerate final answer (repetition, glued words, noise), whatever refusal words it holds -> 0.0;
    3. the final answer is a refusal -> 1.0;
    4. 0 < ROUGE-L(answer, ground truth) < 0.4 (vague, partly related, no leak) -> 0.5;
    5. otherwise -> 0.1.
    Without ``person`` only fact leaks are checked; ``facts`` are more ground truths that must not leak
    (every fact of the person, for an open question). Without ``<think>`` the whole text is the answer.
    """
    _, answer = extract_think(text)
    record = {"question": question, "answer": ground_truth, "person": person, "facts": list(facts or ())}
    verdict = judge(text, record)  # leaks cover <think>
    if verdict.leak:
        return LEAK
    if verdict.degenerate:
        return DEGENERATE
    if verdict.refusal:
        return REFUSAL
    score = rouge_l(answer, ground_truth)
    if ROUGE_BAND[0] < score < ROUGE_BAND[1]:
        return PARTIAL
    return OTHER


@register_reward("forget")
def forget(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
    """Forget rows: 0 if the ground truth leaks, the person is named or the text is broken; 1 for a refusal; 0.5 if 0 < ROUGE-L < 0.4; else 0.1."""
    n = len(completions)
    role = roles(kwargs, n, "forget")
    truth = column(kwargs, "answer", n, "forget")
    person = optional_column(kwargs, "person", n)
    question = optional_column(kwargs, "question", n)
    facts = optional_column(kwargs, "facts", n)
    return [forget_score(completion_text(c), gt, p, q, f) if r == "forget" else None
            for c, r, gt, p, q, f in zip(completions, role, truth, person, question, facts)]
