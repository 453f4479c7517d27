"""The evaluation's metric registry: each metric is one function registered by name.

A metric sees an :class:`EvalContext` and returns a dict of named values that are merged into the
results. Its ``scope`` says when it runs:

* ``"answers"``: once per split, after the split's answers were generated and scored (``ctx.split``,
  ``ctx.free`` and ``ctx.answers`` are set); values go to that split.
* ``"forget"``: once, after every split, with the (subsampled) forget split; values go to ``forget``.

``enabled(cfg)`` decides from the eval settings whether it runs at all; a metric that does not apply to
a split returns ``{}``. Add one with :func:`register_metric` in a plugin file (``--plugins my_metric.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from asru.core.registry import Registry
from asru.data.schema import Record

Scope = Literal["answers", "forget"]


@dataclass
class EvalContext:
    """What a metric may read: the settings, the model(s), the data and the split being scored."""

    cfg: Any
    lm: Any
    ref: Any
    data: dict[str, list[Record]]
    limited: dict[str, list[Record]]
    out_dir: Path
    split: str = ""
    free: list[Record] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    # every split scored so far: (its free-text records, the model's answers to them)
    answered: dict[str, tuple[list[Record], list[str]]] = field(default_factory=dict)
    # the benchmark's teach split when the caller passed one: training data of the relearning attack, never scored
    teach: list[Record] = field(default_factory=list)

    @property
    def forget(self) -> list[Record]:
        """The forget split as evaluated (after ``eval.limit``)."""
        return self.limited.get("forget", [])


@dataclass(frozen=True)
class Metric:
    """A registered metric: its function, scope and on/off switch."""

    name: str
    fn: Callable[[EvalContext], dict]
    scope: Scope
    enabled: Callable[[Any], bool]


METRICS: Registry[Metric] = Registry("metric", "register one with asru.eval.registry.register_metric")


def register_metric(name: str, scope: Scope = "answers", enabled: Callable[[Any], bool] | None = None):
    """Decorator registering ``fn(ctx) -> dict`` as metric ``name`` (runs in ``scope`` when ``enabled(cfg)``)."""
    if scope not in ("answers", "forget"):
        raise ValueError(f"metric scope must be 'answers' or 'forget', got {scope!r}")

    def deco(fn: Callable[[EvalContext], dict]) -> Callable[[EvalContext], dict]:
        METRICS.add(name, Metric(name, fn, scope, enabled or (lambda cfg: True)))
        return fn

    return deco


def active_metrics(cfg, scope: Scope) -> list[Metric]:
    """The metrics of ``scope`` that ``cfg`` turns on, in registration order."""
    return [m for _, m in METRICS.items() if m.scope == scope and m.enabled(cfg)]
