"""Start-up cost of a command against ``import torch``, in CPU seconds (issue 37's target: at most
1.3x for ``--help``, ``list`` and a one-line input error).

Each command runs in a fresh interpreter; its CPU time (user + system, from the OS's accounting of
the finished child, ``resource.RUSAGE_CHILDREN``) is taken over ``STARTUP_ROUNDS`` rounds (default
7) that alternate the commands, so a busy neighbour slows all of them alike; the median is kept.
The table goes to ``results/benchmarks/startup.md`` with the CPU it was measured on. Run:
``pytest benchmarks/test_startup.py --benchmark-only -s``.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from pai_bench.precision import cpu_name

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "benchmarks" / "startup.md"
TARGET = 1.3  # issue 37: a command's start-up at most 1.3x the CPU time of ``import torch``
COMMANDS = {
    "import torch": ["-c", "import torch"],
    "--help": ["-m", "pai_bench", "--help"],
    "run --help": ["-m", "pai_bench", "run", "--help"],
    "list": ["-m", "pai_bench", "list"],
    "run --method nosuch": ["-m", "pai_bench", "run", "--method", "nosuch"],
    "run --sparsity abc": ["-m", "pai_bench", "run", "--method", "snip", "--sparsity", "abc"],
    "reproduce nosuch": ["-m", "pai_bench", "reproduce", "nosuch"],
    "table (no results)": ["-m", "pai_bench", "table", "--results-dir", "/nonexistent/pai"],
}


def cpu_seconds(args: list[str]) -> float:
    """User + system CPU seconds of one ``python args`` to its end (its output discarded)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu_seconds(COMMANDS["import torch"])  # warm the file cache
    for _ in range(rounds):
        for name, args in COMMANDS.items():
            times[name].append(cpu_seconds(args))
    return {name: statistics.median(t) for name, t in times.items()}


def write_table(medians: dict[str, float], rounds: int) -> str:
    torch_cpu = medians["import torch"]
    lines = ["# Start-up CPU time against `import torch`\n",
             f"Machine: {cpu_name()}; Python {sys.version.split()[0]}; medians of {rounds} "
             f"alternating rounds; `pytest benchmarks/test_startup.py --benchmark-only -s`.\n",
             "| command | CPU s | / import torch | target |", "|---|---|---|---|"]
    for name, seconds in medians.items():
        ratio = seconds / torch_cpu
        mark = "" if name == "import torch" else ("ok" if ratio <= TARGET else "over")
        lines.append(f"| `{name}` | {seconds:.2f} | {ratio:.2f}x | {mark} |")
    return "\n".join(lines) + "\n"


@pytest.mark.benchmark(group="startup")
def test_startup_against_import_torch(benchmark):
    rounds = int(os.environ.get("STARTUP_ROUNDS", "7"))
    medians = benchmark.pedantic(measure, args=(rounds,), rounds=1, iterations=1)
    text = write_table(medians, rounds)
    OUT.write_text(text)
    print("\n" + text)
    benchmark.extra_info.update({f"{k} / import torch": v / medians["import torch"]
                                 for k, v in medians.items()})
