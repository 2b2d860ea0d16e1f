"""The vision transformer of the zoo (pai_bench/models/vit.py): its prunable weights, its
initialization, every method on it (one scoring step each), and a tiny run through the runner."""

import math

import pytest
import torch

import pai_bench
from pai_bench import methods
from pai_bench.effective import effective_masks
from pai_bench.data import load_split
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.models import create_model, initialize, model_facts, prunable_names
from pai_bench.models.vit import DEPTH, MLP_RATIO
from pai_bench.scoring import compute_masks
from pai_bench.methods import METHODS, make_method

SHAPE = (3, 32, 32)
WIDTH = 8  # 4 heads of 2: the smallest instance


def tiny(seed=0, width=WIDTH):
    return create_model("cifar_vit", num_classes=10, input_shape=SHAPE, seed=seed, width=width)


def test_prunable_weights_are_exactly_the_documented_ones():
    model = tiny()
    per_block = ["attn.q", "attn.k", "attn.v", "attn.out", "mlp.fc1", "mlp.fc2"]
    expected = [f"blocks.{i}.{p}.weight" for i in range(DEPTH) for p in per_block] + ["head.weight"]
    assert prunable_names(model) == expected
    assert len(expected) == 6 * 6 + 1
    facts = model_facts(model, SHAPE)
    w, h = WIDTH, MLP_RATIO * WIDTH
    shapes = {"attn.q": (w, w), "attn.k": (w, w), "attn.v": (w, w), "attn.out": (w, w),
              "mlp.fc1": (h, w), "mlp.fc2": (w, h)}
    for name, shape in facts.prunable.items():
        assert shape == ((10, w) if name == "head.weight" else shapes[name[9:-7]])
    assert facts.total == DEPTH * (4 * w * w + 2 * h * w) + 10 * w
    # never prunable: patch and position embeddings, LayerNorm, every bias
    others = [n for n, _ in model.named_parameters() if n not in facts.prunable]
    assert "patch_embed.weight" in others and "pos_embed" in others
    assert all(n.endswith("bias") or "norm" in n or "embed" in n for n in others)
    # MACs per example: 64 tokens through each block's linear layers, the head once
    assert facts.macs["blocks.0.attn.q.weight"] == 64 * w * w
    assert facts.macs["blocks.0.mlp.fc1.weight"] == 64 * h * w
    assert facts.macs["head.weight"] == 10 * w


def test_width_scales_the_embedding_and_must_fit_the_heads():
    assert tiny(width=16).head.weight.shape == (10, 16)
    assert create_model("cifar_vit", num_classes=10, input_shape=SHAPE,
                        seed=0).head.weight.shape == (10, 128)
    with pytest.raises(ConfigError, match="multiple of its 4 heads, got width 10"):
        tiny(width=10)


def test_initialization_is_its_own_and_seeded():
    a, b = tiny(0, width=64).requires_grad_(False), tiny(0, width=64).requires_grad_(False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    q = a.blocks[0].attn.q.weight.detach()
    assert abs(float(q.std()) - 0.02 * 0.88) < 0.002  # std of N(0, 0.02²) truncated at ±2 std
    assert float(q.abs().max()) <= 0.04 + 1e-7
    assert float(a.blocks[0].attn.q.bias.abs().max()) == 0.0
    assert float(a.blocks[0].norm1.weight.min()) == 1.0
    patch = a.patch_embed.weight.detach()
    assert abs(float(patch.std()) - 0.88 / math.sqrt(48)) < 0.02
    # the suite's initializer defers to it (NTK-SAP's re-draws, the reinit check)
    initialize(b, torch.Generator().manual_seed(1))
    assert not torch.equal(a.blocks[0].attn.q.weight, b.blocks[0].attn.q.weight)
    assert abs(float(b.blocks[0].attn.q.weight.detach().std()) - 0.02 * 0.88) < 0.002


def test_effective_masks_follow_the_attention():
    """The generic-input rule of effective.py: with the values of block 0 pruned, its queries,
    keys and output projection can change nothing; a key channel pruned makes the queries'
    matching row ineffective; the dense network is effective everywhere."""
    model = tiny(width=16)
    names = prunable_names(model)
    dense = Masks.ones_like(model, names)
    assert effective_masks(model, dense, SHAPE) == dense
    m = {n: torch.ones_like(dense[n]) for n in names}
    m["blocks.0.attn.v.weight"][:] = False
    m["blocks.1.attn.k.weight"][3] = False
    eff = effective_masks(model, Masks(m), SHAPE)
    for n in ("q", "k", "out"):
        assert int(eff[f"blocks.0.attn.{n}.weight"].sum()) == 0
    q1 = eff["blocks.1.attn.q.weight"]
    assert not q1[3].any() and q1[[0, 1, 2, *range(4, 16)]].all()
    assert eff["blocks.0.mlp.fc1.weight"].all() and eff["head.weight"].all()


# Methods that refuse a transformer, and the refusal (none does: each docstring says what it
# computes on one).
REFUSED: dict[str, str] = {}
SCORERS = sorted(set(methods.scorer_names()) - {"masks"})


@pytest.mark.parametrize("name", SCORERS)
def test_every_scorer_scores_a_tiny_transformer(name):
    """One scoring step (one round) of every method at initialization, or its refusal."""
    model = tiny(width=16)
    data = load_split("synthetic", None, "train", subset=200, seed=0)
    scorer = make_method(name)
    names = prunable_names(model)

    def score():
        return compute_masks(scorer, model, density=0.2, rounds=1, scope="global",
                             data=data if scorer.needs_data else None, num_classes=10,
                             input_shape=SHAPE, generator=torch.Generator().manual_seed(0),
                             device=torch.device("cpu"))
    if name in REFUSED:
        with pytest.raises(ConfigError, match=REFUSED[name]):
            score()
        return
    masks = score()
    assert list(masks) == names
    assert masks.kept() == round(0.2 * masks.total())
    # every method's masks are a choice: not the all-layers-empty or a single layer
    assert sum(int(masks[n].any()) for n in names) > 1


def test_every_baseline_and_check_runs_on_the_transformer(tmp_path):
    """Every baseline (one small run each, levels included) and every check (on snip and on
    magnitude after training) through the runner: they train (test loss finite) and keep the
    asked count. (The scorers' scoring: the test above.)"""
    tiny_run = dict(model="cifar_vit", width=16, dataset="synthetic", epochs=1, batch_size=32,
                    subset=128, test_subset=50, sparsity=0.8, threads=1,
                    results_dir=tmp_path, progress=False)
    runs = [dict(method=m) for m in ["snip", *methods.baseline_names()]]
    runs += [dict(method=m, check=c) for m in ("snip", "magnitude_after_training")
             for c in ("shuffle", "reinit", "invert")]
    for r in runs:
        s = pai_bench.run(**r, **tiny_run)
        assert s["status"] == "finished", (r, s.get("error"))
        assert math.isfinite(s["test_loss"]) and s["kept"] == round(0.2 * s["prunable"])
        assert s["prunable"] == DEPTH * (4 * 16 * 16 + 2 * 32 * 16) + 10 * 16


def test_a_tiny_transformer_trains(tmp_path):
    """Through the runner on the synthetic problem: the loss falls well below chance."""
    s = pai_bench.run(method="snip", model="cifar_vit", width=16, dataset="synthetic",
                      epochs=3, batch_size=32, subset=512, test_subset=200, sparsity=0.5,
                      lr=0.05, threads=1, results_dir=tmp_path, progress=False)
    assert s["status"] == "finished"
    assert s["test_loss"] < 0.8 * math.log(10)
    assert s["test_accuracy"] > 0.3
    assert METHODS.get("snip")  # the registry is intact
