"""Sanity checks, effective sparsity and verdicts, against hand counts and direct computations."""

import pytest
import torch

import pai_bench.pipeline.runner as runner
from pai_bench.config import RunConfig
from pai_bench.effective import effective_masks, effective_summary
from pai_bench.masks import Masks
from pai_bench.models import create_model, prunable_names
from pai_bench.pruning import global_masks
from pai_bench.analysis.results import compare
from pai_bench.training.train import train
from pai_bench.sanity_checks import CHECKS, shuffle_masks
from pai_bench.options import RunOptions

BASE = dict(model="mlp", dataset="synthetic", epochs=1, batch_size=32, subset=160,
            test_subset=50)


def random_masks(shapes, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Masks({n: torch.rand(s, generator=g) < density for n, s in shapes.items()})


def test_shuffle_keeps_each_layer_count_and_moves_positions():
    masks = random_masks({"a": (40, 30), "b": (7, 3, 3, 3), "c": (10,)}, 0.3)
    shuffled = shuffle_masks(masks, torch.Generator().manual_seed(1))
    for n in masks:
        assert int(shuffled[n].sum()) == int(masks[n].sum())
    assert shuffled != masks
    assert not torch.equal(shuffled["a"], masks["a"]) and not torch.equal(shuffled["b"], masks["b"])
    again = shuffle_masks(masks, torch.Generator().manual_seed(1))
    assert again == shuffled  # seeded
    assert masks == random_masks({"a": (40, 30), "b": (7, 3, 3, 3), "c": (10,)}, 0.3)  # input intact


def test_invert_keeps_the_complement_ranking_with_negative_and_tied_scores():
    s = torch.tensor([-3.0, 2.0, 2.0, -1.0, 0.0, 2.0, 5.0, -3.0, 1.0, 0.0])
    ones = Masks({"w": torch.ones(10, dtype=torch.bool)})
    for sparsity in (0.3, 0.5, 0.8):
        d = 1 - sparsity
        original = global_masks({"w": s}, 1 - d, ones)  # the method at the complementary density
        inverted = global_masks({"w": s}, d, ones, lowest=True)
        assert torch.equal(inverted["w"], ~original["w"])
        assert inverted.kept() == round(10 * d)
        kept, dropped = s[inverted["w"]], s[~inverted["w"]]
        assert kept.max() <= dropped.min()  # every kept score ranks at or below every pruned one


def checked_run(tmp_path, method, check, monkeypatch):
    seen = {}
    real = train  # the real loop, not a spy installed by an earlier call

    def spy(model, data, recipe, **kw):
        seen["state"] = {k: v.clone() for k, v in model.state_dict().items()}
        seen["masks"] = kw["masks"]
        return real(model, data, recipe, **kw)
    monkeypatch.setattr(runner, "train", spy)
    config = RunConfig(method=method, check=check, sparsity=0.8, **BASE)
    runner.execute(config, RunOptions(results_dir=tmp_path, progress=False, log=None))
    return seen


def test_reinit_changes_every_kept_weight_and_no_mask_bit(tmp_path, monkeypatch):
    plain = checked_run(tmp_path, "magnitude", "none", monkeypatch)
    re = checked_run(tmp_path, "magnitude", "reinit", monkeypatch)
    assert re["masks"] == plain["masks"]
    for n, m in plain["masks"].items():
        assert (re["state"][n][m] != plain["state"][n][m]).all()


def test_shuffle_uses_the_runs_own_initial_weights(tmp_path, monkeypatch):
    plain = checked_run(tmp_path, "snip", "none", monkeypatch)
    sh = checked_run(tmp_path, "snip", "shuffle", monkeypatch)
    assert all(torch.equal(plain["state"][n], sh["state"][n]) for n in plain["state"])
    for n in plain["masks"]:
        assert int(sh["masks"][n].sum()) == int(plain["masks"][n].sum())
    assert sh["masks"] != plain["masks"]


def test_effective_sparsity_of_a_hand_built_mlp_mask_with_a_dead_unit():
    model = create_model("mlp", num_classes=10, input_shape=(1, 2, 2), seed=0)
    names = prunable_names(model)  # fc1 300x4, fc2 100x300, fc3 10x100
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()
             if n in names}
    masks["fc1.weight"][0, :] = False   # hidden unit 0 of layer 1 gets no input ...
    masks["fc3.weight"][:, 5] = False   # ... and hidden unit 5 of layer 2 reaches no output
    masks = Masks(masks)
    # by hand: fc2's column 0 (100 weights) leaves a dead unit, fc2's row 5 (300 weights) feeds
    # one; they share fc2[5, 0]. Every other kept weight lies on an input-output path.
    stranded = 100 + 300 - 1
    eff = effective_masks(model, masks, (1, 2, 2))
    assert masks.kept() - eff.kept() == stranded
    assert not eff["fc2.weight"][:, 0].any() and not eff["fc2.weight"][5, :].any()
    report = effective_summary(masks, eff)
    assert report["ineffective_kept"] == stranded
    # 1200 + 30000 + 1000 weights
    assert report["effective_sparsity"] == pytest.approx(1 - (masks.kept() - stranded) / 32_200)


def test_effective_equals_nominal_for_dense_and_flags_a_collapsed_layer():
    model = create_model("cifar_resnet_20", num_classes=10, input_shape=(3, 32, 32), seed=0,
                         width=4)
    params = dict(model.named_parameters())
    dense = Masks({n: torch.ones_like(params[n], dtype=torch.bool) for n in prunable_names(model)})
    assert effective_masks(model, dense, (3, 32, 32)) == dense
    cut = dict(dense)
    cut["blocks.6.conv1.weight"] = torch.zeros_like(cut["blocks.6.conv1.weight"])
    cut["blocks.6.shortcut.0.weight"] = torch.zeros_like(cut["blocks.6.shortcut.0.weight"])
    report = effective_summary(Masks(cut), effective_masks(model, Masks(cut), (3, 32, 32)))
    # with the only two paths into stage 3 cut, nothing before or after them is effective
    assert report["effective_sparsity"] == 1.0
    assert "fc.weight" in report["dead_layers"]


def test_compare_against_scipy_and_a_hand_computation():
    a, b = [0.9, 0.92, 0.91], [0.80, 0.83, 0.81]
    r = compare(a, b)
    from scipy import stats
    assert r["p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert r["difference"] == pytest.approx(0.91 - 0.81333333)
    assert r["ci_low"] < r["difference"] < r["ci_high"] and r["ci_low"] > 0
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence_level=0.95)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert r["reading"] == "better"
    assert compare(b, a)["reading"] == "worse"
    assert compare([0.5, 0.6, 0.55], [0.52, 0.58, 0.56])["reading"] == "no significant difference"


def test_every_check_is_registered():
    assert set(CHECKS.names()) == {"none", "shuffle", "reinit", "invert"}


def test_erk_densities_by_hand_and_exact_totals():
    from pai_bench.pruning import erk_densities, fixed_layer_masks, layer_counts
    shapes = {"conv": (16, 3, 3, 3), "big": (64, 64, 3, 3), "fc": (10, 64)}
    d = erk_densities(shapes, 0.1)
    # raw ERK fractions: (16+3+3+3)/432, (64+64+3+3)/36864, (10+64)/640. Over all three,
    # eps = 3793.6 / (25 + 134 + 74) puts conv above 1; without conv, eps = 3361.6 / 208 puts fc
    # at 1.87 > 1; so conv and fc are dense and eps = (3793.6 - 432 - 640) / 134.
    sizes = {"conv": 432, "big": 36864, "fc": 640}
    assert d["conv"] == 1.0 and d["fc"] == 1.0
    eps = (0.1 * 37936 - 432 - 640) / 134
    assert d["big"] == pytest.approx(eps * 134 / 36864)
    assert sum(d[n] * sizes[n] for n in sizes) == pytest.approx(0.1 * 37936)
    counts = layer_counts(sizes, d, 3794)
    assert sum(counts.values()) == 3794 and counts["conv"] == 432
    ones = Masks({n: torch.ones(s, dtype=torch.bool) for n, s in shapes.items()})
    scores = {n: torch.rand(s, generator=torch.Generator().manual_seed(0)) for n, s in shapes.items()}
    m = fixed_layer_masks(scores, d, 0.1, ones)
    assert m.kept() == round(0.1 * 37936)
    assert {n: int(m[n].sum()) for n in m} == layer_counts(sizes, d, m.kept())


@pytest.mark.parametrize("method", ["random_erk", "random_uniform"])
def test_layer_ratio_baselines_impose_their_densities(method):
    from pai_bench.methods import make_method
    from pai_bench.scoring import compute_masks
    model = create_model("cifar_resnet_20", num_classes=10, input_shape=(3, 32, 32), seed=0)
    masks = compute_masks(make_method(method), model, density=0.05,
                          generator=torch.Generator().manual_seed(0), num_classes=10,
                          input_shape=(3, 32, 32))
    assert masks.kept() == round(0.05 * masks.total())
    dens = {r["name"]: r["density"] for r in masks.layer_report()}
    if method == "random_uniform":
        assert all(abs(v - 0.05) < 1e-3 for v in dens.values())
    else:  # ERK: the first conv (small, few params) is denser than the widest 3x3 convs
        assert dens["conv.weight"] > 3 * dens["blocks.8.conv2.weight"]
