"""The one registry type: scorers, models, data sets and sanity checks all use it.

Modelled on torchvision's ``_api.py``: registering a name twice is an error, and asking for an
unknown name is an error that lists the valid ones.

Example::

    MODELS = Registry("model")

    @MODELS.register("mlp")
    def mlp(...): ...

    MODELS.get("mlp")        # the builder
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

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        if obj is None:
            def decorator(o: T) -> T:
                self.register(name, o)
                return o
            return decorator
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
        """Remove ``name`` (for tests that register throw-away entries)."""
        self._entries.pop(name, None)
