"""The steering stage's prompt sets, shared by its helpers."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class SteerPrompts:
    """The stage's prompts: the refusal side (tried, and kept because the original model refused them),
    the forget side (indices into ``forget_records``: for the direction and held out for layer selection)
    and the retain side."""

    refusal_tried: list[str]
    refusal_questions: list[str]
    refusal_images: list
    forget_records: list
    forget_questions: list[str]
    forget_images: list
    held_out: list[int]
    direction_ids: list[int]
    retain_records: list
    retain_questions: list[str]
    retain_images: list


def with_forget_records(prompts: SteerPrompts, records: list) -> SteerPrompts:
    """``prompts`` with ``records`` appended to the forget rows, for redirection only: the direction's and the
    held-out rows are indices into the rows before them, which keep their places."""
    return dataclasses.replace(prompts, forget_records=list(prompts.forget_records) + list(records),
                               forget_questions=list(prompts.forget_questions) + [r.question for r in records],
                               forget_images=list(prompts.forget_images) + [r.image for r in records])
