"""Open questions about each forgotten person, in the biography wordings the demo model was taught.

"Tell me about {name}." and the same about the person's photo ("Tell me about the person in this
image."): questions no single fact answers, so an answer to one leaks when it states *any* fact of that
person or names them. Steering (``steer.open_questions``) trains them with natural refusals and GRPO
(``rl.open_questions``) rewards them against every fact; the evaluation asks other open wordings
(:data:`asru.eval.robustness.OPEN_QUESTIONS`), so what it measures is not what was trained.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from asru.data.schema import Record
from asru.data.synthetic_answers import BIO


def person_secrets(forget: Sequence[Record]) -> dict[str, set[str]]:
    """Each forgotten person's forget answers (what an answer about them must not state; the judge ignores
    the ones the question itself holds, such as the name)."""
    out: dict[str, set[str]] = {}
    for r in forget:
        if r.person:
            out.setdefault(r.person, set()).add(r.answer)
    return out


def open_question_records(forget: Sequence[Record]) -> tuple[list[Record], dict[str, list[str]]]:
    """The open questions about each person of ``forget`` by name (ids ``open-<k>-<j>``) and, where the
    forget split has a photo of the person, about that photo (ids ``open-<k>-i<j>``), and
    ``{id: facts}``: every forget answer of that person, which an answer to the question must not state."""
    photos: dict[str, str] = {}
    for r in sorted(forget, key=lambda r: r.id):
        if r.person and r.image and isinstance(r.image, (str, os.PathLike)):
            photos.setdefault(r.person, str(r.image))
    records, by_id = [], {}
    for k, (person, secrets) in enumerate(sorted(person_secrets(forget).items())):
        values = sorted(secrets)
        asked = [(f"open-{k:02d}-{j}", "text", t.format(name=person), None) for j, t in enumerate(BIO["text"])]
        if person in photos:
            asked += [(f"open-{k:02d}-i{j}", "image", t, photos[person]) for j, t in enumerate(BIO["image"])]
        for rid, modality, question, image in asked:
            rec = Record(id=rid, split="forget", task="generation", modality=modality, question=question,
                         answer=values[0], person=person, fact="bio", image=image)
            records.append(rec)
            by_id[rec.id] = values
    return records, by_id
