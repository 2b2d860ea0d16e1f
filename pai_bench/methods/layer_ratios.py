"""Random pruning with chosen per-layer densities: the layer-ratio baselines of the follow-up
literature (Su et al. 2020, "Sanity-checking pruning methods"; Liu et al. 2022, "The
unreasonable effectiveness of random pruning").

If the layerwise shuffle check leaves a method's accuracy unchanged (the paper's finding), all
that method contributes is its per-layer densities; these two fix the densities by a formula
and the positions at random, so they are what a method has to beat. (A method's own densities
with random positions is ``--check shuffle`` on that method.)
"""

from __future__ import annotations

from dataclasses import dataclass

from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.methods.simple import Random
from pai_bench.masks import Masks
from pai_bench.pruning import erk_densities


class OwnLayerDensities(Random):
    """Random positions at densities the method fixes per layer (``layer_densities``): no
    threshold decides them, so ``--scope`` would change nothing but the run's name (its hash),
    storing the same masks twice. A non-default scope is refused."""

    def validate(self, config: RunConfig) -> None:
        super().validate(config)
        if config.scope != "global":
            raise ConfigError(f"{config.method} sets every layer's density itself, so --scope "
                              f"{config.scope} would change nothing but the run's name; leave "
                              f"--scope out (valid for {config.method}: --scope global, the "
                              f"default)")


@dataclass
class RandomERK(OwnLayerDensities):
    """Random positions, Erdos-Renyi-Kernel layer densities (Evci et al. 2020)."""

    name = "random_erk"
    color, marker = "tab:pink", "h"

    def layer_densities(self, masks: Masks, density: float) -> dict[str, float]:
        return erk_densities({n: tuple(m.shape) for n, m in masks.items()}, density)


@dataclass
class RandomUniform(OwnLayerDensities):
    """Random positions, the same density in every layer."""

    name = "random_uniform"
    color, marker = "tab:brown", "8"

    def layer_densities(self, masks: Masks, density: float) -> dict[str, float]:
        return {n: density for n in masks}
