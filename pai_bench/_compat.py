"""The module paths of release 0.1, before the modules moved into folders by concern (issue
37): ``import pai_bench.runner`` and ``from pai_bench.results import load_runs`` keep working for
one release, with a DeprecationWarning naming the new path. One table, one import hook; nothing in
the suite itself imports an old path (``tests/test_layers.py``)."""  # relayout: keep old names

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {  # old module -> its module now
    "plan": "pipeline.plan", "runner": "pipeline.runner", "chain": "pipeline.chain",
    "dense": "pipeline.dense", "export": "pipeline.export",
    "train": "training.train", "callbacks": "training.callbacks",
    "executors": "sweeps.executors", "worker": "sweeps.worker",
    "ray_executor": "sweeps.ray_executor", "experiments": "sweeps.experiments",
    "results": "analysis.results", "table": "analysis.table", "findings": "analysis.findings",
    "verdicts": "analysis.verdicts", "design": "analysis.design", "plots": "analysis.plots",
    "report": "analysis.report", "latex": "analysis.latex",
    "commands": "cli.commands",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``pai_bench.<old>`` and hands back the module at its new path, unchanged (the
    import system sets the old name's spec on the module it is given: put back its own)."""

    def __init__(self):
        self._specs = {}

    def find_spec(self, fullname, path=None, target=None):
        old = fullname.removeprefix("pai_bench.")
        if fullname.startswith("pai_bench.") and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = "pai_bench." + MOVED[spec.name.removeprefix("pai_bench.")]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=3)
        module = importlib.import_module(new)
        self._specs[new] = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self._specs[module.__name__]  # already executed: only its own spec


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
