"""The extension point: a scorer defined in this very file runs end to end through the CLI.

The subprocess imports this file as a plugin (``--plugin test_plugin``), which registers
``test_row_sum`` by subclassing ``Scorer``; nothing else in the suite knows about it.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from pai_bench.methods import Scorer, ScoringContext

HERE = Path(__file__).resolve().parent


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


def test_plugin_scorer_runs_through_the_cli_with_a_check(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for check in ("none", "shuffle"):
        cmd = [sys.executable, "-m", "pai_bench", "run", "--plugin", "test_plugin",
               "--method", "test_row_sum", "--method-arg", "power=2", "--check", check,
               "--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
               "--subset", "128", "--test-subset", "50", "--sparsity", "0.75", "--no-progress",
               "--results-dir", str(tmp_path)]
        done = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, env=env,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert "test accuracy:" in done.stdout
    runs = sorted((tmp_path / "runs").iterdir())
    assert [r.name.split("-")[0] for r in runs] == ["test_row_sum", "test_row_sum"]
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["config"]["method_args"] == [["power", "2"]]
        assert summary["kept"] == round(0.25 * summary["prunable"])
    # unshuffled, whole output units are kept or pruned: every row of fc1 is all-or-nothing
    plain = next(r for r in runs if json.loads((r / "summary.json").read_text())["config"]["check"] == "none")
    fc1 = torch.load(plain / "masks.pt", weights_only=True)["fc1.weight"]
    rows = fc1.sum(1)
    assert bool(((rows == 0) | (rows == fc1.shape[1])).sum() >= fc1.shape[0] - 1)
