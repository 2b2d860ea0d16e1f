"""The two baselines at initialization that need no data: random and magnitude."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pai_bench.methods.base import Scorer, ScoringContext


@dataclass
class Random(Scorer):
    """Uniform random scores; with a global threshold every layer keeps about the same density."""

    name = "random"
    needs_data = False
    # shuffled, reinitialized (a fresh draw of the same init) or inverted (1 - a uniform score
    # is uniform): random pruning again
    unchanged_by = ("shuffle", "reinit", "invert")
    color, marker = "tab:gray", "o"

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        return {n: torch.rand(m.shape, generator=ctx.generator, dtype=torch.float64)
                for n, m in ctx.masks.items()}


@dataclass
class Magnitude(Scorer):
    """|w| at initialization (Frankle et al. 2021: "magnitude at init").

    On the vision transformer every prunable weight is drawn with the same std (0.02), so a
    global threshold keeps about the same density in every layer, as random pruning does, and
    within a layer the largest |w|; on the conv nets (Kaiming, std sqrt(2 / fan_in)) the
    layers with small fan-in keep more.
    """

    name = "magnitude"
    needs_data = False
    color, marker = "tab:red", "s"

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        params = dict(ctx.model.named_parameters())
        return {n: params[n].detach().abs() for n in ctx.masks}
