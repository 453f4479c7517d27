"""YAML config files: reading one, following its ``inherits`` chain, merging the layers."""

from __future__ import annotations

from pathlib import Path

from asru.core.errors import AsruError

INHERITS_KEY = "inherits"  # a config file's parent file, resolved relative to the file itself


def load_yaml(path: str | Path) -> dict:
    """Read a config YAML file into a dict; a missing or malformed file is a one-line error.

    A top-level ``inherits: other.yaml`` (relative to the file) loads that file first, recursively, and
    merges this file's values over it with :func:`merge`; a missing parent or a cycle is a one-line error.
    """
    return _load_inheriting(Path(path), ())


def _load_inheriting(path: Path, children: tuple[Path, ...]) -> dict:
    """``path``'s values merged over those of the file it inherits from; ``children`` = the files that led here."""
    key = path.resolve()
    if key in children:
        chain = " -> ".join(str(p) for p in (*children, key))
        raise AsruError(f"config files inherit from each other in a cycle ({chain}): remove one of the inherits keys")
    data = _read_yaml(path)
    parent = data.pop(INHERITS_KEY, None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        raise AsruError(f"config file {path}: {INHERITS_KEY} must name a YAML file (relative to {path.parent}), not {parent!r}")
    parent_path = path.parent / parent
    if not parent_path.is_file():
        raise AsruError(f"config file {path} inherits from {parent_path}, which does not exist: fix its {INHERITS_KEY} key "
                        f"(a path relative to {path.parent})")
    return merge(_load_inheriting(parent_path, (*children, key)), data)


def _read_yaml(path: Path) -> dict:
    """One YAML file's top-level mapping (no inheritance)."""
    import yaml

    if not path.is_file():
        raise AsruError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise AsruError(f"config file {path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise AsruError(f"config file {path} must contain a mapping at the top level")
    return data


def merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(items: list[str]) -> dict:
    """``["a.b=1", "c=x"]`` -> nested ``{"a": {"b": "1"}, "c": "x"}`` (values are coerced by the config);
    a one-line error for an item without ``=``."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise AsruError(f"an override needs KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out
