"""pai-bench: a benchmark suite for pruning neural networks at initialization.

The Python API (``pai_bench.api``): ``run``, ``sweep``, ``load_runs`` and ``RunConfig``; a new
method is a subclass of ``pai_bench.methods.Scorer``.
"""

from pathlib import Path as _Path

# In a source checkout used without installing (``PYTHONPATH=.``), the top-level folders
# methods/, baselines/ and sanity_checks/ are the subpackages pai_bench.methods etc., as
# pyproject.toml's package-dir maps them for an install: let the package look beside itself too.
_ROOT = _Path(__file__).resolve().parent.parent
if (_ROOT / "methods" / "__init__.py").is_file() and not (_Path(__file__).parent / "methods").exists():
    __path__.append(str(_ROOT))  # noqa: F821  (a package's __path__)

from pai_bench.api import (Callback, RunConfig, export_run, load_runs, register_dataset,  # noqa
                           register_method, register_model, reproduce, run, sweep)

__all__ = ["run", "sweep", "reproduce", "load_runs", "RunConfig", "Callback", "register_model",
           "register_dataset", "register_method", "export_run"]
