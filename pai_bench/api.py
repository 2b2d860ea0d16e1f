"""The Python API: what the command line does, as calls that return data.

Example (a notebook, a script)::

    import pai_bench

    summary = pai_bench.run(method="synflow", model="cifar_resnet_20", sparsity=0.9,
                            preset="smoke", data_root="../shared/data/cifar10-jpeg")
    summary["test_accuracy"]

    pai_bench.sweep(methods=["snip", "random"], sparsities=[0.5, 0.9], seeds=[0, 1],
                    run=dict(preset="smoke"), data_root="../shared/data/cifar10-jpeg")
    runs = pai_bench.load_runs("results")          # one pandas row per stored run

Settings are the fields of ``pai_bench.RunConfig`` (``python -m pai_bench run --help`` lists them
with their help), with the command line's defaults (``precision="auto"``); results go to ``results_dir`` (default ``$PAI_BENCH_RESULTS``, else
``./results``) exactly as from the command line, so ``table`` and ``plot`` read them too.
"""

from __future__ import annotations

from pathlib import Path

from pai_bench import paths, runner
from pai_bench import sweeps
from pai_bench.config import RunConfig, entry_defaults
from pai_bench.data import resolve_data_root
from pai_bench.device import resolve_device
from pai_bench.data import DATASETS
from pai_bench.export import export_run
from pai_bench.methods import METHODS
from pai_bench.models import register_model
from pai_bench.results import load_runs
from pai_bench.train import Callback


def run(config: RunConfig | None = None, *, results_dir: Path | str | None = None,
        data_root: Path | str | None = None, device: str = "auto", progress: bool = False,
        log=print, callbacks=(), eval_every: int = 1, loggers=(), **settings) -> dict:
    """Run one configuration (``config``, or ``RunConfig(**settings)``) and return its summary;
    a run already stored returns its stored summary. ``callbacks``: ``pai_bench.Callback``
    objects added to the training loop; ``eval_every``: test-set evaluation every K epochs in
    ``metrics.csv`` (0: only at the end)."""
    config = config if config is not None else RunConfig(**{**entry_defaults(), **settings})
    return runner.execute(config, data_root=resolve_data_root(data_root),
                          results_dir=Path(results_dir or paths.default_results_dir()),
                          device=resolve_device(device), progress=progress, log=log,
                          callbacks=tuple(callbacks), eval_every=eval_every,
                          loggers=tuple(loggers))


def sweep(methods, *, results_dir: Path | str | None = None, data_root=None,
          device: str = "auto", workers: int = 1, progress: bool = False, run: dict | None = None,
          **axes) -> list[dict]:
    """Every combination of ``methods`` and the axes (``sparsities``, ``seeds``, ``checks``,
    ``prune_at``), sharing the settings ``run``; resumable like the CLI's ``sweep``. Returns the
    results of the runs done this time."""
    spec = sweeps.spec_from_dict(dict(methods=list(methods), run={**entry_defaults(), **(run or {})},
                                      **{k: list(v) for k, v in axes.items()}))
    return sweeps.run_sweep(spec.configs(), data_root=resolve_data_root(data_root),
                            results_dir=Path(results_dir or paths.default_results_dir()),
                            device=str(resolve_device(device)), workers=workers,
                            progress=progress)


def register_dataset(name: str, spec) -> None:
    """Register a data set: a ``pai_bench.data.DatasetSpec`` (see ``pai_bench/data/sets.py``;
    or use the ``imagefolder`` data set for any ``root/{train,test}/<class>/*`` tree)."""
    DATASETS.register(name, spec)


def register_method(cls):
    """Register a method class (subclassing ``pai_bench.methods.Scorer`` with a ``name``
    already does; this is for a class defined without one, as a decorator)."""
    if cls.name not in METHODS:
        METHODS.register(cls.name, cls)
    return cls


__all__ = ["run", "sweep", "load_runs", "RunConfig", "Callback", "register_model",
           "register_dataset", "register_method", "export_run"]
