"""Pruning methods: the ``Scorer`` base class, the one ``METHODS`` registry and the built-ins.

Importing this package registers every built-in method: the scorers of this folder and the
after-training baselines of ``pai_bench.baselines``. Third-party scorers register themselves
when their module is imported: ``--plugin my_module`` on the command line, or an entry point in
the ``pai_bench.methods`` group of an installed package (see ``load_plugins``).
"""

from __future__ import annotations

import importlib
from importlib import metadata

from pai_bench.data import DATASETS
from pai_bench.errors import ConfigError
from pai_bench.models import MODELS
from pai_bench.methods.base import METHODS, Method, Scorer, ScoringContext, make_method
from pai_bench.methods import given, grasp, layer_ratios, simple, snip, synflow  # noqa: F401
from pai_bench.methods import ntk_sap, phew  # noqa: F401
from pai_bench.methods import progressive, prospr  # noqa: F401
from pai_bench import baselines  # noqa: F401  (registers the after-training baselines)

ENTRY_POINT_GROUP = "pai_bench.methods"
# Entry-point groups an installed package can register into: methods, models, data sets.
ENTRY_POINT_GROUPS = {ENTRY_POINT_GROUP: METHODS, "pai_bench.models": MODELS,
                      "pai_bench.datasets": DATASETS}


def scorer_names() -> list[str]:
    """The registered methods that prune at initialization (or at ``prune_at``)."""
    return [n for n, cls in METHODS.items() if not cls.after_training]


def baseline_names() -> list[str]:
    """The registered methods whose masks come after training."""
    return [n for n, cls in METHODS.items() if cls.after_training]


def load_plugins(modules: list[str] | tuple[str, ...] = ()) -> None:
    """Import ``modules`` and every installed entry point of the groups ``pai_bench.methods``,
    ``pai_bench.models`` and ``pai_bench.datasets`` (a module that registers what it names).

    A module that fails to import is a ConfigError naming it and the exception it raised."""
    for group, registry in ENTRY_POINT_GROUPS.items():
        for ep in metadata.entry_points(group=group):
            if ep.name not in registry:
                _import(ep.value.partition(":")[0], ep.load)
    for module in modules:
        _import(module, lambda: importlib.import_module(module))


def _import(module: str, load) -> None:
    try:
        load()
    except ConfigError:
        raise
    except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure of a plugin's code is
        # the user's to see; a sys.exit at import would end the CLI silently
        raise ConfigError(f"cannot import plugin module {module!r}: "
                          f"{type(e).__name__}: {e}") from e


__all__ = ["METHODS", "Method", "Scorer", "ScoringContext", "make_method", "load_plugins",
           "scorer_names", "baseline_names"]
