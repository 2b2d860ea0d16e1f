"""Drive a scorer: one round or an iterative schedule, from a model to ``Masks``.

The caller's model is never modified: scoring happens on a private copy whose weights are
restored from the original (and the current masks applied) before every round, so a scorer may
change parameters, modes and gradients freely, and a stale ``.grad`` left by earlier training can
never leak into a score (the reference code leaks it into GraSP and SynFlow, PROTOCOL.md).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from methods.base import Scorer, ScoringContext
from pai_bench.masks import Masks, apply_
from pai_bench.models import prunable_names
from pai_bench.pruning import exponential_schedule, threshold


def compute_masks(scorer: Scorer, model: nn.Module, *, density: float, generator: torch.Generator,
                  num_classes: int, input_shape: tuple[int, int, int], data=None,
                  rounds: int = 1, scope: str = "global", current: Masks | None = None,
                  lowest: bool = False, device: torch.device | str = "cpu") -> Masks:
    """Prune ``model`` to ``density`` with ``scorer`` in ``rounds`` rounds (exponential schedule).

    After round k the density is ``density ** (k / rounds)``; masks are applied between rounds and
    weights pruned in one round are never brought back. ``lowest`` keeps the weights the method
    ranks lowest (the inversion check).
    """
    work = copy.deepcopy(model).to(device)
    original = {k: v.detach().clone() for k, v in work.state_dict().items()}
    masks = current if current is not None else Masks.ones_like(work, prunable_names(work))
    for d in exponential_schedule(density, rounds):
        with torch.no_grad():
            work.load_state_dict(original)
        apply_(work, masks)
        work.zero_grad(set_to_none=True)
        work.train()
        ctx = ScoringContext(model=work, masks=masks, data=data, num_classes=num_classes,
                             input_shape=input_shape, generator=generator,
                             device=torch.device(device))
        scores = scorer.score(ctx)
        masks = threshold(scope, scores, d, masks, lowest=lowest)
    return masks
