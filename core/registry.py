"""The one registry shape shared by mining strategies and false-negative detectors."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named, interchangeable implementations, in registration order.

    Args:
        kind: what is registered, for messages ("strategy", "detector").
        unknown_error: the exception raised for an unknown name (it lists the valid names).
    """

    def __init__(self, kind: str, unknown_error: type[Exception] = ValueError) -> None:
        self.kind = kind
        self.unknown_error = unknown_error
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add an item; a second one under the same name is refused with ValueError."""
        if name in self._items:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """Return the item registered under ``name``."""
        try:
            return self._items[name]
        except KeyError:
            raise self.unknown_error(
                f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._items)
