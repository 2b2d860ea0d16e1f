"""Every registered method and baseline, under every sanity check, through the CLI."""

import json

import pytest

from pai_bench import methods
from pai_bench.cli.parser import main
from pai_bench.sanity_checks import CHECKS

TINY = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
        "--subset", "128", "--test-subset", "50", "--sparsity", "0.8", "--no-progress"]
# "masks" trains a file's masks: tests/test_workflow.py runs it with every check
BUILTIN = sorted(set(methods.scorer_names()) - {"masks"}) + \
    methods.baseline_names()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return tmp_path_factory.mktemp("every")  # one folder: the baselines share one dense run


@pytest.mark.parametrize("check", CHECKS.names())
@pytest.mark.parametrize("method", BUILTIN)
def test_method_with_check(method, check, results, capsys):
    assert main(["run", "--method", method, "--check", check, *TINY,
                 "--results-dir", str(results)]) == 0
    assert "test accuracy:" in capsys.readouterr().out
    # (imp at 80% is 8 levels: the 7 above it are stored runs of lower sparsities)
    (summary,) = [s for s in (json.loads(p.read_text())
                              for p in results.glob(f"runs/{method}-*/summary.json"))
                  if s["config"]["check"] == check and s["config"]["sparsity"] == 0.8]
    assert summary["status"] == "finished"
    assert summary["kept"] == round(0.2 * summary["prunable"])
