"""String choices declared once, as ``typing.Literal[...]`` field types: the check, its error message
and the CLI's list of choices all come from the Literal."""

from __future__ import annotations

import dataclasses
import types
import typing

from asru.core.errors import AsruError


def _parts(tp) -> tuple[typing.Any, bool]:
    """``(inner type, allows None)`` of ``tp`` (``X | None`` -> ``(X, True)``)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 else tp), type(None) in args
    return tp, False


def literal_choices(tp) -> tuple | None:
    """The values a ``Literal[...]`` type (or ``Literal[...] | None``) allows; None for any other type."""
    inner, _ = _parts(tp)
    return typing.get_args(inner) if typing.get_origin(inner) is typing.Literal else None


def spell_choices(tp) -> str:
    """``"a, b or c"`` (``"... or null"`` when the type allows None)."""
    names = [str(c) for c in literal_choices(tp) or ()] + (["null"] if _parts(tp)[1] else [])
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def check_choice(value, tp, where: str) -> None:
    """Raise AsruError (``<where> must be a, b or c, not 'x'``) unless ``value`` is one of the Literal's values."""
    choices = literal_choices(tp)
    if choices is None or value in choices or (value is None and _parts(tp)[1]):
        return
    raise AsruError(f"{where} must be {spell_choices(tp)}, not {value!r}")


def check_choices(obj, section: str) -> None:
    """Check every ``Literal``-typed field of the dataclass ``obj`` (``section`` prefixes the key in errors)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        check_choice(getattr(obj, f.name), hints[f.name], f"{section}.{f.name}")


def choices_metavar(tp) -> str | None:
    """``{a,b,c}`` for the CLI's help of a Literal-typed option; None for other types."""
    choices = literal_choices(tp)
    return "{" + ",".join(map(str, choices)) + "}" if choices else None
