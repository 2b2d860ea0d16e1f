"""open_lth's CIFAR ResNet-D (``models/cifar_resnet.py``), D = 6n + 2.

A 3x3 stem conv, then three stages of n basic blocks with w, 2w, 4w channels (w = 16 by default),
stride 2 in the first block of stages 2 and 3, global average pooling, one linear layer. Where a
block changes shape its shortcut is a 1x1 conv + BN (prunable), otherwise the identity. Module
names (``conv``, ``bn``, ``blocks.<i>.conv1``, ``blocks.<i>.shortcut.0``, ``fc``) follow open_lth.
"""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from pai_bench import recipes
from pai_bench.models.base import MODELS, ModelSpec

DEPTHS = (20, 32, 44, 56, 110)
DEFAULT_WIDTH = 16  # channels of the first stage, as in He et al. (2016) and open_lth


class Block(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU after the add."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Sequential()  # identity, and no parameters to prune

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int, width: int = DEFAULT_WIDTH,
                 in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n + 2, got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, width, 3, 1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, channels = [], width
        for stage, stage_width in enumerate((width, 2 * width, 4 * width)):
            for index in range(n):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(Block(channels, stage_width, stride))
                channels = stage_width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, classes)
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _build(depth: int, num_classes: int, input_shape: tuple[int, int, int], width: int | None):
    return CifarResNet(depth, num_classes, width or DEFAULT_WIDTH, in_channels=input_shape[0])


for _depth in DEPTHS:
    MODELS.register(ModelSpec(
        name=f"cifar_resnet_{_depth}",
        build=partial(_build, _depth),
        recipe=recipes.CIFAR,
        dataset="cifar10",
        description=f"ResNet-{_depth} for CIFAR (open_lth), width 16, 1x1-conv shortcuts",
        has_width=True,
    ))
