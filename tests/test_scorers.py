"""SNIP and GraSP against independent computations, and every registered scorer's contract.
SynFlow's own checks (conservation law, overflow, layer collapse) are in ``test_synflow.py``."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad

from pai_bench.methods import METHODS, Scorer, ScoringContext, make_method, scorer_names
from pai_bench.methods.grasp import hessian_gradient_product
from pai_bench.methods.helpers import gradients
from pai_bench.data import load_split
from pai_bench.masks import Masks
from pai_bench.models import create_model, initialize, prunable_names
from pai_bench.pruning import keep_count
from pai_bench.scoring import compute_masks

SHAPE, CLASSES = (3, 32, 32), 10
FAST = {"samples_per_class": 2}  # 20 examples: enough to exercise every code path


@pytest.fixture(scope="module")
def data():  # 1024 seeded 3x32x32 examples of 10 classes, no files
    return load_split("synthetic", None, "train")


def tiny():
    """ResNet-20 at width 4 (17k weights): BatchNorm, shortcuts, every layer type."""
    return create_model("cifar_resnet_20", num_classes=CLASSES, input_shape=SHAPE, seed=0, width=4)


def context(model, data):
    """What compute_masks gives a scorer in a first round, with the score stream seeded 0."""
    return ScoringContext(model=model, masks=Masks.ones_like(model, prunable_names(model)),
                          data=data, num_classes=CLASSES, input_shape=SHAPE,
                          generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))


def scorer(name):
    options = getattr(METHODS.get(name), "__dataclass_fields__", {})
    return make_method(name, {k: v for k, v in FAST.items() if k in options})


def masks_of(name, model, data, density=0.1):  # one shot, whatever the method's default
    return compute_masks(scorer(name), model, density=density, rounds=1, data=data,
                         generator=torch.Generator().manual_seed(0), num_classes=CLASSES,
                         input_shape=SHAPE)


def test_snip_equals_an_independent_functional_gradient(data):
    model = tiny().train()
    scores, names = scorer("snip").score(context(copy.deepcopy(model), data)), prunable_names(model)
    x, y = context(model, data).examples(FAST["samples_per_class"])  # same seed, same sample
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    def loss(w, b):  # train-mode BatchNorm updates its buffers: they must be inputs
        return F.cross_entropy(functional_call(model, ({**params, **w}, b), (x,)), y)

    g = grad(loss)({n: params[n] for n in names}, buffers)
    for n in names:
        torch.testing.assert_close(scores[n], (params[n] * g[n]).abs(), rtol=1e-4, atol=1e-9)


def test_chunked_gradients_average_to_the_one_batch_gradient(data):  # exact without BN: MLP
    model = create_model("mlp", num_classes=CLASSES, input_shape=SHAPE, seed=0).double()
    x, y = data.get(torch.arange(23))
    whole = gradients(model, x.double(), y)
    chunked = gradients(model, x.double(), y, batch_size=7)  # chunks of 7, 7, 7, 2
    for n in whole:
        torch.testing.assert_close(chunked[n], whole[n], rtol=1e-12, atol=1e-15)


def smooth_net():
    """Conv + train-mode BatchNorm + smooth activations: a central difference of a ReLU net's
    gradient jumps at every kink it straddles, so the check needs twice-differentiable units."""
    net = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2), nn.BatchNorm2d(6), nn.Tanh(),
                        nn.Conv2d(6, 8, 3, stride=2), nn.BatchNorm2d(8), nn.Softplus(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, CLASSES))
    initialize(net, torch.Generator().manual_seed(0))
    return net.double().train()


def test_hessian_gradient_product_matches_central_differences(data):
    """Hg against (dL/dw(w + εg) - dL/dw(w - εg)) / 2ε in float64, T = 200.

    Tolerance: the central difference errs by O(ε²) (measured: 1.8e-6 at ε‖g‖ = 1e-4 ‖w‖,
    1.8e-8 at 1e-5, 1.6e-10 at 1e-6, where rounding takes over), so 1e-8 at 1e-6 has margin.
    """
    model, names, t = smooth_net(), ["0.weight", "3.weight", "8.weight"], 200.0
    x, y = data.get(torch.arange(40))
    x = x.double()
    g = gradients(model, x, y, names, temperature=t)
    hg = hessian_gradient_product(model, x, y, names, g, temperature=t)
    params = dict(model.named_parameters())
    flat = lambda d: torch.cat([d[n].detach().flatten() for n in names])  # noqa: E731
    eps = float(1e-6 * flat(params).norm() / flat(g).norm())

    def grad_at(sign):
        shifted = copy.deepcopy(model)
        with torch.no_grad():
            for n in names:
                shifted.get_parameter(n).add_(sign * eps * g[n])
        return flat(gradients(shifted, x, y, names, temperature=t))

    fd = (grad_at(1) - grad_at(-1)) / (2 * eps)
    assert float((flat(hg) - fd).norm() / fd.norm()) < 1e-8


def test_grasp_scores_are_minus_s_and_grasp_abs_is_abs_s(data):
    model, names = tiny(), prunable_names(tiny())
    ctx = context(copy.deepcopy(model).train(), data)
    x, y = ctx.examples(FAST["samples_per_class"])  # the sample the scorers will draw
    g = gradients(ctx.model, x, y, names, temperature=200.0)
    hg = hessian_gradient_product(ctx.model, x, y, names, g, temperature=200.0)
    s = {n: -model.get_parameter(n).detach() * hg[n] for n in names}  # Wang et al.'s S = -θ ⊙ Hg
    plain = scorer("grasp").score(context(copy.deepcopy(model), data))
    absolute = scorer("grasp_abs").score(context(copy.deepcopy(model), data))
    for n in names:
        torch.testing.assert_close(plain[n], -s[n], rtol=1e-4, atol=1e-12)
        torch.testing.assert_close(absolute[n], s[n].abs(), rtol=1e-4, atol=1e-12)


def test_grasp_prunes_the_largest_s(data):
    model = tiny()
    s = {n: -v for n, v in scorer("grasp").score(context(copy.deepcopy(model), data)).items()}
    masks = masks_of("grasp", model, data, density=0.5)
    kept = torch.cat([s[n][masks[n]] for n in masks])
    pruned = torch.cat([s[n][~masks[n]] for n in masks])
    assert kept.max() <= pruned.min()  # GraSP removes the top of S and keeps the bottom


# every scorer that computes its scores ("masks" reads them from a file: test_workflow.py)
COMPUTING = [n for n in scorer_names() if n != "masks"]


@pytest.mark.parametrize("name", COMPUTING)
def test_every_scorer_scores_every_weight_and_prunes_exactly(name, data):
    model = tiny()
    scores = scorer(name).score(context(copy.deepcopy(model), data))
    params = dict(model.named_parameters())
    assert list(scores) == prunable_names(model)
    for n, s in scores.items():
        assert s.shape == params[n].shape and bool(torch.isfinite(s).all())
    masks = masks_of(name, model, data, density=0.1)
    assert masks.kept() == keep_count(masks.total(), 0.1)
    assert masks_of(name, model, data, density=0.1) == masks  # same seed, same masks


@pytest.mark.parametrize("name", COMPUTING)
def test_stale_gradients_do_not_leak_and_the_callers_model_is_untouched(name, data):
    model = tiny()
    clean = masks_of(name, model, data)
    clean_scores = scorer(name).score(context(copy.deepcopy(model), data))
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e6)  # left over from "training"
    before, private = copy.deepcopy(model.state_dict()), copy.deepcopy(model)
    assert masks_of(name, model, data) == clean
    for p in private.parameters():  # deepcopy drops .grad: put the stale ones back
        p.grad = torch.full_like(p, 1e6)
    stale = scorer(name).score(context(private, data))
    assert all(torch.equal(stale[n], clean_scores[n]) for n in clean_scores)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(bool((p.grad == 1e6).all()) for p in model.parameters())
    assert model.training and next(model.parameters()).dtype == torch.float32


class Recording(Scorer):
    """Wraps a scorer (unregistered: no name) and records what every round sees."""

    def __init__(self, inner, default_rounds=1):
        self.inner, self.seen, self.default_rounds = inner, [], default_rounds

    def score(self, ctx):
        params = dict(ctx.model.named_parameters())
        zero_where_pruned = all(bool((params[n][~m] == 0).all()) for n, m in ctx.masks.items())
        self.seen.append((ctx.masks, zero_where_pruned))
        return self.inner.score(ctx)


def test_iterative_snip_never_brings_weights_back(data):
    rec = Recording(scorer("snip"))
    masks = compute_masks(rec, tiny(), density=0.05, rounds=5, data=data,
                          generator=torch.Generator().manual_seed(0), num_classes=CLASSES,
                          input_shape=SHAPE)
    seen = [m for m, _ in rec.seen] + [masks]
    assert len(rec.seen) == 5 and all(zero for _, zero in rec.seen)
    for before, after in zip(seen, seen[1:]):
        assert all(bool((after[n] <= before[n]).all()) for n in before)  # a subset
        assert after.kept() < before.kept()
    assert masks.kept() == keep_count(masks.total(), 0.05)


def test_rounds_default_to_the_methods_own():
    assert METHODS.get("synflow").default_rounds == 100 and METHODS.get("snip").default_rounds == 1
    rec = Recording(make_method("magnitude"), default_rounds=3)
    compute_masks(rec, tiny(), density=0.5, generator=torch.Generator(), num_classes=CLASSES,
                  input_shape=SHAPE)
    assert len(rec.seen) == 3


class Reviving(Scorer):
    """Unregistered: scores |original w| in round 1 and -|original w| after it, so round 2 keeps
    exactly what round 1 pruned where it can (the most extreme revival)."""

    revives = True
    default_rounds = 2

    def __init__(self):
        self.seen = []

    def score(self, ctx):
        params = dict(ctx.model.named_parameters())
        self.seen.append((ctx.density, {n: params[n].detach().clone() for n in ctx.masks}))
        sign = 1 if len(self.seen) == 1 else -1
        return {n: sign * ctx.original[n].abs() for n in ctx.masks}


def test_rounds_see_their_density_and_a_reviving_scorer_ranks_every_weight_again():
    model = tiny()
    rec = Reviving()
    masks = compute_masks(rec, model, density=0.25, generator=torch.Generator(),
                          num_classes=CLASSES, input_shape=SHAPE)
    assert [d for d, _ in rec.seen] == pytest.approx([0.5, 0.25])
    params = dict(model.named_parameters())
    one = compute_masks(make_method("magnitude"), model, density=0.5, rounds=1,
                        generator=torch.Generator(), num_classes=CLASSES, input_shape=SHAPE)
    # round 2 ranks all weights by -|w|: it keeps the smallest quarter, all pruned in round 1
    assert masks.kept() == keep_count(masks.total(), 0.25)
    assert all(not (masks[n] & one[n]).any() for n in masks)
    _, seen2 = rec.seen[1]  # round 2's model: round 1's masks applied to the original values
    assert all(torch.equal(seen2[n], params[n].detach() * one[n]) for n in masks)
