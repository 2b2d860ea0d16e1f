"""A command starts fast: ``--help``, ``list`` and a one-line input error load none of the heavy
libraries (torchvision's model zoo and torch._dynamo, pandas, statsmodels, scipy, matplotlib).
What they cost is measured, against ``import torch``, in ``benchmarks/test_startup.py``; this
test holds the cause: a module-level import of one of them on the way to the parser."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torchvision", "pandas", "statsmodels", "scipy", "matplotlib", "torch._dynamo")
PROBE = """
import json, sys
from pai_bench.cli.parser import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".")
                                                        for h in heavy))))
"""


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["list"],
                                  ["run", "--method", "nosuch"],
                                  ["run", "--method", "snip", "--sparsity", "abc"],
                                  ["reproduce", "nosuch"], ["table", "--results-dir", "/nonexistent"]],
                         ids=" ".join)
def test_a_command_that_computes_nothing_loads_no_heavy_library(argv):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{' '.join(argv)} loaded {loaded[:8]}"


def test_the_probe_sees_a_heavy_library_when_one_is_loaded():
    code = PROBE.format(argv=["--help"], heavy=HEAVY).replace("import json, sys",
                                                              "import json, sys, pandas")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert "pandas" in json.loads(done.stdout.strip().splitlines()[-1])
