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

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from pai_bench import artifacts
from pai_bench import paths
from pai_bench.config import RunConfig
from pai_bench.data import DATASETS
from pai_bench.errors import ConfigError
from pai_bench.io import Invalid, atomic_save_torch
from pai_bench.masks import Masks
from pai_bench.models import MODELS, ModelFacts, create_model, prunable_names
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
    """Write the trained network of the finished run in ``run_dir``; return the file.

    Nothing is exported that its run does not vouch for: ``summary.json`` and ``config.json``
    must be the run's (their config hashes to the folder's ``<method>-<hash>``) and say
    ``finished``; the masks must cover the network's prunable weights, of their shapes, keeping
    the summary's ``kept`` count; the weights must be the network's, finite, exactly zero where
    a mask prunes (training holds them there) and hash to the digests the summary stored.
    Anything else is a ConfigError naming the file and what is wrong, and nothing is
    written (the run's files are only read: a bad one is not moved aside)."""
    run_dir = Path(run_dir)
    convert = FORMATS.get(fmt).convert
    target = Path(out) if out is not None else run_dir / f"model.{fmt}.pt"
    if os.path.isdir(target):
        raise ConfigError(f"the output {target} is a folder: give the file to write "
                          f"(e.g. {target / f'model.{fmt}.pt'})")
    if target.resolve() in {(run_dir / name).resolve() for name in RUN_FILES}:
        raise ConfigError(f"the output {target} is one of the run's own files: give another "
                          f"file to write")
    summary = _finished_summary(run_dir)
    weights, masks = _trained_network(run_dir, summary)
    atomic_save_torch(convert(weights, masks), target)
    return target


RUN_FILES = (paths.CONFIG, paths.MASKS, paths.LAYERS, paths.METRICS, paths.SUMMARY,
             paths.CHECKPOINT, paths.WEIGHTS)  # what export reads, and never overwrites


def _bad(path: Path, what: str) -> ConfigError:
    """The one line that says which file of the run is wrong, and how."""
    return ConfigError(f"cannot export {path}: {what}")


def _why(e: BaseException) -> str:
    """What is wrong, in one line (torch's own messages run on for sentences)."""
    text = (str(e).splitlines() or [""])[0]
    text = text if len(text) <= 200 else text[:200].rsplit(" ", 1)[0] + " ..."
    return text if isinstance(e, (Invalid, ConfigError)) else f"{type(e).__name__}: {text}"


def _finished_summary(run_dir: Path) -> dict:
    """The summary of the finished run in ``run_dir``, checked as the runner checks it, with
    its ``config.json`` (both of the folder's hash)."""
    summary_file, config_file = run_dir / paths.SUMMARY, run_dir / paths.CONFIG
    method, sep, folder_hash = run_dir.name.rpartition("-")
    if not os.path.isdir(run_dir) or not sep or not method:
        raise ConfigError(f"{run_dir} is not a finished run (not a run folder "
                          f"results/runs/<method>-<hash>)")
    if not os.path.isfile(summary_file):
        raise ConfigError(f"{run_dir} is not a finished run (no {paths.SUMMARY})")
    try:
        summary = artifacts.strict_json(summary_file)
        artifacts.check_summary(summary, folder_hash, RunConfig)
    except Exception as e:  # noqa: BLE001 - whatever is wrong, it is one line naming the file
        raise _bad(summary_file, _why(e)) from None
    if summary["status"] != "finished":
        raise ConfigError(f"{run_dir} is not a finished run ({summary_file} says status "
                          f"{summary['status']!r})")
    if not os.path.isfile(config_file):
        raise _bad(config_file, "the file is missing")
    try:
        artifacts.check_run_config(artifacts.strict_json(config_file), folder_hash, RunConfig)
    except Exception as e:  # noqa: BLE001
        raise _bad(config_file, _why(e)) from None
    return summary


def _network_facts(config: RunConfig) -> ModelFacts | None:
    """The prunable names of the run's network and, where its data set fixes the input and the
    classes, the shape of every state-dict entry (``state``: {} otherwise); None where the
    model is not registered here (a plugin's): the masks are then checked against the weights
    alone."""
    if config.model not in MODELS:
        return None
    spec = DATASETS.get(config.dataset) if config.dataset in DATASETS else None
    exact = spec is not None and spec.num_classes > 0 and min(spec.input_shape) > 0
    try:
        model = create_model(config.model, num_classes=spec.num_classes if exact else 10,
                             input_shape=spec.input_shape if exact else (3, 32, 32), seed=0,
                             width=config.width)
    except ConfigError:
        return None
    state = {k: tuple(v.shape) for k, v in model.state_dict().items()} if exact else {}
    return ModelFacts(prunable={n: () for n in prunable_names(model)}, state=state, macs={})


def _load(path: Path) -> Any:
    if not os.path.isfile(path):
        raise _bad(path, "the file is missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, garbage, not a torch file
        raise _bad(path, f"the file cannot be read: truncated or not a torch file "
                         f"({_why(e).split('. ')[0]})") from None


def _trained_network(run_dir: Path, summary: dict) -> tuple[dict, Masks]:
    """The run's trained weights and masks, checked against each other, the network and the
    summary."""
    weights_file, masks_file = run_dir / paths.WEIGHTS, run_dir / paths.MASKS
    config = RunConfig.from_dict(summary["config"])
    weights, raw_masks = _load(weights_file), _load(masks_file)
    facts = _network_facts(config)
    digests = summary["digests"]  # check_summary: a finished run's summary holds them all
    try:
        if not isinstance(weights, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
            raise Invalid("not a state dict of tensors")
        if facts is not None and facts.state:
            artifacts.check_state(weights, facts)
        for key, value in weights.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise Invalid(f"{key!r} holds values that are not finite (NaN or infinite)")
    except Invalid as e:
        raise _bad(weights_file, _why(e)) from None
    try:
        masks = artifacts.stored_masks(raw_masks, masks_file)  # the run's own, intact
        names = list(facts.prunable) if facts is not None else list(masks)
        missing = [n for n in names if n not in weights]
        if missing:
            raise Invalid(f"names weights {missing} that {paths.WEIGHTS} lacks")
        artifacts.check_masks(masks, ModelFacts({n: tuple(weights[n].shape) for n in names},
                                                {}, {}), summary["kept"])
        artifacts.check_digest(dict(masks), digests["masks"])
    except Exception as e:  # noqa: BLE001 - Invalid, or masks that are no masks
        raise _bad(masks_file, _why(e)) from None
    try:
        for name, mask in masks.items():
            alive = int(weights[name][~mask].count_nonzero())
            if alive:
                raise Invalid(f"{alive} weights of {name!r} that {paths.MASKS} prunes are not "
                              f"zero (training holds them at zero: the weights are damaged or "
                              f"not this run's)")
        artifacts.check_digest(weights, digests["weights"])
    except Invalid as e:
        raise _bad(weights_file, _why(e)) from None
    return weights, masks
