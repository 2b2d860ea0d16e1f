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

from pai_bench.methods.simple import Random
from pai_bench.masks import Masks
from pai_bench.pruning import erk_densities


@dataclass
class RandomERK(Random):
    """Random positions, Erdos-Renyi-Kernel layer densities (Evci et al. 2020)."""

    name = "random_erk"
    color, marker = "tab:pink", "h"

    def layer_densities(self, masks: Masks, density: float) -> dict[str, float]:
        return erk_densities({n: tuple(m.shape) for n, m in masks.items()}, density)


@dataclass
class RandomUniform(Random):
    """Random positions, the same density in every layer."""

    name = "random_uniform"
    color, marker = "tab:brown", "8"

    def layer_densities(self, masks: Masks, density: float) -> dict[str, float]:
        return {n: density for n in masks}
