"""The tests put this folder on ``PYTHONPATH`` (``tests/conftest.py``), so every Python process
they start (the CLI, a sweep's spawned workers, ``benchmarks/gpu_check.py`` and its workers)
enters the CUDA harness at start-up where ``PAI_BENCH_FAKE_CUDA=1``: the product itself never
imports the harness."""

import os

if os.environ.get("PAI_BENCH_FAKE_CUDA") == "1":
    import fake_cuda

    fake_cuda.from_environment()
