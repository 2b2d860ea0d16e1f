"""The CPU experiment's design (issue 27): the power calculation that chose it counts the families
the report will make, needs the seeds an independent noncentral-t calculation says, and the
chosen design carries the findings it claims to within its time budget."""

import math

import pandas as pd
import pytest
from scipy import stats

from pai_bench.sweeps import experiments
from pai_bench.config import RunConfig
from pai_bench.analysis.design import Miniature, Plan, family_sizes, minutes, power_table, seeds_needed
from pai_bench.analysis.findings import MARGIN_POINTS, PAPER_FINDINGS
from pai_bench.analysis.results import verdicts
from pai_bench.analysis.verdicts import POWER

TINY = dict(model="mlp", dataset="synthetic", epochs=1, subset=128, test_subset=50)


def tiny_configs(seeds=(0,)) -> list[RunConfig]:
    out = []
    for seed in seeds:
        for method in ("random", "snip", "magnitude", "ltr", "magnitude_after_training"):
            out.append(RunConfig(method=method, sparsity=0.9, seed=seed, **TINY))
        for method in ("snip", "ltr", "grasp"):
            for check in ("shuffle", "reinit", "invert"):
                out.append(RunConfig(method=method, sparsity=0.9, seed=seed, check=check, **TINY))
    return out


def test_family_sizes_are_those_the_verdict_table_makes():
    """Counted from one seed of configs, the family sizes equal those of the verdict table
    computed (another path: ``results.verdicts``) on three seeds of finished runs."""
    rows = []
    for i, c in enumerate(tiny_configs(seeds=(0, 1, 2))):
        row = c.to_dict()
        row["method_args"] = ""
        rows.append({**row, "status": "finished", "test_accuracy": 0.5 + 0.001 * (i % 7)})
    table = verdicts(pd.DataFrame(rows), findings=PAPER_FINDINGS, margin_points=2.0)
    expected = table.groupby("family").size().to_dict()
    sizes = family_sizes(tiny_configs(), PAPER_FINDINGS, 2.0)
    assert {k: v for k, v in sizes.items() if isinstance(k, str)} == expected
    assert {k: v for k, v in sizes.items() if not isinstance(k, str)} == \
        table.groupby(["family", "question"]).size().to_dict()
    # ltr shuffled/reinitialized; snip inverted (grasp's checks have no unmodified grasp run)
    assert expected["b"] == 2 and expected["c"] == 1 and expected["d"] == 2


def power_by_hand(n: int, gap: float, sd: float, level: float) -> float:
    """Power of a one-sided two-sample t-test (equal variances, n per group) at ``level`` for a
    true distance ``gap`` from the null's boundary: the noncentral t's tail past the critical
    value, from its definition (df = 2n - 2, noncentrality gap / (sd sqrt(2/n)))."""
    df = 2 * n - 2
    return float(stats.nct.sf(stats.t.ppf(1 - level, df), df, gap / (sd * math.sqrt(2 / n))))


@pytest.mark.parametrize("question, diff, sd, m", [
    ("not worse", 0.0, 1.5, 8), ("not worse", 0.0, 1.0, 4), ("worse", -5.0, 1.5, 12),
    ("worse", -3.0, 2.0, 2), ("better", 2.0, 1.5, 5)])
def test_seeds_needed_is_the_smallest_n_with_the_power(question, diff, sd, m):
    plan = Plan("x", question, diff, "test")
    n = seeds_needed(plan, sd, 2.0, m)
    gap = {"worse": -diff, "better": diff, "not worse": diff + 2.0}[question]
    level = 0.05 / m
    assert power_by_hand(n, gap, sd, level) >= POWER - 1e-9
    if n > 2:
        assert power_by_hand(n - 1, gap, sd, level) < POWER


def test_no_number_of_seeds_shows_a_claim_the_planned_difference_contradicts():
    assert seeds_needed(Plan("c", "not worse", -2.5, "test"), 1.5, 2.0, 4) is None


def test_minutes_count_whole_rounds_of_workers():
    assert minutes(10, 60, 2) == 5 and minutes(11, 60, 2) == 6 and minutes(3, 30, 1) == 1.5


def test_power_table_marks_what_the_seeds_carry():
    mini = Miniature("m", {}, sd_points=1.5, seconds=40, seeds_measured=4, where="test")
    plans = (Plan("b", "worse", -5.0, "big"), Plan("d", "not worse", 0.0, "null"))
    table = power_table(tiny_configs(), PAPER_FINDINGS, plans, mini, 2.0, seeds=5)
    rows = table.set_index("family")
    assert rows.loc["b", "enough"] and not rows.loc["d", "enough"]
    assert rows.loc["d", "seeds_needed"] > 5 and rows.loc["b", "family_size"] == 2


def test_the_cpu_design_carries_what_it_claims_within_its_budget():
    """``main`` + ``ablations`` at CPU scale: the findings the design claims to carry have the
    power at the measured SD, the others are listed as beyond it, and the runs fit the
    75-minute budget on 2 workers at the measured seconds per run."""
    carried = set(experiments.CPU_CARRIED)
    for name in ("main", "ablations"):
        table = experiments.design_table(name)
        for row in table.itertuples():
            key = f"{row.family}/{row.question}"
            assert row.enough == (key in carried), (name, key, row.seeds_needed)
    runs = experiments.trainings(("main", "ablations"))
    assert minutes(runs, experiments.CPU_MINIATURE.seconds, 2) <= experiments.CPU_BUDGET_MINUTES
    assert MARGIN_POINTS["cpu"] == 2.0
