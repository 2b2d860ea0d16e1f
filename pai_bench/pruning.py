"""Scores to masks: pure functions (docs/architecture.md). Nothing here mutates its arguments.

Conventions
-----------
* A higher score means "more worth keeping". A scorer whose method prunes the *largest* values
  (GraSP) returns the negated quantity, so every method is ranked the same way here.
* The kept count is exact: ``keep_count(n, density) = round(n * density)`` weights survive.
* Ties are broken deterministically by position: among equal scores, the weight with the lower
  flat index (parameters in model order, then row-major) is kept. The reference code prunes every
  score ``<= threshold``, so its kept count misses the target when scores tie (docs/protocol.md).
* ``current`` masks: weights pruned in an earlier round are never brought back; only the
  surviving weights are ranked.
* ``lowest=True`` keeps the complement of what the method would keep at density ``1 - density``:
  the inversion sanity check, done on ranks (never as ``1/score``, which breaks for zero and
  negative scores).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Mapping

import torch

from pai_bench.errors import ConfigError, ScoreError
from pai_bench.masks import Masks

SAMPLE = 1 << 15  # scores sampled to place the pivot of ``top_among_alive`` (speed only)


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


def top_among_alive(flat: list[torch.Tensor], alive: list[torch.Tensor], j: int,
                    n_alive: int | None = None) -> list[torch.Tensor]:
    """Masks of the ``j`` highest scores among the alive entries of flat per-layer tensors.

    The result is exactly ``topk_mask`` of the alive scores concatenated in layer order (ties to
    the lower index), but only a small candidate set is ranked. Iterative pruning keeps most
    survivors each round, so it is cheaper to find the ``m - j`` to drop (m alive) when
    ``j >= m - j``, and the ``j`` to keep otherwise. For the drop side, take a pivot p with at
    least ``m - j`` alive scores <= p: every alive score > p is then strictly above the
    ``(m - j)``-th lowest and is kept, so the choice is among the candidates ``alive & s <= p``
    alone, in index order, which keeps the tie rule. The keep side mirrors it with ``s >= p``.
    The pivot is a quantile of a seeded random sample of the scores, a little beyond the target
    so the candidates almost surely suffice; if they do not, every alive entry is a candidate.
    The sample changes only the speed, never the result. O(n) elementwise work per call and no
    tensor as large as all the scores together (a 15M-score concatenation costs more than this).
    ``n_alive``: the number of alive entries, if the caller has counted them already.
    """
    m = n_alive if n_alive is not None else sum(int(a.count_nonzero()) for a in alive)
    if j >= m or j <= 0:
        return [a.clone() if j > 0 else torch.zeros_like(a) for a in alive]
    drop_side = j >= m - j
    need = m - j if drop_side else j
    pivot = _pivot(flat, alive, need / m, low=drop_side)
    idx, vals = _candidates(flat, alive, pivot, low=drop_side)
    if len(vals) < need:  # an unlucky sample: rank every survivor
        idx, vals = _candidates(flat, alive, None, low=drop_side)
    if drop_side:
        chosen, out = ~topk_mask(vals, len(vals) - need), [a.clone() for a in alive]
    else:
        chosen, out = topk_mask(vals, need), [torch.zeros_like(a) for a in alive]
    for o, i, c in zip(out, idx, torch.split(chosen, [len(i) for i in idx])):
        o[i[c]] = not drop_side
    return out


def _pivot(flat: list[torch.Tensor], alive: list[torch.Tensor], q: float,
           low: bool) -> torch.Tensor | None:
    """A score with (very likely) a fraction >= q of alive scores below it (``low``) or above.

    Binomial margin: 4 standard deviations of the sample count, plus a few entries.
    """
    total = sum(a.numel() for a in alive)
    g = torch.Generator().manual_seed(0)
    sample = []
    for s, a in zip(flat, alive):
        if s.numel():
            pos = torch.randint(s.numel(), (-(-SAMPLE * s.numel() // total),), generator=g)
            sample.append(s[pos][a[pos]])
    sample = torch.cat(sample) if sample else torch.empty(0)
    size = len(sample)
    rank = math.ceil(q * size + 4 * math.sqrt(q * (1 - q) * size) + 8)
    if rank >= size:
        return None
    return torch.kthvalue(sample, rank if low else size - rank + 1).values


def _candidates(flat, alive, pivot: torch.Tensor | None,
                low: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-layer indices and concatenated values of the alive scores on ``pivot``'s side."""
    idx = []
    for s, a in zip(flat, alive):
        hit = a if pivot is None else (s <= pivot if low else s >= pivot).logical_and_(a)
        idx.append(hit.nonzero().flatten())
    return idx, torch.cat([s[i] for s, i in zip(flat, idx)])


def check_scores(scores: Mapping[str, torch.Tensor], reference: Masks) -> None:
    """ScoreError unless ``scores`` covers exactly the masked parameters with finite values."""
    if set(scores) != set(reference):
        missing, extra = set(reference) - set(scores), set(scores) - set(reference)
        raise ScoreError(f"scores must cover exactly the prunable parameters; "
                         f"missing {sorted(missing)}, unknown {sorted(extra)}")
    for name, s in scores.items():
        if tuple(s.shape) != tuple(reference[name].shape):
            raise ScoreError(f"score {name!r} has shape {tuple(s.shape)}, "
                             f"expected {tuple(reference[name].shape)}")
        # A sum is finite only if every term is (inf and NaN propagate), and it is one read pass
        # with no allocation; only a non-finite sum (possibly a finite overflow) needs the check.
        if s.is_floating_point() and not bool(torch.isfinite(s.sum())):
            bad = int((~torch.isfinite(s)).sum())
            if bad:
                raise ScoreError(f"score {name!r} has {bad} non-finite values (NaN or inf); "
                                 f"no mask is made from them")


def global_masks(scores: Mapping[str, torch.Tensor], density: float, current: Masks,
                 lowest: bool = False) -> Masks:
    """One threshold over all surviving weights of all layers (the paper's default)."""
    check_scores(scores, current)
    names = list(current)
    flat, alive = _flatten(scores, current, names)
    keep = _keep(flat, alive, density, lowest)
    return Masks({n: k.view(current[n].shape) for n, k in zip(names, keep)})


def layerwise_masks(scores: Mapping[str, torch.Tensor], density: float, current: Masks,
                    lowest: bool = False) -> Masks:
    """The same fraction ``density`` of every layer survives (ranked within the layer)."""
    check_scores(scores, current)
    out = {}
    for name in current:
        flat, alive = _flatten(scores, current, [name])
        out[name] = _keep(flat, alive, density, lowest)[0].view(current[name].shape)
    return Masks(out)


def _flatten(scores, current: Masks, names: list[str]) -> tuple[list[torch.Tensor], list]:
    """Flat CPU scores in one common dtype (exact: a promotion), and flat alive masks."""
    dtype = functools.reduce(torch.promote_types, [scores[n].dtype for n in names])
    flat = [scores[n].detach().flatten().to("cpu", dtype) for n in names]
    return flat, [current[n].flatten() for n in names]


def _keep(flat: list[torch.Tensor], alive: list[torch.Tensor], density: float,
          lowest: bool) -> list[torch.Tensor]:
    """Keep ``keep_count(total, density)`` survivors: the highest, or with ``lowest`` the
    complement of the highest ``n_alive - k`` (so the inversion is exact on ranks)."""
    n_alive = sum(int(a.count_nonzero()) for a in alive)
    k = min(keep_count(sum(a.numel() for a in alive), density), n_alive)
    if not lowest:
        return top_among_alive(flat, alive, k, n_alive)
    top = top_among_alive(flat, alive, n_alive - k, n_alive)
    return [a & ~t for a, t in zip(alive, top)]


def fixed_layer_masks(scores: Mapping[str, torch.Tensor], densities: Mapping[str, float],
                      density: float, current: Masks, lowest: bool = False) -> Masks:
    """Each layer keeps its share of ``densities`` (ranked within the layer), with per-layer
    counts rounded so that the whole network keeps exactly ``keep_count(total, density)``."""
    check_scores(scores, current)
    sizes = {n: m.numel() for n, m in current.items()}
    counts = layer_counts(sizes, densities, keep_count(sum(sizes.values()), density))
    out = {}
    for name in current:
        flat, alive = _flatten(scores, current, [name])
        out[name] = _keep(flat, alive, counts[name] / sizes[name], lowest)[0].view(current[name].shape)
    return Masks(out)


def erk_densities(shapes: Mapping[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Erdos-Renyi-Kernel layer densities (Evci et al. 2020, RigL, appendix).

    Layer l keeps a fraction ``eps * sum(shape_l) / prod(shape_l)`` of its weights (for a conv,
    ``(c_out + c_in + k_h + k_w) / (c_out c_in k_h k_w)``), ``eps`` chosen so that the network
    keeps ``density`` of all its weights; a layer whose fraction would exceed 1 is kept dense and
    ``eps`` solved again over the others (small layers, such as the first conv, go dense first).
    """
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / sizes[n] for n, s in shapes.items()}
    target = density * sum(sizes.values())
    dense: set[str] = set()
    while True:
        free = [n for n in shapes if n not in dense]
        budget = target - sum(sizes[n] for n in dense)
        eps = budget / sum(raw[n] * sizes[n] for n in free) if free else 0.0
        over = [n for n in free if eps * raw[n] > 1]
        if not over:
            return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}
        dense.update(over)


def layer_counts(sizes: Mapping[str, int], densities: Mapping[str, float],
                 total: int) -> dict[str, int]:
    """Per-layer kept counts from fractional densities, summing exactly to ``total``.

    Largest-remainder rounding: floor every ``size * density``, then give the missing weights one
    at a time to the layers with the largest remainders (ties to the earlier layer), never above
    a layer's size.
    """
    exact = {n: min(float(sizes[n]), sizes[n] * densities[n]) for n in sizes}
    counts = {n: int(math.floor(v)) for n, v in exact.items()}
    missing = total - sum(counts.values())
    for n in sorted(sizes, key=lambda n: counts[n] - exact[n]):
        if missing <= 0:
            break
        if counts[n] < sizes[n]:
            counts[n] += 1
            missing -= 1
    return counts


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
