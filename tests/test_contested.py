"""``reproduce contested`` at a toy size: the report answers the four objections (issue 28),
and the compute-matched runs train for the epochs of magnitude after training, as their stored
runs and cost columns say."""

import dataclasses
import json

import pandas as pd
import pytest

import pai_bench
from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.sweeps.experiments import EXPERIMENTS, Experiment, configs, contested_sweeps
from pai_bench.analysis.findings import CONTESTED_FINDINGS, Finding
from pai_bench.analysis.results import load_runs

TOY = dict(dataset="synthetic", epochs=1, batch_size=32, subset=128, test_subset=64)
CONV = dict(model="cifar_resnet_20", width=2, **TOY)
NETWORKS = (dict(model="mlp", **TOY), dict(model="cifar_vit", width=8, **TOY))
FAMILIES = [f.family for f in CONTESTED_FINDINGS]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The toy experiment, run once: two seeds (verdicts need two), one sparsity."""
    specs = contested_sweeps(NETWORKS, (CONV,), (0.8,), (0, 1), ("magnitude", "snip"),
                             checked=(0.8,))
    saved = EXPERIMENTS.snapshot()
    EXPERIMENTS.register(Experiment("contested_toy", {"cpu": specs},
                                    findings=CONTESTED_FINDINGS))
    try:
        results = tmp_path_factory.mktemp("contested")
        _, out = pai_bench.reproduce("contested_toy", "cpu", results_dir=results, threads=1)
    finally:
        EXPERIMENTS.restore(saved)
    return results, out


def test_the_report_has_the_four_parts(report):
    results, out = report
    verdicts = pd.read_csv(out / "verdicts.csv")
    assert set(verdicts["family"]) == set(FAMILIES)
    by = {f: verdicts[verdicts["family"] == f] for f in FAMILIES}
    # (1) the shuffle check of the four methods on the MLP and the ViT, the conv net beside
    shuffled = by["1 shuffle hurts (mlp, vit)"]
    assert set(shuffled["model"]) == {"mlp", "cifar_vit"}
    assert set(shuffled["method"]) == {"magnitude", "snip", "grasp", "synflow"}
    assert set(shuffled["question"]) == {"worse"}
    conv = by["1 shuffle (conv)"]
    assert set(conv["model"]) == {"cifar_resnet_20"} and set(conv["question"]) == {"not worse"}
    # (2) compute-matched against the after-training baselines, beside the equal-epoch rows
    matched, equal = by["2 compute-matched"], by["2 equal epochs"]
    assert set(matched["budget"]) == {"matched"} and set(equal["budget"]) == {"equal"}
    assert set(matched["method"]) == {"magnitude", "snip"}
    assert set(matched["reference"]) == {"magnitude_after_training", "ltr"}
    assert set(equal["method"]) == {"magnitude", "snip", "grasp", "synflow", "random"}
    # (3) magnitude against random on every network, as an equivalence question
    eq = by["3 magnitude = random"]
    assert set(eq["model"]) == {"mlp", "cifar_vit", "cifar_resnet_20"}
    assert set(eq["method"]) == {"magnitude"} and set(eq["question"]) == {"equivalent"}
    # (4) the main comparison on the transformer
    vit = by["4 vit: after training"]
    assert set(vit["model"]) == {"cifar_vit"}
    assert set(vit["method"]) == {"snip", "grasp", "grasp_abs", "synflow", "random",
                                  "magnitude"}
    assert set(by["4 vit: random"]["method"]) == {"snip", "grasp", "grasp_abs", "synflow"}
    text = (out / "tables.md").read_text()
    assert "compute-matched" in text and "equal epochs" in text
    for family in FAMILIES:
        assert family in text
    # figures: the networks under their own names, the matched curves in the conv figure
    names = [p.name for p in out.glob("accuracy_vs_sparsity_*.png")]
    for model in ("mlp", "cifar_vit", "cifar_resnet_20"):
        assert any(n.startswith(f"accuracy_vs_sparsity_{model}") for n in names), names
    assert any(p.name.startswith("checks_mlp") for p in out.glob("*.png"))


def test_compute_matched_rows_train_for_the_epochs_of_magnitude_after_training(report):
    """Read back from the stored runs: a matched run's training is the after-training
    baseline's dense training plus its retraining, all of it sparse, and its cost says so."""
    results, out = report
    runs = load_runs(results)
    conv = runs[(runs["model"] == "cifar_resnet_20") & (runs["check"] == "none")]
    baseline = conv[conv["method"] == "magnitude_after_training"]
    matched = conv[conv["budget"] == "matched"]
    equal = conv[(conv["budget"] == "equal") & conv["method"].isin(["magnitude", "snip"])]
    assert len(matched) == 4 and len(baseline) == 2 and len(equal) == 4
    total = float(baseline["train_epochs"].iloc[0])
    assert total == float(baseline["dense_train_epochs"].iloc[0]) + TOY["epochs"]
    assert (matched["train_epochs"] == total).all()
    assert (matched["dense_train_epochs"] == 0).all()
    assert (equal["train_epochs"] == TOY["epochs"]).all()
    # the summaries: as many optimizer steps as the baseline's dense and sparse ones together
    steps = {r["hash"]: r for r in _summaries(results)}
    base = steps[baseline["hash"].iloc[0]]
    for h in matched["hash"]:
        assert steps[h]["total_steps"] == 2 * base["total_steps"]
        assert steps[h]["cost"]["sparse_train_epochs"] == base["cost"]["train_epochs"]
    # the accuracy table's budget column and its cost columns
    acc = pd.read_csv(out / "accuracy.csv")
    rows = acc[(acc["model"] == "cifar_resnet_20") & (acc["budget"] == "matched")]
    assert len(rows) == 2 and (rows["train_epochs"] == total).all()
    shown = (out / "tables.md").read_text()
    assert "| compute-matched |" in shown


def _summaries(results):
    return [json.loads(p.read_text()) for p in results.glob("runs/*/summary.json")]


def test_budget_is_refused_where_it_means_nothing(tmp_path):
    base = dict(results_dir=tmp_path, **TOY)
    with pytest.raises(ConfigError, match="--budget matched applies to methods at "
                                          "initialization pruned at step 0; "
                                          "'magnitude_after_training' prunes after training"):
        pai_bench.run(method="magnitude_after_training", model="mlp", budget="matched", **base)
    with pytest.raises(ConfigError, match="'snip' is pruned at step 2"):
        pai_bench.run(method="snip", model="mlp", budget="matched", prune_at=2, **base)
    with pytest.raises(ConfigError, match="unknown budget 'twice'; valid budgets: equal, "
                                          "matched"):
        RunConfig(method="snip", budget="twice")


def test_the_budget_field_leaves_every_stored_hash_as_it_was():
    c = RunConfig(method="snip")
    assert "budget" not in c.non_default()
    assert dataclasses.replace(c, budget="matched").hash() != c.hash()


def test_the_cpu_scale_is_the_documented_design():
    """The miniature the docstring sizes: its networks, runs and budgets."""
    runs = configs("contested", "cpu")
    assert len(set(runs)) == len(runs)
    count = pd.Series([(c.model, c.budget) for c in runs]).value_counts().to_dict()
    assert count == {("cifar_vit", "equal"): 60, ("cifar_resnet_20", "equal"): 39,
                     ("mlp", "equal"): 33, ("cifar_resnet_20", "matched"): 12}
    assert {c.width for c in runs if c.model == "cifar_vit"} == {32}
    # every ResNet run at the recipe's epochs is one of main's, ablations' or (at 50%)
    # successors' (read, not rerun)
    stored = set(configs("main", "cpu")) | set(configs("ablations", "cpu")) | \
        set(configs("successors", "cpu"))
    assert all(c in stored for c in runs if c.model == "cifar_resnet_20" and c.budget == "equal")


def test_a_finding_covers_its_networks_and_budget_only():
    f = Finding("x", "claim", "worse", "after training", budget="matched", models=("mlp",))
    assert f.covers("after training", "snip", "none", 0, model="mlp", budget="matched")
    assert not f.covers("after training", "snip", "none", 0, model="mlp", budget="equal")
    assert not f.covers("after training", "snip", "none", 0, model="cifar_vit", budget="matched")
    with pytest.raises(ConfigError, match="finding 'x': unknown budget 'twice'; valid: equal, "
                                          "matched, any"):
        Finding("x", "claim", "worse", "after training", budget="twice")
