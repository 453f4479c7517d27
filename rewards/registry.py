"""Reward registry and loader: built-in names, ``module:function``, ``file.py:function``, entry points.

Resolution order of :func:`load_reward` for a spec string:

1. a built-in name (``forget``, ``retain``, ``fluency``, ``reasoning``; :func:`list_rewards`);
2. ``package.module:function`` (imported with :func:`importlib.import_module`);
3. ``path/to/file.py:function`` (only that file is executed, via
   :func:`importlib.util.spec_from_file_location`; recognised by a ``.py`` suffix or a path separator);
4. an installed entry point named ``spec`` in the group ``asru.rewards``.

Factories. A reward that needs setup (a reference model, options) is a *factory*: a class, or a
function decorated with :func:`reward_factory`, that takes keyword arguments and returns the reward
callable. :func:`load_reward` calls it with

* the user's ``options`` (from the config); an option the factory does not accept is an error, and
* the pipeline's ``context`` (``ref_model``, ``tokenizer``, ``processor`` ...); context keys the
  factory does not accept are silently dropped (so every factory can be given the full context).

Every loaded reward is checked to accept ``prompts``, ``completions`` and ``**kwargs`` (TRL calls
rewards with keyword arguments) and is given a ``__name__`` (TRL logs ``rewards/<__name__>/mean``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from asru.core.errors import AsruError
from asru.core.plugins import import_module, load_file, looks_like_path
from rewards.checked import checked

ENTRY_POINT_GROUP = "asru.rewards"
_BUILTIN_MODULES = ("rewards.forget", "rewards.retain", "rewards.fluency", "rewards.reasoning")
_FACTORY_ATTR = "__asru_reward_factory__"

__all__ = [
    "ENTRY_POINT_GROUP",
    "is_factory",
    "list_rewards",
    "load_reward",
    "load_rewards",
    "register_reward",
    "resolve_reward",
    "reward_factory",
    "validate_reward",
]


@dataclass(frozen=True)
class _Entry:
    name: str
    obj: Any


_REGISTRY: dict[str, _Entry] = {}
_BUILTINS_LOADED = False


def _ident(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def register_reward(name: str) -> Callable[[Any], Any]:
    """Decorator registering a built-in reward (function) or reward factory (class) under ``name``.

    Registering a different object under a taken name raises ``ValueError`` (re-executing the same
    definition, e.g. a module reload, is allowed). Built-ins are registered only by this decorator,
    at their definition in ``rewards/<name>.py``.
    """

    def deco(obj: Any) -> Any:
        old = _REGISTRY.get(name)
        if old is not None and _ident(old.obj) != _ident(obj):
            raise ValueError(f"reward name {name!r} is already registered by {_ident(old.obj)}")
        _REGISTRY[name] = _Entry(name, obj)
        return obj

    return deco


def reward_factory(fn: Callable) -> Callable:
    """Mark a function as a reward factory: ``fn(**options_and_context) -> reward callable``."""
    setattr(fn, _FACTORY_ATTR, True)
    return fn


def is_factory(obj: Any) -> bool:
    """True for a class or a function marked with :func:`reward_factory`."""
    return inspect.isclass(obj) or bool(getattr(obj, _FACTORY_ATTR, False))


def _builtins() -> dict[str, _Entry]:
    """The built-in registry, importing the built-in reward modules on first use."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        for mod in _BUILTIN_MODULES:
            importlib.import_module(mod)
        _BUILTINS_LOADED = True
    return _REGISTRY


def _entry_points() -> list:
    """Installed entry points of the ``asru.rewards`` group."""
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _summary(obj: Any) -> str:
    """First line of an object's docstring ("" if none)."""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def list_rewards() -> dict[str, str]:
    """Name -> one-line description for the built-ins and the installed ``asru.rewards`` entry points.

    An entry point that fails to load is listed with the error instead of a description; an entry
    point shadowed by a built-in of the same name is left out (built-ins win).
    """
    out = {name: _summary(e.obj) for name, e in sorted(_builtins().items())}
    for ep in sorted(_entry_points(), key=lambda e: e.name):
        if ep.name in out:
            continue
        try:
            out[ep.name] = _summary(ep.load()) or ep.value
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break --list-rewards
            out[ep.name] = f"(cannot load {ep.value}: {type(exc).__name__}: {exc})"
    return out


# ---------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------
def _get_attr(module: Any, attr: str, spec: str, where: str) -> Any:
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(
                n
                for n, v in vars(module).items()
                if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == module.__name__
            )
            hint = f" (callables there: {', '.join(names)})" if names else ""
            raise AsruError(f"reward {spec!r}: {where} has no function {attr!r}{hint}")
        obj = getattr(obj, part)
    return obj


def _resolve(spec: str) -> tuple[str, Any]:
    """Map a spec string to ``(name, object)`` following the documented order."""
    if not isinstance(spec, str) or not spec.strip():
        raise AsruError(f"reward spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    builtins = _builtins()
    if spec in builtins:
        return spec, builtins[spec].obj
    if ":" in spec:
        target, _, attr = spec.rpartition(":")
        if not target or not attr or not all(p.isidentifier() for p in attr.split(".")):
            raise AsruError(f"bad reward spec {spec!r}: use a built-in name, module.sub:function or path/to/file.py:function")
        if looks_like_path(target):
            module = load_file(target, f"reward {spec!r}")
            return attr.rpartition(".")[2], _get_attr(module, attr, spec, f"file {target}")
        if not all(p.isidentifier() for p in target.split(".")):
            raise AsruError(f"bad reward spec {spec!r}: {target!r} is neither a module name nor a .py path")
        module = import_module(target, f"reward {spec!r}")
        return attr.rpartition(".")[2], _get_attr(module, attr, spec, f"module {target}")
    if spec.endswith(".py"):
        raise AsruError(f"reward {spec!r}: name the function too, as {spec}:function_name")
    for ep in _entry_points():
        if ep.name == spec:
            try:
                return spec, ep.load()
            except Exception as exc:  # noqa: BLE001 - any error in plugin code becomes a one-line AsruError
                raise AsruError(f"reward {spec!r}: entry point {ep.value} failed to load: {type(exc).__name__}: {exc}") from None
    known = ", ".join(list_rewards())
    raise AsruError(f"unknown reward {spec!r} (known: {known}; or use module.sub:function or path/to/file.py:function)")


def resolve_reward(spec: str) -> tuple[str, Any]:
    """``(default name, object)`` for a spec without building or validating it (dry runs, planning).

    The object is the reward function or the factory (check with :func:`is_factory`). Raises the
    same AsruErrors as :func:`load_reward` for unknown names, bad paths and missing functions.
    """
    return _resolve(spec)


# ---------------------------------------------------------------------------------------------
# Validation and construction
# ---------------------------------------------------------------------------------------------
def validate_reward(fn: Any, name: str) -> None:
    """Raise AsruError unless ``fn`` is callable as ``fn(prompts=..., completions=..., completion_ids=..., **columns)``."""
    if not callable(fn):
        raise AsruError(f"reward {name!r} is a {type(fn).__name__}, not a callable")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins/C callables without a signature: trust them
    params = list(sig.parameters.values())
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        raise AsruError(
            f"reward {name!r} has signature {sig}: it must accept prompts, completions and **kwargs "
            f"(dataset columns arrive as keyword arguments)"
        )
    try:
        sig.bind(prompts=[], completions=[], completion_ids=None)
    except TypeError as exc:
        raise AsruError(
            f"reward {name!r} has signature {sig}: TRL calls it as f(prompts=..., completions=..., "
            f"completion_ids=..., **columns) ({exc}); read dataset columns from **kwargs or give them defaults"
        ) from None


def _accepts(fn: Callable) -> tuple[set[str], bool]:
    """(named keyword parameters, has **kwargs) of a callable (a class: its ``__init__``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _build(name: str, obj: Any, options: Mapping[str, Any], context: Mapping[str, Any]) -> Callable:
    """Call a factory with options + accepted context, or check that a plain reward got no options."""
    if not is_factory(obj):
        if options:
            raise AsruError(
                f"reward {name!r} takes no options (got {', '.join(sorted(options))}); "
                f"make it a factory (a class or @reward_factory) to accept options"
            )
        return obj
    names, var_kw = _accepts(obj)
    unknown = [k for k in options if k not in names and not var_kw]
    if unknown:
        allowed = ", ".join(sorted(names)) or "none"
        raise AsruError(f"reward {name!r}: unknown option(s) {', '.join(unknown)} (accepted: {allowed})")
    kwargs = {k: v for k, v in context.items() if var_kw or k in names}
    kwargs.update(options)
    try:
        return obj(**kwargs)
    except AsruError:
        raise
    except TypeError as exc:
        raise AsruError(f"reward {name!r}: cannot build it with {sorted(kwargs)}: {exc}") from None


def _named(fn: Callable, name: str) -> Callable:
    """Give ``fn`` the ``__name__`` ``name``: set it when possible, else wrap it."""
    if getattr(fn, "__name__", None) == name:
        return fn
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args, **kwargs):
                return await fn(*args, **kwargs)

            awrapper.__name__ = name
            return awrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

        wrapper.__name__ = name
        return wrapper
    try:
        fn.__name__ = name  # instances of reward classes
        return fn
    except (AttributeError, TypeError):

        def wrapper2(*args, **kwargs):
            return fn(*args, **kwargs)

        wrapper2.__name__ = name
        wrapper2.__doc__ = getattr(fn, "__doc__", None)
        return wrapper2


def load_reward(
    spec: str,
    options: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Callable:
    """Resolve ``spec``, build it if it is a factory, validate it and return the reward callable.

    ``options``: user options for a factory (config). ``context``: objects the pipeline offers to
    factories (``ref_model``, ``tokenizer`` ...), passed only where accepted. ``name``: the
    ``__name__`` to give the callable (default: the built-in/entry-point name, or the function name
    of a ``module:function`` / ``file.py:function`` spec).
    """
    default_name, obj = _resolve(spec)
    fn = _build(spec, obj, dict(options or {}), dict(context or {}))
    validate_reward(fn, spec)
    return _named(fn, name or default_name)


def load_rewards(rewards: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> tuple[list[Callable], list[float]]:
    """Load the rewards of a config mapping ``spec -> weight`` or ``spec -> {weight: w, **options}``.

    Returns ``(reward_funcs, reward_weights)`` for ``GRPOTrainer``/``GRPOConfig``. Names are made
    unique (``brevity``, ``brevity_2``) so TRL's per-reward logs do not collide. Each function is
    :func:`rewards.checked.checked`: an exception, a wrong number of values, NaN or inf is a one-line
    error naming the reward and the GRPO step.
    """
    if not isinstance(rewards, Mapping) or not rewards:
        raise AsruError("rl.rewards must be a non-empty mapping of reward -> weight, e.g. {forget: 1.0, retain: 1.0}")
    funcs, weights, seen = [], [], set()
    for spec, value in rewards.items():
        options: dict[str, Any] = {}
        if isinstance(value, Mapping):
            options = dict(value)
            weight = options.pop("weight", 1.0)
        else:
            weight = value
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise AsruError(f"rl.rewards: weight of {spec!r} must be a finite number, got {weight!r}")
        default_name, _ = _resolve(spec)
        name, k = default_name, 2
        while name in seen:
            name, k = f"{default_name}_{k}", k + 1
        seen.add(name)
        funcs.append(checked(load_reward(spec, options, context, name=name), name))
        weights.append(float(weight))
    return funcs, weights
