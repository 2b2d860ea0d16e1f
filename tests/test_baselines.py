"""After-training baselines, pruning early in training, and the shared dense run."""

import pytest
import torch

import pai_bench.baselines
import pai_bench.dense
import pai_bench.runner as runner
from pai_bench.config import RunConfig, dense_config
from pai_bench.plan import make_plan
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.pruning import global_masks

# mlp on synthetic data: 10 steps per epoch, 30 steps in all; runs take well under a second.
BASE = dict(model="mlp", dataset="synthetic", epochs=3, batch_size=32, subset=320,
            test_subset=100)


def run(tmp_path, **fields):
    config = RunConfig(**{**BASE, **fields})
    return runner.execute(config, data_root=None, results_dir=tmp_path, progress=False,
                          log=lambda *a: None), config


@pytest.fixture
def recorded(monkeypatch):
    """Record every training the runner and the baselines' rounds start: its first step, lr and
    starting weights."""
    calls = []
    real = runner.train

    class FirstStep(pai_bench.train.Callback):
        def __init__(self, record):
            self.record = record

        def on_step_end(self, loop, loss):
            self.record.setdefault("lr", loop.optimizer.param_groups[0]["lr"])

    def spy(model, data, recipe, **kw):
        record = dict(start=kw.get("start_step", 0), masks=kw.get("masks"),
                      state={k: v.clone() for k, v in model.state_dict().items()})
        calls.append(record)
        kw["callbacks"] = [*kw.get("callbacks", ()), FirstStep(record)]
        return real(model, data, recipe, **kw)
    monkeypatch.setattr(runner, "train", spy)
    monkeypatch.setattr(pai_bench.baselines, "train", spy)
    return calls


def test_ltr_rewinds_to_the_snapshot_and_continues_the_schedule(tmp_path, recorded):
    summary, config = run(tmp_path, method="ltr", rewind_iter=17, lr=0.1)
    (call,) = recorded
    dense_dir = tmp_path / "dense" / f"dense-{dense_config(config).hash()}"
    snap = torch.load(dense_dir / "step_17.pt", weights_only=True)["model"]
    masks = call["masks"]
    for name, value in call["state"].items():
        if name in masks:  # surviving positions hold the rewound weights
            assert torch.equal(value[masks[name]], snap[name][masks[name]])
        else:
            assert torch.equal(value, snap[name])
    assert call["start"] == 17 and summary["start_step"] == 17
    # the MLP recipe decays at 50% and 75% of training: steps 15 and 22 of 30
    assert call["lr"] == pytest.approx(make_plan(config).recipe.lr_at(17, 10))
    assert call["lr"] == pytest.approx(0.1 * 0.1)
    assert summary["cost"]["sparse_train_epochs"] == pytest.approx(1.3)
    assert summary["cost"]["dense_train_epochs"] == pytest.approx(3.0)


def test_after_training_mask_is_global_magnitude_of_trained_weights(tmp_path, recorded):
    summary, config = run(tmp_path, method="magnitude_after_training", sparsity=0.8)
    (call,) = recorded
    dense_dir = tmp_path / "dense" / f"dense-{dense_config(config).hash()}"
    trained = torch.load(dense_dir / "step_30.pt", weights_only=True)["model"]
    names = list(call["masks"])
    ones = Masks({n: torch.ones_like(trained[n], dtype=torch.bool) for n in names})
    expected = global_masks({n: trained[n].abs() for n in names}, 0.2, ones)
    assert call["masks"] == expected
    # learning-rate rewinding: retrained from the trained weights with the schedule from step 0
    assert call["start"] == 0 and call["lr"] == pytest.approx(make_plan(config).recipe.lr)
    assert all(torch.equal(call["state"][n], trained[n]) for n in trained)


def test_lottery_ticket_resets_to_initialization(tmp_path, recorded):
    run(tmp_path, method="lottery_ticket")
    (call,) = recorded
    init = make_plan(RunConfig(method="lottery_ticket", **BASE)).build_model().state_dict()
    assert call["start"] == 0
    assert all(torch.equal(call["state"][n], init[n]) for n in init)


def test_dense_network_is_trained_once(tmp_path, monkeypatch):
    steps = []
    real = pai_bench.dense.train

    def counting(model, data, recipe, **kw):
        steps.append(kw["end_step"] - kw["start_step"])
        return real(model, data, recipe, **kw)
    monkeypatch.setattr(pai_bench.dense, "train", counting)
    for method in ("ltr", "magnitude_after_training"):
        for sparsity in (0.5, 0.8, 0.95):
            summary, _ = run(tmp_path, method=method, sparsity=sparsity)
            assert summary["dense_test_accuracy"] is not None
    assert sum(steps) == 30  # one dense run of 30 steps, shared by six results
    assert len(list((tmp_path / "runs").iterdir())) == 6


def test_prune_at_scores_the_dense_weights_at_that_step(tmp_path, recorded):
    summary, config = run(tmp_path, method="magnitude", prune_at=8, sparsity=0.7)
    (call,) = recorded
    dense_dir = tmp_path / "dense" / f"dense-{dense_config(config).hash()}"
    w8 = torch.load(dense_dir / "step_8.pt", weights_only=True)["model"]
    names = list(call["masks"])
    ones = Masks({n: torch.ones_like(w8[n], dtype=torch.bool) for n in names})
    assert call["masks"] == global_masks({n: w8[n].abs() for n in names}, 0.3, ones)
    assert call["start"] == 8
    assert summary["cost"]["dense_train_epochs"] == pytest.approx(0.8)


def test_iterative_ltr_prunes_the_same_fraction_each_round(tmp_path, recorded):
    summary, _ = run(tmp_path, method="ltr", rounds=3, sparsity=0.936, rewind_iter=2)
    assert len(recorded) == 3  # two intermediate retrainings, then the run's own
    densities = [c["masks"].density() for c in recorded]
    assert densities == pytest.approx([0.4, 0.16, 0.064], abs=1e-5)
    for before, after in zip(recorded, recorded[1:]):  # pruned weights never come back
        assert all(not (after["masks"][n] & ~before["masks"][n]).any() for n in after["masks"])
    assert summary["cost"]["sparse_train_epochs"] == pytest.approx(3 * 2.8)


@pytest.mark.parametrize("fields, message", [
    (dict(method="ltr", prune_at=5), "prunes after training"),
    (dict(method="snip", rewind_iter=5), "applies to ltr only"),
    (dict(method="ltr", method_args=(("a", "1"),)), "has no option 'a'"),
    (dict(method="nope"), "lottery_ticket, ltr, magnitude"),
])
def test_bad_baseline_options(fields, message):
    with pytest.raises(ConfigError, match=message):
        make_plan(RunConfig(**{**BASE, **fields}))


def test_prune_at_beyond_training_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not before the end of training"):
        run(tmp_path, method="random", prune_at=30)
    assert not (tmp_path / "runs").exists()
