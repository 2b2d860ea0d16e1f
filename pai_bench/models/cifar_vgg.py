"""open_lth's CIFAR VGG (``models/cifar_vgg.py``): VGG-11/13/16/19 with BatchNorm.

Each number in a plan is a 3x3 conv (padding 1, with bias as in open_lth) + BatchNorm + ReLU;
``"M"`` is a 2x2 max pool. Then global average pooling and a single linear layer 512 -> classes.
Module names (``layers.<i>.conv``, ``fc``) follow open_lth so masks and checkpoints line up.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from pai_bench import recipes
from pai_bench.models.base import MODELS, ModelSpec

PLANS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class ConvModule(nn.Sequential):
    """conv3x3 -> BN -> ReLU; a Sequential so the names are ``conv``, ``bn``, ``relu``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()


class CifarVGG(nn.Module):
    def __init__(self, plan: list[int | str], num_classes: int, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for entry in plan:
            if entry == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(ConvModule(channels, entry))
                channels = entry
        self.layers = nn.Sequential(*layers)
        # open_lth uses AvgPool2d(2) on the 2x2 map left from a 32x32 input; averaging to 1x1
        # is the same there and also works for other input sizes.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, classes)
        return self.fc(self.pool(self.layers(x)).flatten(1))


def _build(depth: int, num_classes: int, input_shape: tuple[int, int, int], width: None):
    # ``width`` is always None: create_model refuses a width for models without has_width.
    return CifarVGG(PLANS[depth], num_classes, in_channels=input_shape[0])


for _depth in PLANS:
    MODELS.register(ModelSpec(
        name=f"cifar_vgg_{_depth}",
        build=partial(_build, _depth),
        recipe=recipes.CIFAR,
        dataset="cifar10",
        description=f"VGG-{_depth} with BatchNorm for CIFAR (open_lth), one linear output layer",
    ))
