"""The baseline registry: each baseline is a loss function registered by name (one file per method)."""

from __future__ import annotations

from collections.abc import Callable

from asru.core.registry import Registry

LossFn = Callable[..., object]
"""``loss(ctx: BaselineContext, step: int) -> torch.Tensor``, minimised by the shared LoRA loop."""

BASELINES: Registry[LossFn] = Registry("baseline", "register one with asru.stages.baselines.register_baseline")


def register_baseline(name: str, trains: Callable[[str, object, object], bool] | None = None) -> Callable[[LossFn], LossFn]:
    """Decorator registering a baseline loss under ``name`` (a taken name is an error).

    ``trains(param_name, cfg, model)``, when given, picks the LoRA parameters the optimiser updates (the
    rest keep their initial, identity adapters); by default every adapter trains."""
    register = BASELINES.register(name)

    def deco(fn: LossFn) -> LossFn:
        fn.trains = trains  # type: ignore[attr-defined]
        return register(fn)

    return deco


def list_baselines() -> list[str]:
    """Names of the registered baselines, sorted."""
    return sorted(BASELINES.names())
