"""``--sparse-kernels auto`` (``pai_bench.sparse``): the sparse path computes what the dense
masked path computes, keeps the masks and the stored files as they are, and chooses a layer's
layout from a measurement (never assumed), dense wherever it cannot help.

Runs force the layout through the documented override (``PAI_BENCH_SPARSE_FORCE``) so that no
test depends on timing; the choice itself is tested with measurements given by hand."""

import copy

import pytest
import torch
from torch import nn

import pai_bench
from pai_bench import paths, sparse
from pai_bench.cli.parser import main
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks, PreparedMasks
from pai_bench.models import create_model, prunable_names
from pai_bench.analysis.results import load_runs
from pai_bench.analysis.table import accuracy_table

# The sparse path's tests need SparseProp (README, Install, installs it; CI too): a missing
# library fails them with what to run, it never skips them.
needs_kernels = pytest.mark.usefixtures("sparse_kernels_installed")


@pytest.fixture
def sparse_kernels_installed():
    if sparse.kernels() is None:
        pytest.fail("SparseProp is not installed: pip install pybind11 && "
                    "pip install --no-build-isolation 'sparseprop>=0.1.14' (README, Install)")
TINY = dict(dataset="synthetic", epochs=2, batch_size=32, subset=128, test_subset=100,
            sparsity=0.9, precision="fp32")

# the layers of the zoo, as they use stride, padding and bias (no model uses groups)
LAYERS = {
    "vgg 3x3, bias": lambda: nn.Conv2d(8, 16, 3, 1, padding=1),
    "resnet first 3x3, 3 inputs": lambda: nn.Conv2d(3, 8, 3, 1, padding=1, bias=False),
    "resnet 3x3 stride 2": lambda: nn.Conv2d(8, 16, 3, 2, padding=1, bias=False),
    "resnet 1x1 shortcut stride 2": lambda: nn.Conv2d(8, 16, 1, 2, bias=False),
    "imagenet 7x7 stride 2 stem": lambda: nn.Conv2d(3, 8, 7, 2, padding=3, bias=False),
    "linear": lambda: nn.Linear(64, 10),
}


def close(ours: torch.Tensor, reference: torch.Tensor, tol: float = 1e-5) -> bool:
    """Equal within ``tol`` of the reference's largest magnitude (fp32 sums in another order)."""
    ours, reference = ours.detach(), reference.detach()
    return ours.shape == reference.shape and \
        float((ours - reference).abs().max()) <= tol * float(reference.abs().max())


@needs_kernels
@pytest.mark.parametrize("batch", [5, 16])  # 5: not a whole vector of SparseProp's batch loop
@pytest.mark.parametrize("kind", list(LAYERS))
def test_forward_and_every_gradient_equal_the_dense_masked_layer(kind, batch):
    torch.manual_seed(0)
    layer = LAYERS[kind]()
    keep = torch.rand(layer.weight.shape) > 0.8
    dense = copy.deepcopy(layer)
    with torch.no_grad():
        dense.weight.mul_(keep)  # the dense masked path's layer
    x_shape = (batch, 64) if isinstance(layer, nn.Linear) else (batch, layer.in_channels, 12, 12)
    variants = sparse.LINEAR_VARIANTS if isinstance(layer, nn.Linear) else sparse.CONV_VARIANTS
    for variant in variants:
        ours = sparse.sparse_module(copy.deepcopy(layer), keep, variant)
        assert ours.values.shape == (int(keep.sum()),)  # only the kept weights exist
        x = torch.randn(x_shape, requires_grad=True)
        x_ours = x.detach().clone().requires_grad_()
        layouts = []  # the input gradient as the layer hands it back, before accumulation
        x_ours.register_hook(lambda g: layouts.append(g.is_contiguous()))
        y, y_ours = dense(x), ours(x_ours)
        grad = torch.randn_like(y)
        y.backward(grad)
        y_ours.backward(grad)
        # the standard layout, as the dense layer's: the layers around it keep their fast
        # kernels (SparseProp's own is batch-last, handed back as a permuted view)
        assert y_ours.is_contiguous() and layouts == [True], variant
        assert close(y_ours, y), variant
        assert close(x_ours.grad, x.grad), variant
        assert close(ours.values.grad, dense.weight.grad[keep]), variant
        if layer.bias is not None:
            assert close(ours.bias.grad, dense.bias.grad), variant
        dense.zero_grad(set_to_none=True)


def _mlp_with_masks():
    model = create_model("mlp", num_classes=10, input_shape=(3, 8, 8), seed=0)
    return model, Masks.random(model, prunable_names(model), 0.7, seed=0)


def test_the_state_dict_stays_dense_and_the_masks_stay_the_masks():
    model, masks = _mlp_with_masks()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    decisions = [sparse.Decision(n, "sparse", "test", "csr") for n in masks]
    assert sparse.convert(model, masks, decisions) == list(masks)
    state = model.state_dict()
    assert list(state) == list(before)  # the dense layer's keys, in their order
    for name, mask in masks.items():
        assert torch.equal(state[name], before[name] * mask)  # kept values, zeros elsewhere
    # a dense state with values at pruned positions loads as its kept values
    model.load_state_dict(before)
    assert all(torch.equal(model.state_dict()[n], before[n] * m) for n, m in masks.items())
    prepared = PreparedMasks(model, masks)  # nothing to zero in a layer that has no pruned weights
    assert prepared.params == []
    other = Masks({n: ~m if i == 0 else m for i, (n, m) in enumerate(masks.items())})
    with pytest.raises(ConfigError, match="differs from the kept positions"):
        PreparedMasks(model, other)


def test_momentum_resumes_in_either_layout():
    model, masks = _mlp_with_masks()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3, 8, 8)).sum().backward()
    opt.step()
    dense_state = copy.deepcopy(opt.state_dict())
    sparse.convert(model, masks, [sparse.Decision(n, "sparse", "test", "csr") for n in masks])
    converted = sparse.optimizer_state_like(dense_state, model, masks)
    names = [n for n, _ in model.named_parameters()]
    for i, name in enumerate(names):
        buf, dense_buf = converted["state"][i]["momentum_buffer"], dense_state["state"][i]["momentum_buffer"]
        if name.endswith("values"):
            weight = name.removesuffix("values") + "weight"
            assert torch.equal(buf, dense_buf[masks[weight]])
        else:
            assert torch.equal(buf, dense_buf)
    fresh = create_model("mlp", num_classes=10, input_shape=(3, 8, 8), seed=0)
    back = sparse.optimizer_state_like(converted, fresh, masks)  # sparse checkpoint, dense run
    first = names.index(next(n for n in names if n.endswith("values")))
    assert torch.equal(back["state"][first]["momentum_buffer"],
                       dense_state["state"][first]["momentum_buffer"] * masks[prunable_names(fresh)[0]])


def test_a_layer_goes_sparse_only_where_it_was_measured_faster(tmp_path, monkeypatch):
    model, masks = _mlp_with_masks()
    measured = {"fc1.weight": 0.5, "fc2.weight": 0.95, "fc3.weight": 2.0}  # sparse / dense
    calls = []

    def fake_time(layer, keep, x_shape, grad_in=True, rounds=sparse.ROUNDS):
        name = next(n for n in masks if tuple(masks[n].shape) == tuple(layer.weight.shape))
        calls.append((name, x_shape, grad_in))
        return {"dense": 1.0, "csr": measured[name]}
    monkeypatch.setattr(sparse, "time_layer", fake_time)
    monkeypatch.setattr(sparse, "kernels", lambda: object())
    monkeypatch.delenv(sparse.FORCE_ENV, raising=False)
    decisions = sparse.choose(model, masks, (3, 8, 8), 32, cache_dir=tmp_path)
    assert [d.layout for d in decisions] == ["sparse", "dense", "dense"]  # 0.95 > MARGIN
    assert calls[0] == ("fc1.weight", (32, 192), False)  # the run's batch; input needs no grad
    assert calls[1][2] is True
    assert "not faster" in decisions[1].reason and "not faster" in decisions[2].reason
    again = sparse.choose(model, masks, (3, 8, 8), 32, cache_dir=tmp_path)
    assert again == decisions and len(calls) == 3  # read from the cache, not measured again
    sparse.choose(model, masks, (3, 8, 8), 64, cache_dir=tmp_path)
    assert len(calls) == 6  # another batch: measured


XEON = "model name\t: Intel(R) Xeon(R) Processor\ncpu family\t: 6\nmodel\t\t: {}\nstepping\t: 8\n"


def test_another_cpu_of_the_same_model_name_measures_again(tmp_path, monkeypatch):
    # Virtual machines name different Xeons alike: a layer measured on one is not the other's.
    assert sparse.cpu_name(XEON.format(207)) != sparse.cpu_name(XEON.format(167))
    assert "family 6 model 167 stepping 8" in sparse.cpu_name(XEON.format(167))
    model, masks = _mlp_with_masks()
    calls = []
    monkeypatch.setattr(sparse, "time_layer",
                        lambda *a, **k: calls.append(1) or {"dense": 1.0, "csr": 0.5})
    monkeypatch.setattr(sparse, "kernels", lambda: object())
    monkeypatch.delenv(sparse.FORCE_ENV, raising=False)
    real = sparse.cpu_name
    for cpu in (207, 207, 167):
        monkeypatch.setattr(sparse, "cpu_name", lambda cpu=cpu: real(XEON.format(cpu)))
        sparse.choose(model, masks, (3, 8, 8), 32, cache_dir=tmp_path)
    assert len(calls) == 6  # 3 layers on the first CPU, cached for its second call, 3 again


@pytest.mark.parametrize("why", ["gpu", "bf16", "compile", "no library"])
def test_auto_keeps_every_layer_dense_where_the_kernels_cannot_help(tmp_path, monkeypatch, why):
    model, masks = _mlp_with_masks()
    monkeypatch.setattr(sparse, "time_layer", lambda *a, **k: pytest.fail("measured"))
    if why == "no library":
        monkeypatch.setattr(sparse, "kernels", lambda: None)
    kwargs = dict(gpu=dict(device=torch.device("cuda")), bf16=dict(precision="bf16"),
                  compile=dict(compile=True)).get(why, {})
    decisions = sparse.choose(model, masks, (3, 8, 8), 32, cache_dir=tmp_path, **kwargs)
    assert {d.layout for d in decisions} == {"dense"}
    text = sparse.describe(decisions)
    assert "0 of 3 layers sparse" in text
    assert {"gpu": "GPU", "bf16": "bf16", "compile": "compile",
            "no library": "sparseprop is not installed"}[why] in text


def test_grouped_or_dilated_convolutions_stay_dense():
    assert sparse.unsupported(nn.Conv2d(8, 8, 3, groups=2)) is not None
    assert sparse.unsupported(nn.Conv2d(8, 8, 3, dilation=2)) is not None
    assert sparse.unsupported(nn.Conv2d(8, 8, 3, stride=3)) is not None
    assert sparse.unsupported(nn.Conv2d(8, 8, (3, 1))) is not None
    assert sparse.unsupported(nn.Conv2d(8, 8, 3, 2, padding=1)) is None


def _twins(tmp_path, monkeypatch, method="snip", **fields):
    monkeypatch.setenv(sparse.FORCE_ENV, "sparse")
    lines = []
    runs = [pai_bench.run(method=method, results_dir=tmp_path, device="cpu", progress=False,
                          log=lines.append, sparse_kernels=k, **{**TINY, **fields})
            for k in ("off", "auto")]
    return runs, "\n".join(lines)


def _weights(tmp_path, summary):
    run = tmp_path / "runs" / f"{summary['config']['method']}-{summary['hash']}"
    return run, torch.load(run / paths.WEIGHTS, weights_only=True), \
        Masks.load(run / paths.MASKS)


@needs_kernels
def test_auto_and_off_twins_reach_the_same_numbers_and_export_zeros(tmp_path, monkeypatch):
    (off, auto), log = _twins(tmp_path, monkeypatch, model="cifar_resnet_20", width=4)
    assert "22 of 22 layers sparse" in log
    assert off["hash"] != auto["hash"] and auto["config"]["sparse_kernels"] == "auto"
    assert auto["test_accuracy"] == off["test_accuracy"]
    assert auto["test_loss"] == pytest.approx(off["test_loss"], rel=1e-4)
    _, w_off, masks = _weights(tmp_path, off)
    run, w_auto, masks_auto = _weights(tmp_path, auto)
    assert masks_auto.keys() == masks.keys() and all(torch.equal(masks[n], masks_auto[n]) for n in masks)
    assert list(w_auto) == list(w_off)
    assert all(torch.allclose(w_auto[k].float(), w_off[k].float(), atol=1e-3) for k in w_off)
    assert main(["export", str(run), "--format", "state_dict"]) == 0
    exported = torch.load(run / "model.state_dict.pt", weights_only=True)
    for name, mask in masks.items():
        assert int(exported[name][~mask].count_nonzero()) == 0
    for s in (off, auto):  # the measured seconds per epoch, in the summary and the table
        assert s["seconds_per_epoch"] > 0
    table = accuracy_table(load_runs(tmp_path))
    assert table["seconds_per_epoch"].notna().all()


@needs_kernels
@pytest.mark.parametrize("method,fields", [
    ("snip", dict(check="shuffle")), ("snip", dict(check="reinit")),
    ("snip", dict(check="invert")), ("magnitude_after_training", {}),
    ("lottery_ticket", dict(rounds=2))])
def test_every_check_and_baseline_runs_on_the_sparse_path(tmp_path, monkeypatch, method, fields):
    (off, auto), log = _twins(tmp_path, monkeypatch, method=method, model="mlp", **fields)
    assert "3 of 3 layers sparse" in log
    assert auto["status"] == off["status"] == "finished"
    assert auto["test_accuracy"] == pytest.approx(off["test_accuracy"], abs=0.011)  # <= 1 of 100
    assert auto["test_loss"] == pytest.approx(off["test_loss"], rel=1e-3)
    _, weights, masks = _weights(tmp_path, auto)
    assert all(int(weights[n][~m].count_nonzero()) == 0 for n, m in masks.items())
