"""What each CLI command does: turn parsed arguments into library calls, and print.

Below ``pai_bench.cli`` (which only parses) and above the library: everything done here is a
plain Python call too (``pai_bench.runner.execute``, ``sweeps.run_sweep``,
``experiments.reproduce``, ``report.tables``/``figures``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import torch

from pai_bench import console, experiments, paths, report, runner, sweeps
from pai_bench.config import RunConfig, entry_defaults
from pai_bench.data import DATASETS, resolve_data_root
from pai_bench.device import resolve_device
from pai_bench.errors import ConfigError
from pai_bench.export import export_run
from pai_bench.io import check_writable_dir
from pai_bench.methods import METHODS, load_plugins
from pai_bench.methods.given import check_against, file_digest, load_mask_file
from pai_bench.models import MODELS, prunable_names
from pai_bench.plan import make_plan
from pai_bench.precision import resolve
from pai_bench.sanity_checks import CHECKS


def plugins(args) -> tuple[str, ...]:
    """``--plugin a,b --plugin c`` -> ("a", "b", "c")."""
    return tuple(m.strip() for item in args.plugin for m in item.split(",") if m.strip())


def load_cli_plugins(args) -> None:
    """``--plugin`` modules, found in the working folder whichever way the CLI was started (the
    installed ``pai-bench`` script does not put it on sys.path as ``python -m`` does)."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    load_plugins(plugins(args))


def _setup(args) -> torch.device:
    load_cli_plugins(args)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if args.eval_every < 0:
        raise ConfigError(f"--eval-every must be >= 0, got {args.eval_every}")
    if args.threads is not None and args.command == "run":
        torch.set_num_threads(args.threads)
    return resolve_device(args.device)


def settings(args, config_cls: type = RunConfig, exclude: tuple[str, ...] = ()) -> dict:
    """The configuration fields the user set (the rest keep their defaults)."""
    out = {}
    for f in dataclasses.fields(config_cls):
        value = getattr(args, f.name, None)
        if f.name in exclude or value is None:
            continue
        if f.name == "method_args":
            if value:
                out[f.name] = parse_method_args(value)
            continue
        out[f.name] = value
    return out


def parse_method_args(items: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--method-arg takes KEY=VALUE, got {item!r}")
        pairs.append((key, value))
    return tuple(pairs)


def config_from_args(args, config_cls: type = RunConfig) -> RunConfig:
    return config_cls(**{**entry_defaults(config_cls), **settings(args, config_cls)})


def results_dir(args) -> Path:
    return args.results_dir or paths.default_results_dir()


def given_masks(args) -> None:
    """``--masks FILE``: the method "masks" with the file (and its content hash) as options,
    at the file's sparsity."""
    if args.method not in (None, "masks"):
        raise ConfigError(f"--masks trains the file's masks; it takes no --method "
                          f"{args.method!r}")
    masks = load_mask_file(args.masks)
    path = args.masks.resolve()
    args.method = "masks"
    args.method_args = [*args.method_args, f"file={path}", f"sha256={file_digest(path)}"]
    args.sparsity = masks.sparsity()


def run(args) -> int:
    device = _setup(args)
    if getattr(args, "masks", None) is not None:
        given_masks(args)
    if args.method is None:
        raise ConfigError("run needs --method NAME (see `list`) or --masks FILE")
    config = resolve(config_from_args(args, args.config_cls), device)
    out = results_dir(args)
    plan = make_plan(config)  # every name checked before anything is loaded or written
    if getattr(args, "masks", None) is not None:  # the file against the model, before the data
        model = plan.build_model()
        params = dict(model.named_parameters())
        check_against(load_mask_file(args.masks), {n: tuple(params[n].shape)
                                                   for n in prunable_names(model)}, args.masks)
    check_writable_dir(out)
    stored = runner.stored_summary(config, out)
    if stored is None:
        console.warn_if_slow(config, device, print)
    summary = runner.execute(config, data_root=resolve_data_root(args.data_root),
                             results_dir=out, device=device, progress=not args.no_progress,
                             eval_every=args.eval_every, loggers=tuple(args.logger))
    print(console.format_run(summary, paths.run_dir(out, config), cached=stored is not None))
    return 0 if summary["status"] == "finished" else 1


def sweep(args) -> int:
    device = _setup(args)
    axes = sweeps.axes(args.config_cls)
    overrides = {axis: getattr(args, axis) for axis in axes}
    overrides["run"] = settings(args, args.config_cls, exclude=tuple(axes.values()))
    spec = sweeps.load_spec(args.config, overrides)  # the file, then the flags given
    spec = dataclasses.replace(spec, run={**entry_defaults(args.config_cls), **spec.run})
    return _report_sweep(sweeps.run_sweep(spec.configs(), **sweep_options(args, device)))


def sweep_options(args, device: torch.device) -> dict:
    out = results_dir(args)
    check_writable_dir(out)
    return dict(data_root=resolve_data_root(args.data_root), results_dir=out,
                device=str(device), workers=args.workers, threads=args.threads or 1,
                plugins=plugins(args), progress=not args.no_progress, executor=args.executor,
                ray_address=args.ray_address, eval_every=args.eval_every,
                runs_per_gpu=args.runs_per_gpu)


def _report_sweep(results: list[dict]) -> int:
    failed = [r for r in results if r["status"] == "failed"]
    print(f"[pai-bench] sweep done: {len(results)} run(s) this time, {len(failed)} failed")
    return 1 if failed else 0


def reproduce(args) -> int:
    device = _setup(args)
    options = sweep_options(args, device)
    results, out = experiments.reproduce(args.name, args.scale, out=args.out, **options)
    print(f"[pai-bench] tables and figures in {out}")
    return _report_sweep(results)


def table(args) -> int:
    results = report.results_folder(results_dir(args))
    print(report.tables(results, args.out or results / "report", args.latex))
    return 0


def plot(args) -> int:
    results = report.results_folder(results_dir(args))
    files = report.figures(results, args.out or results / "report", args.layer_sparsity)
    print("\n".join(map(str, files)))
    return 0


def export(args) -> int:
    print(export_run(args.run, args.format, args.out))
    return 0


def list_all(args) -> int:
    load_cli_plugins(args)
    sections = [("methods at initialization",
                 [(n, c.description()) for n, c in METHODS.items() if not c.after_training]),
                ("baselines after training",
                 [(n, c.description()) for n, c in METHODS.items() if c.after_training]),
                ("sanity checks (--check)", [(n, c.description) for n, c in CHECKS.items()]),
                ("models", [(n, s.description) for n, s in MODELS.items()]),
                ("datasets", [(n, s.description) for n, s in DATASETS.items()]),
                ("experiments (reproduce)", [(n, "") for n in sorted(experiments.EXPERIMENTS)])]
    for title, rows in sections:
        print(f"{title}:")
        for name, text in rows:
            print(f"  {name:26s} {text}")
    return 0
