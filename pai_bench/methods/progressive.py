"""Iterative SNIP and FORCE (de Jorge, Sanyal, Behl, Torr, Rogez & Dokania, "Progressive
Skeletonization: Trimming more fat from a network at initialization", ICLR 2021).

Both re-score with SNIP's saliency ``|w ⊙ dL/dw|`` at the network pruned so far, over many rounds
on an exponential schedule; they differ in which weights a round may keep. The schedule, the
ranking and the revival of weights are ``pai_bench.scoring.compute_masks``'s; these scorers only
score. Hyper-parameters, from the authors' code (github.com/naver/force):

* rounds T = 60 (``ROUNDS``): the README's CIFAR and ImageNet commands (``--num_steps 60 --mode
  exp``); the argparse default is 10. The paper's own text could not be consulted here, so the
  value it reports is unverified.
* schedule: exponential, density d^(k/T) after step k (``mode='exp'``, which the code says to
  use "unless you know what you are doing"), the same as ``compute_masks``'s.
* examples: a fresh batch every round (``get_average_gradients`` calls
  ``next(iter(train_loader))`` on a shuffled loader each time), one batch of 128 on CIFAR-10
  (``--num_batches 1``; the README asks for 10 on CIFAR-100, 20 on Tiny ImageNet: about 13
  examples per class in all three; 128 is the batch size of the code's CIFAR ResNet setup, the
  VGG setup's was not checked).
  Choice: we draw ``samples_per_class`` = 10 class-balanced examples per class each round, SNIP's
  default, so that the methods compare on equal data (and a 128-example subset suffices).
* gradients of the plain mean cross-entropy, network in train mode (batch statistics), as SNIP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pai_bench.methods.base import ScoringContext
from pai_bench.methods.snip import SNIP

ROUNDS = 60  # pruning steps T of the authors' README commands (exponential schedule)


@dataclass
class IterativeSNIP(SNIP):
    """Iterative SNIP: |w ⊙ dL/dw| of the pruned network, re-scored over 60 rounds; no revival.

    Round k scores the network pruned by rounds 1..k-1 (pruned weights are zero) with SNIP's
    saliency ``|w ⊙ dL/dw|`` on a fresh sample, and ``compute_masks`` keeps the best
    d^(k/T) of all weights among the survivors: a pruned weight never comes back
    (``revives = False``). A weight unimportant in the dense network may thus become important
    once its neighbours are gone. With ``rounds=1`` it is SNIP. Options and defaults as SNIP's
    (``samples_per_class`` = 10, ``batch_size`` = 256); see the module docstring for the paper's.
    """

    name = "iterative_snip"
    color, marker = "teal", "<"
    default_rounds = ROUNDS


@dataclass
class FORCE(IterativeSNIP):
    """FORCE: |w0 ⊙ dL/dw| at w = w0 ⊙ c for every weight; pruned weights may come back.

    Foresight connection sensitivity: with c the current mask and w0 the weights before pruning
    (``ctx.original``), the loss is evaluated at the pruned network ``w0 ⊙ c`` and every weight,
    kept or pruned, is scored by ``|w0 ⊙ g|``, g = dL/dw at w = w0 ⊙ c. This is |dL/dc|, the
    first-order change of the loss when the gate of a weight moves; for a pruned weight it
    estimates what bringing it back (c: 0 -> 1) would do. Each round ranks all the weights of
    the starting masks (``revives = True``), so a pruned weight whose gradient has grown is kept
    again (the authors' code, ``prune_method=3``, also rebuilds the masked network from the
    dense one every step). In round 1, c = 1 and the score is SNIP's. Same options and
    schedule as iterative SNIP.
    """

    name = "force"
    color, marker = "crimson", ">"
    revives = True

    def gated_weights(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        # SNIP's sample and gradient at the pruned network, multiplied by w0 rather than by the
        # current weights, which are zero where pruned. Called outside compute_masks (no
        # ``original``): nothing is pruned yet, so w0 = w.
        return ctx.original if ctx.original is not None else super().gated_weights(ctx)
