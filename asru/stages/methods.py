"""The unlearning methods ``--method`` can name: ASRU's own pipelines and every registered baseline."""

from __future__ import annotations

from asru.core.errors import AsruError
from asru.stages.baselines import BASELINES

PIPELINE_METHODS: dict[str, tuple[str, ...]] = {
    "asru": ("steer", "rl"),
    "steer_only": ("steer",),
}
"""ASRU's methods and the stages each runs; every other method is a baseline (one ``baseline`` stage)."""

PIPELINE_DESCRIPTIONS = {
    "asru": "ASRU: a refusal direction trained into the weights by activation redirection, then GRPO refinement of the refusal boundary",
    "steer_only": "activation steering only (refusal direction trained into the weights by activation redirection)",
}


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


def method_description(method: str) -> str:
    """One line on what the method does, for model cards: an ASRU pipeline's, or the baseline loss's docstring."""
    if method in PIPELINE_DESCRIPTIONS:
        return PIPELINE_DESCRIPTIONS[method]
    loss = BASELINES.find(method)
    doc = (loss.__doc__ or "").strip().splitlines() if loss else []
    return f"{doc[0].rstrip('.')[:1].lower()}{doc[0].rstrip('.')[1:]} (baseline)" if doc else method
