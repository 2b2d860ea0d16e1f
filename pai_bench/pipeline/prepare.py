"""The one front door: every entry point prepares a run here, once per process.

``setup(options)`` makes a process ready to run: its options concrete (folders, ``auto`` to a
device), the device made the process's own (``device.use_device``: ``set_device`` and cuDNN's
flags on CUDA), the plugins imported. ``prepare(config, options)`` then makes one config's
plan: its precision resolved for the device, its data's identity settled (``data_identity``),
every name checked (``plan.make_plan``). ``prepare_run`` is both, for the entry points that run
one config: the CLI's ``run``, ``pai_bench.run``, a sweep's worker (``worker.run_one``). A
sweep sets up once and prepares each config once in its parent (names checked, runs counted)
and once in the process that trains it; in its own process the parent's plan is used
(``worker.run_one``'s ``plan``).

``run_settings`` is the one way from the settings a user gave (flags, keywords) and a
``--masks`` file to a config and its method, for the CLI and the API alike.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pai_bench import paths

from pai_bench.config import RunConfig, entry_defaults
from pai_bench.data import DATASETS, resolve_data_root
from pai_bench.data.folders import tree_fingerprint
from pai_bench.device import use_device
from pai_bench.errors import ConfigError, DataMismatchError
from pai_bench.methods import Method, load_plugins
from pai_bench.io import file_digest
from pai_bench.methods.given import GivenMasks, read_mask_file
from pai_bench.options import RunOptions
from pai_bench.pipeline.plan import Plan, make_plan
from pai_bench.precision import resolve


def setup(options: RunOptions) -> RunOptions:
    """``options`` made concrete, their device this process's own, their plugins imported."""
    options = options.resolved()
    use_device(options.torch_device)  # set_device and cuDNN's flags on CUDA (pai_bench.device)
    load_plugins(options.plugins)
    return options


def prepare(config: RunConfig, options: RunOptions, method: Method | None = None) -> Plan:
    """The plan of ``config`` for options that went through ``setup``: precision resolved
    for the device (the run is named by the precision it uses), the data's identity settled,
    every name and option checked before anything is loaded or written. ``method``: the
    method instance the entry point made (``--masks``: it holds the file's masks)."""
    config = resolve(config, options.torch_device)
    config = data_identity(config, options.data_root)
    plan = make_plan(config, method)
    if isinstance(method, GivenMasks) and method.source:
        say_old_masks_run(config, file_digest(method.source), options)
    if config.data_digest is not None:
        say_unnamed_data_run(config, options)
    return plan


def prepare_run(config: RunConfig, options: RunOptions,
                method: Method | None = None) -> tuple[Plan, RunOptions]:
    """``setup`` and ``prepare``: what an entry point that runs one config does first."""
    options = setup(options)
    return prepare(config, options, method), options


def data_identity(config: RunConfig, data_root: Path | None) -> RunConfig:
    """``config`` with its data's fingerprint where the data set's name does not fix its
    content (``DatasetSpec.known`` None: imagefolder, a user's data set); for a name that
    stands for known content, the files are checked against it (``DataMismatchError``).
    Hashes of configs whose name fixes the data stay as they were (docs/identity.md)."""
    spec = DATASETS.get(config.dataset)
    if not spec.needs_root or spec.known == ():  # no files, or checked by structure only
        return config
    root = resolve_data_root(data_root)
    found = (spec.fingerprint or tree_fingerprint)(root)
    if spec.known is not None:
        if found is not None and found not in spec.known:
            raise DataMismatchError(
                f"the {config.dataset} files under {root} have fingerprint {found}, not the "
                f"{config.dataset} this name stands for ({', '.join(spec.known)}): a stored "
                f"{config.dataset} result would not be theirs. Fix: --data-root to the real "
                f"copy, or --dataset imagefolder (its files then name its runs)")
        return config
    if config.data_digest not in (None, found):
        raise DataMismatchError(
            f"the {config.dataset} files under {root} have fingerprint {found}; this config "
            f"was made for the files of fingerprint {config.data_digest}")
    return dataclasses.replace(config, data_digest=found)


def say_old_masks_run(config: RunConfig, old_digest: str, options: RunOptions) -> None:
    """One line when a ``--masks`` run is stored under its old name (the sha256 of the file's
    bytes, before issue 37) and not under its name now (the digest of its masks): a run stored
    before this release carries no owner and no sealed summary (``artifacts``), so it could
    not be trusted under any name; it is not reused, and not silently orphaned either."""
    old = dataclasses.replace(config, method_args=(("sha256", old_digest),))
    old_dir, new_dir = paths.run_dir(options.results_dir, old), paths.run_dir(
        options.results_dir, config)
    if old != config and (old_dir / paths.SUMMARY).is_file() and not new_dir.exists():
        options.say(f"[pai-bench] note: {old_dir} was stored before --masks runs were named by "
                    f"their masks (not the file's bytes): it is not reused; this run is "
                    f"{new_dir.name} (delete the old one)")


def say_unnamed_data_run(config: RunConfig, options: RunOptions) -> None:
    """One line when a run of ``config`` is stored under its name before issue 37, without
    the data's fingerprint: it may be of these files or of others, so it is not reused, and
    not silently orphaned either: the line names it (``table`` still reads it, as the run of
    its own config)."""
    old = dataclasses.replace(config, data_digest=None)
    old_dir, new_dir = paths.run_dir(options.results_dir, old), paths.run_dir(
        options.results_dir, config)
    if (old_dir / paths.SUMMARY).is_file() and not new_dir.exists():
        options.say(f"[pai-bench] note: {old_dir} was stored before {config.dataset} runs were "
                    f"named by their files' fingerprint, and may be of other files: it is not "
                    f"reused; this run is {new_dir.name} (delete the old one if it is of these "
                    f"files)")


def run_settings(settings: dict, masks: Path | str | None = None,
                 config_cls: type = RunConfig) -> tuple[RunConfig, Method | None]:
    """The config of the settings a user gave (the rest at the entry points' defaults), and
    the method instance when ``masks`` names a masks file (``given_masks``)."""
    method = None
    if masks is not None:
        method, settings = given_masks(masks, settings)
    if settings.get("method") is None:
        raise ConfigError("run needs --method NAME (see `list`) or --masks FILE")
    return config_cls(**{**entry_defaults(config_cls), **settings}), method


def given_masks(path: Path | str, settings: dict) -> tuple[GivenMasks, dict]:
    """``--masks FILE``: the file read once; the method "masks" holding its masks, and the
    settings with the method, the masks' sparsity and their digest (the run's identity follows
    the masks, not the file: ``read_mask_file``). A method, method option or sparsity that
    contradicts the file is refused."""
    masks, digest = read_mask_file(path)
    if settings.get("method") not in (None, "masks"):
        raise ConfigError(f"--masks trains the file's masks; it takes no --method "
                          f"{settings['method']!r}")
    if settings.get("method_args"):
        raise ConfigError("--masks takes no --method-arg: the masks are the file's")
    sparsity = masks.sparsity()
    if settings.get("sparsity") is not None and abs(settings["sparsity"] - sparsity) > 1e-9:
        raise ConfigError(f"--sparsity {settings['sparsity']} contradicts the masks file "
                          f"{path}, whose sparsity is {sparsity:.6f}; leave --sparsity out")
    method = GivenMasks(sha256=digest, given=masks, source=str(path))
    return method, {**settings, "method": "masks", "sparsity": sparsity,
                    "method_args": (("sha256", digest),)}


__all__ = ["setup", "prepare", "prepare_run", "data_identity", "say_old_masks_run", "run_settings",
           "given_masks"]
