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

    ``build(num_classes, input_shape, width)`` returns a freshly built module. With
    ``init="paper"`` its initial weights do not matter, because :func:`create_model`
    re-initializes every parameter with :func:`initialize` (Kaiming normal, BatchNorm weight
    U[0, 1], biases zero); with ``init="keep"`` the module's own initialization is kept (drawn
    from the run's seed: ``build`` runs under a seeded global RNG). ``width`` is ``None`` for the
    default width, and is only ever something else when ``has_width`` is true.
    """

    name: str
    build: Callable[..., nn.Module]
    recipe: Recipe  # the paper's training recipe for this model
    dataset: str  # default data set: "cifar10", "tinyimagenet" or "imagenet"
    description: str  # one line, printed by `python -m pai_bench list`
    has_width: bool = False
    init: str = "paper"  # "paper": re-initialized as the paper's code does; "keep": build's own

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; valid inits: {', '.join(INITS)}")


INITS = ("paper", "keep")
MODELS: Registry[ModelSpec] = Registry("model")
