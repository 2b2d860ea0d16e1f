"""Scores to masks, checked by hand on toy inputs."""

import pytest
import torch

from pai_bench.errors import ConfigError, ScoreError
from pai_bench.masks import Masks
from pai_bench.pruning import (exponential_schedule, global_masks, keep_count, layerwise_masks,
                               threshold, topk_mask)


def ones(**shapes):
    return Masks({n: torch.ones(s, dtype=torch.bool) for n, s in shapes.items()})


def test_topk_mask_keeps_exact_count_and_breaks_ties_by_lower_index():
    s = torch.tensor([1.0, 3.0, 2.0, 2.0, 2.0, 0.0])
    # keep 3: 3.0 (idx 1), then two of the three 2.0s -> indices 2 and 3
    assert topk_mask(s, 3).tolist() == [False, True, True, True, False, False]
    assert topk_mask(s, 0).sum() == 0 and topk_mask(s, 6).all()
    # all equal: the first k positions
    assert topk_mask(torch.zeros(5), 2).tolist() == [True, True, False, False, False]


def test_global_threshold_on_hand_checked_toy():
    scores = {"a": torch.tensor([[0.1, 0.9], [0.5, 0.3]]), "b": torch.tensor([0.8, 0.2, 0.7])}
    m = global_masks(scores, density=3 / 7, current=ones(a=(2, 2), b=(3,)))
    # the three largest of {0.1,0.9,0.5,0.3,0.8,0.2,0.7} are 0.9, 0.8, 0.7
    assert m["a"].tolist() == [[False, True], [False, False]]
    assert m["b"].tolist() == [True, False, True]
    assert m.kept() == 3


def test_layerwise_keeps_the_same_fraction_per_layer():
    scores = {"a": torch.arange(10.0), "b": -torch.arange(20.0)}
    m = layerwise_masks(scores, 0.3, ones(a=(10,), b=(20,)))
    assert m["a"].tolist() == [False] * 7 + [True] * 3
    assert m["b"].tolist() == [True] * 6 + [False] * 14


@pytest.mark.parametrize("density", [0.5, 0.1, 0.013, 0.9999])
def test_exact_kept_count_with_massive_ties(density):
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.randint(0, 3, (1000,), generator=g).float(),
              "b": torch.randint(0, 3, (37, 11), generator=g).float()}
    m = global_masks(scores, density, ones(a=(1000,), b=(37, 11)))
    assert m.kept() == keep_count(1407, density)


def test_pruned_weights_never_come_back():
    current = Masks({"a": torch.tensor([True, False, True, False, True, True])})
    # the pruned positions get the highest scores: they must still stay pruned
    scores = {"a": torch.tensor([1.0, 100.0, 2.0, 100.0, 3.0, 4.0])}
    m = global_masks(scores, 2 / 6, current)
    assert m["a"].tolist() == [False, False, False, False, True, True]


def test_lowest_keeps_the_exact_complement_ranking():
    s = torch.tensor([5.0, -1.0, 2.0, 2.0, -3.0, 0.0, 2.0, 7.0])
    cur = ones(a=(8,))
    top = global_masks({"a": s}, 5 / 8, cur)
    low = global_masks({"a": s}, 3 / 8, cur, lowest=True)
    assert torch.equal(low["a"], ~top["a"])
    assert low.kept() == 3


def test_non_finite_or_mismatched_scores_are_refused():
    cur = ones(a=(3,))
    with pytest.raises(ScoreError, match="non-finite"):
        global_masks({"a": torch.tensor([1.0, float("nan"), 0.0])}, 0.5, cur)
    with pytest.raises(ScoreError, match="missing"):
        global_masks({}, 0.5, cur)
    with pytest.raises(ScoreError, match="shape"):
        global_masks({"a": torch.zeros(4)}, 0.5, cur)
    with pytest.raises(ConfigError, match="valid scopes: global, layerwise"):
        threshold("everywhere", {"a": torch.zeros(3)}, 0.5, cur)


def test_inputs_are_not_mutated():
    s = {"a": torch.tensor([3.0, 1.0, 2.0])}
    cur = ones(a=(3,))
    before = s["a"].clone()
    global_masks(s, 1 / 3, cur)
    assert torch.equal(s["a"], before) and cur.kept() == 3


def test_exponential_schedule():
    d = exponential_schedule(0.01, 100)
    assert len(d) == 100 and d[-1] == pytest.approx(0.01)
    assert d[49] == pytest.approx(0.1)
    ratios = [b / a for a, b in zip(d, d[1:])]
    assert max(ratios) - min(ratios) < 1e-12
    with pytest.raises(ConfigError):
        exponential_schedule(0.5, 0)


def _reference_masks(scores, density, current, lowest):
    """The plain algorithm: rank every survivor with topk_mask (global scope)."""
    names = list(current)
    alive = torch.cat([current[n].flatten() for n in names])
    flat = torch.cat([scores[n].flatten().double() for n in names])[alive]
    k = min(keep_count(alive.numel(), density), len(flat))
    chosen = ~topk_mask(flat, len(flat) - k) if lowest else topk_mask(flat, k)
    keep = torch.zeros_like(alive)
    keep[alive] = chosen
    out, i = {}, 0
    for n in names:
        out[n] = keep[i:i + current[n].numel()].view(current[n].shape)
        i += current[n].numel()
    return Masks(out)


@pytest.mark.parametrize("sample", [1 << 15, 4])  # 4: the pivot sample is useless -> fallback
def test_fast_selection_equals_ranking_every_survivor(sample, monkeypatch):
    import pai_bench.pruning as pruning
    monkeypatch.setattr(pruning, "SAMPLE", sample)
    g = torch.Generator().manual_seed(1)
    for trial in range(40):
        shapes = {"a": (int(torch.randint(1, 300, (1,), generator=g)),), "b": (17, 23), "c": (5,)}
        if trial % 2:
            scores = {n: torch.randn(s, generator=g).double() for n, s in shapes.items()}
        else:  # heavy ties, and float32 layers beside a float64 one
            scores = {n: torch.randint(0, 4, s, generator=g).float() for n, s in shapes.items()}
            scores["c"] = scores["c"].double()
        current = Masks({n: torch.rand(s, generator=g) < float(torch.rand(1, generator=g))
                         for n, s in shapes.items()})
        density = float(torch.rand(1, generator=g))
        for lowest in (False, True):
            fast = global_masks(scores, density, current, lowest=lowest)
            assert fast == _reference_masks(scores, density, current, lowest), (trial, lowest)
