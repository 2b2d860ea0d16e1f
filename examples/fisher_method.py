"""An example plugin method, written as the README's "Adding a method" tells a user to: empirical
Fisher saliency (Theis et al. 2018, "Faster gaze prediction with dense networks and Fisher
pruning"; the diagonal Fisher of Optimal Brain Damage with gradients in place of the Hessian).
It is not in the registry: ``--plugin examples.fisher_method`` (from the repository's root)
imports this module, and subclassing ``Scorer`` registers ``fisher``. Judge it with::

    python -m pai_bench judge --plugin examples.fisher_method --method fisher --workers 2

Score of weight w_i: the loss increase a second-order expansion predicts when w_i is set to 0,
``(1/2) F_ii w_i^2``, with F the empirical Fisher ``F_ii = (1/N) sum_n (d l_n / d w_i)^2``
(per-example gradients: the mean gradient would cancel across examples, and at initialization
it is small where the per-example ones are not). The factor 1/2 scales every score alike and
changes no ranking, so it is left out.

The network is scored in eval mode, so BatchNorm uses its running statistics (at initialization
mean 0, variance 1) and one example's gradient does not depend on the others in its batch:
the per-example gradients are then exactly those of each example alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pai_bench.methods import Scorer, ScoringContext
from pai_bench.methods.helpers import check_count, gradients


@dataclass
class FisherSaliency(Scorer):
    """w^2 times the mean over examples of the squared per-example loss gradient."""

    name = "fisher"
    samples_per_class: int = 4  # an option: --method-arg samples_per_class=8

    def __post_init__(self):
        check_count(self.name, samples_per_class=self.samples_per_class)

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        x, y = ctx.examples(self.samples_per_class)  # class-balanced, no augmentation
        ctx.model.eval()
        names = list(ctx.masks)
        fisher = {n: torch.zeros_like(p) for n, p in ctx.model.named_parameters() if n in names}
        for i in range(len(x)):  # one example at a time: the per-example gradient
            for n, g in gradients(ctx.model, x[i:i + 1], y[i:i + 1], names).items():
                fisher[n].add_(g.square())
        params = dict(ctx.model.named_parameters())
        return {n: fisher[n].div_(len(x)).mul_(params[n].detach().square()) for n in names}
