"""One trial of the steering search: the settings it tried and how they scored."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Trial:
    """One screened configuration."""

    number: int
    layers: list[int]
    coeff: float
    refusal: float
    leak: float
    retain: float
    kl: float
    feasible: bool = True
    example: str = ""
    pareto: bool = False
    chosen: bool = False
