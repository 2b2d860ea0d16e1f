"""One run of a sweep, in whatever process an executor gives it: ``run_one``.

Below every executor (``pai_bench.executors``): it knows nothing of how runs are scheduled. It
loads the sweep's plugins, runs the config with the requested torch threads, and turns any
failure other than divergence into a ``{"status": "failed"}`` result with the traceback written
to ``<run>/error.txt``, so a sweep records it and goes on.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import torch

from pai_bench import paths, runner
from pai_bench.config import RunConfig
from pai_bench.io import atomic_write_text
from pai_bench.methods import load_plugins


def run_one(config: RunConfig, data_root, results_dir, device: str, threads: int | None,
            plugins: tuple[str, ...] = (), eval_every: int = 1) -> dict:
    """Execute one run in this process; returns its summary or {"status": "failed", ...}."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    load_plugins(list(plugins))
    try:
        return runner.execute(config, data_root=data_root, results_dir=Path(results_dir),
                              device=torch.device(device), progress=False, log=lambda *a: None,
                              eval_every=eval_every)
    except Exception as e:  # noqa: BLE001 - a sweep records any failure and goes on
        rdir = paths.run_dir(results_dir, config)
        rdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(rdir / paths.ERROR, traceback.format_exc())
        return {"status": "failed", "error": f"{type(e).__name__}: {e}", "config": config}
    finally:
        torch.set_num_threads(before)  # in-process runs must not change the caller's threads
