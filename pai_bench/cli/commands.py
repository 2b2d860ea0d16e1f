"""What each CLI command does: turn parsed arguments into library calls, and print.

Below ``pai_bench.cli.parser`` (which only parses) and above the library: everything done here is a
plain Python call too (``pai_bench.pipeline.runner.execute``, ``run_sweep``,
``experiments.reproduce``, ``report.tables``/``figures``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from pai_bench import console, paths
from pai_bench.sweeps import experiments
from pai_bench.sweeps.sweep import axes, load_spec, run_sweep
from pai_bench.analysis import report
from pai_bench.pipeline import runner
from pai_bench.config import RunConfig, entry_defaults
from pai_bench.data import DATASETS
from pai_bench.errors import ConfigError
from pai_bench.sweeps.executors import ExecutorOptions
from pai_bench.pipeline.export import export_run
from pai_bench.sweeps import judge as judging
from pai_bench.io import check_writable_dir
from pai_bench.methods import METHODS, load_plugins
from pai_bench.methods.base import option_fields as option_fields_of
from pai_bench.models import MODELS
from pai_bench.options import RunOptions, from_kwargs, option_fields
from pai_bench.pipeline.prepare import prepare, run_settings, setup
from pai_bench.analysis.reference import reference_rows, write_reference
from pai_bench.analysis.results import load_runs
from pai_bench.sanity_checks import CHECKS


def options_from_args(args, cls: type, entry: str):
    """The ``cls`` options (``RunOptions``, ``ExecutorOptions``) of ``entry`` the user gave as
    flags (``cli.add_options``), the rest at the entry's defaults; repeated flags take
    comma-separated values (``--plugin a,b --plugin c``)."""
    given = {}
    for f in option_fields(cls, entry):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.metadata["repeat"]:
            value = tuple(v.strip() for item in value for v in item.split(",") if v.strip())
        given[f.name] = value
    return from_kwargs(cls, entry, given)


def plugins_from_cwd() -> None:
    """``--plugin`` modules are found in the working folder whichever way the CLI was started
    (the installed ``pai-bench`` script does not put it on sys.path as ``python -m`` does)."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def load_cli_plugins(plugins: tuple[str, ...]) -> None:
    plugins_from_cwd()
    load_plugins(plugins)


def run_options(args, entry: str) -> RunOptions:
    """The run options of ``entry``, made concrete, results folder writable (set up, plugins
    loaded, by ``pai_bench.pipeline.prepare``: once, by ``run`` here, by the sweep otherwise)."""
    options = options_from_args(args, RunOptions, entry).resolved()
    plugins_from_cwd()
    check_writable_dir(options.results_dir)
    return options


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


def run(args) -> int:
    options = setup(run_options(args, "run"))  # device bound, plugins loaded: pai_bench.pipeline.prepare
    config, method = run_settings(settings(args, args.config_cls), args.masks, args.config_cls)
    plan = prepare(config, options, method)  # every name checked before anything is written
    config = plan.config
    stored = runner.stored_summary(config, options.results_dir)
    if stored is None:
        console.warn_if_slow(config, options.torch_device, print)
        summary = runner.execute_plan(plan, options)
    else:
        summary = runner.reused(stored, "stored", options, paths.run_dir("", config).name)
    print(console.format_run(summary, paths.run_dir(options.results_dir, config)))
    return 0 if summary["status"] == "finished" else 1


def sweep(args) -> int:
    options = run_options(args, "sweep")
    sweep_axes = axes(args.config_cls)
    overrides = {axis: getattr(args, axis) for axis in sweep_axes}
    overrides["run"] = settings(args, args.config_cls, exclude=tuple(sweep_axes.values()))
    spec = load_spec(args.config, overrides)  # the file, then the flags given
    spec = dataclasses.replace(spec, run={**entry_defaults(args.config_cls), **spec.run})
    executor = options_from_args(args, ExecutorOptions, "sweep")
    return _report_sweep(run_sweep(spec.configs(), options, executor))


def _report_sweep(results: list[dict]) -> int:
    failed = [r for r in results if r["status"] == "failed"]
    waited = [r for r in results if r.get("reused") == "waited"]
    trained = len(results) - len(failed) - len(waited)
    print(f"[pai-bench] sweep done: {len(results)} run(s) this time, {len(failed)} failed; "
          f"{trained} trained by this sweep" +
          (f", {len(waited)} trained by another process it waited for" if waited else ""))
    return 1 if failed else 0


def reproduce(args) -> int:
    if args.show:  # what would run, as files a user can edit and sweep
        plugins = options_from_args(args, RunOptions, "reproduce").plugins
        load_cli_plugins(plugins)
        print(experiments.show(args.name, args.scale, args.methods, plugins))
        return 0
    options = run_options(args, "reproduce")
    executor = options_from_args(args, ExecutorOptions, "reproduce")
    results, out = experiments.reproduce(args.name, args.scale, options, executor, out=args.out,
                                         methods=args.methods)
    print(f"[pai-bench] tables and figures in {out}")
    return _report_sweep(results)


def results_dirs(args) -> list[Path]:
    """The ``--results-dir`` folders (repeatable); none given: the default one, unless
    ``--reference`` files are all that is read."""
    if args.results_dir:
        return list(args.results_dir)
    return [] if getattr(args, "reference", None) else [paths.default_results_dir()]


def report_folders(args) -> tuple[list[Path], Path]:
    """``table``'s and ``plot``'s folders, checked alike before anything is read or written:
    the results folders (each must exist), the output folder (it must be writable), then at
    least one stored run among the folders and ``--reference`` files (a ConfigError "no runs in
    <folder>" otherwise)."""
    folders = [report.results_folder(d) for d in results_dirs(args)]
    if args.out is None and not folders:
        raise ConfigError("--out is needed when only --reference files are read (no "
                          "--results-dir to write the report under)")
    out = args.out or folders[0] / "report"
    check_writable_dir(out)
    return report.require_runs(folders, args.reference), out


def table(args) -> int:
    results, out = report_folders(args)
    print(report.tables(results, out, args.latex, references=args.reference))
    return 0


def plot(args) -> int:
    results, out = report_folders(args)
    files = report.figures(results, out, args.layer_sparsity, references=args.reference)
    print("\n".join(map(str, files)))
    return 0


def judge(args) -> int:
    options = run_options(args, "reproduce")
    executor = options_from_args(args, ExecutorOptions, "reproduce")
    references = ([] if args.no_reference else args.reference
                  if args.reference is not None else paths.shipped_references())
    print(f"[pai-bench] references: {', '.join(map(str, references)) or 'none'}"
          f"{' (shipped)' if args.reference is None and references else ''}")
    out = judging.judge(args.method, options, executor, level=args.level,
                        references=references, design=judging.design_of(args.scale),
                        out=args.out)
    print(f"[pai-bench] verdict card in {out / 'card.md'}")
    return 0


def reference_export(args) -> int:
    """``reference export FOLDER... --out FILE``: every stored run of the folders, one row
    each (``pai_bench.analysis.reference``)."""
    folders = [report.results_folder(d) for d in args.results_dirs]
    runs = load_runs(folders)
    if runs.empty:
        raise ConfigError(f"no runs in {', '.join(map(str, folders))}")
    out = write_reference(reference_rows(runs), args.out)
    print(f"[pai-bench] {len(runs)} runs of {', '.join(map(str, folders))} written to {out}")
    return 0


def export(args) -> int:
    print(export_run(args.run, args.format, args.out))
    return 0


def list_all(args) -> int:
    load_cli_plugins(tuple(p.strip() for item in args.plugins or () for p in item.split(",")
                           if p.strip()))
    families: dict[str, list] = {}
    for n, c in METHODS.items():  # each method says which section it belongs to
        families.setdefault(c.family, []).append((n, c.description() + _options_text(c)))
    sections = [*families.items(),
                ("sanity checks (--check)", [(n, c.description) for n, c in CHECKS.items()]),
                ("models", [(n, s.description) for n, s in MODELS.items()]),
                ("datasets", [(n, s.description) for n, s in DATASETS.items()]),
                ("experiments (reproduce NAME; --print shows its sweeps)",
                 [(n, e.description) for n, e in experiments.EXPERIMENTS.items()])]
    for title, rows in sections:
        print(f"{title}:")
        for name, text in rows:
            print(f"  {name:26s} {text}")
    return 0


def _options_text(cls) -> str:
    """A method's options as ``list`` shows them: " (--method-arg: key=default, ...)"."""
    fields = option_fields_of(cls)
    if not fields:
        return ""
    return " (--method-arg: " + ", ".join(f"{f.name}={f.default}" for f in fields) + ")"
