"""The same seed gives the same masks on any number of CPU threads (issue 25, #13).

A CPU reduction is cut into one partial sum per thread and float addition is not associative,
so scores used to differ in their last bits between 1 and 2 threads, and masks with them (ProsPr
one shot, iterative SNIP at 98% sparsity). ``compute_masks`` now scores on a fixed number of
threads (``scoring.SCORING_THREADS``). Each thread count gets its own process, because a process
sets its thread pool before any work, as a worker does (``--threads``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from pai_bench.data import load_split
from pai_bench.methods import METHODS, make_method
from pai_bench.models import create_model
from pai_bench.scoring import compute_masks

ROOT = Path(__file__).resolve().parents[1]
# ResNet-20 at width 4 (17k weights, BatchNorm, shortcuts): big enough that, scored on 1 and on 2
# threads before the fix, ProsPr's masks differed; options cut so that both processes take ~10 s.
FAST = {"samples_per_class": 2, "samples": 1, "inputs_per_class": 2}
ROUNDS = 3  # at most: iterative methods re-score on the pruned network, one-shot ones once
DENSITY = 0.02  # 98% sparsity: the threshold falls among many near-equal small scores
SKIPPED = {"masks": "reads its masks from a file: nothing is computed"}


def every_scorers_masks(threads: int, out: Path) -> None:
    """Masks of every built-in scorer at ``DENSITY`` on ``threads`` threads, saved to ``out``."""
    torch.set_num_threads(threads)  # first, before any work, as in a worker process
    data = load_split("synthetic", None, "train")
    found = {}
    for name, cls in METHODS.items():
        if cls.after_training or name in SKIPPED:
            continue
        fields = getattr(cls, "__dataclass_fields__", {})
        model = create_model("cifar_resnet_20", num_classes=10, input_shape=(3, 32, 32), seed=0,
                             width=4)
        masks = compute_masks(make_method(name, {k: v for k, v in FAST.items() if k in fields}),
                              model, density=DENSITY, rounds=min(ROUNDS, cls.default_rounds),
                              data=data, num_classes=10, input_shape=(3, 32, 32),
                              generator=torch.Generator().manual_seed(0))
        found[name] = dict(masks.items())
    assert torch.get_num_threads() == threads, "scoring must restore the caller's threads"
    torch.save(found, out)


def masks_on(threads: int, folder: Path) -> dict:
    out = folder / f"masks-{threads}.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, __file__, str(threads), str(out)], check=True, env=env,
                   cwd=ROOT, timeout=300)
    return torch.load(out, weights_only=True)


def test_every_scorer_gives_the_same_masks_on_1_and_2_threads(tmp_path):
    one, two = masks_on(1, tmp_path), masks_on(2, tmp_path)
    assert one.keys() == two.keys() and {"prospr", "iterative_snip", "synflow"} <= one.keys()
    differ = {name: [layer for layer in one[name]
                     if not torch.equal(one[name][layer], two[name][layer])]
              for name in one}
    differ = {name: layers for name, layers in differ.items() if layers}
    assert not differ, f"masks differ between 1 and 2 threads, method: layers: {differ}"

if __name__ == "__main__":  # the child process of ``masks_on``
    every_scorers_masks(int(sys.argv[1]), Path(sys.argv[2]))
