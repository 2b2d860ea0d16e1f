"""Sweeps: many runs, crash-safe, optionally in parallel.

A sweep is a list of ``RunConfig``s (the product of methods x sparsities x seeds x checks x
prune-at points, over shared run settings). Finished runs (their ``summary.json`` exists) are
skipped, so a killed sweep resumes where it stopped, and a killed run resumes from its last
checkpoint. A run that fails for another reason than divergence is reported, written to
``<run>/error.txt``, and retried by the next sweep; the sweep goes on.

``workers > 1`` runs that many runs at once in separate processes, each with
``threads`` torch threads (1 by default: on a 2-core machine two 1-thread runs beat one 2-thread
run, see docs/benchmarks.md). Runs that share a dense network wait for one another
(``pai_bench.pipeline.dense``).
``executor="ray"`` sends the runs to a Ray cluster instead (``pai_bench.sweeps.ray_executor``); executors
are a registry (``pai_bench.sweeps.executors``).

A TOML sweep file names the axes at top level (the plural ``axis`` names of the configuration's
fields: ``methods``, ``sparsities``, ``seeds``, ``checks``, ``prune_at``) and the settings every
run shares under ``[run]`` (any other field), both derived from ``pai_bench.config``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from pai_bench import console, paths
from pai_bench.sweeps import ray_executor  # noqa: F401  (registers the "ray" executor)
from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError, StorageError
from pai_bench.sweeps.executors import EXECUTORS, ExecutorOptions
from pai_bench.filekinds import MAX_TEXT_BYTES, read_regular_file
from pai_bench.methods import METHODS
from pai_bench.options import RunOptions
from pai_bench.pipeline.plan import Plan
from pai_bench.pipeline.prepare import prepare, setup
from pai_bench.pipeline.runner import stored_summary, threads_note


def axes(cls: type = RunConfig) -> dict[str, str]:
    """``{axis name: field name}`` of the configuration's sweepable fields."""
    return {f.metadata["axis"]: f.name for f in dataclasses.fields(cls) if f.metadata.get("axis")}


@dataclass(frozen=True)
class SweepSpec:
    """The axes of a sweep and the settings every run shares (any other ``RunConfig`` field)."""

    methods: tuple[str, ...]
    sparsities: tuple[float, ...] = (0.9,)
    seeds: tuple[int, ...] = (0,)
    checks: tuple[str, ...] = ("none",)
    prune_at: tuple[int, ...] = (0,)
    run: dict = field(default_factory=dict)

    def configs(self) -> list[RunConfig]:
        """Every run of the sweep, in a stable order (prune-at points only for scorers)."""
        out = []
        for method, s, seed, check, k in itertools.product(self.methods, self.sparsities,
                                                           self.seeds, self.checks, self.prune_at):
            if k and method in METHODS and not METHODS.get(method).takes_prune_at:
                continue
            out.append(RunConfig(method=method, sparsity=s, seed=seed, check=check, prune_at=k,
                                 **self.run))
        return list(dict.fromkeys(out))


def load_spec(path: Path | None = None, overrides: dict | None = None) -> SweepSpec:
    """A sweep from a TOML file (the axes at top level, shared settings under ``[run]``), with
    ``overrides`` (the same keys; ``run`` merged key by key) taking precedence. Without a file,
    the overrides alone."""
    data: dict = {}
    if path is not None:
        try:
            data = tomllib.loads(read_regular_file(Path(path), "sweep file",
                                                   MAX_TEXT_BYTES).decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigError(f"sweep file {path} is not UTF-8 text (byte {e.object[e.start]:#04x} "
                              f"at offset {e.start}); TOML files are UTF-8: save it as UTF-8"
                              ) from None
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read sweep file {path}: {e}") from e
        _check_run_table(data.get("run", {}), f"sweep file {path}: ")
    overrides = dict(overrides or {})
    run = {**data.get("run", {}), **overrides.pop("run", {})}
    data.update({k: v for k, v in overrides.items() if v is not None})
    data["run"] = run
    return spec_from_dict(data)


def _check_run_table(run, where: str = "") -> None:
    """ConfigError unless ``run`` (a sweep's shared settings) is one table of settings."""
    if isinstance(run, list) and run and all(isinstance(r, dict) for r in run):
        raise ConfigError(f"{where}'run' is an array of tables ([[run]]); the settings every run "
                          f"shares are one table: write [run] once, then key = value lines")
    if not isinstance(run, dict):
        raise ConfigError(f"{where}'run' must be a table of run settings ([run], then key = "
                          f"value lines), got {run!r}")


def spec_from_dict(data: dict) -> SweepSpec:
    valid = {f.name for f in dataclasses.fields(SweepSpec)}
    unknown = set(data) - valid
    if unknown:
        raise ConfigError(f"unknown sweep keys {sorted(unknown)}; valid: {sorted(valid)}")
    _check_run_table(data.get("run", {}))
    run_fields = {f.name for f in dataclasses.fields(RunConfig)} - set(axes().values())
    bad = set(data.get("run", {})) - run_fields
    if bad:
        raise ConfigError(f"unknown run settings {sorted(bad)}; valid: {sorted(run_fields)}")
    if not data.get("methods"):
        raise ConfigError("a sweep needs at least one method")
    for key in axes():
        if key in data and not isinstance(data[key], (list, tuple)):
            raise ConfigError(f"sweep key {key!r} takes a list, got {data[key]!r}")
        if key in data and not data[key]:  # an empty axis would make a sweep of no runs
            raise ConfigError(f"a sweep needs at least one value of {key} (--{key.replace('_', '-')}"
                              f" A,B,... or {key} = [...] in the sweep file), got none")
    spec_axes = {k: tuple(v) for k, v in data.items() if k in axes()}
    return SweepSpec(**spec_axes, run=dict(data.get("run", {})))


def pending(configs: list[RunConfig], results_dir: Path) -> list[RunConfig]:
    """The configs without a valid stored summary (an invalid one is moved aside)."""
    return [c for c in configs if stored_summary(c, results_dir) is None]


def run_sweep(configs: list[RunConfig], options: RunOptions,
              executor: ExecutorOptions = ExecutorOptions(), sized_for: float | None = None
              ) -> list[dict]:
    """Run every unfinished config; one progress bar with an ETA and a line per finished run.

    ``options``: those of every run (a sweep's runs get ``threads`` 1 unless it says, no bars
    or lines of their own); ``executor``: where they run (``ExecutorOptions``: local
    processes, or a Ray cluster). Before starting, says what is left and how long it will take
    here (a quick measured throughput, compared with ``sized_for`` images/s per worker when
    given)."""
    options = setup(options)  # plugins: their methods are checked here, and run in the workers
    return run_plans(prepare_all(configs, options), options, executor, sized_for)


def prepare_all(configs: list[RunConfig], options: RunOptions) -> list[Plan]:
    """Each config prepared once (``pai_bench.pipeline.prepare``: options that went through ``setup``),
    every name and option checked before anything runs; configs that name one run (``auto``
    and the precision it resolves to) are one plan."""
    plans: dict[RunConfig, Plan] = {}
    for c in dict.fromkeys(configs):
        p = prepare(c, options)
        plans.setdefault(p.config, p)
    return list(plans.values())


def run_plans(plans: list[Plan], options: RunOptions,
              executor: ExecutorOptions = ExecutorOptions(), sized_for: float | None = None
              ) -> list[dict]:
    """``run_sweep`` for plans made by ``prepare_all`` with ``options`` (set up)."""
    runner = executor.make()
    where = runner.where()
    if not plans:
        raise ConfigError("the sweep has no runs: every axis needs at least one value")
    stored = {p.config: stored_summary(p.config, options.results_dir) for p in plans}
    todo = [c for c, summary in stored.items() if summary is None]
    say = options.say
    say(f"[pai-bench] sweep: {len(stored)} runs, {len(stored) - len(todo)} already done, "
        f"{len(todo)} to run {where}")
    run_options = dataclasses.replace(options, threads=options.threads or 1).for_worker()
    for c, summary in stored.items():  # a stored result of another thread count is said
        note = summary and threads_note(summary, run_options, paths.run_dir("", c).name)
        if note:
            say(f"[pai-bench] {note}")
    if todo:
        say(console.sweep_estimate(todo, options.torch_device, runner.at_once(options.torch_device),
                                   run_options.threads, sized_for, options.results_dir))
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not options.progress)
    results = []

    def finished(config, summary, t0):
        acc = summary.get("test_accuracy")
        text = f"{acc:.4f}" if isinstance(acc, float) else summary.get("error", "n/a")
        seconds = summary.get("seconds") or time.perf_counter() - t0  # the run's own time
        who = "  (trained by another process: waited for it)" \
            if summary.get("reused") == "waited" else f"  ({seconds:.0f} s)"
        bar.write(f"  {config.method:26s} sparsity {config.sparsity:<7g} seed {config.seed} "
                  f"check {config.check:8s} prune_at {config.prune_at:<6d} "
                  f"{summary['status']:9s} {text}{who}")
        bar.update(1)
        results.append(summary)

    runner.run(todo, run_options, finished,
               say=bar.write if options.log is not None else options.say,
               plans={p.config: p for p in plans})
    bar.close()
    storage = [r["storage_error"] for r in results if r.get("storage_error")]
    if storage:  # every later run would fail the same way: the sweep's error, not a run's
        raise StorageError(f"{storage[0]} ({len(storage)} of {len(todo)} run(s) could not be "
                           f"stored; the others are kept, and a rerun resumes)")
    return results


__all__ = ["SweepSpec", "axes", "load_spec", "spec_from_dict", "pending", "run_sweep",
           "prepare_all", "run_plans",
           "EXECUTORS", "ExecutorOptions"]
