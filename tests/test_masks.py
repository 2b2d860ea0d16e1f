"""The Masks type and the one mechanism that keeps pruned weights at zero."""

import pytest
import torch
from torch import nn

from pai_bench.errors import ConfigError
from pai_bench.masks import Masks, apply_
from pai_bench.recipes import Recipe
from pai_bench.training.train import make_optimizer


def test_masks_validate_values_and_shapes(tmp_path):
    with pytest.raises(ConfigError, match="other than 0 and 1"):
        Masks({"w": torch.tensor([0.0, 0.5])})
    m = Masks({"0.weight": torch.tensor([[1, 0], [0, 1]])})
    assert m["0.weight"].dtype == torch.bool
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ConfigError, match="shape"):
        m.check_model(model)
    with pytest.raises(ConfigError, match="names no parameter"):
        Masks({"nope": torch.ones(2)}).check_model(model)


def test_density_report_and_roundtrip(tmp_path):
    m = Masks({"a": torch.tensor([True, False, False, False]), "b": torch.zeros(2, 3)})
    assert m.kept() == 1 and m.total() == 10 and m.sparsity() == pytest.approx(0.9)
    rows = m.layer_report()
    assert rows[0]["density"] == 0.25 and not rows[0]["collapsed"]
    assert rows[1]["kept"] == 0 and rows[1]["collapsed"]
    m.save(tmp_path / "masks.pt")
    assert Masks.load(tmp_path / "masks.pt") == m
    csv = (tmp_path / "masks.layers.csv").read_text().splitlines()
    assert csv[0] == "name,shape,total,kept,density,collapsed"
    assert csv[2] == "b,2x3,6,0,0.0,True"


def test_pruned_weights_stay_exactly_zero_through_sgd_with_momentum_and_weight_decay():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    masks = Masks({"0.weight": torch.rand(16, 8) > 0.7, "2.weight": torch.rand(4, 16) > 0.5})
    recipe = Recipe(batch_size=8, lr=0.5, epochs=1, momentum=0.9, weight_decay=0.1)
    opt = make_optimizer(model, recipe)
    apply_(model, masks)
    kept_before = model[0].weight[masks["0.weight"]].clone()
    for _ in range(5):
        x, y = torch.randn(8, 8), torch.randint(0, 4, (8,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        apply_(model, masks)
        # momentum buffers of pruned weights are non-zero: the mechanism must hold anyway
        assert (opt.state[model[0].weight]["momentum_buffer"][~masks["0.weight"]] != 0).any()
        for name, p in model.named_parameters():
            if name in masks:
                assert (p[~masks[name]] == 0).all()
    assert not torch.equal(model[0].weight[masks["0.weight"]], kept_before)  # kept ones trained


def test_masks_reach_a_channels_last_network_in_one_multi_tensor_op():
    """On a GPU every op is a kernel launch: the per-step mask costs one, whatever the depth,
    with masks laid out as their (channels-last) weights so the multi-tensor kernel applies."""
    from pai_bench.masks import PreparedMasks
    from pai_bench.models import create_model, prunable_names

    model = create_model("cifar_resnet_20", num_classes=10, input_shape=(3, 32, 32), seed=0)
    model.to(memory_format=torch.channels_last)
    params = dict(model.named_parameters())
    masks = Masks.random(model, prunable_names(model), 0.9, seed=0)
    before = {n: params[n].detach().clone() for n in masks}
    prepared = PreparedMasks(model, masks)
    assert len(masks) > 20
    assert all(k.stride() == params[n].stride() for n, k in zip(masks, prepared.keeps))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        apply_(model, prepared)
    # what apply_ dispatches (on a CPU the multi-tensor op then loops over the layers inside)
    ops = [e.name for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None]
    assert ops == ["aten::_foreach_mul_"], ops
    for n in masks:  # exactly the pruned weights are zero, the kept ones unchanged
        assert torch.equal(params[n].detach(), before[n] * masks[n])


def test_random_masks_prune_each_weight_with_the_given_probability_from_their_seed():
    from pai_bench.models import create_model, prunable_names

    model = create_model("mlp", num_classes=10, input_shape=(3, 8, 8), seed=0)
    names = prunable_names(model)
    a, b = (Masks.random(model, names, 0.9, seed=3) for _ in range(2))
    assert a == b and a != Masks.random(model, names, 0.9, seed=4)
    assert list(a) == names and abs(a.sparsity() - 0.9) < 0.01  # 89k weights drawn
    g = torch.Generator().manual_seed(3)  # the draw, done independently
    params = dict(model.named_parameters())
    assert all(torch.equal(a[n], torch.rand(params[n].shape, generator=g) > 0.9) for n in names)
