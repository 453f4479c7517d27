"""User-facing errors: one line, a non-zero exit, no traceback."""


class AsruError(Exception):
    """A mistake the user can fix (bad input, bad option, missing file or extra).

    The message is printed as a single line by the CLI; it should name what is wrong and the fix.
    """


def require(module: str, extra: str | None = None):
    """Import an optional dependency or raise AsruError naming the extra/package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        hint = f"pip install 'asru[{extra}]'" if extra else f"pip install {module}"
        raise AsruError(f"optional dependency {module!r} is not installed: {hint}") from None
