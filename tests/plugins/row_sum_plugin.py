"""A plugin scorer, imported only by the subprocess of ``tests/test_plugin.py``
(``--plugin row_sum_plugin``): the test process never imports it, so it never enters the
test session's registry."""

from dataclasses import dataclass

import torch

from pai_bench.methods import Scorer, ScoringContext


@dataclass
class RowSum(Scorer):
    """Keep whole output units: each weight scores the |sum| of its unit's incoming weights."""

    name = "test_row_sum"
    needs_data = False
    power: float = 1.0

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        params = dict(ctx.model.named_parameters())
        out = {}
        for n in ctx.masks:
            w = params[n].detach()
            row = w.flatten(1).abs().sum(1) ** self.power
            out[n] = row.view(-1, *([1] * (w.dim() - 1))).expand_as(w).clone()
        return out
