"""Reasoning information leakage (R-MUSE, REFERENCE.md section 2) for models that think in ``<think>`` spans.

* explicit leak of sample i: the forgotten string (its ground truth) appears, normalised, inside the
  sample's reasoning span (:func:`rewards.text.extract_think` + :func:`rewards.text.contains_answer`);
* ``RIL = a * N_explicit / N + (1 - a) * N_implicit / N`` with ``a = 0.5``, where ``N_implicit`` (paraphrased
  leakage) comes from a judge; without it only the explicit rate is reported.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewards.text import contains_answer, extract_think, has_think


def explicit_leaks(completions: Sequence[str], truths: Sequence[str]) -> list[bool]:
    """Per sample: does the reasoning span contain the forgotten string?"""
    return [contains_answer(extract_think(c)[0], t) for c, t in zip(completions, truths)]


def explicit_ril(completions: Sequence[str], truths: Sequence[str]) -> float | None:
    """Share of samples whose ``<think>`` span contains the forgotten string (None for no samples)."""
    if not completions:
        return None
    return sum(explicit_leaks(completions, truths)) / len(completions)


def ril(n_explicit: int, n: int, n_implicit: int | None = None, a: float = 0.5) -> float | None:
    """R-MUSE RIL from counts; without an implicit count this is the explicit rate alone."""
    if n <= 0:
        return None
    if n_implicit is None:
        return n_explicit / n
    return a * n_explicit / n + (1 - a) * n_implicit / n


def reasoning_metrics(completions: Sequence[str], truths: Sequence[str], n_implicit: int | None = None) -> dict:
    """``think_rate`` (share with a reasoning span), ``ril_explicit`` and ``ril``."""
    n = len(completions)
    explicit = sum(explicit_leaks(completions, truths))
    return {
        "think_rate": sum(has_think(c) for c in completions) / n if n else None,
        "ril_explicit": explicit / n if n else None,
        "ril": ril(explicit, n, n_implicit),
    }
