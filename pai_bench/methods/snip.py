"""SNIP (Lee, Ajanthan & Torr, ICLR 2019): connection sensitivity |w ⊙ dL/dw|."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pai_bench.methods.base import Scorer, ScoringContext
from pai_bench.methods.helpers import check_count, gradients

SAMPLES_PER_CLASS = 10  # "snip10" in Frankle et al.'s code: 10 training examples of every class
BATCH_SIZE = 256  # examples per forward pass; larger samples are cut into chunks (memory)


@dataclass
class SNIP(Scorer):
    """Score = |w ⊙ dL/dw|, L the mean cross-entropy on ``samples_per_class`` examples per class.

    Derivation: SNIP gates every weight, w -> c ⊙ w with c = 1, and keeps the gates to which the
    loss is most sensitive. The layer sees ``c ⊙ w``, so by the chain rule
    ``dL/dc = w ⊙ dL/d(c ⊙ w)``, which at c = 1 is ``w ⊙ dL/dw``; the score is its magnitude.
    (Lee et al. also divide by the sum of scores; a positive scale does not change the ranking.)

    As in the paper's code: examples without augmentation, the network in train mode (BatchNorm
    uses the batch statistics), the current masks applied (pruned weights are zero and score 0).
    With more than ``batch_size`` examples, gradients are averaged over chunks, which is not
    exactly one batch in train mode (each chunk has its own BatchNorm statistics; see
    ``methods.helpers.gradients``).
    """

    name = "snip"
    color, marker = "tab:blue", "D"
    samples_per_class: int = SAMPLES_PER_CLASS
    batch_size: int = BATCH_SIZE

    def __post_init__(self):
        check_count(self.name, samples_per_class=self.samples_per_class,
                    batch_size=self.batch_size)

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        x, y = ctx.examples(self.samples_per_class)
        ctx.model.train()
        grads = gradients(ctx.model, x, y, list(ctx.masks), batch_size=self.batch_size)
        w = self.gated_weights(ctx)
        # in place on the fresh gradient tensors: no second copy of every weight
        return {n: g.mul_(w[n]).abs_() for n, g in grads.items()}

    def gated_weights(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        """The w of |w ⊙ dL/dw|: the current (pruned) weights; FORCE uses the original ones."""
        params = dict(ctx.model.named_parameters())
        return {n: params[n].detach() for n in ctx.masks}
