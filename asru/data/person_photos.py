"""The photos a benchmark holds of each person, and questions asked again on a person's other photos.

A synthetic benchmark's teach split holds several renders of every person beside the one each forget or
retain question uses: asking the question again on those shows whether a person is forgotten (or kept)
in photos other than the question's.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence


def known_photos(records) -> dict[str, list]:
    """Each person's distinct images among ``records`` (the teach split's other photos included), first seen first."""
    out: dict[str, list] = {}
    for r in records:
        if r.person and r.image and r.image not in out.setdefault(r.person, []):
            out[r.person].append(r.image)
    return out


def other_photos(image, person: str | None, photos: dict[str, list]) -> list:
    """The known photos of ``person`` other than ``image`` (none for a text question, ``image`` None)."""
    if not image or not person:
        return []
    return [p for p in photos.get(person, []) if p != image]


def on_other_photos(records: Sequence, photos: dict[str, list], n: int, seed: int) -> list:
    """Each image record asked again on up to ``n`` of its person's other photos (drawn with ``seed``;
    same question and answer, id ``<id>-photo<k>``); text records and people with one photo add none."""
    rng = random.Random(seed)
    out = []
    for r in records:
        others = other_photos(r.image, r.person, photos)
        chosen = others if len(others) <= n else rng.sample(others, n)
        out += [dataclasses.replace(r, image=p, id=f"{r.id}-photo{k}") for k, p in enumerate(chosen, start=1)]
    return out
