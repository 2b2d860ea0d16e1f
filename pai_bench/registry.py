"""The one registry type: scorers, models, data sets and sanity checks all use it.

Modelled on torchvision's ``_api.py``: registering a name twice is an error, and asking for an
unknown name is an error that lists the valid ones.

An entry carries its own name (a spec's ``name`` field, a class's ``name`` attribute), so a
name is written once. Example::

    MODELS = Registry("model")
    MODELS.register(ModelSpec(name="mlp", build=build_mlp, ...))

    MODELS.get("mlp")        # the spec
    MODELS.get("mpl")        # ConfigError: unknown model 'mpl'; valid models: mlp
"""

from __future__ import annotations

import re
from typing import Generic, Iterator, TypeVar

from pai_bench.errors import ConfigError

# A name becomes part of a result folder's name: nothing that could climb out of it.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, obj: T) -> T:
        """Register ``obj`` under its own ``name``; returns it (usable as a class decorator)."""
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ConfigError(f"a {self.kind} name must be letters, digits, '_', '-' or '.' "
                              f"(not starting with '.' or '-'), got {name!r}")
        if name in self._entries:
            raise ConfigError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (the ``registry`` test fixture removes what a test registered)."""
        self._entries.pop(name, None)

    def snapshot(self) -> dict[str, T]:
        """The entries now, for ``restore`` (tests that register throw-away entries)."""
        return dict(self._entries)

    def restore(self, entries: dict[str, T]) -> None:
        self._entries = dict(entries)
