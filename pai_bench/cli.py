"""The command line: thin argument parsing over library calls (STYLE.md #7).

``python -m pai_bench run --method synflow`` · ``python -m pai_bench list``.
Library errors become one message on stderr and exit code 2 (bad input) or 1 (other failures).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from pai_bench import paths
from pai_bench.config import PRECISIONS, PRESETS, RunConfig
from pai_bench.errors import ConfigError, DataNotFoundError, PaiBenchError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataNotFoundError) as e:
        print(f"pai-bench: error: {e}", file=sys.stderr)
        return 2
    except PaiBenchError as e:
        print(f"pai-bench: error: {e}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pai_bench",
                                     description="Benchmark pruning at initialization.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="prune, train and evaluate one configuration")
    add_run_arguments(run)
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", help="list the methods, models and data sets")
    lst.add_argument("--plugin", action="append", default=[], metavar="MODULE")
    lst.set_defaults(func=cmd_list)
    return parser


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    d = RunConfig.__dataclass_fields__
    p.add_argument("--method", required=True, help="a scorer name (see `list`)")
    p.add_argument("--model", default=d["model"].default)
    p.add_argument("--dataset", default=d["dataset"].default)
    p.add_argument("--sparsity", type=float, default=d["sparsity"].default,
                   help="fraction of prunable weights removed, in [0, 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=PRESETS, default="paper")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--subset", type=int, help="class-balanced training examples")
    p.add_argument("--test-subset", type=int, help="class-balanced test examples")
    p.add_argument("--width", type=int, help="network width (CIFAR ResNets)")
    p.add_argument("--scope", choices=("global", "layerwise"), default="global")
    p.add_argument("--rounds", type=int, default=1, help="pruning rounds (exponential schedule)")
    p.add_argument("--method-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the method, e.g. samples_per_class=5 (repeatable)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first, registering the scorers it defines")
    p.add_argument("--data-root", type=Path,
                   help="data folder (default: $PAI_BENCH_DATA, else ./data)")
    p.add_argument("--results-dir", type=Path, default=None,
                   help="where runs are stored (default: $PAI_BENCH_RESULTS, else ./results)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_method_args(items: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--method-arg takes KEY=VALUE, got {item!r}")
        pairs.append((key, value))
    return tuple(pairs)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def config_from_args(args) -> RunConfig:
    return RunConfig(method=args.method, model=args.model, dataset=args.dataset,
                     sparsity=args.sparsity, seed=args.seed, preset=args.preset,
                     epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                     subset=args.subset, test_subset=args.test_subset, width=args.width,
                     scope=args.scope, rounds=args.rounds,
                     method_args=parse_method_args(args.method_arg), precision=args.precision)


def cmd_run(args) -> int:
    import methods
    from pai_bench import report, runner
    from pai_bench.data import resolve_data_root
    methods.load_plugins(args.plugin)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    device = resolve_device(args.device)
    results_dir = args.results_dir or paths.default_results_dir()
    runner.plan(config)  # every name checked before anything is loaded or written
    stored = runner.stored_summary(config, results_dir)
    if stored is None:
        report.warn_if_slow(config, device, print)
    summary = runner.execute(config, data_root=resolve_data_root(args.data_root),
                             results_dir=results_dir, device=device,
                             progress=not args.no_progress)
    print(report.format_run(summary, paths.run_dir(results_dir, config), cached=stored is not None))
    return 0 if summary["status"] == "finished" else 1


def cmd_list(args) -> int:
    import methods
    from pai_bench.data import DATASETS
    from pai_bench.models import MODELS
    methods.load_plugins(args.plugin)
    print("methods:")
    for name, cls in methods.SCORERS.items():
        print(f"  {name:26s} {_first_line(cls.__doc__)}")
    print("models:")
    for name, spec in MODELS.items():
        print(f"  {name:26s} {spec.description}")
    print("datasets:")
    for name, spec in DATASETS.items():
        print(f"  {name:26s} {spec.description}")
    return 0


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""
