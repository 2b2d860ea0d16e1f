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
with their help), with the command line's defaults (``precision="auto"``); options are the fields
of ``pai_bench.options.RunOptions`` (and, for sweeps, ``pai_bench.sweeps.executors.ExecutorOptions``);
results go to ``results_dir`` (default ``$PAI_BENCH_RESULTS``, else ``./results``) exactly as
from the command line, so ``table`` and ``plot`` read them too.
"""

from __future__ import annotations

from pathlib import Path

from pai_bench.sweeps import experiments
from pai_bench.sweeps.sweep import run_sweep, spec_from_dict
from pai_bench.pipeline import runner
from pai_bench.config import RunConfig, entry_defaults
from pai_bench.data import DATASETS
from pai_bench.errors import ConfigError
from pai_bench.sweeps.executors import ExecutorOptions
from pai_bench.pipeline.export import export_run
from pai_bench.methods import METHODS
from pai_bench.models import register_model
from pai_bench.options import RunOptions, from_kwargs, split_kwargs
from pai_bench.pipeline.prepare import prepare, run_settings, setup
from pai_bench.analysis.results import load_runs
from pai_bench.training.train import Callback


def _options(entry: str, given: dict) -> RunOptions:
    """The run options of an API entry point: the CLI's, but no progress bars unless asked
    (set up, once, by ``pai_bench.pipeline.prepare``)."""
    return from_kwargs(RunOptions, entry, {"progress": False, **given})


def run(config: RunConfig | None = None, *, masks: Path | str | None = None, callbacks=(),
        **kwargs) -> dict:
    """Run one configuration and return its summary; a run already stored returns its stored
    summary. ``config``, or the ``RunConfig`` fields as keywords (``method="snip"``, ...);
    every other keyword is a ``RunOptions`` field (``results_dir``, ``data_root``, ``device``,
    ``threads``, ``eval_every``, ``loggers``, ``log``, ...). ``masks``: train the masks of this
    file (as ``--masks``). ``callbacks``: ``pai_bench.Callback`` objects added to the training
    loop."""
    given, settings = split_kwargs(kwargs, RunOptions)
    options = setup(_options("run", given))  # the one front door (pai_bench.pipeline.prepare)
    method = None
    if config is None:
        config, method = run_settings(settings, masks)  # as the CLI: a contradiction refused
    elif settings or masks is not None:
        raise ConfigError(f"give a config or its settings (or masks), not both: "
                          f"{sorted(settings) or ['masks']}")
    return runner.execute_plan(prepare(config, options, method), options, tuple(callbacks))


def sweep(methods, *, run: dict | None = None, **kwargs) -> list[dict]:
    """Every combination of ``methods`` and the axes (``sparsities``, ``seeds``, ``checks``,
    ``prune_at``), sharing the settings ``run``; resumable like the CLI's ``sweep``. Every other
    keyword is a ``RunOptions`` field or an ``ExecutorOptions`` field (``workers``,
    ``executor``, ``runs_per_gpu``, ``ray_address``): the options ``sweep`` has. Returns the
    results of the runs done this time."""
    given, executor, axes = split_kwargs(kwargs, RunOptions, ExecutorOptions)
    spec = spec_from_dict(dict(methods=list(methods),
                                      run={**entry_defaults(), **(run or {})},
                                      **{k: list(v) for k, v in axes.items()}))
    return run_sweep(spec.configs(), _options("sweep", given),
                            from_kwargs(ExecutorOptions, "sweep", executor))


def reproduce(name: str, scale: str = "cpu", *, out: Path | str | None = None,
              methods: tuple[str, ...] = (), **kwargs) -> tuple[list[dict], Path]:
    """Experiment ``name`` at ``scale`` (as ``reproduce``), with ``methods`` added where its
    findings compare them: its runs, then its tables and figures in ``out``. Keywords:
    ``RunOptions`` and ``ExecutorOptions`` fields (``plugins`` imports a plugin's method)."""
    given, executor, rest = split_kwargs(kwargs, RunOptions, ExecutorOptions)
    if rest:
        raise ConfigError(f"unknown option {sorted(rest)[0]!r} of reproduce")
    return experiments.reproduce(name, scale, _options("reproduce", given),
                                 from_kwargs(ExecutorOptions, "reproduce", executor), out=out,
                                 methods=tuple(methods))


def register_dataset(spec) -> None:
    """Register a data set: a ``pai_bench.data.DatasetSpec`` (see ``pai_bench/data/sets.py``;
    or use the ``imagefolder`` data set for any ``root/{train,test}/<class>/*`` tree). Its
    files name its runs: give ``fingerprint`` (root -> digest) when the default, every file
    under the data root, would read too much (docs/identity.md)."""
    DATASETS.register(spec)


def register_method(cls):
    """Register a method class (usable as a decorator). Subclassing ``Scorer`` with a ``name``
    already registers it: this returns such a class as it is; any other class of a name
    already taken is refused, as the registry refuses every duplicate."""
    if cls.name in METHODS and METHODS.get(cls.name) is cls:
        return cls
    return METHODS.register(cls)


__all__ = ["run", "sweep", "reproduce", "load_runs", "RunConfig", "Callback", "register_model",
           "register_dataset", "register_method", "export_run"]
