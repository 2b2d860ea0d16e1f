"""A recorded run of ``judge``: one verdict card made end to end from an empty results folder,
timed by the wall clock (issue 38's target: the quick card of a new one-shot scorer at the CPU
scale, with the shipped references and 2 workers, calibration included, in at most 30 minutes
on 2 CPU cores). A recorded run, not a timed test: nothing is asserted, the time is printed and
stored beside the card (``timing.json``: wall seconds, runs trained, machine, cores, threads,
workers, torch version, the command).

From the repository's root::

    python benchmarks/judge_card.py --workers 2 --data-root ../shared/data/cifar10-jpeg
                                            # the example plugin (fisher), quick, the shipped
                                            # references (results/reference/*.csv)
    python benchmarks/judge_card.py --level full ...      # the full card: state its time
    python benchmarks/judge_card.py --tiny                # seconds: the script itself, on the
                                                          # MLP and synthetic data

``--results-dir`` keeps the runs (default: a fresh temporary folder, removed afterwards; the
card is copied to ``--out``, default ``results/judge/<method>-<level>``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's pai_bench, examples

from pai_bench import paths  # noqa: E402
from pai_bench.sweeps import judge as judging  # noqa: E402
from pai_bench.analysis.results import load_runs  # noqa: E402
from pai_bench.options import RunOptions  # noqa: E402
from pai_bench.precision import machine  # noqa: E402
from pai_bench.sweeps.executors import ExecutorOptions  # noqa: E402

# --tiny: the script's own check (about a minute on one core), not a measurement of the target
TINY = judging.Design(run=dict(model="mlp", dataset="synthetic", batch_size=32, subset=320,
                               test_subset=100, epochs=1, precision="fp32"),
                      sparsity=0.9, seeds=(0, 1, 2))


def arguments(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plugin", default="examples.fisher_method")
    p.add_argument("--method", default="fisher")
    p.add_argument("--level", choices=judging.LEVELS, default="quick")
    p.add_argument("--scale", choices=tuple(judging.SCALES), default="cpu")
    p.add_argument("--reference", type=Path, action="append",
                   help="default: the shipped files, results/reference/*.csv (--tiny: none)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--data-root", type=Path)
    p.add_argument("--results-dir", type=Path, help="keep the runs here (default: temporary)")
    p.add_argument("--out", type=Path, help="the card (default: results/judge/<method>-<level>; "
                                            "--tiny: <tmp>/pai-judge-tiny)")
    p.add_argument("--tiny", action="store_true", help="the MLP on synthetic data, 3 seeds")
    return p.parse_args(argv)


def record(args: argparse.Namespace, results: Path) -> dict:
    """Make the card from ``results`` (empty at the start) and say what it took."""
    options = RunOptions(results_dir=results, data_root=args.data_root, plugins=(args.plugin,),
                         progress=False, threads=1)
    design = TINY if args.tiny else judging.design_of(args.scale)
    t0 = time.perf_counter()
    card = judging.judge(args.method, options, ExecutorOptions(workers=args.workers),
                         level=args.level, references=args.reference, design=design)
    wall = time.perf_counter() - t0
    trained = load_runs(results)
    return dict(wall_seconds=round(wall, 1), card=str(card), runs_trained=len(trained),
                method=args.method, plugin=args.plugin, level=args.level,
                scale="tiny" if args.tiny else args.scale, workers=args.workers,
                references=[str(r) for r in args.reference], machine=machine("cpu"),
                cores=os.cpu_count(), torch_threads=1, torch=torch.__version__,
                python=platform.python_version(), command=" ".join(sys.argv))


def main(argv=None) -> int:
    args = arguments(argv)
    if args.reference is None:
        args.reference = [] if args.tiny else paths.shipped_references()
    keep = args.results_dir is not None
    results = args.results_dir or Path(tempfile.mkdtemp(prefix="pai-judge-"))
    try:
        found = record(args, results)
        out = args.out or (Path(tempfile.gettempdir()) / "pai-judge-tiny" if args.tiny else
                           Path("results") / "judge" / f"{args.method}-{args.level}")
        if Path(found["card"]).resolve() != out.resolve():
            shutil.copytree(found["card"], out, dirs_exist_ok=True)
        found["card"] = str(out)
        (out / "timing.json").write_text(json.dumps(found, indent=2) + "\n")
    finally:
        if not keep:
            shutil.rmtree(results, ignore_errors=True)
    print(f"judge {found['method']} ({found['level']}, {found['scale']}): "
          f"{found['wall_seconds']:.1f} s wall, {found['runs_trained']} runs trained here, "
          f"{found['workers']} workers, on {found['machine']} ({found['cores']} cores); "
          f"card in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
