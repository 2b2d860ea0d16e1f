"""Sanity checks: ablations of a method's masks (Frankle et al. 2021, section 5).

Each check is a registered ``Check`` that every method and baseline takes with ``--check NAME``:

* ``shuffle``: permute each layer's mask uniformly at random (seeded). Each layer keeps exactly
  its count of kept weights; the weights are the run's own initial (or rewound) weights. If the
  method's per-weight choices carried information, accuracy drops.
* ``reinit``: keep the mask, sample every weight afresh from the model's initializer with a seed
  stream distinct from the run's ("reinit"). Applied to ``lottery_ticket`` it is Frankle &
  Carbin's random-reinitialization control.
* ``invert``: keep the weights the method ranks *lowest* instead of highest, at the same overall
  sparsity and scope. Done on ranks (``pruning.py``, ``lowest=True``: the exact complement of the
  method's own mask at the complementary density), never as ``1/score``, which is NaN for zero
  scores and does not reverse a signed ranking. For GraSP the inversion is relative to GraSP's own
  convention: GraSP keeps the weights with the smallest ``S = -w * Hg``; inverted, it keeps the
  largest.
* ``none``: the unmodified method.

A check transforms (masks, starting weights); it never trains and never touches scores, except
``invert``, which the mask computation honours through ``Check.invert``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from pai_bench.masks import Masks
from pai_bench.registry import Registry

State = dict[str, torch.Tensor]


def keep(masks: Masks, generator: torch.Generator) -> Masks:
    return masks


def same_weights(state: State, fresh: Callable[[], State]) -> State:
    return state


@dataclass(frozen=True)
class Check:
    """A registered ablation. ``masks``: how it changes the final masks (seeded by the run's
    "shuffle" stream); ``weights``: how it changes the starting weights (``fresh()`` samples new
    ones from the model's initializer); ``invert``: rank the method's scores the other way."""

    name: str
    description: str
    invert: bool = False
    masks: Callable[[Masks, torch.Generator], Masks] = keep
    weights: Callable[[State, Callable[[], State]], State] = same_weights


CHECKS: Registry[Check] = Registry("check")


def shuffle_masks(masks: Masks, generator: torch.Generator) -> Masks:
    """Each layer's mask permuted uniformly at random; per-layer kept counts unchanged."""
    out = {}
    for name, m in masks.items():
        flat = m.flatten()
        out[name] = flat[torch.randperm(flat.numel(), generator=generator)].view(m.shape)
    return Masks(out)


def resample(state: State, fresh: Callable[[], State]) -> State:
    return fresh()


for _c in (Check("none", "The method's masks and weights, unmodified"),
           Check("shuffle", "Permute each layer's mask at random (per-layer counts kept)",
                 masks=shuffle_masks),
           Check("reinit", "Keep the mask, re-sample the weights from the initializer",
                 weights=resample),
           Check("invert", "Keep the lowest-ranked weights instead of the highest", invert=True)):
    CHECKS.register(_c)
