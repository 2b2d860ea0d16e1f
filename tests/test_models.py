"""The model zoo: every registered model builds, names its prunable weights, and initializes the
paper's way, deterministically and without touching the global RNG.

Expected counts and sizes are derived by hand (in the comments) or from published values, never
copied from the code's output.
"""

import math

import pytest
import torch
from torch import nn

from pai_bench import recipes
from pai_bench.errors import ConfigError
from pai_bench.models import MODELS, create_model, initialize, layer_macs, prunable_names

ALL = MODELS.names()
# Small inputs keep the file fast: the ImageNet ResNets run at 64x64 (their final map is 2x2).
SHAPES = {"cifar10": (3, 32, 32), "tinyimagenet": (3, 64, 64), "imagenet": (3, 64, 64)}
CLASSES = 10


def shape_of(name):
    return SHAPES[MODELS.get(name).dataset]


def build(name, seed=0, **kw):
    kw.setdefault("input_shape", shape_of(name))
    kw.setdefault("num_classes", CLASSES)
    return create_model(name, seed=seed, **kw)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def cifar_resnet_params(depth, width, classes):
    """He et al.'s ResNet-(6n+2) with 1x1-conv + BN shortcuts at the two shape changes."""
    n, conv, bn = (depth - 2) // 6, lambda i, o, k: i * o * k * k, lambda c: 2 * c
    total = conv(3, width, 3) + bn(width)
    prev = width
    for c in (width, 2 * width, 4 * width):
        for _ in range(n):
            total += conv(prev, c, 3) + bn(c) + conv(c, c, 3) + bn(c)
            if prev != c:
                total += conv(prev, c, 1) + bn(c)
            prev = c
    return total + 4 * width * classes + classes


def vgg16_params(classes):
    plan = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    total, prev = 0, 3
    for c in plan:
        total += prev * c * 9 + c + 2 * c  # conv weight + conv bias + BN weight and bias
        prev = c
    return total + 512 * classes + classes


# --- registry and specs ------------------------------------------------------------------------

def test_registered_names():
    assert set(ALL) == {
        *(f"cifar_vgg_{d}" for d in (11, 13, 16, 19)),
        *(f"cifar_resnet_{d}" for d in (20, 32, 44, 56, 110)),
        "tinyimagenet_resnet_18", "imagenet_resnet_50", "mlp", "cifar_vit",
    }


@pytest.mark.parametrize("name", ALL)
def test_spec_fields(name):
    spec = MODELS.get(name)
    assert spec.name == name
    assert spec.dataset in SHAPES
    assert isinstance(spec.recipe, recipes.Recipe)
    assert spec.description and "\n" not in spec.description


def test_paper_recipes():  # docs/protocol.md, "Networks and data"
    assert MODELS.get("cifar_resnet_20").recipe == recipes.CIFAR
    assert MODELS.get("cifar_vgg_16").recipe == recipes.CIFAR
    assert MODELS.get("tinyimagenet_resnet_18").recipe == recipes.TINYIMAGENET
    assert MODELS.get("imagenet_resnet_50").recipe == recipes.IMAGENET


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        create_model("resnet_21", num_classes=10, input_shape=(3, 32, 32), seed=0)
    assert "resnet_21" in str(err.value)
    assert all(name in str(err.value) for name in ALL)


# --- building and the forward pass -------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_forward_returns_logits(name):
    model = build(name)
    x = torch.randn(2, *shape_of(name), generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (2, CLASSES)
    assert torch.isfinite(out).all()


def test_other_input_shapes():
    assert build("mlp", input_shape=(1, 28, 28))(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    vgg = build("cifar_vgg_11", input_shape=(1, 64, 64), num_classes=7)
    assert vgg(torch.zeros(2, 1, 64, 64)).shape == (2, 7)
    r18 = build("tinyimagenet_resnet_18", input_shape=(1, 64, 64))
    assert r18(torch.zeros(2, 1, 64, 64)).shape == (2, 10)


# --- prunable weights --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_prunable_names_are_conv_and_linear_weights(name):
    model = build(name)
    modules = dict(model.named_modules())
    expected = [
        pname for pname, p in model.named_parameters()
        if pname.endswith(".weight") and p.dim() in (2, 4)
        and isinstance(modules[pname.rsplit(".", 1)[0]], (nn.Conv2d, nn.Linear))
    ]
    names = prunable_names(model)
    assert names == expected
    bn_params = {f"{m}.{p}" for m, mod in modules.items() if isinstance(mod, nn.BatchNorm2d)
                 for p in ("weight", "bias")}
    assert not bn_params & set(names)
    assert not any(n.endswith("bias") for n in names)
    # The output layer is prunable, and it is the last one.
    output = modules[names[-1].rsplit(".", 1)[0]]
    assert isinstance(output, nn.Linear) and output.out_features == CLASSES


# Counted by hand. CIFAR ResNet-(6n+2): stem + 3n blocks x 2 convs, 2 shortcuts, fc.
# VGG: one conv per number in the plan, one fc. ResNet-18: stem + 8 blocks x 2 + 3 downsample
# 1x1 convs (layers 2-4) + fc. ResNet-50: stem + 16 bottlenecks x 3 + 4 downsample 1x1 convs
# (layer1 too: 64 -> 256 channels) + fc.
COUNTS = {
    "cifar_resnet_20": (1 + 18 + 2 + 1, 2), "cifar_resnet_56": (1 + 54 + 2 + 1, 2),
    "cifar_resnet_110": (1 + 108 + 2 + 1, 2), "cifar_vgg_11": (8 + 1, 0),
    "cifar_vgg_16": (13 + 1, 0), "cifar_vgg_19": (16 + 1, 0), "mlp": (3, 0),
    "tinyimagenet_resnet_18": (1 + 16 + 3 + 1, 3), "imagenet_resnet_50": (1 + 48 + 4 + 1, 4),
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_prunable_counts(name):
    model = build(name)
    params = dict(model.named_parameters())
    names = prunable_names(model)
    total, shortcuts = COUNTS[name]
    assert len(names) == total
    # Shortcuts are the prunable 1x1 convs in these zoos (ResNet-50's bottlenecks also have
    # 1x1 convs, so count those named as shortcuts / downsample branches).
    assert sum(("shortcut" in n or "downsample" in n) and params[n].shape[2:] == (1, 1)
               for n in names) == shortcuts


# --- parameter counts --------------------------------------------------------------------------

def test_parameter_counts():
    resnet20 = n_params(build("cifar_resnet_20"))
    assert resnet20 == cifar_resnet_params(20, 16, CLASSES) == 272_474  # "0.27M"
    assert n_params(build("cifar_resnet_56")) == cifar_resnet_params(56, 16, CLASSES)
    assert n_params(build("cifar_vgg_16")) == vgg16_params(CLASSES) == 14_728_266  # "14.7M"
    assert n_params(build("mlp")) == 3072 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10


def test_torchvision_parameter_counts():  # torchvision's published counts at 1000 classes
    assert n_params(build("tinyimagenet_resnet_18", num_classes=1000)) == 11_689_512
    assert n_params(build("imagenet_resnet_50", num_classes=1000)) == 25_557_032


# --- initialization ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_initialization(name):
    model = build(name)
    for pname, p in model.named_parameters():
        if pname.endswith("bias"):
            assert torch.count_nonzero(p) == 0, pname
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # uniform [0, 1], not torchvision's constant 1
            assert 0 <= m.weight.min() and m.weight.max() <= 1
            assert m.weight.min() < m.weight.max()


@pytest.mark.parametrize("name, layer, fan_in", [
    ("cifar_vgg_16", "layers.16.conv.weight", 512 * 9),  # 2.4M entries
    ("mlp", "fc1.weight", 3 * 32 * 32),
])
def test_kaiming_normal_std(name, layer, fan_in):
    w = dict(build(name).named_parameters())[layer]
    # kaiming_normal_ defaults: fan_in mode, gain sqrt(2) -> std sqrt(2 / fan_in). With >= 0.9M
    # samples the sample std is within ~0.1% of it; 2% leaves a wide margin.
    assert w.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    assert abs(w.mean().item()) < 0.01 * math.sqrt(2 / fan_in)  # standard error ~0.001 std


def test_initialize_uses_only_the_generator():
    model = build("cifar_resnet_20")
    torch.manual_seed(1)
    initialize(model, torch.Generator().manual_seed(5))
    first = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(2)
    initialize(model, torch.Generator().manual_seed(5))
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())


# --- determinism -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_create_model_is_deterministic(name):
    torch.manual_seed(123)  # the global RNG must not matter...
    before = torch.get_rng_state()
    a = build(name, seed=7).state_dict()
    assert torch.equal(before, torch.get_rng_state())  # ...and must not be touched
    torch.manual_seed(456)
    b = build(name, seed=7).state_dict()
    c = build(name, seed=8).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# --- width -------------------------------------------------------------------------------------

def test_width():
    model = build("cifar_resnet_20", width=8)
    assert model.conv.out_channels == 8
    assert model.fc.in_features == 4 * 8
    assert n_params(model) == cifar_resnet_params(20, 8, CLASSES)


@pytest.mark.parametrize("name", [n for n in ALL if not MODELS.get(n).has_width])
def test_width_refused_without_width_option(name):
    with pytest.raises(ConfigError, match=name):
        build(name, width=8)


@pytest.mark.parametrize("width", [0, -4])
def test_width_must_be_positive(width):
    with pytest.raises(ConfigError, match="width"):
        build("cifar_resnet_20", width=width)


# --- layer_macs --------------------------------------------------------------------------------

def test_layer_macs_mlp():
    model = build("mlp", input_shape=(1, 28, 28))
    assert layer_macs(model, (1, 28, 28)) == {
        "fc1.weight": 784 * 300, "fc2.weight": 300 * 100, "fc3.weight": 100 * 10,
    }


def test_layer_macs_cifar_resnet_20_and_state_untouched():
    model = build("cifar_resnet_20").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    macs = layer_macs(model, (3, 32, 32))
    assert list(macs) == prunable_names(model)
    assert macs["conv.weight"] == 32 * 32 * 16 * 3 * 9
    assert macs["blocks.3.shortcut.0.weight"] == 16 * 16 * 32 * 16  # stride 2, 1x1, 16 -> 32
    assert macs["blocks.8.conv2.weight"] == 8 * 8 * 64 * 64 * 9
    assert macs["fc.weight"] == 64 * 10
    assert model.training  # mode, BN running stats and weights untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_layer_macs_grouped_conv():
    toy = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.Flatten(),
                        nn.Linear(8 * 5 * 5, 3))
    assert layer_macs(toy, (4, 5, 5)) == {"0.weight": 5 * 5 * 8 * 2 * 9, "2.weight": 200 * 3}


def test_layer_macs_resnet50_published_total():
    # torchvision lists ResNet-50 at 4.09 GFLOPS (multiply-accumulates, 224x224).
    model = build("imagenet_resnet_50", num_classes=1000, input_shape=(3, 224, 224))
    assert sum(layer_macs(model, (3, 224, 224)).values()) / 1e9 == pytest.approx(4.09, abs=0.01)
