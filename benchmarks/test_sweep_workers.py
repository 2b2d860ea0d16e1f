"""Wall time of one 4-run sweep: one run at a time (1 or 2 torch threads) vs two runs at once.

The runs are the CPU preset's miniature (ResNet-20 at width 8, bfloat16 autocast, batch 32),
shortened to 2 epochs on 5,000 images and a 2,000-image test slice (about 10 s per run on one
core: long enough that starting the worker processes does not dominate, as it did with 1-epoch
runs on 2,000 images), on the shared CIFAR-10 copy (synthetic data of the same shape when it is
absent). Every round starts from an empty results
folder, so nothing is skipped; the cost of starting the worker processes is included, as a
user pays it. Run: ``pytest benchmarks/test_sweep_workers.py --benchmark-only``; the ratios to
``workers1-threads1`` print at the end.
"""

import itertools
from pathlib import Path

import pytest

from pai_bench.config import RunConfig
from pai_bench.data import load_split
from pai_bench.sweeps.executors import ExecutorOptions
from pai_bench.options import RunOptions
from pai_bench.sweeps.sweep import run_sweep

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"
DATASET, ROOT = ("cifar10", CIFAR) if (CIFAR / "train").is_dir() else ("synthetic", None)
RUN = dict(model="cifar_resnet_20", width=8, dataset=DATASET, epochs=2, subset=5000,
           test_subset=2000, batch_size=32, lr=0.05, precision="bf16")
CONFIGS = [RunConfig(method=m, sparsity=0.9, seed=s, **RUN)
           for m, s in itertools.product(("random", "snip"), (0, 1))]
_round = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def decoded_once():
    """Decode (and cache) the images before any timing."""
    for split in ("train", "test"):
        load_split(DATASET, ROOT, split)


@pytest.mark.parametrize("workers,threads", [(1, 1), (1, 2), (2, 1)],
                         ids=["workers1-threads1", "workers1-threads2", "workers2-threads1"])
def test_sweep_of_four_runs(benchmark, tmp_path, workers, threads):
    def sweep():
        out = tmp_path / f"round{next(_round)}"
        results = run_sweep(CONFIGS, RunOptions(data_root=ROOT, results_dir=out, threads=threads,
                                                progress=False, log=None),
                            ExecutorOptions(workers=workers))
        assert [r["status"] for r in results] == ["finished"] * len(CONFIGS)

    if (workers, threads) != (1, 1):
        benchmark.extra_info["ratio_to"] = "test_sweep_of_four_runs[workers1-threads1]"
    benchmark.pedantic(sweep, rounds=1, iterations=1, warmup_rounds=0)
