"""PHEW (Patil & Dovrolis, ICML 2021): paths with higher edge weights, by biased random walks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pai_bench.methods.base import Scorer, ScoringContext
from pai_bench.methods.helpers import check_count
from pai_bench.pruning import keep_count


@dataclass
class PHEW(Scorer):
    """PHEW: keep the edges of magnitude-biased random walks input->output and back; no data.

    Units are a linear layer's features and a conv's channels. A walk crosses every prunable
    layer once, in ``prunable_names`` (model) order; in a layer it moves from its unit u to a
    unit v with probability ∝ the L1 norm of the kernel between them (Σ|w|) and keeps one weight
    of that kernel, chosen ∝ |w| -- the authors' code (PHEW/phew.py, ``kernel_conserved=False``;
    one joint draw ∝ |w| over all the kernels at u is the same distribution). Walks alternate
    input->output and output->input, seeded round-robin over the input and output units (the
    code's ``round_robin=True``). Weights are kept until ``keep_count(total, ctx.density)``
    distinct surviving weights are; the walks' edge set is *returned as scores*: a visited
    weight scores higher the earlier a walk first kept it (steps ordered by walk, then along the
    walk), so the global top-k at ``ctx.density`` is exactly the first ``budget`` kept weights.
    Pruned weights (zero) are never drawn; a unit with only pruned edges moves uniformly.

    Our choice for non-chain networks (the code hard-codes its ResNets' layer order): between
    consecutive layers in model order a walk keeps its unit when the channel counts match; a
    linear layer after a flatten of C channels (C·m features) continues at a uniform one of the
    channel's m features (the code's ``conv_to_linear_unit``); otherwise (e.g. a 1x1 shortcut
    after its block's second conv) the walk continues at a uniform unit. Every walk keeps a
    weight in every layer, so no layer collapses (PHEW's point).

    If walks stall (after ``max_steps`` x budget steps) before the budget, e.g. at high
    densities, the unvisited weights rank by |w| below every visited one (our choice); they
    rank that way too under the inversion check, which asks for the complement.

    On a transformer (``cifar_vit``) the walks run, but not along the network's paths: the rule
    above chains its prunable layers in model order (q -> k -> v -> out -> fc1 -> fc2 of each
    block, all of width w or 2w, so a walk keeps its unit between them), whereas q, k and v
    are parallel branches, attention mixes tokens, and the residual stream skips every block.
    What PHEW keeps there is magnitude-biased random walks through that chain; every layer
    still keeps weights (no layer collapses).
    """

    name = "phew"
    color, marker = "tab:pink", "^"
    needs_data = False
    max_steps: int = 64

    def __post_init__(self):
        check_count(self.name, max_steps=self.max_steps)

    def score(self, ctx: ScoringContext) -> dict[str, Tensor]:
        names = list(ctx.masks)
        params = dict(ctx.model.named_parameters())
        mags = [params[n].detach().abs().cpu().double() for n in names]
        alive = [ctx.masks[n].flatten().cpu() for n in names]
        walker = _Walker(mags, ctx.generator)
        budget = keep_count(sum(m.numel() for m in mags), ctx.density)
        budget = min(budget, sum(int(a.sum()) for a in alive))
        none = torch.iinfo(torch.int64).max  # "never visited" for the first-visit step
        first = [torch.full((m.numel(),), none, dtype=torch.int64) for m in mags]
        kept, walks, depth = 0, 0, len(names)
        while kept < budget and walks * depth <= self.max_steps * budget:
            batch = min(1 << 16, max(1024, 2 * math.ceil((budget - kept) / depth)))
            for layer, (idx, step) in enumerate(walker.walks(walks, batch)):
                new = (first[layer][idx] == none) & alive[layer][idx]
                kept += int(torch.unique(idx[new]).numel())
                first[layer].scatter_reduce_(0, idx, step, reduce="amin")
            walks += batch
        top = walks * depth + 1.0  # visited: in (1, top]; unvisited: |w| / (1 + max|w|) < 1
        scale = 1.0 + max(float(m.max()) for m in mags if m.numel())
        return {n: torch.where(f < none, top - f.double(), m.flatten() / scale)
                .view(m.shape).to(params[n].device) for n, f, m in zip(names, first, mags)}


class _Walker:
    """Vectorized biased walks. Per layer, the weights |w| are laid out twice, grouped by input
    unit and by output unit, with one float64 cumulative sum each: a step from unit u draws
    ``U[0, 1) * Σ_u`` and finds it by ``searchsorted`` in u's contiguous slice of the cumsum,
    which is a draw ∝ |w| among u's edges (channel ∝ kernel L1 norm, then weight ∝ |w|)."""

    def __init__(self, mags: list[Tensor], generator: torch.Generator):
        self.g, self.shapes = generator, [m.shape for m in mags]
        self.units = [(m.shape[1], m.shape[0]) for m in mags]  # (inputs, outputs)
        self.forward = [self._table(m.transpose(0, 1)) for m in mags]  # grouped by input
        self.reverse = [self._table(m) for m in mags]  # grouped by output

    @staticmethod
    def _table(m: Tensor) -> tuple[Tensor, Tensor, int]:
        rows = m.reshape(m.shape[0], -1)
        return rows.flatten().cumsum(0), rows.sum(1), rows.shape[1]

    def _step(self, table, units: Tensor) -> Tensor:
        """Index, in the table's layout, of one edge drawn ∝ |w| from each of ``units``."""
        cum, sums, width = table
        start = units * width
        before = torch.where(start > 0, cum[(start - 1).clamp(min=0)],
                             torch.zeros_like(sums[units]))  # the cumsum up to u's slice
        u = torch.rand(len(units), generator=self.g, dtype=torch.float64)
        found = torch.searchsorted(cum, before + u * sums[units], right=True)
        uniform = start + torch.randint(width, (len(units),), generator=self.g)
        # Rounding can land one past the slice; a unit whose edges are all pruned moves uniformly.
        return torch.where(sums[units] > 0, torch.minimum(found, start + width - 1), uniform)

    def _next_input(self, layer: int, out_unit: Tensor) -> Tensor:
        """Input unit of ``layer`` fed by output unit ``out_unit`` of ``layer - 1``."""
        n_in, n_prev = self.units[layer][0], self.units[layer - 1][1]
        if n_in == n_prev:
            return out_unit
        if len(self.shapes[layer]) == 2 and n_in % n_prev == 0:  # flatten: channel -> features
            m = n_in // n_prev
            return out_unit * m + torch.randint(m, out_unit.shape, generator=self.g)
        return torch.randint(n_in, out_unit.shape, generator=self.g)

    def _prev_output(self, layer: int, in_unit: Tensor) -> Tensor:
        """Output unit of ``layer - 1`` feeding input unit ``in_unit`` of ``layer``."""
        n_in, n_prev = self.units[layer][0], self.units[layer - 1][1]
        if n_in == n_prev:
            return in_unit
        if len(self.shapes[layer]) == 2 and n_in % n_prev == 0:
            return in_unit // (n_in // n_prev)
        return torch.randint(n_prev, in_unit.shape, generator=self.g)

    def walks(self, first: int, count: int) -> list[tuple[Tensor, Tensor]]:
        """Walks ``first .. first + count - 1`` (even: forward, odd: reverse); per layer the flat
        weight indices they keep and the step numbers ``walk * depth + position on the walk``."""
        depth = len(self.shapes)
        ids = torch.arange(first, first + count)
        fwd, rev = ids[ids % 2 == 0], ids[ids % 2 == 1]
        out: list = [None] * depth
        unit = (fwd // 2) % self.units[0][0]  # round-robin seeds over the input units
        for layer in range(depth):
            if layer:
                unit = self._next_input(layer, unit)
            j = self._step(self.forward[layer], unit)  # layout (in, out, kernel)
            n_out, k = self.units[layer][1], self.forward[layer][2] // self.units[layer][1]
            unit, pos = (j % (n_out * k)) // k, j % k
            out[layer] = (unit * (self.units[layer][0] * k) + (j // (n_out * k)) * k + pos,
                          fwd * depth + layer)
        unit = (rev // 2) % self.units[-1][1]  # round-robin seeds over the output units
        for layer in reversed(range(depth)):
            if layer < depth - 1:
                unit = self._prev_output(layer + 1, unit)
            j = self._step(self.reverse[layer], unit)  # layout (out, in, kernel): the flat one
            k = self.reverse[layer][2] // self.units[layer][0]
            unit = (j % self.reverse[layer][2]) // k
            idx, step = out[layer]
            out[layer] = (torch.cat([idx, j]), torch.cat([step, rev * depth + depth - 1 - layer]))
        return out
