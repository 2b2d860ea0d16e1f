"""A finished run's trained sparse network, exported for other tools.

``--format prune`` writes the state dict ``torch.nn.utils.prune`` expects of a pruned model:
each prunable ``<module>.weight`` becomes ``<module>.weight_orig`` (the trained values) and
``<module>.weight_mask`` (the run's mask, as the weight's dtype). Load it into the same
architecture after registering the pruning parametrization, e.g.::

    for name, module in model.named_modules():
        if f"{name}.weight" in masks:          # the run's masks.pt keys
            torch.nn.utils.prune.identity(module, "weight")
    model.load_state_dict(torch.load("model.prune.pt", weights_only=True))

``--format state_dict`` writes the plain state dict (pruned weights are exactly zero).
"""

from __future__ import annotations

from pathlib import Path

import torch

from dataclasses import dataclass
from typing import Callable

from pai_bench import paths
from pai_bench.errors import ConfigError
from pai_bench.io import atomic_save_torch
from pai_bench.registry import Registry


@dataclass(frozen=True)
class Format:
    """An export format: ``convert(weights, masks)`` gives the state written."""

    name: str
    convert: Callable[[dict, dict], dict]
    description: str = ""


FORMATS: Registry[Format] = Registry("format")


def prune_state_dict(weights: dict, masks: dict) -> dict:
    """``weights`` with every masked ``<m>.weight`` split into ``weight_orig``/``weight_mask``."""
    out = {}
    for key, value in weights.items():
        if key in masks:
            stem = key.removesuffix("weight")
            out[stem + "weight_orig"] = value
            out[stem + "weight_mask"] = masks[key].to(value.dtype)
        else:
            out[key] = value
    return out


FORMATS.register(Format("prune", prune_state_dict,
                        "torch.nn.utils.prune's weight_orig/weight_mask pairs"))
FORMATS.register(Format("state_dict", lambda weights, masks: weights, "the plain state dict"))


def export_run(run_dir: Path | str, fmt: str = "prune", out: Path | str | None = None) -> Path:
    """Write the trained network of the finished run in ``run_dir``; return the file."""
    run_dir = Path(run_dir)
    convert = FORMATS.get(fmt).convert
    weights_file, masks_file = run_dir / paths.WEIGHTS, run_dir / paths.MASKS
    if not weights_file.is_file() or not masks_file.is_file():
        raise ConfigError(f"{run_dir} is not a finished run with trained weights "
                          f"(no {paths.WEIGHTS} or {paths.MASKS})")
    weights = torch.load(weights_file, map_location="cpu", weights_only=True)
    masks = torch.load(masks_file, map_location="cpu", weights_only=True)
    state = convert(weights, masks)
    target = Path(out) if out is not None else run_dir / f"model.{fmt}.pt"
    atomic_save_torch(state, target)
    return target
