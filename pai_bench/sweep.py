"""Sweeps: many runs, crash-safe, optionally in parallel.

A sweep is a list of ``RunConfig``s (the product of methods x sparsities x seeds x checks x
prune-at points, over shared run settings). Finished runs (their ``summary.json`` exists) are
skipped, so a killed sweep resumes where it stopped, and a killed run resumes from its last
checkpoint. A run that fails for another reason than divergence is reported, written to
``<run>/error.txt``, and retried by the next sweep; the sweep goes on.

``workers > 1`` runs that many runs at once in separate processes, each with
``threads`` torch threads (1 by default: on a 2-core machine two 1-thread runs beat one 2-thread
run, see the README). Runs that share a dense network wait for one another (``pai_bench.dense``).
``executor="ray"`` sends the runs to a Ray cluster instead (``pai_bench.ray_executor``).
"""

from __future__ import annotations

import itertools
import time
import tomllib
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path

import multiprocessing as mp

from pai_bench import paths
from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.io import atomic_write_text

EXECUTORS = ("local", "ray")
AXES = {"methods": "method", "sparsities": "sparsity", "seeds": "seed", "checks": "check",
        "prune_at": "prune_at"}


@dataclass(frozen=True)
class SweepSpec:
    """The axes of a sweep and the settings every run shares (any ``RunConfig`` field)."""

    methods: tuple[str, ...]
    sparsities: tuple[float, ...] = (0.9,)
    seeds: tuple[int, ...] = (0,)
    checks: tuple[str, ...] = ("none",)
    prune_at: tuple[int, ...] = (0,)
    run: dict = field(default_factory=dict)

    def configs(self) -> list[RunConfig]:
        """Every run of the sweep, in a stable order (prune-at points only for scorers)."""
        from baselines import BASELINES
        out = []
        for method, s, seed, check, k in itertools.product(self.methods, self.sparsities,
                                                           self.seeds, self.checks, self.prune_at):
            if k and method in BASELINES:
                continue
            out.append(RunConfig(method=method, sparsity=s, seed=seed, check=check, prune_at=k,
                                 **self.run))
        return list(dict.fromkeys(out))


def load_spec(path: Path) -> SweepSpec:
    """A sweep from a TOML file: the axes at top level, shared settings under ``[run]``."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read sweep file {path}: {e}") from e
    return spec_from_dict(data)


def spec_from_dict(data: dict) -> SweepSpec:
    valid = {f.name for f in fields(SweepSpec)}
    unknown = set(data) - valid
    if unknown:
        raise ConfigError(f"unknown sweep keys {sorted(unknown)}; valid: {sorted(valid)}")
    run_fields = {f.name for f in fields(RunConfig)} - set(AXES.values())
    bad = set(data.get("run", {})) - run_fields
    if bad:
        raise ConfigError(f"unknown run settings {sorted(bad)}; valid: {sorted(run_fields)}")
    if not data.get("methods"):
        raise ConfigError("a sweep needs at least one method")
    axes = {k: tuple(v) for k, v in data.items() if k in AXES}
    return SweepSpec(**axes, run=dict(data.get("run", {})))


def pending(configs: list[RunConfig], results_dir: Path) -> list[RunConfig]:
    return [c for c in configs
            if not (paths.run_dir(results_dir, c) / paths.SUMMARY).exists()]


def run_one(config: RunConfig, data_root, results_dir, device: str, threads: int | None,
            plugins: tuple[str, ...] = ()) -> dict:
    """Execute one run in this process; returns its summary or {"status": "failed", ...}."""
    import torch

    import methods
    from pai_bench import runner
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    methods.load_plugins(list(plugins))
    try:
        return runner.execute(config, data_root=data_root, results_dir=Path(results_dir),
                              device=torch.device(device), progress=False, log=lambda *a: None)
    except Exception as e:  # noqa: BLE001 - a sweep records any failure and goes on
        rdir = paths.run_dir(results_dir, config)
        rdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(rdir / "error.txt", traceback.format_exc())
        return {"status": "failed", "error": f"{type(e).__name__}: {e}", "config": config}
    finally:
        torch.set_num_threads(before)  # in-process runs must not change the caller's threads


def _die_with_parent() -> None:
    """Linux: a worker is killed when the sweep is, so a restarted sweep never races an orphan."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_sweep(configs: list[RunConfig], *, data_root, results_dir: Path, device: str = "cpu",
              workers: int = 1, threads: int | None = 1, plugins: tuple[str, ...] = (),
              progress: bool = True, say=print, executor: str = "local",
              ray_address: str | None = None) -> list[dict]:
    """Run every unfinished config; one progress bar with an ETA and a line per finished run.

    ``executor``: ``"local"`` (``workers`` processes here) or ``"ray"`` (a Ray cluster at
    ``ray_address``, see ``pai_bench.ray_executor``)."""
    from tqdm.auto import tqdm
    from pai_bench import runner
    where = _check_executor(executor, workers, ray_address)
    for c in configs:  # every name and option checked before anything runs
        runner.plan(c)
    todo = pending(configs, results_dir)
    say(f"[pai-bench] sweep: {len(configs)} runs, {len(configs) - len(todo)} already done, "
        f"{len(todo)} to run {where}")
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress)
    results = []

    def finished(config, summary, t0):
        acc = summary.get("test_accuracy")
        text = f"{acc:.4f}" if isinstance(acc, float) else summary.get("error", "n/a")
        seconds = summary.get("seconds") or time.perf_counter() - t0  # the run's own time
        bar.write(f"  {config.method:26s} sparsity {config.sparsity:<7g} seed {config.seed} "
                  f"check {config.check:8s} prune_at {config.prune_at:<6d} "
                  f"{summary['status']:9s} {text}  ({seconds:.0f} s)")
        bar.update(1)
        results.append(summary)

    args = (data_root, str(results_dir), device, threads, tuple(plugins))
    if executor == "ray":
        from pai_bench import ray_executor
        ray_executor.run(todo, data_root=data_root, results_dir=results_dir, device=device,
                         threads=threads or 1, plugins=tuple(plugins), address=ray_address,
                         on_finish=finished, say=bar.write)
    elif workers <= 1:
        for c in todo:
            t0 = time.perf_counter()
            finished(c, run_one(c, *args), t0)
    else:
        ctx = mp.get_context("spawn")  # fresh interpreters: no inherited torch thread pools
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_die_with_parent) as pool:
            futures = {pool.submit(run_one, c, *args): (c, time.perf_counter()) for c in todo}
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for f in done:
                    c, t0 = futures[f]
                    finished(c, f.result(), t0)
    bar.close()
    return results


def _check_executor(executor: str, workers: int, ray_address: str | None) -> str:
    """Validate the executor options; return where the runs go, for the first line."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if executor == "local":
        if ray_address is not None:
            raise ConfigError("--ray-address applies to --executor ray")
        return f"with {workers} worker(s)"
    from pai_bench.ray_executor import require_ray
    require_ray()
    if workers != 1:
        raise ConfigError("--workers applies to --executor local; on Ray, the runs at once are "
                          "the cluster's CPUs divided by --threads")
    return f"on the Ray cluster at {ray_address or 'the default address'}"


__all__ = ["SweepSpec", "load_spec", "spec_from_dict", "pending", "run_sweep", "run_one",
           "EXECUTORS"]
