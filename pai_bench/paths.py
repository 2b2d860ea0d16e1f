"""Every file name the suite writes, in one place (STYLE.md #10)."""

from __future__ import annotations

import os
from pathlib import Path

CONFIG = "config.json"        # the full run config, the resolved recipe and library versions
MASKS = "masks.pt"            # the final Masks
LAYERS = "masks.layers.csv"   # per-layer density report, written beside the masks
METRICS = "metrics.csv"       # one row per epoch
SUMMARY = "summary.json"      # final metrics; its presence marks the run finished
CHECKPOINT = "checkpoint.pt"  # latest training state, deleted when the run finishes


def default_results_dir() -> Path:
    return Path(os.environ.get("PAI_BENCH_RESULTS", "results"))


def run_dir(results_dir: Path | str, config) -> Path:
    """``<results>/runs/<method>-<hash>``: the method for people, the hash for identity."""
    return Path(results_dir) / "runs" / f"{config.method}-{config.hash()}"
