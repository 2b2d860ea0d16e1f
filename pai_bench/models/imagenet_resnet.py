"""torchvision's ImageNet ResNets: ResNet-18 for TinyImageNet and ResNet-50 for ImageNet.

The architecture is torchvision's unchanged, ImageNet stem (7x7 stride-2 conv + 3x3 max pool)
included: docs/protocol.md keeps that stem for TinyImageNet's 64x64 images too. torchvision's own
initialization is replaced by ``initialize`` (open_lth's), which create_model applies.
"""

from __future__ import annotations

import importlib
from typing import Callable

from torch import nn

from pai_bench import recipes
from pai_bench.models.base import MODELS, ModelSpec


def _builder(factory: str) -> Callable[..., nn.Module]:
    """The builder of torchvision's ``factory``; torchvision's model zoo (about 1 s of imports,
    torch._dynamo among them) is loaded when such a model is built, not by every command."""
    def build(num_classes: int, input_shape: tuple[int, int, int], width: None) -> nn.Module:
        # ``width`` is always None: create_model refuses a width for these models.
        model = getattr(importlib.import_module("torchvision.models"), factory)(
            weights=None, num_classes=num_classes)
        if input_shape[0] != 3:  # torchvision hard-codes RGB; keep the stem, change its input
            old = model.conv1
            model.conv1 = nn.Conv2d(input_shape[0], old.out_channels, old.kernel_size,
                                    old.stride, old.padding, bias=False)
        return model
    return build


MODELS.register(ModelSpec(
    name="tinyimagenet_resnet_18",
    build=_builder("resnet18"),
    recipe=recipes.TINYIMAGENET,
    dataset="tinyimagenet",
    description="torchvision ResNet-18 with the ImageNet stem (7x7/2 conv + max pool)",
))

MODELS.register(ModelSpec(
    name="imagenet_resnet_50",
    build=_builder("resnet50"),
    recipe=recipes.IMAGENET,
    dataset="imagenet",
    description="torchvision ResNet-50 (bottleneck blocks, 1x1-conv downsampling shortcuts)",
))
