"""pai-bench: a benchmark suite for pruning neural networks at initialization.

The Python API (``pai_bench.api``): ``run``, ``sweep``, ``reproduce``, ``load_runs`` and
``RunConfig``; a new method is a subclass of ``pai_bench.methods.Scorer``.

The API's names are loaded on first use, so that ``python -m pai_bench --help`` or a one-line
input error does not pay for the analysis stack (pandas, statsmodels, matplotlib).
"""

import importlib

from pai_bench import _compat

__all__ = ["run", "sweep", "reproduce", "load_runs", "RunConfig", "Callback", "register_model",
           "register_dataset", "register_method", "export_run"]

_compat.install()


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("pai_bench.api"), name)
    raise AttributeError(f"module 'pai_bench' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
