"""Pruning-at-initialization methods: the ``Scorer`` base class, its registry and the built-ins.

Importing this package registers the built-in scorers. Third-party scorers register themselves
when their module is imported: ``--plugin my_module`` on the command line, or an entry point in
the ``pai_bench.methods`` group of an installed package (see ``load_plugins``).
"""

from __future__ import annotations

import importlib
from importlib import metadata

from methods.base import SCORERS, Scorer, ScoringContext, make_scorer
from methods import grasp, layer_ratios, simple, snip, synflow  # noqa: F401  (registers them)

from pai_bench.errors import ConfigError

ENTRY_POINT_GROUP = "pai_bench.methods"


def load_plugins(modules: list[str] = ()) -> None:
    """Import ``modules`` and every installed ``pai_bench.methods`` entry point."""
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in SCORERS:
            ep.load()
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"cannot import plugin module {module!r}: {e}") from e


__all__ = ["SCORERS", "Scorer", "ScoringContext", "make_scorer", "load_plugins"]
