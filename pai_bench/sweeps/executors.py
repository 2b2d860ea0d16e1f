"""Where the runs of a sweep execute: a registry of executors (``local``; ``ray`` in
``pai_bench.sweeps.ray_executor``).

An executor takes the pending configs of a sweep and calls ``on_finish(config, result, t0)`` for
each as it finishes; every run goes through ``pai_bench.sweeps.worker.run_one``, which writes its results
into the shared results folder itself, so tables, plots and resume do not depend on where a run
ran. Adding one is a subclass with a ``name``::

    class MyCluster(Executor):
        name = "my_cluster"
        def run(self, todo, options, on_finish, say): ...

Its options (``ExecutorOptions``: the executor's name, workers, runs per GPU, a cluster
address) are declared once, like the run options (``pai_bench.options``), and give the flags of
``sweep`` and ``reproduce`` and the keyword arguments of ``pai_bench.sweep`` / ``reproduce``.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.managers import SyncManager
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from tqdm.auto import tqdm

from pai_bench import paths
from pai_bench.config import RunConfig
from pai_bench.data import DATASETS
from pai_bench.device import use_device
from pai_bench.errors import ConfigError, PaiBenchError
from pai_bench.io import atomic_write_text
from pai_bench.methods import METHODS, load_plugins
from pai_bench.models import MODELS
from pai_bench.options import MAX_THREADS, RunOptions, check_options, option
from pai_bench.registry import Registry
from pai_bench.sanity_checks import CHECKS
from pai_bench.signals import QuietSpawnContext, ignore_interrupts
from pai_bench.sweeps.worker import run_one

EXECUTORS: Registry[type["Executor"]] = Registry("executor")
SWEEPS = ("sweep", "reproduce")  # the entry points that take executor options



@dataclass(frozen=True)
class ExecutorOptions:
    """Where the runs of a sweep execute."""

    executor: str = option("local", entries=SWEEPS, choices=EXECUTORS.names,
                           help="where runs execute: local processes or a Ray cluster (needs "
                                "pip install -e '.[ray]'; see docs/clusters.md)")
    workers: int = option(1, kind=int, minimum=1, maximum=MAX_THREADS, entries=SWEEPS,
                          help="runs at once")
    runs_per_gpu: int | None = option(
        None, kind=int, minimum=1, entries=SWEEPS,
        help="on CUDA: N runs at once on each GPU (local: N processes per GPU; Ray: 1/N GPU "
             "per run); small networks fill a large GPU this way")
    ray_address: str | None = option(
        None, entries=SWEEPS,
        help="head node of the Ray cluster, HOST:PORT (default: $RAY_ADDRESS, else a cluster "
             "started on this machine, else a new local one)")

    def __post_init__(self):
        check_options(self)

    def make(self) -> "Executor":
        """The executor these options name."""
        return EXECUTORS.get(self.executor)(workers=self.workers, address=self.ray_address,
                                            runs_per_gpu=self.runs_per_gpu)


class Executor:
    """Runs a sweep's pending configs. Subclasses with a ``name`` register themselves."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            EXECUTORS.register(cls)

    def __init__(self, workers: int = 1, address: str | None = None,
                 runs_per_gpu: int | None = None):
        self.workers, self.address, self.runs_per_gpu = workers, address, runs_per_gpu

    def where(self) -> str:
        """Validate the options; say where the runs go (the sweep's first line)."""
        raise NotImplementedError

    def at_once(self, device: torch.device | str) -> int:
        """How many runs execute at the same time (what the sweep's time estimate divides
        by): on CUDA with ``runs_per_gpu``, that many on each GPU visible here (on Ray, where
        ``--workers`` stays 1, too); otherwise the workers."""
        if torch.device(device).type == "cuda" and self.runs_per_gpu:
            return self.runs_per_gpu * max(1, torch.cuda.device_count())
        return self.workers

    def run(self, todo: list[RunConfig], options: RunOptions, on_finish: Callable,
            say=print, plans: dict | None = None) -> None:
        """Run ``todo`` with ``options`` (those of a worker: ``RunOptions.for_worker``);
        ``on_finish(config, summary, t0)`` as each finishes. ``plans``: {config: its plan}
        as the sweep's process prepared it, for runs in that same process (another process
        prepares its run itself: ``worker.run_one``)."""
        raise NotImplementedError


def gpu_slots(device_count: int, runs_per_gpu: int) -> list[str]:
    """One CUDA device name per worker: ``runs_per_gpu`` workers on each of the GPUs."""
    return [f"cuda:{g}" for g in range(device_count) for _ in range(runs_per_gpu)]


_WORKER_DEVICE: str | None = None  # the GPU a worker process claimed (--runs-per-gpu)
_STARTED = None  # the pool's shared record of the runs its workers started


def _init_worker(slots, started) -> None:
    """A worker's start: die with the sweep; with --runs-per-gpu, claim one GPU slot."""
    global _WORKER_DEVICE, _STARTED
    _child_of_sweep()
    _STARTED = started
    if slots is not None:
        _WORKER_DEVICE = bind_worker(slots.get())


def bind_worker(slot: str) -> str:
    """A worker's GPU slot made its device before anything touches CUDA
    (``device.use_device``: ``torch.cuda.set_device``, so no context lands on ``cuda:0``)."""
    # A slot torch cannot use is not an error here: a failing initializer would break the
    # pool (every worker dies at start); the runs on that slot fail instead, naming it.
    try:
        use_device(slot)
    except (RuntimeError, ValueError):
        pass
    return slot


def _run_in_worker(config: RunConfig, options: RunOptions):
    """``run_one`` on the worker's claimed GPU, if it claimed one."""
    _STARTED[_key(config)] = True  # so that a pool lost while it runs knows it was running
    if _WORKER_DEVICE is not None:
        options = options.for_worker(device=_WORKER_DEVICE)
    return run_one(config, options)


class LocalExecutor(Executor):
    """``workers`` processes on this machine (in this process when ``workers`` is 1); with
    ``runs_per_gpu`` N on a CUDA sweep, N processes per visible GPU, each bound to one (small
    networks such as ResNet-20 use a fraction of a large GPU: several runs fill it)."""

    name = "local"

    def __init__(self, workers: int = 1, address: str | None = None,
                 runs_per_gpu: int | None = None, device_count: int | None = None):
        super().__init__(workers, address, runs_per_gpu)
        self.slots = None
        if runs_per_gpu is not None:
            count = torch.cuda.device_count() if device_count is None else device_count
            self.slots = gpu_slots(count, runs_per_gpu)
            self.workers = len(self.slots)

    def where(self) -> str:
        if self.runs_per_gpu is not None:
            if not isinstance(self.runs_per_gpu, int) or self.runs_per_gpu < 1:
                raise ConfigError(f"--runs-per-gpu must be a positive integer, got "
                                  f"{self.runs_per_gpu!r}")
            if not self.slots:
                raise ConfigError("--runs-per-gpu needs CUDA GPUs; none is visible here")
            return (f"with {self.runs_per_gpu} run(s) on each of "
                    f"{len(self.slots) // self.runs_per_gpu} GPU(s) ({self.workers} workers)")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) \
                or self.workers < 1:
            raise ConfigError(f"--workers must be a positive integer, got {self.workers!r}")
        if self.address is not None:
            raise ConfigError("--ray-address applies to --executor ray")
        return f"with {self.workers} worker(s)"

    def run(self, todo, options, on_finish, say=print, plans: dict | None = None) -> None:
        if self.workers <= 1 and self.slots is None:
            for c in todo:
                t0 = time.perf_counter()
                on_finish(c, run_one(c, options, (plans or {}).get(c)), t0)
            return
        queue, stalled = list(todo), 0
        while queue:  # a pool whose worker died is replaced by a fresh one
            running, lost = self._pool(queue, options, on_finish, say, self.workers)
            stalled = stalled + 1 if not running and len(lost) == len(queue) else 0
            if stalled == 2:  # two fresh pools in a row died before starting any run
                for c in lost:
                    on_finish(c, worker_died(c, options, at_start=True), time.perf_counter())
                return
            queue = lost
            for c in running:  # one at a time: a death now is this run's own
                say(f"[pai-bench] a worker process died while {paths.run_dir('', c).name} ran: "
                    f"trying it again in a fresh worker (it resumes from its checkpoint)")
                t0 = time.perf_counter()
                again, lost = self._pool([c], options, on_finish, say, 1)
                if again or lost:
                    on_finish(c, worker_died(c, options), t0)

    def _pool(self, todo, options, on_finish, say, workers: int
              ) -> tuple[list[RunConfig], list[RunConfig]]:
        """Run ``todo`` in one pool of ``workers`` processes, ``on_finish`` for each run that
        returns. If a worker dies (killed, out of memory) the pool is lost: returns the runs it
        was running then (to try again, each alone) and those it had not started."""
        ctx = QuietSpawnContext()  # fresh interpreters (no inherited torch thread pools), deaf
        # to Ctrl-C from their start: the sweep decides
        manager = SyncManager(ctx=ctx)  # its process, like the workers, dies with the sweep
        manager.start(_child_of_sweep)
        started = manager.dict()
        slots = None
        if self.slots is not None:
            slots = manager.Queue()
            for s in self.slots:
                slots.put(s)
        running, lost = [], []
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(slots, started))
        try:
            try:
                seen = pool.submit(names_seen, options.plugins).result()
            except BrokenProcessPool:  # its workers die at start: no run was started
                seen, lost = None, list(todo)
            unseen = unseen_names(seen, todo)
            futures = {} if unseen or lost else {
                pool.submit(_run_in_worker, c, options): (c, time.perf_counter()) for c in todo}
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for f in done:
                    c, t0 = futures[f]
                    try:
                        on_finish(c, f.result(), t0)
                    except BrokenProcessPool:
                        (running if _key(c) in started else lost).append(c)
        except BaseException:  # Ctrl-C, SIGTERM (pai_bench.signals): stop the runs now
            _kill_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            manager.shutdown()
        if unseen:
            kind, name = unseen
            raise ConfigError(
                f"{kind} {name!r} is registered in this process only (under `if __name__ == "
                f"\"__main__\":`?), and the sweep's worker processes cannot see it: register it "
                f"at the top level of a module named with --plugin MODULE (plugins=[\"MODULE\"])"
                f" or an entry point (README, \"Adding a method\"), or run with workers=1")
        return running, lost


REGISTRIES = {"model": (MODELS, "model"), "dataset": (DATASETS, "dataset"),
              "method": (METHODS, "method"), "check": (CHECKS, "check")}  # kind: registry, field


def names_seen(plugins: tuple[str, ...]) -> dict[str, list[str]] | None:
    """What a fresh worker process has registered once it loaded the sweep's plugins (as
    ``worker.run_one`` loads them); None when they do not load (each run records that)."""
    try:
        load_plugins(plugins)
    except PaiBenchError:
        return None
    return {kind: registry.names() for kind, (registry, _) in REGISTRIES.items()}


def unseen_names(seen: dict[str, list[str]] | None, todo: list[RunConfig]
                 ) -> tuple[str, str] | None:
    """The first (kind, name) a run of ``todo`` needs that the workers do not see (``seen``:
    ``names_seen`` in one of them): a registration made where spawned processes never run it,
    such as a script's ``if __name__ == "__main__":`` block."""
    for c in todo if seen is not None else ():
        for kind, (_, field) in REGISTRIES.items():
            if getattr(c, field) not in seen[kind]:
                return kind, getattr(c, field)
    return None


def _key(config: RunConfig) -> str:
    return paths.run_dir("", config).name


def worker_died(config: RunConfig, options: RunOptions, at_start: bool = False) -> dict:
    """The result of a run whose worker process died twice, the second time running it alone
    (``at_start``: whose workers died twice before starting any run, in their initializer),
    recorded like any failed run (``<run>/error.txt``)."""
    error = ("WorkerDied: the worker processes died at start twice, before running it"
             if at_start else "WorkerDied: the worker process running it died twice, the "
             "second time running it alone (killed, or out of memory)")
    rdir = paths.run_dir(options.results_dir, config)
    rdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(rdir / paths.ERROR, error + "\n")
    return {"status": "failed", "error": error, "config": config}


def _child_of_sweep() -> None:
    """A worker's or the manager's start. Linux: it is killed when the sweep is (even by kill
    -9), so a restarted sweep never races an orphan, and no manager or resource tracker (which
    lives while a process holds its pipe) outlives the sweep. Ctrl-C, which the terminal sends
    to every process of the sweep, is left to the sweep (``signals.ignore_interrupts``)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    sweep = multiprocessing.parent_process()
    if sweep is not None and os.getppid() != sweep.pid:  # the sweep died while this process
        os._exit(1)  # was starting, before the line above could tie it to the sweep
    ignore_interrupts()
    # tqdm's default lock is a multiprocessing one, a named semaphore the resource tracker
    # records: a worker killed with it leaves a "leaked semaphore" warning on the sweep's
    # stderr. Bars are off in workers; a thread lock is all they need.
    tqdm.set_lock(threading.RLock())


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers at once: shutdown would wait for their runs to end. A killed run
    is what a kill -9 leaves (atomic files, the last checkpoint): the same command resumes
    it. ``_processes``: the pool's own record of them (Python 3.14 adds ``kill_workers``)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.kill()
        except (OSError, ValueError):  # already gone
            pass


