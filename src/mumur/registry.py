"""Name -> builder registries (timm-style): `HEADS` holds the method heads, `ENCODERS` the named
encoders."""

from __future__ import annotations

from typing import Callable, TypeVar

__all__ = ["Registry", "HEADS", "ENCODERS", "register_head", "register_encoder"]

T = TypeVar("T", bound=Callable)


class Registry:
    """A case-sensitive name -> callable map with a helpful error for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(fn: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._builders[name] = fn
            return fn

        return decorator

    def unregister(self, name: str) -> None:
        """Remove `name` (plugins and tests that register temporarily)."""
        self._builders.pop(name, None)

    def get(self, name: str) -> Callable:
        try:
            return self._builders[name]
        except KeyError:
            known = ", ".join(sorted(self._builders)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: str) -> bool:
        return name in self._builders


HEADS = Registry("head")
ENCODERS = Registry("encoder")
register_head = HEADS.register
register_encoder = ENCODERS.register
