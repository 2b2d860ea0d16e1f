"""After-training baselines, pruning early in training, and the shared dense run."""

import pytest
import torch

import pai_bench.baselines
import pai_bench.pipeline.dense
import pai_bench.errors
import pai_bench.pipeline.runner as runner
from pai_bench.config import RunConfig, dense_config
from pai_bench.pipeline.plan import make_plan
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.options import RunOptions
from pai_bench.pruning import global_masks

# mlp on synthetic data: 10 steps per epoch, 30 steps in all; runs take well under a second.
BASE = dict(model="mlp", dataset="synthetic", epochs=3, batch_size=32, subset=320,
            test_subset=100)


def run(tmp_path, **fields):
    config = RunConfig(**{**BASE, **fields})
    return runner.execute(config, RunOptions(results_dir=tmp_path, progress=False,
                                             log=None)), config


@pytest.fixture
def recorded(monkeypatch):
    """Record every training the runner and the baselines' rounds start: its first step, lr and
    starting weights."""
    calls = []
    real = runner.train

    class FirstStep(pai_bench.training.train.Callback):
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
    real = pai_bench.pipeline.dense.train

    def counting(model, data, recipe, **kw):
        steps.append(kw["end_step"] - kw["start_step"])
        return real(model, data, recipe, **kw)
    monkeypatch.setattr(pai_bench.pipeline.dense, "train", counting)
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
    (dict(method="snip", rewind_iter=5), r"applies to the methods that rewind \(imp, ltr\)"),
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


# ---- iterative magnitude pruning by levels ---------------------------------------------------

LEVELS = (0.2, 0.36, 0.488)  # densities 0.8, 0.64, 0.512: levels 1, 2, 3 of imp


def test_imp_levels_follow_the_grid_and_off_grid_sparsities_step_from_the_level_above():
    imp = make_plan(RunConfig(method="imp", **BASE)).method
    parent = {s: imp.parent(RunConfig(method="imp", sparsity=s, **BASE)) for s in
              (0.2, 0.36, 0.488, 0.3, 0.983)}
    assert parent[0.2] is None  # level 1 prunes the dense network
    assert parent[0.36].sparsity == 0.2 and parent[0.488].sparsity == 0.36
    assert parent[0.3].sparsity == 0.2  # between levels 1 and 2: a smaller last step
    # the paper grid's rounded sparsity 1 - 0.8^19 is level 19 itself, its parent level 18
    assert parent[0.983].sparsity == round(1 - 0.8 ** 18, 6)
    assert make_plan(RunConfig(method="imp", sparsity=0.983, **BASE)).rounds == 19
    assert parent[0.36].check == "none" and parent[0.36].method_args == ()


def test_imp_trains_each_level_once_and_prunes_the_previous_levels_trained_survivors(
        tmp_path, recorded, monkeypatch):
    steps = []
    real = pai_bench.pipeline.dense.train
    monkeypatch.setattr(pai_bench.pipeline.dense, "train", lambda *a, **kw: (
        steps.append(kw["end_step"] - kw["start_step"]), real(*a, **kw))[1])
    # deepest level first: it runs the levels above it on the way
    results = [run(tmp_path, method="imp", sparsity=s, rewind_iter=3)[0] for s in LEVELS[::-1]]
    assert len(recorded) == 3 and sum(steps) == 30  # 3 levels + 1 dense network, once each
    assert [r["pruning_rounds"] for r in results] == [3, 2, 1]
    assert len(list((tmp_path / "runs").iterdir())) == 3
    base = RunConfig(method="imp", rewind_iter=3, **BASE)
    dense_dir = tmp_path / "dense" / f"dense-{dense_config(base).hash()}"
    trained = torch.load(dense_dir / "step_30.pt", weights_only=True)["model"]
    rewound = torch.load(dense_dir / "step_3.pt", weights_only=True)["model"]
    names = list(recorded[0]["masks"])
    survivors = Masks({n: torch.ones_like(trained[n], dtype=torch.bool) for n in names})
    for call, sparsity in zip(recorded, LEVELS):  # recorded in training order: level 1 first
        expected = global_masks({n: trained[n].abs() for n in names}, 1 - sparsity, survivors)
        assert call["masks"] == expected and call["start"] == 3
        kept = call["masks"]
        assert all(torch.equal(call["state"][n][kept[n]], rewound[n][kept[n]]) for n in names)
        folder = tmp_path / "runs" / f"imp-{RunConfig(**{**base.to_dict(), 'sparsity': sparsity}).hash()}"
        trained = torch.load(folder / "weights.pt", weights_only=True)  # this level's training
        survivors = kept
    assert results[0]["cost"]["sparse_train_epochs"] == pytest.approx(3 * 2.7)


def test_ltr_rounds_are_levels_shared_with_the_runs_of_those_sparsities(tmp_path, recorded):
    run(tmp_path, method="ltr", rounds=3, sparsity=0.936, rewind_iter=2)
    assert len(recorded) == 3
    level2, _ = run(tmp_path, method="ltr", rounds=2, sparsity=0.84, rewind_iter=2)
    level1, _ = run(tmp_path, method="ltr", sparsity=0.6, rewind_iter=2)  # one shot
    assert len(recorded) == 3  # both were levels of the 3-round chain: stored, not retrained
    assert level2["pruning_rounds"] == 2 and level1["pruning_rounds"] == 1


@pytest.mark.parametrize("fields, message", [
    (dict(method="imp", rounds=3), "--rounds does not apply to imp"),
    (dict(method="imp", method_args=(("fraction", "1.5"),)), r"must be in \(0, 1\), got 1.5"),
])
def test_bad_imp_options(fields, message):
    with pytest.raises(ConfigError, match=message):
        make_plan(RunConfig(**{**BASE, **fields}))


def test_a_diverged_level_stops_its_chain_with_a_named_error(tmp_path, monkeypatch):
    def diverging(model, data, recipe, **kw):  # the sparse trainings only, not the dense one
        raise pai_bench.training.train.Diverged(5, float("nan"), "the training loss")
    monkeypatch.setattr(runner, "train", diverging)
    with pytest.raises(pai_bench.errors.RunError, match=r"previous level .*\(sparsity 0.2\)"
                                                        r", diverged"):
        run(tmp_path, method="imp", sparsity=0.36)
    (level1,) = tmp_path.glob("runs/imp-*/summary.json")  # recorded as diverged, no level 2
    assert '"status": "diverged"' in level1.read_text()
