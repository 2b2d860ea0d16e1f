"""The model registry and its entry type, apart from ``pai_bench.models.__init__`` so that the
family modules can register into it without a circular import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from pai_bench.recipes import Recipe
from pai_bench.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """A registered network: how to build it and how the paper trains it.

    ``build(num_classes, input_shape, width)`` returns a freshly built module; its initial weights
    do not matter, because :func:`create_model` re-initializes every parameter with
    :func:`initialize`. ``width`` is ``None`` for the default width, and is only ever something
    else when ``has_width`` is true (``create_model`` refuses it otherwise).
    """

    name: str
    build: Callable[..., nn.Module]
    recipe: Recipe  # the paper's training recipe for this model
    dataset: str  # default data set: "cifar10", "tinyimagenet" or "imagenet"
    description: str  # one line, printed by `python -m pai_bench list`
    has_width: bool = False


MODELS: Registry[ModelSpec] = Registry("model")
