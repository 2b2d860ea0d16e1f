"""Scoring time of every method through ``compute_masks``, thresholding included.

Each method runs its own default schedule (``rounds=None``): one shot, SynFlow's 100 rounds,
iterative SNIP's and FORCE's 60, NTK-SAP's 20 (5 weight draws each). ``scoring_figure.py``
draws the figure (``results/benchmarks/scoring.png``) from ``--benchmark-json``.
The data-driven methods draw their 10 examples per class from the synthetic data set (same
shapes as CIFAR-10). Targets on the 2-core CPU, VGG-16 (14.7M prunable weights): SynFlow with
100 rounds under 15 s (the reference implementation takes 46-109 s), SNIP under 3.7 s, GraSP
under 14.5 s. Run: ``pytest benchmarks/test_scoring_speed.py --benchmark-only -q``.
"""

import pytest
import torch

from pai_bench import methods
from pai_bench.data import load_split
from pai_bench.masks import Masks
from pai_bench.models import create_model, prunable_names
from pai_bench.pruning import global_masks
from pai_bench.scoring import compute_masks

SHAPE, CLASSES = (3, 32, 32), 10
DENSITY = 0.01  # 99% sparsity: an extreme sparsity of the paper's grid


@pytest.fixture(scope="module")
def data():
    return load_split("synthetic", None, "train")


@pytest.mark.parametrize("method", ["random", "magnitude", "snip", "grasp", "grasp_abs",
                                    "synflow", "iterative_snip", "force", "prospr", "ntk_sap",
                                    "phew"])
@pytest.mark.parametrize("model_name", ["cifar_resnet_20", "cifar_vgg_16"])
def test_compute_masks(benchmark, model_name, method, data):
    model = create_model(model_name, num_classes=CLASSES, input_shape=SHAPE, seed=0)
    scorer = methods.make_method(method)

    def run():
        return compute_masks(scorer, model, density=DENSITY, data=data, num_classes=CLASSES,
                             input_shape=SHAPE, generator=torch.Generator().manual_seed(0))

    benchmark.extra_info["rounds"] = scorer.default_rounds
    slow = model_name == "cifar_vgg_16" and method in ("synflow", "grasp", "grasp_abs") or \
        method in ("iterative_snip", "force", "ntk_sap")  # tens of rounds: minutes on VGG-16
    masks = benchmark.pedantic(run, rounds=1 if slow else 3, iterations=1, warmup_rounds=0)
    assert masks.kept() == round(masks.total() * DENSITY)


@pytest.mark.parametrize("step", ["iterative", "one_shot"])
def test_global_threshold(benchmark, step):
    """One ``global_masks`` call on VGG-16-sized float64 scores: a SynFlow round (drop 4.5% of
    the 30% alive) and a one-shot cut to 1% density."""
    model = create_model("cifar_vgg_16", num_classes=CLASSES, input_shape=SHAPE, seed=0)
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(0)
    alive = 0.3 if step == "iterative" else 1.0
    current = Masks({n: torch.rand(params[n].shape, generator=g) < alive
                     for n in prunable_names(model)})
    scores = {n: torch.rand(m.shape, generator=g, dtype=torch.float64) * m
              for n, m in current.items()}
    density = current.density() * 0.955 if step == "iterative" else DENSITY
    benchmark.pedantic(global_masks, args=(scores, density, current), rounds=5, iterations=1,
                       warmup_rounds=1)
