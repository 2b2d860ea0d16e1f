"""Where the runs of a sweep execute: a registry of executors (``local``; ``ray`` in
``pai_bench.ray_executor``).

An executor takes the pending configs of a sweep and calls ``on_finish(config, result, t0)`` for
each as it finishes; every run goes through ``pai_bench.worker.run_one``, which writes its results
into the shared results folder itself, so tables, plots and resume do not depend on where a run
ran. Adding one is a subclass with a ``name``::

    class MyCluster(Executor):
        name = "my_cluster"
        def run(self, todo, job, on_finish, say): ...
"""

from __future__ import annotations

import ctypes
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, ClassVar

import multiprocessing as mp

import torch

from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.registry import Registry
from pai_bench.worker import run_one

EXECUTORS: Registry[type["Executor"]] = Registry("executor")


@dataclass(frozen=True)
class Job:
    """What every run of a sweep shares, whichever executor runs it."""

    data_root: object
    results_dir: str
    device: str = "cpu"
    threads: int | None = 1
    plugins: tuple[str, ...] = ()
    eval_every: int = 1

    def args(self) -> tuple:
        """The arguments of ``run_one`` after the config."""
        return (self.data_root, self.results_dir, self.device, self.threads, self.plugins,
                self.eval_every)


class Executor:
    """Runs a sweep's pending configs. Subclasses with a ``name`` register themselves."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            EXECUTORS.register(cls.name, cls)

    def __init__(self, workers: int = 1, address: str | None = None,
                 runs_per_gpu: int | None = None):
        self.workers, self.address, self.runs_per_gpu = workers, address, runs_per_gpu

    def where(self) -> str:
        """Validate the options; say where the runs go (the sweep's first line)."""
        raise NotImplementedError

    def run(self, todo: list[RunConfig], job: Job, on_finish: Callable, say=print) -> None:
        raise NotImplementedError


def gpu_slots(device_count: int, runs_per_gpu: int) -> list[str]:
    """One CUDA device name per worker: ``runs_per_gpu`` workers on each of the GPUs."""
    return [f"cuda:{g}" for g in range(device_count) for _ in range(runs_per_gpu)]


_WORKER_DEVICE: str | None = None  # the GPU a worker process claimed (--runs-per-gpu)


def _init_worker(slots) -> None:
    """A worker's start: die with the sweep; with --runs-per-gpu, claim one GPU slot."""
    global _WORKER_DEVICE
    _die_with_parent()
    if slots is not None:
        _WORKER_DEVICE = slots.get()


def _run_in_worker(config: RunConfig, *args):
    """``run_one`` on the worker's claimed GPU, if it claimed one."""
    if _WORKER_DEVICE is not None:
        args = (*args[:2], _WORKER_DEVICE, *args[3:])
    return run_one(config, *args)


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

    def run(self, todo, job, on_finish, say=print) -> None:
        if self.workers <= 1 and self.slots is None:
            for c in todo:
                t0 = time.perf_counter()
                on_finish(c, run_one(c, *job.args()), t0)
            return
        ctx = mp.get_context("spawn")  # fresh interpreters: no inherited torch thread pools
        slots = None
        if self.slots is not None:
            slots = ctx.Manager().Queue()
            for s in self.slots:
                slots.put(s)
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(slots,)) as pool:
            futures = {pool.submit(_run_in_worker, c, *job.args()): (c, time.perf_counter())
                       for c in todo}
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for f in done:
                    c, t0 = futures[f]
                    on_finish(c, f.result(), t0)


def _die_with_parent() -> None:
    """Linux: a worker is killed when the sweep is, so a restarted sweep never races an orphan."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def make_executor(name: str, workers: int = 1, address: str | None = None,
                  runs_per_gpu: int | None = None) -> Executor:
    return EXECUTORS.get(name)(workers=workers, address=address, runs_per_gpu=runs_per_gpu)
