"""The extension point: a plugin scorer (tests/plugins/) runs end to end through the CLI.

The subprocess imports ``tests/plugins/row_sum_plugin.py`` as a plugin (``--plugin
row_sum_plugin``), which registers ``test_row_sum`` by subclassing ``Scorer``; nothing else in
the suite knows about it, and the test process never registers it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from pai_bench.masks import Masks

HERE = Path(__file__).resolve().parent
PLUGINS = HERE / "plugins"


def test_plugin_scorer_runs_through_the_cli_with_a_check(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{PLUGINS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for check in ("none", "shuffle"):
        cmd = [sys.executable, "-m", "pai_bench", "run", "--plugin", "row_sum_plugin",
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
    fc1 = Masks.load(plain / "masks.pt")["fc1.weight"]
    rows = fc1.sum(1)
    assert bool(((rows == 0) | (rows == fc1.shape[1])).sum() >= fc1.shape[0] - 1)
