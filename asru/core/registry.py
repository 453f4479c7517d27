"""One registry per user-visible list (methods, metrics, benchmark formats, model aliases).

A :class:`Registry` maps names to entries and generates what the user sees from them: the choices in
help texts (:meth:`Registry.choices`) and the one-line error for an unknown name (:meth:`Registry.get`).
Adding an entry is one registration, from the project's own modules or from a plugin file the user
names with ``--plugins`` (:mod:`asru.core.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from asru.core.errors import AsruError

T = TypeVar("T")


class DuplicateNameError(AsruError, ValueError):
    """A name registered twice with different entries."""


class Registry(Generic[T]):
    """Named entries of one kind; ``kind`` (e.g. "method") is the word used in messages."""

    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Register ``entry`` under ``name``; a taken name is an error unless ``replace``."""
        if not isinstance(name, str) or not name.strip():
            raise AsruError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries and not replace and self._entries[name] is not entry:
            raise DuplicateNameError(f"{self.kind} {name!r} is already registered: pick another name")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda entry: self.add(name, entry)

    def get(self, name: str) -> T:
        """The entry for ``name``, or a one-line error listing the registered names."""
        if name not in self._entries:
            hint = f" ({self.hint})" if self.hint else ""
            raise AsruError(f"unknown {self.kind} {name!r}: choose from {self.choices()}{hint}")
        return self._entries[name]

    def find(self, name: str) -> T | None:
        """The entry for ``name``, or None."""
        return self._entries.get(name)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def choices(self) -> str:
        """Registered names as a comma-separated list, for help texts and messages."""
        return ", ".join(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, entry)`` pairs in registration order."""
        return iter(list(self._entries.items()))

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
