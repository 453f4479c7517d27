"""The unlearning methods ``--method`` can name: ASRU's own pipelines and every registered baseline."""

from __future__ import annotations

from asru.core.errors import AsruError
from asru.stages.baselines import BASELINES

PIPELINE_METHODS: dict[str, tuple[str, ...]] = {
    "asru": ("steer", "rl"),
    "steer_only": ("steer",),
}
"""ASRU's methods and the stages each runs; every other method is a baseline (one ``baseline`` stage)."""


def method_names() -> list[str]:
    """Every method name: ASRU's pipelines first, then the registered baselines."""
    return [*PIPELINE_METHODS, *BASELINES.names()]


def is_baseline(method: str) -> bool:
    """True for a registered baseline (not one of ASRU's own pipelines)."""
    return method not in PIPELINE_METHODS and method in BASELINES


def check_method(method: str) -> None:
    """One-line error for a method that is neither an ASRU pipeline nor a registered baseline."""
    if method not in PIPELINE_METHODS and method not in BASELINES:
        raise AsruError(f"unknown method {method!r}: choose from {', '.join(method_names())} "
                        "(a baseline of your own: --plugins file.py, see docs/extending.md)")


def method_stages(method: str) -> str:
    """What the method runs, for the plan printed before a run."""
    return " -> ".join(PIPELINE_METHODS[method]) if method in PIPELINE_METHODS else f"baseline {method}"
