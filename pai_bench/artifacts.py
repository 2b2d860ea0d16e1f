"""Stored artifacts read back and validated against the run they belong to.

Every file the suite reads from a results folder (a run's summary, masks and checkpoint, a dense
snapshot, an iterative baseline's round weights) goes through one of the ``read_*`` functions
here. Each returns the content, or None when the file is missing *or fails validation*: a
truncated or garbage file, and a well-formed one that does not fit the run (a summary whose hash
is not its folder's, an accuracy outside [0, 1], masks missing a layer or keeping the wrong
count, a checkpoint past the end of the schedule). A failing file is moved aside (renamed with a
``.corrupt`` suffix, never deleted) with one warning line naming it, and the caller recomputes
the stage as if the file had never been written.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Callable

import torch

from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.io import Invalid, quarantine  # noqa: F401  (Invalid: re-exported)
from pai_bench.masks import Masks
from pai_bench.models import ModelFacts

STATUSES = ("finished", "diverged")
# What a run's summary must hold, and of which types (None allowed where a run can lack it).
SUMMARY_FIELDS: dict[str, tuple[type, ...]] = {
    "config": (dict,), "hash": (str,), "status": (str,), "test_accuracy": (float, int, type(None)),
    "test_loss": (float, int, type(None)), "sparsity": (float, int), "kept": (int,),
    "prunable": (int,), "seconds": (float, int),
}


def read_valid(path: Path, read: Callable[[Path], Any], check: Callable[[Any], None]) -> Any:
    """``read(path)`` if the file exists and passes ``check``; otherwise None (quarantined)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        value = read(path)
        check(value)
    except Exception as e:  # noqa: BLE001 - whatever is wrong with a file, it is recomputed
        quarantine(path, f"{type(e).__name__}: {e}".splitlines()[0][:200])
        return None
    return value


def strict_json(path: Path) -> Any:
    """JSON without the NaN/Infinity literals Python would otherwise accept."""
    def refuse(literal):
        raise ValueError(f"non-standard JSON literal {literal}")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


def check_summary(summary: Any, folder_hash: str, config_cls: type = RunConfig) -> None:
    if not isinstance(summary, dict):
        raise Invalid("not a JSON object")
    for key, types in SUMMARY_FIELDS.items():
        if key not in summary:
            raise Invalid(f"field {key!r} is missing")
        if not isinstance(summary[key], types) or isinstance(summary[key], bool):
            raise Invalid(f"field {key!r} is {summary[key]!r}")
    try:
        config_hash = config_cls.from_dict(summary["config"]).hash()
    except (ConfigError, TypeError) as e:
        raise Invalid(f"its config is invalid: {e}") from None
    if not summary["hash"] == config_hash == folder_hash:
        raise Invalid(f"its config hashes to {config_hash}, the folder's hash is {folder_hash}")
    if summary["status"] not in STATUSES:
        raise Invalid(f"status {summary['status']!r}")
    acc = summary["test_accuracy"]
    if summary["status"] == "finished" and (acc is None or not 0.0 <= acc <= 1.0):
        raise Invalid(f"test accuracy {acc!r} is not in [0, 1]")
    if summary["status"] == "finished" and not math.isfinite(summary["test_loss"]):
        raise Invalid(f"test loss {summary['test_loss']!r}")
    if not 0 <= summary["kept"] <= summary["prunable"]:
        raise Invalid(f"kept {summary['kept']} of {summary['prunable']}")


def read_summary(path: Path, folder_hash: str, config_cls: type = RunConfig) -> dict | None:
    """A run's ``summary.json``, if it is one of the run whose hash is ``folder_hash``."""
    return read_valid(path, strict_json, lambda s: check_summary(s, folder_hash, config_cls))


def check_masks(masks: Masks, facts: ModelFacts, kept: int | None) -> None:
    names = list(facts.prunable)
    if list(masks) != names:
        missing, extra = set(names) - set(masks), set(masks) - set(names)
        raise Invalid(f"masks cover {sorted(extra) or 'no extra'} / miss {sorted(missing) or 'none'}"
                      if missing or extra else "masks are not in the model's order")
    for name, shape in facts.prunable.items():
        if tuple(masks[name].shape) != shape:
            raise Invalid(f"mask {name!r} has shape {tuple(masks[name].shape)}, the weight "
                          f"has {shape}")
    if kept is not None and masks.kept() != kept:
        raise Invalid(f"{masks.kept()} weights kept, the run keeps {kept}")


def read_masks(path: Path, facts: ModelFacts, kept: int | None = None) -> Masks | None:
    """Masks over exactly the network's prunable weights (``facts``, in order), of their
    shapes, keeping ``kept`` weights when given."""
    return read_valid(path, Masks.load, lambda m: check_masks(m, facts, kept))


LAYER_COLUMNS = ("name", "shape", "kept", "density", "collapsed")


def read_csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_layer_report(rows: Any) -> None:
    if not rows:
        raise Invalid("no layer rows")
    for row in rows:
        if any(row.get(c) in (None, "") for c in LAYER_COLUMNS):
            raise Invalid(f"a row lacks one of {', '.join(LAYER_COLUMNS)}")
        density = float(row["density"])
        if not 0.0 <= density <= 1.0:
            raise Invalid(f"density {density} of {row['name']!r} is not in [0, 1]")


def read_layer_report(path: Path) -> list[dict] | None:
    """A per-layer density report (``masks.layers.csv``): every row names a layer, its shape,
    kept count and a density in [0, 1]."""
    return read_valid(path, read_csv_rows, check_layer_report)


def check_state(state: Any, facts: ModelFacts) -> None:
    """``state`` is a state dict of the network of ``facts``: the same keys and shapes."""
    if not isinstance(state, dict) or set(state) != set(facts.state):
        raise Invalid("the weights are not those of this run's model")
    for key, shape in facts.state.items():
        if not isinstance(state[key], torch.Tensor) or tuple(state[key].shape) != shape:
            raise Invalid(f"{key!r} has the wrong shape")


def load_torch(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def check_training_state(state: Any, facts: ModelFacts, first: int, last: int) -> None:
    """A checkpoint or snapshot: model and optimizer state, and a step in [first, last]."""
    if not isinstance(state, dict) or not {"model", "optimizer", "step"} <= set(state):
        raise Invalid("not a training state (model, optimizer, step)")
    check_state(state["model"], facts)
    step = state["step"]
    if not isinstance(step, int) or not first <= step <= last:
        raise Invalid(f"step {step!r} is outside [{first}, {last}]")


def read_training_state(path: Path, facts: ModelFacts, first: int, last: int) -> dict | None:
    """A run's checkpoint (``first``: where its training starts, ``last``: the step before its
    end) or a dense snapshot (``first == last``: the step its file name says)."""
    return read_valid(path, load_torch, lambda s: check_training_state(s, facts, first, last))


def read_weights(path: Path, facts: ModelFacts) -> dict | None:
    """A state dict of the network of ``facts``: a stored run's trained weights (an iterative
    baseline's previous level)."""
    return read_valid(path, load_torch, lambda s: check_state(s, facts))
