"""A typed registry of a process's long-lived parts, keyed by their class.

Shared code (``services/common``, ``graph``) cannot name what the code above it builds (a
service's components, a BFF's own config); the registry holds them without a
``dict[str, Any]``: ``provide`` a part, ``get``/``find`` it back as its own type."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class Components:
    def __init__(self) -> None:
        self._parts: dict[type, object] = {}

    def provide(self, part: object) -> None:
        """Holds ``part`` under its exact class (replacing one held before)."""
        self._parts[type(part)] = part

    def find(self, kind: type[T]) -> T | None:
        part = self._parts.get(kind)
        return part if isinstance(part, kind) else None

    def get(self, kind: type[T]) -> T:
        part = self.find(kind)
        if part is None:
            raise LookupError(f"no {kind.__qualname__} provided")
        return part
