"""Iterative SNIP, FORCE (methods/progressive.py) and ProsPr (methods/prospr.py) against SNIP and
independent functional computations (``torch.func``)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad

from pai_bench.data import load_split
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks, apply_
from pai_bench.methods import METHODS, Scorer, ScoringContext, make_method
from pai_bench.models import create_model, prunable_names
from pai_bench.pruning import keep_count
from pai_bench.scoring import compute_masks

SHAPE, CLASSES = (3, 32, 32), 10
FAST = {"samples_per_class": 2}  # 20 examples a sample


@pytest.fixture(scope="module")
def data():
    return load_split("synthetic", None, "train")


def tiny():  # ResNet-20 at width 4: BatchNorm, shortcuts, 17k weights
    return create_model("cifar_resnet_20", num_classes=CLASSES, input_shape=SHAPE, seed=0, width=4)


def mlp64():  # no BatchNorm: examples do not interact, so float64 checks can be tight
    return create_model("mlp", num_classes=CLASSES, input_shape=SHAPE, seed=0).double()


class Double:
    """The split with float64 examples, for the float64 MLP (scorers do not cast the data)."""

    def __init__(self, split):
        self.split, self.labels = split, split.labels

    def get(self, idx):
        x, y = self.split.get(idx)
        return x.double(), y


def context(model, data, masks=None, original=None):
    """A scoring round on ``model`` as compute_masks sets it up, the score stream seeded 0."""
    masks = masks or Masks.ones_like(model, prunable_names(model))
    if next(model.parameters()).dtype == torch.float64:
        data = Double(data)
    return ScoringContext(model=model.train(), masks=masks, data=data, num_classes=CLASSES,
                          input_shape=SHAPE, generator=torch.Generator().manual_seed(0),
                          device=torch.device("cpu"), original=original)


def draws(data, count, dtype=torch.float32):
    """The first ``count`` samples a scorer draws from the seeded stream (``context``'s)."""
    ctx = context(tiny(), data)
    return [(x.to(dtype), y) for x, y in (ctx.examples(FAST["samples_per_class"])
                                          for _ in range(count))]


def run(method, model, data, rounds, density=0.05):
    return compute_masks(method, model, density=density, rounds=rounds, data=data,
                         generator=torch.Generator().manual_seed(0), num_classes=CLASSES,
                         input_shape=SHAPE)


class Recording(Scorer):
    """Wraps a scorer (unregistered: no name), records the masks every round starts from."""

    def __init__(self, inner):
        self.inner, self.revives, self.seen = inner, inner.revives, []

    def score(self, ctx):
        self.seen.append(ctx.masks)
        return self.inner.score(ctx)


def test_defaults_and_registration():
    snip_it, force, prospr = (METHODS.get(n) for n in ("iterative_snip", "force", "prospr"))
    assert (snip_it.default_rounds, force.default_rounds, prospr.default_rounds) == (60, 60, 1)
    assert (snip_it.revives, force.revives, prospr.revives) == (False, True, False)
    method = make_method("prospr")
    assert (method.steps, method.lr, method.same_batch) == (3, 0.1, False)


@pytest.mark.parametrize("name", ["iterative_snip", "force"])
def test_one_round_is_snip(name, data):
    model, snip, method = tiny(), make_method("snip", FAST), make_method(name, FAST)
    assert run(method, model, data, rounds=1) == run(snip, model, data, rounds=1)
    ours = method.score(context(copy.deepcopy(model), data))
    theirs = snip.score(context(copy.deepcopy(model), data))
    assert all(torch.equal(ours[n], theirs[n]) for n in theirs)


@pytest.mark.parametrize("name", ["iterative_snip", "force"])
def test_rounds_keep_the_schedule_and_only_force_revives(name, data):
    rec = Recording(make_method(name, FAST))
    final = run(rec, tiny(), data, rounds=5)
    seen = rec.seen + [final]
    assert len(rec.seen) == 5
    for k, masks in enumerate(seen[1:], 1):  # density 0.05^(k/5) after round k, exactly
        assert masks.kept() == keep_count(masks.total(), 0.05 ** (k / 5))
    revived = sum(int((later[n] & ~earlier[n]).sum())
                  for earlier, later in zip(seen, seen[1:]) for n in earlier)
    if name == "iterative_snip":
        assert revived == 0  # every round a subset of the one before
    else:  # pruned by round 1, kept in the end
        assert sum(int((final[n] & ~seen[1][n]).sum()) for n in final) > 0


def test_force_scores_pruned_network_with_original_weights(data):
    model = tiny()
    names = prunable_names(model)
    gen = torch.Generator().manual_seed(1)
    masks = Masks({n: torch.rand(model.get_parameter(n).shape, generator=gen) < 0.3
                   for n in names})
    original = {n: model.get_parameter(n).detach().clone() for n in names}
    pruned = copy.deepcopy(model)
    apply_(pruned, masks)  # what compute_masks hands a later round: w0 ⊙ c
    scores = make_method("force", FAST).score(context(copy.deepcopy(pruned), data, masks,
                                                      original))
    (x, y), = draws(data, 1)
    params = {n: p.detach() for n, p in pruned.named_parameters()}
    buffers = {n: b.clone() for n, b in pruned.named_buffers()}

    def loss(w, b):  # at w0 ⊙ c; train-mode BatchNorm updates its buffers: they are inputs
        return F.cross_entropy(functional_call(pruned, ({**params, **w}, b), (x,)), y)

    g = grad(loss)({n: params[n] for n in names}, buffers)
    for n in names:
        torch.testing.assert_close(scores[n], (original[n] * g[n]).abs(), rtol=1e-4, atol=1e-9)
    assert sum(int((scores[n][~masks[n]] > 0).sum()) for n in names) > 0  # pruned ones score


@pytest.mark.parametrize("model", [tiny, mlp64])
def test_prospr_without_steps_is_snip(model, data):
    net = model()
    ours = make_method("prospr", {**FAST, "steps": 0}).score(context(copy.deepcopy(net), data))
    theirs = make_method("snip", FAST).score(context(copy.deepcopy(net), data))
    assert all(torch.equal(ours[n], theirs[n]) for n in theirs)  # the same operations


@pytest.mark.parametrize("same_batch", [False, True])
@pytest.mark.parametrize("model, dtype, rtol", [(mlp64, torch.float64, 1e-9),
                                                (tiny, torch.float32, 1e-4)])
def test_prospr_one_step_is_the_meta_gradient(model, dtype, rtol, same_batch, data):
    """|d/dc L(w1; batch 1)| with w1 = w0 ⊙ c - α ∇L(w0 ⊙ c; batch 0), by torch.func.grad of
    the whole composition, every parameter (biases, BatchNorm) taking the SGD step."""
    net, lr = model(), 0.1
    options = {**FAST, "steps": 1, "lr": lr, "same_batch": same_batch}
    scores = make_method("prospr", options).score(context(copy.deepcopy(net), data))
    (x0, y0), (x1, y1) = draws(data, 2, dtype)
    if same_batch:
        x1, y1 = x0, y0
    names = prunable_names(net)
    params = {n: p.detach() for n, p in net.named_parameters()}
    buffers = {n: b.clone() for n, b in net.named_buffers()}

    def loss(w, b, x, y):  # train-mode BatchNorm updates its buffers: they are inputs
        return F.cross_entropy(functional_call(net, (w, b), (x,)), y)

    def meta(c, b):
        w0 = {n: p * c[n] if n in c else p for n, p in params.items()}
        g = grad(loss)(w0, b, x0, y0)
        return loss({n: w0[n] - lr * g[n] for n in w0}, b, x1, y1)

    dc = grad(meta)({n: torch.ones_like(params[n]) for n in names}, buffers)
    for n in names:
        torch.testing.assert_close(scores[n], dc[n].abs(), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("name, options", [
    ("prospr", {"steps": "-1"}), ("prospr", {"lr": "0"}), ("prospr", {"samples_per_class": "0"}),
    ("prospr", {"same_batch": "maybe"}), ("force", {"samples_per_class": "0"}),
    ("iterative_snip", {"batch_size": "-2"}), ("force", {"rounds": "3"})])
def test_bad_options_are_config_errors(name, options):
    with pytest.raises(ConfigError, match=next(iter(options))):
        make_method(name, options)
