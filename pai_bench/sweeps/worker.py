"""One run of a sweep, in whatever process an executor gives it: ``run_one``.

Below every executor (``pai_bench.sweeps.executors``): it knows nothing of how runs are scheduled. It
prepares the config (``pai_bench.pipeline.prepare``: device, plugins, plan), runs it with the sweep's
options (``RunOptions``: threads, device, loggers, evaluation, ...), and turns any failure
other than divergence into a
``{"status": "failed"}`` result with the traceback written to ``<run>/error.txt``, so a sweep
records it and goes on (a ``StorageError``, a disk that is full or read-only, is marked so that
the sweep ends with that one line once every run was tried).
"""

from __future__ import annotations

import traceback

from pai_bench import paths
from pai_bench.pipeline import runner
from pai_bench.config import RunConfig
from pai_bench.errors import StorageError
from pai_bench.io import atomic_write_text
from pai_bench.options import RunOptions
from pai_bench.pipeline.plan import Plan
from pai_bench.pipeline.prepare import prepare, setup


def run_one(config: RunConfig, options: RunOptions, plan: Plan | None = None) -> dict:
    """Execute one run in this process; returns its summary or {"status": "failed", ...}.
    ``plan``: the config's plan when the sweep's parent made it in this very process (a sweep
    with one worker); a worker process prepares the config itself (``pai_bench.pipeline.prepare``)."""
    try:
        if plan is None:  # another process than the one that planned it: its own setup
            options = setup(options)
            plan = prepare(config, options)
        return runner.execute_plan(plan, options)
    except Exception as e:  # noqa: BLE001 - a sweep records any failure and goes on
        result = {"status": "failed", "error": f"{type(e).__name__}: {e}", "config": config}
        if isinstance(e, StorageError):  # the sweep stops with this line once it is done
            result["storage_error"] = str(e)
        try:
            rdir = paths.run_dir(options.results_dir, config)
            rdir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(rdir / paths.ERROR, traceback.format_exc())
        except OSError:  # the disk that failed the run may not take its traceback either
            pass
        return result
