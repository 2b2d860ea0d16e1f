"""Scores to masks: pure functions (STYLE.md #3). Nothing here mutates its arguments.

Conventions
-----------
* A higher score means "more worth keeping". A scorer whose method prunes the *largest* values
  (GraSP) returns the negated quantity, so every method is ranked the same way here.
* The kept count is exact: ``keep_count(n, density) = round(n * density)`` weights survive.
* Ties are broken deterministically by position: among equal scores, the weight with the lower
  flat index (parameters in model order, then row-major) is kept. The reference code prunes every
  score ``<= threshold``, so its kept count misses the target when scores tie (PROTOCOL.md).
* ``current`` masks: weights pruned in an earlier round are never brought back; only the
  surviving weights are ranked.
* ``lowest=True`` keeps the complement of what the method would keep at density ``1 - density``:
  the inversion sanity check, done on ranks (never as ``1/score``, which breaks for zero and
  negative scores).
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from pai_bench.errors import ConfigError, ScoreError
from pai_bench.masks import Masks


def keep_count(total: int, density: float) -> int:
    """How many of ``total`` weights survive at ``density`` (round half to even, as Python)."""
    return int(round(total * density))


def topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of a 1-D tensor; ties go to the lower index.

    O(n): one ``kthvalue`` for the threshold ``t``, then every score ``> t`` plus the first
    ``k - #(> t)`` scores equal to ``t``. (A full sort is 8x slower on 15M scores.)
    """
    n = scores.numel()
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=scores.device)
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=scores.device)
    t = torch.kthvalue(scores.cpu(), n - k + 1).values.to(scores.device)
    mask = scores > t
    missing = k - int(mask.sum())
    ties = torch.nonzero(scores == t).flatten()[:missing]
    mask[ties] = True
    return mask


def _select(flat: torch.Tensor, density: float, lowest: bool) -> torch.Tensor:
    k = keep_count(flat.numel(), density)
    if lowest:
        return ~topk_mask(flat, flat.numel() - k)
    return topk_mask(flat, k)


def check_scores(scores: Mapping[str, torch.Tensor], reference: Masks) -> None:
    """ScoreError unless ``scores`` covers exactly the masked parameters with finite values."""
    if set(scores) != set(reference):
        missing, extra = set(reference) - set(scores), set(scores) - set(reference)
        raise ScoreError(f"scores must cover exactly the prunable parameters; "
                         f"missing {sorted(missing)}, unexpected {sorted(extra)}")
    for name, s in scores.items():
        if tuple(s.shape) != tuple(reference[name].shape):
            raise ScoreError(f"score {name!r} has shape {tuple(s.shape)}, "
                             f"expected {tuple(reference[name].shape)}")
        if not bool(torch.isfinite(s).all()):
            bad = int((~torch.isfinite(s)).sum())
            raise ScoreError(f"score {name!r} has {bad} non-finite values (NaN or inf); "
                             f"no mask is made from them")


def global_masks(scores: Mapping[str, torch.Tensor], density: float, current: Masks,
                 lowest: bool = False) -> Masks:
    """One threshold over all surviving weights of all layers (the paper's default)."""
    check_scores(scores, current)
    names = list(current)
    alive = torch.cat([current[n].flatten() for n in names])
    flat = torch.cat([scores[n].detach().flatten().cpu().double() for n in names])
    keep = torch.zeros_like(alive)
    keep[alive] = _select(flat[alive], _alive_density(density, len(alive), alive), lowest)
    return _unflatten(keep, current)


def layerwise_masks(scores: Mapping[str, torch.Tensor], density: float, current: Masks,
                    lowest: bool = False) -> Masks:
    """The same fraction ``density`` of every layer survives (ranked within the layer)."""
    check_scores(scores, current)
    out = {}
    for name, alive in current.items():
        alive = alive.flatten()
        flat = scores[name].detach().flatten().cpu().double()
        keep = torch.zeros_like(alive)
        keep[alive] = _select(flat[alive], _alive_density(density, len(alive), alive), lowest)
        out[name] = keep.view(current[name].shape)
    return Masks(out)


def _alive_density(density: float, total: int, alive: torch.Tensor) -> float:
    """Density among the survivors that gives ``density`` of the whole (never above 1)."""
    n_alive = int(alive.sum())
    if n_alive == 0:
        return 0.0
    return min(1.0, keep_count(total, density) / n_alive)


def _unflatten(flat: torch.Tensor, like: Masks) -> Masks:
    out, i = {}, 0
    for name, m in like.items():
        out[name] = flat[i:i + m.numel()].view(m.shape)
        i += m.numel()
    return Masks(out)


SCOPES: dict[str, Callable[..., Masks]] = {"global": global_masks, "layerwise": layerwise_masks}


def threshold(scope: str, *args, **kwargs) -> Masks:
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; valid scopes: {', '.join(SCOPES)}")
    return SCOPES[scope](*args, **kwargs)


def exponential_schedule(density: float, rounds: int) -> list[float]:
    """Densities after each of ``rounds`` rounds: ``density ** (k / rounds)``, k = 1..rounds.

    SynFlow's schedule (Tanaka et al. 2020): each round removes the same fraction of survivors.
    """
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    return [density ** (k / rounds) for k in range(1, rounds + 1)]
