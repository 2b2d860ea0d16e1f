"""Designing an experiment for power: how many seeds each finding needs, and what they cost.

An experiment's verdicts (``pai_bench.analysis.findings``, ``pai_bench.analysis.verdicts``) can
only say "worse", "not worse (within δ)" and the like when its seeds give the tests the power
to; otherwise they read "inconclusive". Before an experiment is run, this module answers, for each finding it
tests:

* the family size m: how many comparisons the finding's Holm family will hold, counted by
  building the verdict table's comparisons from the experiment's own configs
  (``results.comparisons``, ``findings.first_covering``), so the count cannot drift from what
  the report will do;
* the seeds per group that give the finding's question ``verdicts.POWER`` power at level α/m
  (the strictest step of Holm's procedure) when the true difference is the planning value
  and the seed-to-seed standard deviation is the measured one (``verdicts.seeds_to_settle``,
  statsmodels' ``TTestIndPower``: the same calculation the report prints for inconclusive
  rows);
* what a number of seeds costs in minutes (runs x measured seconds per run / workers).

The numbers it is given (standard deviations, seconds per run, planning differences) are
measurements, declared where the experiment is (``pai_bench.sweeps.experiments``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the library loads where used
    import pandas as pd

from pai_bench.config import RunConfig
from pai_bench.analysis.findings import first_covering, with_margin
from pai_bench.analysis.results import comparisons
from pai_bench.analysis.verdicts import seeds_to_settle


@dataclass(frozen=True)
class Miniature:
    """A candidate recipe of the CPU scale and what was measured of it on one machine:
    ``sd_points``, the seed-to-seed standard deviation of a run's test accuracy (pooled over the
    settings measured, in points), ``seconds``, a run's own time (one worker, one thread, nothing
    beside it), ``seeds_measured`` and ``where`` (the measurement)."""

    name: str
    recipe: dict
    sd_points: float
    seconds: float
    seeds_measured: int
    where: str


@dataclass(frozen=True)
class Plan:
    """What a finding is planned for: its family (``Finding.family``), the question asked in it
    (a family may ask two: "c" asks "worse" of SNIP and "not worse" of GraSP) and the true
    difference in points the design must detect (for "not worse" and "equivalent": the
    difference assumed, usually 0, the paper's claim)."""

    family: str
    question: str
    difference_points: float
    why: str


def family_sizes(configs: list[RunConfig], findings, margin_points: float) -> Counter:
    """How many comparisons each finding's family holds in the report of ``configs`` (every
    run finished; the verdict table counts the same comparisons), keyed by family, and by
    (family, question) for the comparisons of each question."""
    import pandas as pd
    rows = []
    for c in configs:
        row = c.to_dict()
        row["method_args"] = ",".join(f"{k}={v}" for k, v in row.get("method_args", []))
        rows.append({**row, "status": "finished", "test_accuracy": 0.5})
    findings = with_margin(findings, margin_points)
    sizes = Counter()
    for comp in comparisons(pd.DataFrame(rows), type(configs[0])):
        if not comp["a"] or not comp["b"]:  # a check whose unmodified run is not in the report
            continue
        f = first_covering(findings, comp["comparison"], comp["method"], comp["check"],
                           comp["prune_at"], model=comp.get("model"),
                           budget=comp.get("budget", "equal"))
        if f is not None:
            sizes[f.family] += 1
            sizes[f.family, f.question] += 1
    return sizes


def seeds_needed(plan: Plan, sd_points: float, margin_points: float, family_size: int,
                 alpha: float = 0.05) -> int | None:
    """Seeds per group for ``plan`` at ``verdicts.POWER`` (None: no number would, the planned
    difference lies on the null's side)."""
    return seeds_to_settle(plan.difference_points / 100, sd_points / 100, plan.question,
                           margin_points / 100, alpha, family_size)


def minutes(runs: int, seconds_per_run: float, workers: int) -> float:
    """Wall minutes of ``runs`` runs of ``seconds_per_run`` each on ``workers`` workers (whole
    rounds of runs: the last round may be partly idle)."""
    return math.ceil(runs / workers) * seconds_per_run / 60


def power_table(configs_per_seed: list[RunConfig], findings, plans: tuple[Plan, ...],
                miniature: Miniature, margin_points: float, seeds: int,
                alpha: float = 0.05) -> pd.DataFrame:
    """One row per planned finding the report of ``configs_per_seed`` (the runs of one seed)
    asks: its question, family size m (Holm's, over every question of the family), planning
    difference, the seeds it needs at the miniature's SD, and whether ``seeds`` suffice."""
    import pandas as pd
    sizes = family_sizes(configs_per_seed, findings, margin_points)
    rows = []
    for p in plans:
        if not sizes.get((p.family, p.question)):  # the report asks no such comparison
            continue
        m = sizes[p.family]
        need = seeds_needed(p, miniature.sd_points, margin_points, m, alpha)
        rows.append(dict(family=p.family, question=p.question, family_size=m,
                         planned_difference=p.difference_points, why=p.why,
                         sd_points=miniature.sd_points, seeds_needed=need,
                         enough=need is not None and seeds >= need))
    return pd.DataFrame(rows, columns=["family", "question", "family_size", "planned_difference",
                                       "why", "sd_points", "seeds_needed", "enough"])
