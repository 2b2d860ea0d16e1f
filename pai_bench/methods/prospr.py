"""ProsPr (Alizadeh, Tailor, Zintgraf, van Amersfoort, Farquhar, Lane & Gal, "Prospect Pruning:
Finding Trainable Weights at Initialization using Meta-Gradients", ICLR 2022).

Hyper-parameters, from the authors' code (github.com/mil-ad/prospr, ``cli.py`` and
``prospr/prospr.py``); the paper's own text could not be consulted here, so whether its
experiments used other values is unverified:

* M = 3 inner steps (``--inner-steps``), inner learning rate α = 0.1 (``--inner-lr``), plain SGD
  (``--inner-momentum 0``, no weight decay), every parameter updated (biases and BatchNorm too);
* the full meta-gradient through the M steps (``--meta-grads-mode full``, not first-order);
* one batch of 128 random training examples (``--meta-batch-size``). Choice: ``samples_per_class``
  = 10 class-balanced examples per class, SNIP's default, so that M = 0 is SNIP exactly;
* one-shot: the code prunes once, to the final density (``default_rounds = 1``);
* fresh data: ``prune(new_data_in_inner=True)`` (the function's default) draws a new batch after
  every inner step, so the meta-loss is on a batch no step trained on; ``cli.py``'s default is
  False (one batch for every step and for the meta-loss). Left open by the code; we default to
  fresh batches, and ``same_batch=true`` gives the CLI's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call

from pai_bench.methods.base import Scorer, ScoringContext
from pai_bench.methods.helpers import check_count, check_positive
from pai_bench.methods.snip import SAMPLES_PER_CLASS

STEPS = 3  # inner SGD steps M (cli.py --inner-steps)
LR = 0.1  # inner learning rate α (cli.py --inner-lr)


@dataclass
class ProsPr(Scorer):
    """Prospect pruning: |dL(w_M)/dc| after M = 3 SGD steps from w0 ⊙ c, through the steps.

    The gates c = 1 multiply the prunable weights, w0 = w ⊙ c. M SGD steps on the masked
    network, ``w_{k+1} = w_k - α ∇L(w_k; batch_k)``, keep their graph (``create_graph``), and
    the score of each weight is |dL(w_M; batch_M)/dc|, the meta-gradient: how much keeping the
    weight helps the loss *after* a little training, not at initialization. By the chain rule
    ``dL/dc = w ⊙ dL/dw0``, so the derivative is taken with respect to w0 and multiplied by w;
    with M = 0 that is SNIP's |w ⊙ dL/dw| on the same first sample of the generator.

    Network in train mode (BatchNorm uses batch statistics), as SNIP. Each batch is one forward
    pass (an inner step is one SGD step on it: no chunking, hence no ``batch_size`` option).
    In a later round of an iterative run (not the paper's), pruned weights stay zero during the
    inner steps: their updates are multiplied by the current masks (ones in one-shot runs).
    """

    name = "prospr"
    color, marker = "darkgoldenrod", "H"
    samples_per_class: int = SAMPLES_PER_CLASS
    steps: int = STEPS
    lr: float = LR
    same_batch: bool = False

    def __post_init__(self):
        check_count(self.name, samples_per_class=self.samples_per_class)
        check_count(self.name, minimum=0, steps=self.steps)  # 0 steps is SNIP
        check_positive(self.name, lr=self.lr)

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        model, names = ctx.model.train(), list(ctx.masks)
        # w0: detached leaves, so the meta-gradient is taken with respect to them only
        w0 = {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}
        # on the weights' device and dtype: the masks multiply the inner steps' gradients
        masks = {n: ctx.masks[n].to(w0[n].device, w0[n].dtype) for n in names}

        def loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
            return F.cross_entropy(functional_call(model, params, (x,)), y)

        x, y = ctx.examples(self.samples_per_class)  # M = 0: SNIP's sample
        fast = w0
        for _ in range(self.steps):
            grads = torch.autograd.grad(loss(fast, x, y), list(fast.values()), create_graph=True,
                                        allow_unused=True, materialize_grads=True)
            fast = {n: p - self.lr * (g * masks[n] if n in masks else g)
                    for (n, p), g in zip(fast.items(), grads)}
            if not self.same_batch:
                x, y = ctx.examples(self.samples_per_class)
        meta = torch.autograd.grad(loss(fast, x, y), [w0[n] for n in names],
                                   allow_unused=True, materialize_grads=True)
        return {n: g.mul_(w0[n].detach()).abs_() for n, g in zip(names, meta)}
