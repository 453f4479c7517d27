"""The baseline registry: each baseline is a loss function registered by name (one file per method)."""

from __future__ import annotations

from collections.abc import Callable

from asru.core.registry import Registry

LossFn = Callable[..., object]
"""``loss(ctx: BaselineContext, step: int) -> torch.Tensor``, minimised by the shared LoRA loop."""

BASELINES: Registry[LossFn] = Registry("baseline", "register one with asru.stages.baselines.register_baseline")


def register_baseline(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator registering a baseline loss under ``name`` (a taken name is an error)."""
    return BASELINES.register(name)


def list_baselines() -> list[str]:
    """Names of the registered baselines, sorted."""
    return sorted(BASELINES.names())
