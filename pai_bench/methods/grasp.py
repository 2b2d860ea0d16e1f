"""GraSP (Wang, Zhang & Grosse, ICLR 2020) and |GraSP|: scores from the Hessian-gradient product.

Sign conventions (pai_bench keeps the *highest* scores, ``pai_bench.pruning``):

* ``grasp`` returns ``-S = w ⊙ Hg``. GraSP removes the weights with the largest
  ``S = -w ⊙ Hg``, so it keeps the weights with the smallest S, i.e. the largest -S.
* ``grasp_abs`` returns ``|S| = |w ⊙ Hg|``: it keeps the largest |S| and prunes the smallest
  (docs/protocol.md: the paper's |GraSP| variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from pai_bench.methods.base import Scorer, ScoringContext
from pai_bench.methods.helpers import (check_count, check_positive, cross_entropy, gradients,
                                      mean_over_chunks, weights)
from pai_bench.methods.snip import BATCH_SIZE, SAMPLES_PER_CLASS

TEMPERATURE = 200.0  # logits / T before the cross-entropy (the default of Wang et al.'s code)


def hessian_gradient_product(model: nn.Module, x: Tensor, y: Tensor, names: Sequence[str],
                             g: dict[str, Tensor], *, temperature: float = 1.0,
                             batch_size: int | None = None) -> dict[str, Tensor]:
    """``H g`` for the weights ``names``, H the Hessian of L (as in ``helpers.gradients``).

    Double backprop, no Hessian ever formed: with g held constant,
    ``d/dw (g · dL/dw) = (d²L/dw²) g = H g``. So one backward pass with ``create_graph=True``
    gives dL/dw as a differentiable function of w, and a second backward pass of the scalar
    ``z = Σ_layers Σ g ⊙ dL/dw`` gives Hg. Chunks are averaged with weights n_c / N like the
    gradient, so the result is the Hg of the mean loss (exactly so without train-mode BN).
    """
    params = weights(model, names)
    vector = [g[n].detach() for n in names]

    def hg(xc: Tensor, yc: Tensor) -> Sequence[Tensor]:
        grads = torch.autograd.grad(cross_entropy(model, xc, yc, temperature), params,
                                    create_graph=True, allow_unused=True, materialize_grads=True)
        z = sum((v * dl).sum() for v, dl in zip(vector, grads))
        return torch.autograd.grad(z, params, allow_unused=True, materialize_grads=True)
    return dict(zip(names, mean_over_chunks(x, y, batch_size, hg)))


@dataclass
class GraSP(Scorer):
    """Gradient Signal Preservation: score ``-S = w ⊙ Hg`` (keep the largest; module docstring).

    Derivation: removing a set of weights is the step δ = -w on them (0 elsewhere). To first order
    the squared gradient norm then changes by ``Δ(gᵀg) ≈ 2 δᵀ H g``, so ``S = -w ⊙ Hg`` is each
    weight's (halved) contribution. Wang et al. remove the weights with the largest S, whose
    removal reduces gradient flow least (or raises it most), and keep the rest. g and H are of
    the cross-entropy of ``logits / temperature``, on ``samples_per_class`` examples per class.

    What is computed, following Wang et al.'s code (``pruner/GraSP.py``): first g on the sample,
    without a graph; then Hg by double backprop on the same sample, with the network in train
    mode (their ``.eval()`` is commented out). Differences:

    * their code always splits the sample in two halves and *sums*; we take means over chunks of
      ``batch_size`` examples (the default 100-example sample is one batch). A sum is a positive
      multiple of the mean, so only BatchNorm's per-batch statistics can change the ranking;
    * their code re-initializes the linear layers (Xavier) before scoring; we score the network
      that will be trained, as Frankle et al.'s and Tanaka et al.'s code do;
    * g is multiplied by the current masks: a pruned weight is not a parameter of the masked
      network, so its gradient component must not enter Hg (this matters only from round 2 of an
      iterative schedule; in one shot the masks are all ones).
    """

    name = "grasp"
    color, marker = "tab:green", "^"
    samples_per_class: int = SAMPLES_PER_CLASS
    temperature: float = TEMPERATURE
    batch_size: int = BATCH_SIZE

    def __post_init__(self):
        check_count(self.name, samples_per_class=self.samples_per_class,
                    batch_size=self.batch_size)
        check_positive(self.name, temperature=self.temperature)  # inf: every score equal

    def score(self, ctx: ScoringContext) -> dict[str, Tensor]:
        return self.w_hg(ctx)  # -S: the largest -S is the smallest S, which GraSP keeps

    def w_hg(self, ctx: ScoringContext) -> dict[str, Tensor]:
        """``w ⊙ Hg`` (= -S) for every prunable weight, on the sample of ``ctx``."""
        x, y = ctx.examples(self.samples_per_class)
        names = list(ctx.masks)
        ctx.model.train()
        options = dict(temperature=self.temperature, batch_size=self.batch_size)
        g = gradients(ctx.model, x, y, names, **options)
        for n in names:  # restrict g to the surviving weights (see the class docstring)
            g[n].mul_(ctx.masks[n].to(g[n].device))
        hg = hessian_gradient_product(ctx.model, x, y, names, g, **options)
        params = dict(ctx.model.named_parameters())
        return {n: hg[n].mul_(params[n].detach()) for n in names}


@dataclass
class GraSPAbs(GraSP):
    """|GraSP|: score ``|S| = |w ⊙ Hg|``; keeps the largest |S|, prunes the smallest.

    Frankle et al. (2021) found that inverting GraSP's ranking does not hurt it (docs/protocol.md, score
    inversion), read this as its sign being uninformative, and evaluate this magnitude variant,
    which does better.
    """

    name = "grasp_abs"
    color, marker = "tab:olive", "v"

    def score(self, ctx: ScoringContext) -> dict[str, Tensor]:
        return {n: s.abs_() for n, s in self.w_hg(ctx).items()}
