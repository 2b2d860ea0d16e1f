"""NTK-SAP against an independent mask gradient; PHEW's walks: no collapse, paths, bias."""

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad

from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.methods import ScoringContext, make_method
from pai_bench.methods.phew import _Walker
from pai_bench.models import create_model, prunable_names
from pai_bench.pruning import keep_count
from pai_bench.scoring import compute_masks

SHAPE, CLASSES = (3, 32, 32), 10
FAST = {"samples": 1, "inputs_per_class": 2}  # 20 random inputs, one weight draw per round


def tiny():
    return create_model("cifar_resnet_20", num_classes=CLASSES, input_shape=SHAPE, seed=0, width=4)


def mlp():
    return create_model("mlp", num_classes=CLASSES, input_shape=SHAPE, seed=0)


def context(model, seed=0, shape=SHAPE, classes=CLASSES, density=1.0):
    return ScoringContext(model=model, masks=Masks.ones_like(model, prunable_names(model)),
                          data=None, num_classes=classes, input_shape=shape,
                          generator=torch.Generator().manual_seed(seed),
                          device=torch.device("cpu"), density=density)


def masks_of(method, model, density, seed=0, options=None, rounds=None, shape=SHAPE):
    return compute_masks(make_method(method, options), model, density=density, rounds=rounds,
                         generator=torch.Generator().manual_seed(seed), num_classes=CLASSES,
                         input_shape=shape, data=None)  # data-free


def test_ntk_sap_equals_the_mask_gradient_of_the_finite_difference_ntk_trace():
    """One fixed draw: |dR/dc| at c = 1 by torch.func.grad, R = Σ||f(x; θ⊙c) - f(x; (θ+Δ)⊙c)||²."""
    model = mlp().double()
    scores = make_method("ntk_sap", {"samples": 1, "resample": False}).score(
        context(copy.deepcopy(model)))
    names = prunable_names(model)
    theta = {n: p.detach() for n, p in model.named_parameters() if n in names}
    g = torch.Generator().manual_seed(0)  # the documented draw order: x, then Δθ per layer
    x = torch.randn(10 * CLASSES, *SHAPE, generator=g, dtype=torch.float64)
    delta = {n: 0.01 * torch.randn(theta[n].shape, generator=g, dtype=torch.float64)
             for n in names}

    def r(c):
        clean = functional_call(model, {n: theta[n] * c[n] for n in names}, (x,))
        moved = functional_call(model, {n: (theta[n] + delta[n]) * c[n] for n in names}, (x,))
        return (clean - moved).pow(2).sum()

    expected = grad(r)({n: torch.ones_like(theta[n]) for n in names})
    for n in names:
        assert scores[n].shape == theta[n].shape
        torch.testing.assert_close(scores[n], expected[n].abs(), rtol=1e-9, atol=1e-12)
    assert all(float(s.max()) > 0 for s in scores.values())


def test_ntk_sap_is_seeded_data_free_and_weight_agnostic():
    model = tiny()
    one = masks_of("ntk_sap", model, 0.1, options=FAST, rounds=2)
    assert one.kept() == keep_count(one.total(), 0.1)
    assert masks_of("ntk_sap", model, 0.1, options=FAST, rounds=2) == one
    assert masks_of("ntk_sap", model, 0.1, seed=1, options=FAST, rounds=2) != one
    # multi-sampling re-draws θ: the model's own weights do not matter, only the stream
    other = create_model("cifar_resnet_20", num_classes=CLASSES, input_shape=SHAPE, seed=7, width=4)
    s0 = make_method("ntk_sap", FAST).score(context(copy.deepcopy(model)))
    s7 = make_method("ntk_sap", FAST).score(context(other))
    assert all(torch.equal(s0[n], s7[n]) for n in s0)


def test_phew_keeps_every_layer_and_input_to_output_paths_at_99_percent_sparsity():
    net = mlp()
    masks = masks_of("phew", net, 0.01)
    assert masks.kept() == keep_count(masks.total(), 0.01)
    layers = [masks[n].double() for n in prunable_names(net)]  # (out, in) each
    paths = layers[2] @ layers[1] @ layers[0]  # number of kept paths output <- input
    assert all(int(m.sum()) > 0 for m in layers) and float(paths.sum()) > 0
    # walks continue through hidden units: a unit entered by a kept weight leaves by one
    # (up to the one walk that the budget cuts short)
    for lower, upper in zip(layers, layers[1:]):
        assert int(((lower.sum(1) > 0) & (upper.sum(0) == 0)).sum()) <= 1

    res = tiny()
    masks = masks_of("phew", res, 0.01)
    assert masks.kept() == keep_count(masks.total(), 0.01)
    assert not any(row["collapsed"] for row in masks.layer_report())
    names = prunable_names(res)
    for prev, cur in zip(names, names[1:]):
        shape = masks[cur].shape
        outs = masks[prev].flatten(1).any(1)
        ins = masks[cur].reshape(shape[0], shape[1], -1).any(2).any(0)
        if len(outs) == len(ins):  # connected by channel index: the walks pass through
            assert bool((outs & ins).any()), (prev, cur)


def toy(big=None):
    """A 4 -> 4 -> 2 linear net, all weights 1, optionally one edge (output 2 <- input 0) 100."""
    net = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
        if big:
            net[0].weight[2, 0] = big
    return net


def test_phew_walks_follow_large_weights():
    """At a budget of 2 weights (one walk from input 0) the heavy edge is kept with probability
    100/103 rather than 1/4 (uniform); over 20 seeds it must win almost always."""
    density = 2 / 24
    hits = sum(bool(masks_of("phew", toy(100.0), density, seed=s, shape=(4, 1, 1))
                    ["0.weight"][2, 0]) for s in range(20))
    assert hits >= 16
    uniform = sum(bool(masks_of("phew", toy(), density, seed=s, shape=(4, 1, 1))
                       ["0.weight"][2, 0]) for s in range(20))
    assert uniform <= 12


def test_phew_visits_uniform_weights_uniformly():
    net = toy()
    walker = _Walker([p.detach().double() for p in net.parameters()],
                     torch.Generator().manual_seed(0))
    (first, _), (last, _) = walker.walks(0, 8000)
    for idx, size in ((first, 16), (last, 8)):
        counts = torch.bincount(idx, minlength=size).double()
        expected = len(idx) / size
        assert bool(((counts - expected).abs() < 0.15 * expected).all()), counts


def test_phew_is_deterministic_for_a_seed():
    model = tiny()
    one = masks_of("phew", model, 0.05)
    assert masks_of("phew", model, 0.05) == one and masks_of("phew", model, 0.05, seed=1) != one


@pytest.mark.parametrize("method,options", [
    ("ntk_sap", {"epsilon": "0"}), ("ntk_sap", {"samples": "-1"}),
    ("ntk_sap", {"inputs_per_class": "0"}), ("ntk_sap", {"batch_size": "0"}),
    ("phew", {"max_steps": "0"})])
def test_bad_options_are_refused(method, options):
    with pytest.raises(ConfigError, match=list(options)[0]):
        make_method(method, options)
