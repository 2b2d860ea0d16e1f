"""Root conftest: its presence puts the repository root on sys.path, so tests import pai_bench.

The tests' own machinery (the CUDA harness ``fake_cuda``, the op counter ``opcount``) lives in
``tests/support``, outside the product: it goes on ``sys.path`` here, and on ``PYTHONPATH`` for
the processes the tests start, where its ``sitecustomize`` enters the harness on request
(``PAI_BENCH_FAKE_CUDA=1``)."""

import os
import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent / "tests" / "support"
sys.path.insert(0, str(SUPPORT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), *filter(None, [os.environ.get("PYTHONPATH")])])
