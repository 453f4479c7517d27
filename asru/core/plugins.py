"""Load user plugins: only the files and modules the user names, never a directory scan.

A plugin is a Python file (``path/to/plugin.py``) or an importable module (``package.module``) whose
top level registers what it adds (a method, a metric, a benchmark format, a model alias, a reward).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from asru.core.errors import AsruError

MODULE_PREFIX = "asru_plugin_"


def looks_like_path(target: str) -> bool:
    """True when ``target`` names a file rather than a module."""
    return target.endswith(".py") or "/" in target or os.sep in target


def load_file(path_str: str, what: str) -> ModuleType:
    """Execute only the file ``path_str`` as a uniquely named module (once) and return it.

    ``what`` names the request in errors (e.g. ``"plugin 'x.py'"``).
    """
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise AsruError(f"{what}: file {path_str} not found (give an existing path/to/file.py)")
    if path.suffix != ".py":
        raise AsruError(f"{what}: {path_str} is not a .py file")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    mod_name = f"{MODULE_PREFIX}{resolved.stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, resolved)
    if spec is None or spec.loader is None:
        raise AsruError(f"{what}: cannot load {path_str} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except AsruError:
        del sys.modules[mod_name]
        raise
    except Exception as exc:  # noqa: BLE001 - any error in user code becomes a one-line AsruError
        del sys.modules[mod_name]
        raise AsruError(f"{what}: error while executing {path_str}: {type(exc).__name__}: {exc}") from None
    return module


def import_module(mod_name: str, what: str) -> ModuleType:
    """Import ``mod_name``; a missing module or an error inside it is a one-line error naming ``what``."""
    try:
        return importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name and (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
            raise AsruError(f"{what}: no module named {exc.name!r} (install it, add it to PYTHONPATH, "
                            "or give a path/to/file.py)") from None
        raise AsruError(f"{what}: importing {mod_name} failed: {exc}") from None
    except AsruError:
        raise
    except Exception as exc:  # noqa: BLE001 - any error in user code becomes a one-line AsruError
        raise AsruError(f"{what}: importing {mod_name} failed: {type(exc).__name__}: {exc}") from None


def load_plugin(spec: str) -> ModuleType:
    """Load one plugin given as a ``.py`` path or a module name."""
    spec = spec.strip()
    if not spec:
        raise AsruError("empty plugin name: give path/to/plugin.py or package.module")
    what = f"plugin {spec!r}"
    if looks_like_path(spec):
        return load_file(spec, what)
    if not all(part.isidentifier() for part in spec.split(".")):
        raise AsruError(f"{what} is neither a .py path nor a module name")
    return import_module(spec, what)


def load_plugins(specs: list[str] | tuple[str, ...]) -> list[ModuleType]:
    """Load each named plugin, in order."""
    return [load_plugin(s) for s in specs]
