"""Benchmarks report ratios measured in one run (never timed asserts).

Each benchmark may set ``benchmark.extra_info["ratio_to"] = <name of the baseline benchmark>``;
the terminal summary then prints median(this) / median(baseline) for every such pair.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    by_name = {b.name: b for b in session.benchmarks}
    lines = []
    for b in session.benchmarks:
        base = by_name.get(b.extra_info.get("ratio_to", ""))
        if base is not None and _median(b) and _median(base):
            ratio = _median(b) / _median(base)
            lines.append(f"{b.name:60s} / {base.name:45s} = {ratio:6.3f}")
    if lines:
        terminalreporter.write_sep("=", "ratios of medians, measured in this run")
        for line in lines:
            terminalreporter.write_line(line)


def _median(bench) -> float | None:
    """The median time of a benchmark (pytest-benchmark 4 wraps the Stats in a Metadata)."""
    stats = getattr(bench, "stats", None)
    stats = getattr(stats, "stats", stats)
    return getattr(stats, "median", None)
