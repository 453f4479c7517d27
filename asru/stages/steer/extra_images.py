"""Redirection rows on more images: augmented copies of each image question, or its person's other photos.

Each helper returns the questions, images and answers with the extra rows appended (same question, same
answer) and, where the caller keeps per-row records, the source row of each row.
"""

from __future__ import annotations

import dataclasses
import logging

from asru.core.image_augment import copies_per_image
from asru.data.person_photos import known_photos, other_photos
from asru.stages.steer.prompts import SteerPrompts

LOG = logging.getLogger("asru.steer")


def rows_with_images(questions: list[str], images: list, answers, extra: list[list]):
    """``questions``, ``images`` and ``answers`` (or ``None``) with row ``i`` asked again on each image of
    ``extra[i]`` (same question, same answer), and the source row of each row."""
    q, im, src = list(questions), list(images), list(range(len(questions)))
    ans = list(answers) if answers is not None else None
    for i, more in enumerate(extra):
        for image in more:
            q.append(questions[i])
            im.append(image)
            src.append(i)
            if ans is not None:
                ans.append(answers[i])
    return q, im, ans, src


def _with_forget_rows(prompts: SteerPrompts, questions: list[str], images: list, src: list[int]) -> SteerPrompts:
    """``prompts`` with the forget rows ``questions``/``images``, each row's record that of its source row ``src``."""
    return dataclasses.replace(prompts, forget_questions=questions, forget_images=images,
                               forget_records=[prompts.forget_records[i] for i in src])


def augmented_rows(questions: list[str], images: list, answers, n: int, seed: int):
    """``questions``, ``images`` and ``answers`` (or ``None``) with ``n`` augmented copies of every image row
    appended (same question, same answer; :mod:`asru.core.image_augment`), and the source row of each row."""
    return rows_with_images(questions, images, answers, copies_per_image(images, n, seed))


def with_augmented_images(prompts: SteerPrompts, forget_answers, n: int, seed: int):
    """``prompts`` and ``forget_answers`` with ``n`` augmented copies of every forget image question added,
    so redirection forgets the person in other photos too; unchanged for ``n == 0`` or no image questions."""
    q, im, answers, src = augmented_rows(prompts.forget_questions, prompts.forget_images, forget_answers, n, seed)
    if len(q) == len(prompts.forget_questions):
        return prompts, forget_answers
    LOG.info("redirection: %d augmented copies of forget image questions added", len(q) - len(prompts.forget_questions))
    return _with_forget_rows(prompts, q, im, src), answers


def other_photo_rows(questions: list[str], images: list, answers, persons: list, photos: dict[str, list]):
    """``questions``, ``images`` and ``answers`` (or ``None``) with every image row asked again on each other
    known photo of its person (``photos``: :func:`known_photos`), and the source row of each row."""
    extra = [other_photos(image, person, photos) for image, person in zip(images, persons)]
    return rows_with_images(questions, images, answers, extra)


def with_known_photos(prompts: SteerPrompts, forget_answers, retain_questions, retain_images, retain_answers,
                      retain_persons, all_records):
    """Forget and retain rows with every image question asked again on its person's other known photos."""
    photos = known_photos(all_records)
    q, im, f_ans, src = other_photo_rows(prompts.forget_questions, prompts.forget_images, forget_answers,
                                         [r.person for r in prompts.forget_records], photos)
    rq, rim, r_ans, _ = other_photo_rows(retain_questions, retain_images, retain_answers, retain_persons, photos)
    LOG.info("redirection: %d forget and %d retain rows on the people's other known photos",
             len(q) - len(prompts.forget_questions), len(rq) - len(retain_questions))
    return _with_forget_rows(prompts, q, im, src), f_ans, rq, rim, r_ans
