"""The command line: thin argument parsing over library calls (STYLE.md #7).

``run`` (one configuration), ``sweep`` (many), ``table``, ``plot``, ``reproduce`` (a paper
experiment) and ``list``. Library errors become one message on stderr and exit code 2 (bad
input) or 1 (other failures).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from pai_bench import paths
from pai_bench.config import PRECISIONS, PRESETS, RunConfig
from pai_bench.errors import ConfigError, DataNotFoundError, PaiBenchError

# Settings shared by every run of a command: (flag, RunConfig field, type, help).
SETTINGS = [
    ("--model", "model", str, "network (see `list`; default cifar_resnet_20)"),
    ("--dataset", "dataset", str, "data set (default cifar10)"),
    ("--preset", "preset", str, f"training recipe: {' or '.join(PRESETS)} (default paper)"),
    ("--epochs", "epochs", int, "override the preset's epochs (milestones scale with it)"),
    ("--batch-size", "batch_size", int, "override the preset's batch size"),
    ("--lr", "lr", float, "override the preset's learning rate"),
    ("--subset", "subset", int, "class-balanced training examples"),
    ("--test-subset", "test_subset", int, "class-balanced test examples"),
    ("--width", "width", int, "network width (CIFAR ResNets)"),
    ("--scope", "scope", str, "global (default) or layerwise threshold"),
    ("--rounds", "rounds", int, "pruning rounds, exponential schedule (default: the method's)"),
    ("--precision", "precision", str, f"{' or '.join(PRECISIONS)} (bf16: autocast)"),
    ("--rewind-iter", "rewind_iter", int, "ltr: the step rewound to (default 2%% of training)"),
]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataNotFoundError) as e:
        print(f"pai-bench: error: {e}", file=sys.stderr)
        return 2
    except PaiBenchError as e:
        print(f"pai-bench: error: {e}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    from pai_bench import commands
    parser = argparse.ArgumentParser(prog="python -m pai_bench",
                                     description="Benchmark pruning at initialization.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="prune, train and evaluate one configuration")
    run.add_argument("--method", required=True, help="a method or baseline (see `list`)")
    run.add_argument("--sparsity", type=float, default=0.9,
                     help="fraction of prunable weights removed, in [0, 1) (default 0.9)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--check", default="none", help="none, shuffle, reinit or invert")
    run.add_argument("--prune-at", type=int, default=0, metavar="STEP",
                     help="prune after STEP steps of dense training instead of at step 0")
    add_settings(run)
    run.set_defaults(func=commands.run)

    sweep = sub.add_parser("sweep", help="methods x sparsities x seeds x checks, resumable")
    sweep.add_argument("--config", type=Path, help="a TOML sweep file (see README)")
    sweep.add_argument("--methods", type=_names, help="comma-separated")
    sweep.add_argument("--sparsities", type=_floats)
    sweep.add_argument("--seeds", type=_ints)
    sweep.add_argument("--checks", type=_names)
    sweep.add_argument("--prune-at", type=_ints, dest="prune_at_points")
    add_settings(sweep)
    add_workers(sweep)
    sweep.set_defaults(func=commands.sweep)

    repro = sub.add_parser("reproduce", help="run one of the paper's experiments")
    repro.add_argument("name", help="main, ablations or early")
    repro.add_argument("--scale", choices=("paper", "cpu"), default="cpu")
    repro.add_argument("--out", type=Path, help="tables and figures (default results/<scale>/<name>)")
    add_common(repro)
    add_workers(repro)
    repro.set_defaults(func=commands.reproduce)

    for name, func, text in (("table", commands.table, "tables of every run in a results folder"),
                             ("plot", commands.plot, "figures of every run in a results folder")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--results-dir", type=Path)
        p.add_argument("--out", type=Path, help="output folder (default <results>/report)")
        if name == "table":
            p.add_argument("--latex", action="store_true", help="also write LaTeX tables")
        else:
            p.add_argument("--layer-sparsity", type=float, default=None,
                           help="sparsity of the per-layer density figure (default: highest)")
        p.set_defaults(func=func)

    lst = sub.add_parser("list", help="list the methods, baselines, checks, models and data sets")
    lst.add_argument("--plugin", action="append", default=[], metavar="MODULE")
    lst.set_defaults(func=commands.list_all)
    return parser


def add_settings(p: argparse.ArgumentParser) -> None:
    for flag, _, kind, text in SETTINGS:
        p.add_argument(flag, type=kind, default=None, help=text)
    p.add_argument("--method-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the method, e.g. samples_per_class=5 (repeatable)")
    add_common(p)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first, registering the scorers it defines")
    p.add_argument("--data-root", type=Path,
                   help="data folder (default: $PAI_BENCH_DATA, else ./data)")
    p.add_argument("--results-dir", type=Path,
                   help="where runs are stored (default: $PAI_BENCH_RESULTS, else ./results)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (per worker in sweeps)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1, help="runs at once (default 1)")
    from pai_bench.sweep import EXECUTORS
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where runs execute: local processes (default) or a Ray cluster "
                        "(needs pip install -e '.[ray]'; see README)")
    p.add_argument("--ray-address", metavar="HOST:PORT",
                   help="head node of the Ray cluster (default: $RAY_ADDRESS, else a cluster "
                        "started on this machine, else a new local one)")


def settings(args) -> dict:
    """The shared run settings the user gave (the rest keep RunConfig's defaults)."""
    out = {field: getattr(args, flag[2:].replace("-", "_")) for flag, field, _, _ in SETTINGS}
    out = {k: v for k, v in out.items() if v is not None}
    if args.method_arg:
        out["method_args"] = parse_method_args(args.method_arg)
    return out


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


def results_dir(args) -> Path:
    return args.results_dir or paths.default_results_dir()


def config_from_args(args) -> RunConfig:
    return RunConfig(method=args.method, sparsity=args.sparsity, seed=args.seed,
                     check=args.check, prune_at=args.prune_at, **settings(args))


def _split(text: str, kind):
    try:
        return tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, "
                                         f"got {text!r}") from None


def _names(text: str):
    return _split(text, str)


def _floats(text: str):
    return _split(text, float)


def _ints(text: str):
    return _split(text, int)
