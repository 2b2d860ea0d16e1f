"""LeNet-300-100: the fully-connected network of the pruning literature (LeCun et al. 1998).

The paper does not use it; it is the suite's fast check that a method also handles a network
with no conv and no BatchNorm. It flattens any input shape, so it runs on CIFAR-10 here.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from pai_bench import recipes
from pai_bench.models.base import MODELS, ModelSpec

HIDDEN = (300, 100)


def build_mlp(num_classes: int, input_shape: tuple[int, int, int], width: None) -> nn.Sequential:
    # ``width`` is always None: create_model refuses a width for this model.
    # Named layers (fc1, fc2, fc3) so density reports read better than "1.weight", "3.weight".
    sizes = (math.prod(input_shape), *HIDDEN, num_classes)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
        layers[f"fc{i}"] = nn.Linear(fan_in, fan_out)
        if i < len(sizes) - 1:  # no ReLU on the logits
            layers[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(layers)


MODELS.register(ModelSpec(
    name="mlp",
    build=build_mlp,
    recipe=recipes.MLP,
    dataset="cifar10",
    description="LeNet-300-100 (Linear-ReLU-Linear-ReLU-Linear), for any input shape",
))
