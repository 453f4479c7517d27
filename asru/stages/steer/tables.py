"""The steering stage's before/after table: forget refusal rate and retain answer accuracy."""

from __future__ import annotations

import random

import rewards.refusal
from asru.core import prompting
from rewards.text import contains_answer


def answer_table(lm, forget, retain, limit: int, max_new_tokens: int, seed: int = 0) -> dict:
    """Greedy answers on forget/retain generation questions: forget refusal rate, retain accuracy."""
    out = {}
    for split, recs in (("forget", forget), ("retain", retain)):
        recs = [r for r in recs if r.task == "generation"]
        if len(recs) > limit:
            recs = random.Random(seed).sample(recs, limit)
        if not recs:
            continue
        answers = prompting.generate(lm, [r.question for r in recs], [r.image for r in recs], max_new_tokens=max_new_tokens,
                           batch_size=16, desc=f"answers ({split})", progress=True)
        out[split] = {
            "n": len(recs),
            "refusal_rate": round(sum(rewards.refusal.is_refusal(a) for a in answers) / len(recs), 4),
            "accuracy": round(sum(contains_answer(a, r.answer) for a, r in zip(answers, recs)) / len(recs), 4),
            "examples": [{"question": r.question, "answer": a, "truth": r.answer} for r, a in list(zip(recs, answers))[:3]],
        }
    return out


def format_before_after(before: dict, after: dict) -> str:
    """The before/after table as text."""
    lines = ["split    metric          before   after", "-------  --------------  ------  ------"]
    for split, metric in (("forget", "refusal_rate"), ("forget", "accuracy"), ("retain", "refusal_rate"), ("retain", "accuracy")):
        if split in before and split in after:
            lines.append(f"{split:<7}  {metric:<14}  {before[split][metric]:>6.2f}  {after[split][metric]:>6.2f}")
    return "\n".join(lines)
