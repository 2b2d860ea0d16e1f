"""What each CLI command does: library calls and printing, nothing else."""

from __future__ import annotations

from pathlib import Path

import torch

from pai_bench import paths
from pai_bench.cli import config_from_args, resolve_device, results_dir, settings
from pai_bench.errors import ConfigError


def _setup(args) -> torch.device:
    import methods
    methods.load_plugins(args.plugin)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if args.threads is not None and args.command == "run":
        torch.set_num_threads(args.threads)
    return resolve_device(args.device)


def run(args) -> int:
    from pai_bench import report, runner
    from pai_bench.data import resolve_data_root
    device = _setup(args)
    config = config_from_args(args)
    out = results_dir(args)
    runner.plan(config)  # every name checked before anything is loaded or written
    stored = runner.stored_summary(config, out)
    if stored is None:
        report.warn_if_slow(config, device, print)
    summary = runner.execute(config, data_root=resolve_data_root(args.data_root),
                             results_dir=out, device=device, progress=not args.no_progress)
    print(report.format_run(summary, paths.run_dir(out, config), cached=stored is not None))
    return 0 if summary["status"] == "finished" else 1


def sweep(args) -> int:
    from pai_bench import sweep as sw
    device = _setup(args)
    spec = sw.load_spec(args.config) if args.config else None
    axes = dict(methods=args.methods, sparsities=args.sparsities, seeds=args.seeds,
                checks=args.checks, prune_at=args.prune_at_points)
    data = {} if spec is None else dict(methods=spec.methods, sparsities=spec.sparsities,
                                        seeds=spec.seeds, checks=spec.checks,
                                        prune_at=spec.prune_at, run=dict(spec.run))
    data.update({k: v for k, v in axes.items() if v is not None})
    data["run"] = {**data.get("run", {}), **settings(args)}
    return _sweep(sw.spec_from_dict(data).configs(), args, device)


def _sweep(configs, args, device) -> int:
    from pai_bench import sweep as sw
    from pai_bench.data import resolve_data_root
    results = sw.run_sweep(configs, data_root=resolve_data_root(args.data_root),
                           results_dir=results_dir(args), device=str(device),
                           workers=args.workers, threads=args.threads or 1,
                           plugins=tuple(args.plugin), progress=not args.no_progress,
                           executor=args.executor, ray_address=args.ray_address)
    failed = [r for r in results if r["status"] == "failed"]
    print(f"[pai-bench] sweep done: {len(results)} run(s) this time, {len(failed)} failed")
    return 1 if failed else 0


def reproduce(args) -> int:
    from pai_bench import presets
    device = _setup(args)
    configs = [c for spec in presets.load(args.name, args.scale) for c in spec.configs()]
    code = _sweep(configs, args, device)
    out = args.out or Path("results") / args.scale / args.name
    _report(results_dir(args), out, latex=True, configs=configs)
    print(f"[pai-bench] tables and figures in {out}")
    return code


def table(args) -> int:
    out = args.out or results_dir(args) / "report"
    print(_tables(results_dir(args), out, args.latex))
    return 0


def plot(args) -> int:
    from pai_bench.results import load_runs
    out = args.out or results_dir(args) / "report"
    runs = load_runs(results_dir(args))
    if runs.empty:
        raise ConfigError(f"no finished runs under {results_dir(args)}")
    files = _figures(results_dir(args), runs, out, args.layer_sparsity)
    print("\n".join(map(str, files)))
    return 0


def _tables(results: Path, out: Path, latex: bool, configs=None) -> str:
    from pai_bench.table import build_tables, write_tables
    return write_tables(build_tables(results, configs), out, latex)


def _figures(results: Path, runs, out: Path, layer_sparsity: float | None) -> list[Path]:
    from pai_bench import plots
    s = layer_sparsity if layer_sparsity is not None else float(runs["sparsity"].max())
    return (plots.accuracy_vs_sparsity(runs, out) + plots.checks_per_method(runs, out)
            + plots.pruning_early(runs, out) + plots.layer_densities(results, runs, s, out))


def _report(results: Path, out: Path, latex: bool, configs) -> None:
    from pai_bench.results import load_runs
    print(_tables(results, out, latex, configs))
    runs = load_runs(results, configs)
    if not runs.empty:
        _figures(results, runs, out, None)


def list_all(args) -> int:
    import methods
    from baselines import BASELINES
    from pai_bench.data import DATASETS
    from pai_bench.models import MODELS
    from sanity_checks import CHECKS
    methods.load_plugins(args.plugin)
    sections = [("methods at initialization",
                 [(n, _first_line(c.__doc__)) for n, c in methods.SCORERS.items()]),
                ("baselines after training", [(n, b.description) for n, b in BASELINES.items()]),
                ("sanity checks (--check)", [(n, c.description) for n, c in CHECKS.items()]),
                ("models", [(n, s.description) for n, s in MODELS.items()]),
                ("datasets", [(n, s.description) for n, s in DATASETS.items()])]
    for title, rows in sections:
        print(f"{title}:")
        for name, text in rows:
            print(f"  {name:26s} {text}")
    return 0


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""
