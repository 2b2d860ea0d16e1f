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

    def __init__(self, workers: int = 1, address: str | None = None):
        self.workers, self.address = workers, address

    def where(self) -> str:
        """Validate the options; say where the runs go (the sweep's first line)."""
        raise NotImplementedError

    def run(self, todo: list[RunConfig], job: Job, on_finish: Callable, say=print) -> None:
        raise NotImplementedError


class LocalExecutor(Executor):
    """``workers`` processes on this machine (in this process when ``workers`` is 1)."""

    name = "local"

    def where(self) -> str:
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) \
                or self.workers < 1:
            raise ConfigError(f"--workers must be a positive integer, got {self.workers!r}")
        if self.address is not None:
            raise ConfigError("--ray-address applies to --executor ray")
        return f"with {self.workers} worker(s)"

    def run(self, todo, job, on_finish, say=print) -> None:
        if self.workers <= 1:
            for c in todo:
                t0 = time.perf_counter()
                on_finish(c, run_one(c, *job.args()), t0)
            return
        ctx = mp.get_context("spawn")  # fresh interpreters: no inherited torch thread pools
        with ProcessPoolExecutor(self.workers, mp_context=ctx,
                                 initializer=_die_with_parent) as pool:
            futures = {pool.submit(run_one, c, *job.args()): (c, time.perf_counter())
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


def make_executor(name: str, workers: int = 1, address: str | None = None) -> Executor:
    return EXECUTORS.get(name)(workers=workers, address=address)
