"""The example plugin method (``examples/fisher_method.py``, not in the registry): ``judge
--plugin examples.fisher_method --method fisher`` plans its card's runs, and its scores are the
empirical Fisher saliency of a network small enough to compute by hand."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import pai_bench
from pai_bench.sweeps import judge as judging
from pai_bench.cli.parser import main
from pai_bench.masks import Masks
from pai_bench.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "examples.fisher_method"


@pytest.fixture
def plugin_path(monkeypatch):
    """The repository root importable (``--plugin examples.fisher_method`` is run from it), and
    the plugin imported afresh (its import is what registers ``fisher``)."""
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop(PLUGIN, None)
    yield
    sys.modules.pop(PLUGIN, None)


class Planned(Exception):
    """Raised by the stand-in sweep runner: the plan is what the test looks at, not training."""


def test_judge_plans_the_plugin_methods_card(plugin_path, tmp_path, monkeypatch):
    planned = []

    def run_sweep(configs, options, executor):
        planned.extend(configs)
        raise Planned

    monkeypatch.setattr(judging, "run_sweep", run_sweep)
    assert "fisher" not in METHODS
    with pytest.raises(Planned):
        main(["judge", "--plugin", PLUGIN, "--method", "fisher", "--results-dir", str(tmp_path),
              "--no-reference"])  # every run planned (the shipped rows: test_shipped_reference)
    design = judging.Design()
    seeds = set(design.seeds)
    assert len(planned) == len(set(planned)) == 4 * 5 + 3 * 5
    mine = [c for c in planned if c.method == "fisher"]
    assert {(c.check, c.seed) for c in mine} == {(k, s) for k in judging.JUDGE_CHECKS
                                                 for s in seeds}
    others = [c for c in planned if c.method != "fisher"]
    assert {(c.method, c.check, c.seed) for c in others} == {
        (m, "none", s) for m in judging.REFERENCES for s in seeds}
    assert {c.sparsity for c in planned} == {design.sparsity}
    assert {c.model for c in planned} == {design.run["model"]}


class ToyContext:
    """What ``FisherSaliency.score`` reads of a ``ScoringContext``: the model, its masks, and
    one example of each of three classes."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.masks = Masks({"weight": torch.ones(3, 2)})

    def examples(self, per_class):
        x = torch.tensor([[1.0, 2.0], [3.0, -1.0], [2.0, 1.0]])
        return x, torch.tensor([0, 1, 2])


def test_fisher_scores_equal_a_hand_computation(plugin_path):
    __import__(PLUGIN)
    scorer = METHODS.get("fisher")(samples_per_class=1)
    model = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]] * 3))  # equal rows: equal logits
    scores = scorer.score(ToyContext(model))
    # Every logit equal: softmax 1/3 each, so the per-example gradient of row c is
    # (1/3 - [y = c]) x: squared, 4/9 x^2 for the example's own class, 1/9 x^2 for the others.
    # Fisher of row c = the mean over the 3 examples; x^2 = (1, 4), (9, 1), (4, 1).
    fisher = torch.tensor([[4 * 1 + 9 + 4, 4 * 4 + 1 + 1],
                           [1 + 4 * 9 + 4, 4 + 4 * 1 + 1],
                           [1 + 9 + 4 * 4, 4 + 1 + 4 * 1]]) / 27
    expected = fisher * torch.tensor([[1.0, 4.0]] * 3)  # times w^2
    assert torch.allclose(scores["weight"], expected)
    assert torch.allclose(expected[0], torch.tensor([17 / 27, 72 / 27]))


def test_the_plugin_runs_through_the_pipeline(plugin_path, tmp_path):
    __import__(PLUGIN)
    summary = pai_bench.run(method="fisher", model="mlp", dataset="synthetic", epochs=1,
                            batch_size=32, subset=128, test_subset=50, sparsity=0.8,
                            results_dir=tmp_path, device="cpu", log=lambda *a: None)
    assert summary["status"] == "finished"
    assert summary["kept"] == round(0.2 * summary["prunable"])
