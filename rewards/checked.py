"""Checked rewards: what a reward returns is verified where it is handed to TRL.

TRL turns ``None`` into NaN ("not applicable") and logs whatever number comes back, so a reward that
returns NaN or inf goes unnoticed, and one that raises or returns the wrong number of values ends in a
TRL traceback naming neither the reward nor the step. :func:`checked` wraps a reward so each of these
becomes one :class:`~asru.core.errors.AsruError` line naming the reward, the GRPO step and the offending
value. Checkpoints written before the failing step stay as they are, so ``--resume`` continues from
the last one once the reward is fixed.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable

from asru.core.errors import AsruError

__all__ = ["check_values", "checked"]


def _step(kwargs: dict) -> str:
    """``GRPO step N`` for the step being scored (TRL's ``global_step`` counts finished steps)."""
    state = kwargs.get("trainer_state")
    step = getattr(state, "global_step", None)
    return f"GRPO step {step + 1}" if isinstance(step, int) else "GRPO (step unknown)"


def check_values(values, n: int, name: str, where: str) -> list:
    """``values`` as a list of ``n`` finite numbers or None; AsruError naming ``name``, ``where`` and the value otherwise."""
    if values is None or isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
        raise AsruError(f"reward {name!r} returned {type(values).__name__} {values!r:.80} at {where}: "
                        f"return a list of {n} floats (None where it does not apply)")
    values = list(values.tolist() if hasattr(values, "tolist") else values)
    if len(values) != n:
        raise AsruError(f"reward {name!r} returned {len(values)} values for {n} completions at {where}: "
                        "return one value per completion (None where it does not apply)")
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise AsruError(f"reward {name!r} returned {v!r:.80} (a {type(v).__name__}) for completion {i} at {where}: "
                            "return floats, or None where it does not apply")
        if not math.isfinite(v):
            raise AsruError(f"reward {name!r} returned {v} for completion {i} at {where}: rewards must be finite numbers; "
                            "return None where it does not apply")
    return values


def _failed(name: str, where: str, exc: Exception) -> AsruError:
    if isinstance(exc, AsruError):
        return AsruError(f"{exc} (at {where})")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return AsruError(f"reward {name!r} raised {type(exc).__name__}: {first} at {where}: fix the reward; "
                     "--resume continues from the last checkpoint")


def checked(fn: Callable, name: str | None = None) -> Callable:
    """``fn`` wrapped so an exception, a wrong number of values, NaN or inf is a one-line AsruError.

    The wrapper keeps ``fn``'s ``__name__`` (TRL's log key) and is a coroutine function when ``fn`` is one.
    """
    name = name or getattr(fn, "__name__", "reward")

    if inspect.iscoroutinefunction(fn) or (callable(fn) and inspect.iscoroutinefunction(type(fn).__call__)):

        async def acall(*args, **kwargs):
            where = _step(kwargs)
            try:
                out = await fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any reward failure becomes one line naming it
                raise _failed(name, where, exc) from None
            return check_values(out, len(kwargs.get("completions", args[1] if len(args) > 1 else [])), name, where)

        wrapper = acall
    else:

        def call(*args, **kwargs):
            where = _step(kwargs)
            try:
                out = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any reward failure becomes one line naming it
                raise _failed(name, where, exc) from None
            return check_values(out, len(kwargs.get("completions", args[1] if len(args) > 1 else [])), name, where)

        wrapper = call
    try:
        functools.update_wrapper(wrapper, fn)
    except AttributeError:  # a callable instance without __module__/__qualname__
        pass
    wrapper.__name__ = name
    wrapper.__wrapped__ = fn
    return wrapper
