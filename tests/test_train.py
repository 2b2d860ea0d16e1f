"""The training loop: determinism, exact resume, divergence, masks held at zero."""

import math

import pytest
import torch

from pai_bench.training.callbacks import Checkpointer, MetricRows
from pai_bench.data import load_split
from pai_bench.masks import Masks
from pai_bench.models import create_model, prunable_names
from pai_bench.recipes import Recipe
from pai_bench.training.train import Callback, Diverged, evaluate, train

from helpers import StopAt


RECIPE = Recipe(batch_size=64, lr=0.05, epochs=3, milestones=(2,))


@pytest.fixture(scope="module")
def data():
    return load_split("synthetic", None, "train", subset=320, seed=0)


def model_and_masks(seed=0):
    model = create_model("cifar_resnet_20", num_classes=10, input_shape=(3, 32, 32), seed=seed,
                         width=4)
    return model, Masks.random(model, prunable_names(model), 0.8, seed=1)


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_same_numbers_and_pruned_stay_zero(data):
    results = []
    for _ in range(2):
        model, masks = model_and_masks()
        train(model, data, RECIPE, seed=7, masks=masks)
        results.append(state(model))
        params = dict(model.named_parameters())
        for n in masks:
            assert (params[n][~masks[n]] == 0).all()
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    model, masks = model_and_masks()
    train(model, data, RECIPE, seed=8, masks=masks)  # another data order
    assert not torch.equal(state(model)["fc.weight"], results[0]["fc.weight"])


def test_resume_from_checkpoint_equals_uninterrupted_run(data, tmp_path):
    model, masks = model_and_masks()
    train(model, data, RECIPE, seed=3, masks=masks)
    expected = state(model)

    model, masks = model_and_masks()
    rows = MetricRows(tmp_path / "m.csv")
    ckpt = Checkpointer(tmp_path / "ckpt.pt", rows)
    with pytest.raises(KeyboardInterrupt):  # killed in the middle of epoch 2 (5 steps/epoch)
        train(model, data, RECIPE, seed=3, masks=masks, callbacks=[rows, ckpt, StopAt(8)])
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert saved["step"] == 5 and len(saved["rows"]) == 1

    model, masks = model_and_masks(seed=99)  # the checkpoint must override everything
    model.load_state_dict(saved["model"])
    rows = MetricRows(tmp_path / "m.csv", saved["rows"])
    train(model, data, RECIPE, seed=3, masks=masks, start_step=saved["step"],
          optimizer_state=saved["optimizer"], callbacks=[rows])
    got = state(model)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert [r["step"] for r in rows.rows] == [5, 10, 15]


def test_divergence_is_raised(data):
    model, masks = model_and_masks()
    with pytest.raises(Diverged) as e:
        train(model, data, Recipe(batch_size=64, lr=1e6, epochs=2), seed=0, masks=masks)
    assert e.value.step > 0 and not math.isfinite(e.value.loss)


def test_training_learns_and_evaluate_counts(data):
    # the synthetic classes are linearly separable: an MLP must get them all but a few
    model = create_model("mlp", num_classes=10, input_shape=(3, 32, 32), seed=0)
    test = load_split("synthetic", None, "test", subset=200, seed=0)
    before = evaluate(model, test)
    train(model, data, Recipe(batch_size=32, lr=0.05, epochs=3), seed=0)
    after = evaluate(model, test)
    assert after["examples"] == 200
    assert after["loss"] < before["loss"] / 2 and after["accuracy"] > 0.9 > before["accuracy"]


def test_compiled_training_follows_eager_training_and_keeps_pruned_weights_at_zero():
    """``compile=True`` (``--compile``) trains through torch.compile: the same losses and weights
    as eager training up to float rounding (a two-layer net, where rounding does not grow
    chaotically as it does through BatchNorm), the masks still holding (the compiled forward reads the model's
    own parameters, which the optimizer and ``apply_`` change in place)."""
    recipe = Recipe(batch_size=64, lr=0.05, epochs=3, milestones=(2,))
    data = load_split("synthetic", None, "train", subset=320, seed=0)

    class Losses(Callback):
        def __init__(self):
            self.values = []

        def on_step_end(self, loop, loss):
            self.values.append(float(loss))

    class Net(torch.nn.Module):  # a plain module, as the ResNets and VGGs are: no container
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(3 * 32 * 32, 64), torch.nn.Linear(64, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x.flatten(1))))

    runs = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = Net()
        params = dict(model.named_parameters())
        masks = Masks.random(model, ["fc1.weight", "fc2.weight"], 0.8, seed=1)
        losses = Losses()
        train(model, data, recipe, seed=7, masks=masks, compile=compile, callbacks=[losses])
        assert all((params[n][~masks[n]] == 0).all() for n in masks)
        runs.append((losses.values, state(model)))
    (eager, eager_state), (compiled, compiled_state) = runs
    assert len(eager) == len(compiled) == 15
    assert eager[-1] < eager[0] - 0.05  # it learned: the comparison is not of two no-ops
    assert max(abs(a - b) for a, b in zip(eager, compiled)) < 1e-5
    assert all(torch.allclose(eager_state[k], compiled_state[k], atol=1e-5)
               for k in eager_state)
