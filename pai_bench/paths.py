"""Every file and folder name the suite writes, in one place.

A results folder holds::

    runs/<method>-<hash>/          one run (hash: RunConfig.hash)
        config.json  masks.pt  masks.layers.csv  metrics.csv  weights.pt  summary.json
        [checkpoint.pt while training]
    masks/<method>-<hash>/         a method's masks before any check, shared by the checks that
        masks.pt  scoring.json      change only weights or positions; the seconds scoring took
    dense/dense-<hash>/            the dense network of a (data, model, training, seed)
        config.json  step_<k>.pt  summary.json
    .locks/<kind>-<name>.lock      the lock of whoever writes runs/<name>, masks/<name>, ...
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CONFIG = "config.json"        # the full run config, the resolved recipe and library versions
MASKS = "masks.pt"            # the final Masks
LAYERS = "masks.layers.csv"   # per-layer density report, written beside the masks
METRICS = "metrics.csv"       # one row per epoch
SUMMARY = "summary.json"      # final metrics; its presence marks the run finished
CHECKPOINT = "checkpoint.pt"  # latest training state, deleted when the run finishes
LOGS = "tensorboard"          # --logger tensorboard: the run's event files
SCORING = "scoring.json"      # beside a method's shared masks: the seconds they took, the machine
WEIGHTS = "weights.pt"        # the trained sparse network's state_dict (weights_only-loadable)
ERROR = "error.txt"           # the traceback of a run that failed in a sweep
TABLES = "tables.md"          # the Markdown of every table of a report
RESULTS_ENV = "PAI_BENCH_RESULTS"
RESULT_FOLDERS = ("runs", "masks", "dense", ".locks")  # the folders a results folder holds


# The reference results shipped with the repository (``reference export``; results/README.md):
# what ``judge`` reads when no ``--reference`` is given. Absent from an installed wheel.
SHIPPED_REFERENCES = Path(__file__).resolve().parents[1] / "results" / "reference"


def shipped_references() -> list[Path]:
    """The shipped reference files (``SHIPPED_REFERENCES``), in name order; none if absent."""
    return sorted(SHIPPED_REFERENCES.glob("*.csv"))


def default_results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV, "results"))


def run_dir(results_dir: Path | str, config) -> Path:
    """``<results>/runs/<method>-<hash>``: the method for people, the hash for identity."""
    return stored_run_dir(results_dir, config.method, config.hash())


def stored_run_dir(results_dir: Path | str, method: str, config_hash: str) -> Path:
    """The folder of a stored run known by its method and hash (a row of ``load_runs``)."""
    return Path(results_dir) / "runs" / f"{method}-{config_hash}"


def summaries(results_dir: Path | str) -> list[Path]:
    """Every run summary stored under ``results_dir``."""
    return sorted(Path(results_dir).glob(f"runs/*/{SUMMARY}"))


def method_masks_dir(results_dir: Path | str, source_config) -> Path:
    """Where the method masks of ``source_config`` (``Plan.mask_source``) are kept."""
    return Path(results_dir) / "masks" / f"{source_config.method}-{source_config.hash()}"


def dense_dir(results_dir: Path | str, dense_config) -> Path:
    return Path(results_dir) / "dense" / f"dense-{dense_config.hash()}"


def owner(folder: Path) -> str:
    """The identity a stored file of ``folder`` carries: ``<kind>/<name>`` (``runs/snip-<hash>``,
    ``masks/snip-<hash>``, ``dense/dense-<hash>``), what it is checked against when read, so a
    valid file of another run, seed or method copied in its place is not trusted."""
    folder = Path(folder)
    return f"{folder.parent.name}/{folder.name}"


def lock_file(folder: Path) -> Path:
    """The lock of ``folder`` (``<results>/<kind>/<name>``), in ``<results>/.locks/``: apart from
    the folder, so a run that fails validation leaves no folder, and the ``runs/`` listing holds
    runs only."""
    folder = Path(folder)
    return folder.parent.parent / ".locks" / f"{folder.parent.name}-{folder.name}.lock"


def snapshot(dense_folder: Path, step: int) -> Path:
    return dense_folder / f"step_{step}.pt"


def snapshot_steps(dense_folder: Path) -> list[int]:
    """The steps of the snapshots stored in ``dense_folder``, ascending."""
    found = (re.fullmatch(r"step_(\d+)\.pt", p.name) for p in dense_folder.glob("step_*.pt"))
    return sorted(int(m.group(1)) for m in found if m)


def layers_file(masks_file: Path) -> Path:
    """The per-layer density report written beside a masks file (``masks.layers.csv``)."""
    return Path(masks_file).with_suffix(".layers.csv")


def table_file(out_dir: Path, name: str, suffix: str) -> Path:
    """``<out>/<name>.<suffix>``: a table of a report (csv, tex)."""
    return Path(out_dir) / f"{name}.{suffix}"


def figure_files(out_dir: Path, name: str) -> list[Path]:
    """A figure of a report, as PNG and PDF."""
    return [Path(out_dir) / f"{name}.png", Path(out_dir) / f"{name}.pdf"]
