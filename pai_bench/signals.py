"""Ctrl-C (SIGINT) and SIGTERM: a run or a sweep stops where it is, one line, exit 128 + signal.

Every stage writes its files atomically and a checkpoint is replaced whole, so stopping at any
point leaves what a kill -9 leaves: the same command resumes from the last checkpoint. While the
CLI runs (``stop_on_signals``) both signals raise ``Stopped`` in the main thread, so the
``finally`` blocks on the way out (locks, worker processes) run, and a second signal while it
unwinds is ignored rather than breaking the cleanup with a traceback.

A ``KeyboardInterrupt`` that is not a ``Stopped`` where the CLI (or a sweep's worker, which
ignores SIGINT: its sweep stops it) decides what a signal does was raised by code, not by a key
press (a plugin scorer's ``raise KeyboardInterrupt``): ``raised_by_code`` tells the two apart,
so such a run fails as any plugin bug does instead of stopping the sweep.

Example::

    with stop_on_signals():
        try:
            execute(...)
        except KeyboardInterrupt as e:
            print(STOPPED); sys.exit(exit_code(e))
"""

from __future__ import annotations

import multiprocessing.context
import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOPPED = "stopped; run the same command to resume"


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: unwind and exit 128 + ``signum``. A KeyboardInterrupt, so no
    ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame):
    for s in STOP_SIGNALS:  # one stop at a time: the unwinding's cleanup is not interrupted
        signal.signal(s, signal.SIG_IGN)
    raise Stopped(signum)


@contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM raise ``Stopped`` in this block (main thread only; elsewhere as is);
    the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, _raise_stopped)
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def exit_code(e: KeyboardInterrupt) -> int:
    """128 + the signal: 130 for Ctrl-C (a plain KeyboardInterrupt too), 143 for SIGTERM."""
    return 128 + getattr(e, "signum", signal.SIGINT)


def raised_by_code(e: BaseException) -> bool:
    """True for a KeyboardInterrupt no signal raised: where SIGINT raises ``Stopped`` (the CLI)
    or is ignored (a sweep's worker), a plain KeyboardInterrupt came from a ``raise``. With
    Python's own handler (a library call, a notebook) a real Ctrl-C cannot be told apart, so it
    counts as one."""
    if not isinstance(e, KeyboardInterrupt) or isinstance(e, Stopped):
        return False
    return signal.getsignal(signal.SIGINT) in (_raise_stopped, signal.SIG_IGN)


def ignore_interrupts() -> None:
    """A sweep's worker process: Ctrl-C reaches every process of the terminal's group, but only
    the sweep decides (it stops its workers), so no worker prints a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


__all__ = ["Stopped", "STOPPED", "stop_on_signals", "exit_code", "raised_by_code",
           "ignore_interrupts"]


@contextmanager
def _interrupts_ignored():
    """SIGINT ignored in this block (main thread only: elsewhere it cannot be changed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


class _QuietSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that starts with SIGINT ignored: the disposition survives ``exec``
    and Python then installs no KeyboardInterrupt handler, so a Ctrl-C (which the terminal sends
    to every process of a sweep) while the process still imports torch prints no traceback from
    it; its sweep decides what happens (``Stopped``)."""

    def start(self):
        with _interrupts_ignored():
            super().start()


class QuietSpawnContext(multiprocessing.context.SpawnContext):
    """The ``spawn`` start method, its processes started deaf to Ctrl-C (a sweep's workers and
    its manager)."""
    Process = _QuietSpawnProcess
