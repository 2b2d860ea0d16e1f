"""SynFlow: the conservation law it rests on, float64 against overflow, and no layer collapse."""

import copy

import pytest
import torch
from torch import nn

from pai_bench.methods import ScoringContext, make_method
from pai_bench.methods.helpers import linearized_copy
from pai_bench.errors import ScoreError
from pai_bench.masks import Masks, apply_
from pai_bench.models import create_model, initialize, prunable_names
from pai_bench.scoring import compute_masks

CLASSES = 10


def context(model, shape, masks=None):
    masks = masks or Masks.ones_like(model, prunable_names(model))
    return ScoringContext(model=model, masks=masks, data=None, num_classes=CLASSES,
                          input_shape=shape, generator=torch.Generator().manual_seed(0),
                          device=torch.device("cpu"))


def flow(model, shape, dtype=torch.float64):
    """R = sum of the outputs of the |θ| network on one all-ones input, computed directly."""
    with torch.no_grad():
        return linearized_copy(model, dtype)(torch.ones(1, *shape, dtype=dtype)).sum()


def bias_free_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 32, bias=False), nn.ReLU(),
                         nn.Linear(32, 16, bias=False), nn.ReLU(),
                         nn.Linear(16, CLASSES, bias=False))


def bias_free_convnet():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, CLASSES, bias=False))


@pytest.mark.parametrize("build", [bias_free_mlp, bias_free_convnet])
@pytest.mark.parametrize("pruned", [False, True])
def test_the_scores_of_every_layer_sum_to_r(build, pruned):
    """Euler: R is homogeneous of degree 1 in each layer's weights, so Σ_layer θ dR/dθ = R."""
    shape, net = (3, 4, 4), build()
    initialize(net, torch.Generator().manual_seed(0))
    masks = Masks.ones_like(net, prunable_names(net))
    if pruned:  # the law holds for the masked network too: pruned weights carry no flow
        g = torch.Generator().manual_seed(1)
        masks = Masks({n: torch.rand(m.shape, generator=g) < 0.5 for n, m in masks.items()})
        apply_(net, masks)
    r = flow(net, shape)
    scores = make_method("synflow").score(context(copy.deepcopy(net), shape, masks))
    for name, s in scores.items():
        assert s.dtype == torch.float64
        assert float(s.sum()) == pytest.approx(float(r), rel=1e-9), name


DEEP = [("cifar_resnet_56", (3, 32, 32)), ("cifar_resnet_110", (3, 32, 32)),
        ("imagenet_resnet_50", (3, 64, 64))]


@pytest.fixture(scope="module")
def deep():
    return {name: create_model(name, num_classes=CLASSES, input_shape=shape, seed=0)
            for name, shape in DEEP}


@pytest.mark.parametrize("name,shape", DEEP)
def test_float64_scores_are_finite_where_float32_overflows(name, shape, deep):
    model = deep[name]
    # Why float64: R is 9e53 on ResNet-56, 2e106 on ResNet-110 and 1e56 on ResNet-50 at this
    # seed, all beyond float32's 3.4e38.
    assert torch.isinf(flow(model, shape, torch.float32))
    assert torch.isfinite(flow(model, shape, torch.float64))
    scores = make_method("synflow").score(context(copy.deepcopy(model), shape))
    assert all(bool(torch.isfinite(s).all()) for s in scores.values())
    with pytest.raises(ScoreError, match="overflowed"):
        make_method("synflow", {"dtype": "float32"}).score(context(copy.deepcopy(model), shape))


def test_synflow_avoids_the_layer_collapse_of_one_shot_pruning():
    """Tanaka et al.'s argument, on VGG-16: at 99.9% sparsity (iterative, 100 rounds) SynFlow
    keeps every layer, while one-shot global magnitude empties a 512-channel conv at 99.9% and
    random pruning empties a layer at 99.99% (the first conv or the output layer, seeds 0-2)."""
    shape = (3, 32, 32)
    vgg = create_model("cifar_vgg_16", num_classes=CLASSES, input_shape=shape, seed=0)

    def collapsed(method, density, rounds=None):
        masks = compute_masks(make_method(method), vgg, density=density, rounds=rounds,
                              generator=torch.Generator().manual_seed(0), num_classes=CLASSES,
                              input_shape=shape)
        return [row["name"] for row in masks.layer_report() if row["collapsed"]]

    assert collapsed("synflow", 1e-3) == []  # rounds=None: SynFlow's default 100 rounds
    assert collapsed("magnitude", 1e-3) != []
    assert collapsed("random", 1e-4) != []
