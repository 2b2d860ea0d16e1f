"""Verdicts per question: each reading on data whose answer is known, every p-value and interval
against scipy, every power figure against a noncentral-t calculation made here from its
definition, and the families Holm adjusts over."""

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests

from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.analysis.findings import (MARGIN_POINTS, PAPER_FINDINGS, Finding, default_margin_points,
                                select)
from pai_bench.analysis.results import verdicts
from pai_bench.analysis.table import write_tables
from pai_bench.analysis.verdicts import (INCONCLUSIVE, POWER, answer, detectable_difference, distance,
                                read, seeds_to_settle)

QUESTIONS = ("worse", "better", "not worse", "equivalent")
DELTA = 0.02  # 2 accuracy points, as a fraction


def group(mean_points: float, sd_points: float, n: int, seed: int) -> np.ndarray:
    """n accuracies (fractions) with exactly this mean and sample SD (in points)."""
    z = np.random.default_rng(seed).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    return (60 + mean_points + sd_points * z) / 100


def pair(diff_points: float, sd_points: float, n: int):
    return group(diff_points, sd_points, n, seed=1), group(0.0, sd_points, n, seed=2)


def verdict(a, b, question, margin=DELTA, alpha=0.05) -> str:
    r = answer(a, b, question, margin, alpha)
    return read(question, r["p_value"], alpha, r["p_opposite"])


def test_a_drop_of_5_points_over_8_seeds_is_worse():
    a, b = pair(-5, 0.5, 8)
    assert verdict(a, b, "worse") == "worse"
    # asked the other questions, the same data say what they show (issue 38)
    assert verdict(a, b, "not worse") == "worse by more than δ"
    assert verdict(a, b, "equivalent") == "different (beyond ±δ)"
    assert verdict(a, b, "better") == "worse"


def test_a_gain_of_0_2_points_is_not_worse_and_equivalent_within_2():
    a, b = pair(0.2, 0.3, 8)
    assert verdict(a, b, "not worse") == "not worse (within δ)"
    assert verdict(a, b, "equivalent") == "equivalent (within ±δ)"
    assert verdict(a, b, "worse") == verdict(a, b, "better") == INCONCLUSIVE  # 0.2 is too small
    # with a margin below the noise, the same seeds cannot show equivalence
    assert verdict(a, b, "equivalent", margin=0.001) == INCONCLUSIVE


def test_a_noisy_drop_over_3_seeds_is_inconclusive_whatever_the_question():
    a, b = pair(-1, 3, 3)
    assert [verdict(a, b, q) for q in QUESTIONS] == [INCONCLUSIVE] * 4
    r = answer(a, b, "not worse", DELTA)
    # the interval reaches below -δ and above 0: neither "worse" nor "not worse" is shown
    assert r["ci_low"] < -DELTA and r["ci_high"] > 0


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("diff, sd, n, m", [(-5, 0.5, 8, 8), (0.2, 0.3, 8, 5), (-1, 3, 3, 3),
                                            (1.5, 2.0, 3, 5)])
def test_p_value_and_interval_equal_scipy(question, diff, sd, n, m):
    a, b = group(diff, sd, n, seed=3), group(0.0, sd * 1.5, m, seed=4)
    r = answer(a, b, question, DELTA, alpha=0.05)

    def welch(x, y, alternative):
        return stats.ttest_ind(x, y, equal_var=False, alternative=alternative).pvalue

    expected = {"worse": lambda: welch(a, b, "less"), "better": lambda: welch(a, b, "greater"),
                "not worse": lambda: welch(a + DELTA, b, "greater"),  # H0: d <= -δ
                "equivalent": lambda: max(welch(a + DELTA, b, "greater"),
                                          welch(a - DELTA, b, "less"))}[question]()
    assert r["p_value"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence_level=0.90)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert r["confidence"] == pytest.approx(0.90)
    assert r["difference"] == pytest.approx(a.mean() - b.mean())
    pooled = np.sqrt(((n - 1) * a.var(ddof=1) + (m - 1) * b.var(ddof=1)) / (n + m - 2))
    assert r["sd_pooled"] == pytest.approx(pooled)
    assert (r["seeds"], r["seeds_reference"]) == (n, m)


def nct_power(gap: float, sd: float, n1: int, n2: int, level: float) -> float:
    """The power of the one-sided pooled t-test at ``level`` when the true difference lies
    ``gap`` beyond the null's boundary: P(T > t_crit) with T noncentral t, df = n1 + n2 - 2,
    noncentrality gap / (sd sqrt(1/n1 + 1/n2))."""
    df = n1 + n2 - 2
    return stats.nct.sf(stats.t.ppf(1 - level, df), df, gap / (sd * np.sqrt(1 / n1 + 1 / n2)))


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("n1, n2, m", [(3, 3, 1), (3, 3, 8), (8, 8, 4), (3, 5, 2)])
def test_detectable_difference_equals_a_noncentral_t_calculation(question, n1, n2, m):
    sd, alpha = 0.02, 0.05
    power = POWER if question != "equivalent" else 1 - (1 - POWER) / 2  # TOST: per side
    expected = optimize.brentq(lambda g: nct_power(g, sd, n1, n2, alpha / m) - power, 1e-6, 10)
    got = detectable_difference(n1, n2, sd, question, alpha, family_size=m)
    assert got == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("question, diff", [("worse", -0.01), ("better", 0.004),
                                            ("not worse", -0.005), ("equivalent", 0.012)])
def test_seeds_to_settle_is_the_smallest_n_with_80_percent_power(question, diff):
    sd, alpha, m = 0.02, 0.05, 3
    gap = {"worse": -diff, "better": diff, "not worse": diff + DELTA,
           "equivalent": DELTA - abs(diff)}[question]
    power = POWER if question != "equivalent" else 1 - (1 - POWER) / 2
    n = next(n for n in range(2, 10_000) if nct_power(gap, sd, n, n, alpha / m) >= power)
    assert seeds_to_settle(diff, sd, question, DELTA, alpha, family_size=m) == n


def test_no_number_of_seeds_settles_a_claim_the_difference_points_against():
    assert seeds_to_settle(+0.01, 0.02, "worse", DELTA, 0.05) is None
    assert seeds_to_settle(-0.03, 0.02, "not worse", DELTA, 0.05) is None  # beyond -δ
    assert seeds_to_settle(0.025, 0.02, "equivalent", DELTA, 0.05) is None


def test_bad_questions_margins_and_findings_are_refused_by_name():
    a, b = pair(0, 1, 3)
    with pytest.raises(ConfigError, match="'smaller'.*valid questions: worse, better"):
        answer(a, b, "smaller", DELTA)
    with pytest.raises(ConfigError, match="margin must be a positive number.*got 0"):
        answer(a, b, "not worse", 0)
    with pytest.raises(ConfigError, match=">= 2 seeds per group, got 1 and 3"):
        answer(a[:1], b, "worse", DELTA)
    with pytest.raises(ConfigError, match="unknown comparison 'baseline'"):
        Finding("x", "a claim", "worse", "baseline")
    with pytest.raises(ConfigError, match="methods must be .* got 'scorers'"):
        Finding("x", "a claim", "worse", "check", methods="scorers")


def runs_frame(accuracies: dict, **setting) -> pd.DataFrame:
    """Finished runs as ``results.load_runs`` gives them: {(method, check): [accuracy/seed]}."""
    rows = []
    for (method, check), accs in accuracies.items():
        for seed, acc in enumerate(accs):
            config = RunConfig(method=method, check=check, seed=seed, **setting).to_dict()
            config["method_args"] = ""
            rows.append({**config, "status": "finished", "test_accuracy": acc})
    return pd.DataFrame(rows)


ACCURACIES = {("snip", "none"): [0.60, 0.61, 0.59], ("snip", "shuffle"): [0.605, 0.60, 0.61],
              ("snip", "invert"): [0.30, 0.32, 0.31], ("grasp", "none"): [0.58, 0.59, 0.60],
              ("grasp", "invert"): [0.57, 0.60, 0.58], ("random", "none"): [0.55, 0.56, 0.54],
              ("ltr", "none"): [0.70, 0.71, 0.69], ("ltr", "shuffle"): [0.61, 0.62, 0.60]}


def test_every_comparison_gets_its_findings_question_and_family_adjustment():
    runs = runs_frame(ACCURACIES, model="mlp", dataset="synthetic", epochs=1)
    v = verdicts(runs)
    got = {(r.method, r.check, r.reference): (r.family, r.question) for r in v.itertuples()}
    assert got == {
        ("snip", "shuffle", "snip, unmodified"): ("d", "not worse"),
        ("snip", "invert", "snip, unmodified"): ("c", "worse"),
        ("grasp", "invert", "grasp, unmodified"): ("c", "not worse"),
        ("ltr", "shuffle", "ltr, unmodified"): ("b", "worse"),
        ("snip", "none", "random"): ("e", "better"), ("grasp", "none", "random"): ("e", "better"),
        ("snip", "none", "ltr"): ("a", "worse"), ("grasp", "none", "ltr"): ("a", "worse"),
        ("random", "none", "ltr"): ("a", "worse")}
    assert (v["margin"] == DELTA).all() and (v["alpha"] == 0.05).all()  # a shrunk recipe: 2
    for family, g in v.groupby("family"):  # Holm within each family, never across
        assert (g["family_size"] == len(g)).all()
        assert g["p_adjusted"].tolist() == pytest.approx(
            multipletests(g["p_value"], method="holm")[1].tolist())
    assert all((r != INCONCLUSIVE) == (p < 0.05) for r, p in zip(v["reading"], v["p_adjusted"]))
    read_as = dict(zip(zip(v["method"], v["check"], v["reference"]), v["reading"]))
    assert read_as["snip", "invert", "snip, unmodified"] == "worse"  # -30 points
    assert read_as["random", "none", "ltr"] == "worse"
    for row in v.itertuples():  # an inconclusive row says what would settle it, if anything
        never = distance(row.difference, row.question, row.margin) <= 0
        settled = row.reading != INCONCLUSIVE
        assert pd.isna(row.seeds_to_settle) == (settled or never)


def test_declared_findings_set_margin_and_family_and_leave_the_rest_out():
    runs = runs_frame(ACCURACIES, model="mlp", dataset="synthetic", epochs=1)
    mine = (Finding("mine", "shuffling SNIP costs nothing", "equivalent", "check",
                    methods=("snip",), checks=("shuffle",), margin_points=5.0),)
    v = verdicts(runs, findings=mine, margin_points=0.5)
    assert len(v) == 1 and v["family"].iloc[0] == "mine" and v["margin"].iloc[0] == 0.05
    assert v["reading"].iloc[0] == "equivalent (within ±δ)"
    v = verdicts(runs, margin_points=0.5)  # the experiment's margin reaches every finding
    assert (v["margin"] == 0.005).all()


def test_an_experiment_selects_its_findings_by_family():
    runs = runs_frame(ACCURACIES, model="mlp", dataset="synthetic", epochs=1)
    v = verdicts(runs, findings=select("b", "c"))
    assert set(v["family"]) == {"b", "c"} and len(v) == 3  # ltr shuffle; snip, grasp invert
    with pytest.raises(ConfigError, match="unknown finding 'f'; valid findings: a, a-early, b"):
        select("a", "f")


def test_the_default_margin_follows_the_scale_of_the_recipe():
    shrunk = runs_frame(ACCURACIES, model="mlp", dataset="synthetic", epochs=1)
    paper = runs_frame(ACCURACIES, model="mlp", dataset="synthetic")
    assert default_margin_points(shrunk) == MARGIN_POINTS["cpu"] == 2.0
    assert default_margin_points(paper) == MARGIN_POINTS["paper"] == 0.5


def test_caption_states_tests_margins_levels_and_families(tmp_path):
    runs = runs_frame(ACCURACIES, model="mlp", dataset="synthetic", epochs=1)
    v = verdicts(runs)
    text = write_tables({"verdicts": v}, tmp_path, latex=True)
    for phrase in ("TOST", "Welch", "Holm", "80% power", "Families: a (worse; δ = 2 points; "
                   "α = 0.05; m = 3): magnitude after training and LTR beat every PaI method",
                   "c (worse/not worse; δ = 2 points; α = 0.05; m = 2)", "90% CI (points)",
                   "seeds to settle", "detectable (points)"):
        assert phrase in text, phrase
    csv = pd.read_csv(tmp_path / "verdicts.csv")
    assert {"question", "margin", "alpha", "family", "seeds", "seeds_reference", "difference",
            "ci_low", "ci_high", "p_value", "p_adjusted", "reading", "detectable_difference",
            "seeds_to_settle"} <= set(csv.columns)
    tex = (tmp_path / "verdicts.tex").read_text()
    assert r"\caption{" in tex and r"80\% power" in tex and "δ" not in tex
    assert r"$\delta$ = 2 points" in tex


def test_paper_findings_cover_every_check_and_comparison_of_the_paper():
    for method in ("snip", "grasp", "synflow", "magnitude", "random", "ltr"):
        for check in ("shuffle", "reinit", "invert"):
            assert any(f.covers("check", method, check, 0) for f in PAPER_FINDINGS)
    assert all(any(f.covers(kind, "snip", "none", k) for f in PAPER_FINDINGS)
               for kind in ("random", "after training") for k in (0, 100))


# --- Readings that say what the data show (issue 38, point 4) --------------------------------

def issue_38_reinit():
    """The issue's reinit row: 5 seeds each, d = -6.50 points, 90% Welch CI [-10.73, -2.27]
    (equal SDs of 3.597 points give that half-width at 8 degrees of freedom)."""
    return group(-6.5, 3.597, 5, seed=5), group(0.0, 3.597, 5, seed=6)


def test_an_interval_wholly_below_minus_delta_reads_worse_by_more_than_delta():
    a, b = issue_38_reinit()
    r = answer(a, b, "not worse", DELTA)
    assert 100 * r["difference"] == pytest.approx(-6.50)
    assert (100 * r["ci_low"], 100 * r["ci_high"]) == pytest.approx((-10.73, -2.27), abs=0.01)
    assert verdict(a, b, "not worse") == "worse by more than δ"
    # its test: the one-sided Welch test of d < -δ (scipy), at the claim's level
    expected = stats.ttest_ind(a + DELTA, b, equal_var=False, alternative="less").pvalue
    assert r["p_opposite"] == pytest.approx(expected, rel=1e-9) and r["p_opposite"] < 0.05
    assert r["p_value"] > 0.5  # the claim's own test is far from it


@pytest.mark.parametrize("question, diff, sd, n, reading", [
    ("worse", +5, 0.5, 8, "better"), ("better", -5, 0.5, 8, "worse"),
    ("equivalent", -6, 0.5, 8, "different (beyond ±δ)"),
    ("equivalent", +6, 0.5, 8, "different (beyond ±δ)")])
def test_the_far_side_of_every_question_reads_as_what_it_is(question, diff, sd, n, reading):
    a, b = pair(diff, sd, n)
    assert verdict(a, b, question) == reading
    # and a noisy difference on the same side is still inconclusive, not that
    a, b = pair(diff / 5, 3, 3)
    assert verdict(a, b, question) == INCONCLUSIVE


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_opposite_p_value_equals_scipy(question):
    a, b = group(-3, 2.0, 6, seed=7), group(0.0, 3.0, 5, seed=8)
    r = answer(a, b, question, DELTA)

    def welch(x, y, alternative):
        return stats.ttest_ind(x, y, equal_var=False, alternative=alternative).pvalue

    expected = {"worse": lambda: welch(a, b, "greater"), "better": lambda: welch(a, b, "less"),
                "not worse": lambda: welch(a + DELTA, b, "less"),  # H0: d >= -δ
                "equivalent": lambda: min(1, 2 * min(welch(a - DELTA, b, "greater"),
                                                     welch(a + DELTA, b, "less")))}[question]()
    assert r["p_opposite"] == pytest.approx(expected, rel=1e-9)


def test_the_opposite_is_holm_adjusted_in_the_family_like_the_claim(tmp_path):
    # a larger drop than the issue's: its p of 0.045 alone would not survive m = 2
    reinit = group(-9.0, 3.597, 5, seed=5), group(0.0, 3.597, 5, seed=6)
    shuffles = {("snip", "none"): [0.60, 0.61, 0.59, 0.60, 0.62],
                ("snip", "shuffle"): [0.605, 0.60, 0.61, 0.59, 0.60],
                ("grasp", "none"): list(reinit[1]), ("grasp", "reinit"): list(reinit[0])}
    runs = runs_frame(shuffles, model="mlp", dataset="synthetic", epochs=1)
    v = verdicts(runs, findings=select("d"))
    assert len(v) == 2 and (v["family_size"] == 2).all()
    assert v["p_opposite_adjusted"].tolist() == pytest.approx(
        multipletests(v["p_opposite"], method="holm")[1].tolist())
    row = v[v["check"] == "reinit"].iloc[0]
    assert row["reading"] == "worse by more than δ" and pd.isna(row["seeds_to_settle"])
    assert row["p_opposite_adjusted"] > row["p_opposite"]  # adjusted, not taken raw
    # the readable table says it, with the adjusted p of the opposite beside the claim's
    text = write_tables({"verdicts": v}, tmp_path)
    assert "| worse by more than δ |" in text and "p opposite (Holm)" in text
    assert "worse by more than δ for not worse" in text  # the caption states the rule


def test_a_check_of_random_is_in_no_family():
    accuracies = {("snip", "none"): [0.60, 0.61, 0.59], ("snip", "invert"): [0.57, 0.58, 0.565],
                  ("random", "none"): [0.55, 0.56, 0.54],
                  ("random", "invert"): [0.555, 0.545, 0.56],
                  ("random", "shuffle"): [0.55, 0.56, 0.55]}
    runs = runs_frame(accuracies, model="mlp", dataset="synthetic", epochs=1)
    v = verdicts(runs, findings=select("d", "invert"))
    checks = v[v["comparison"] == "check"]
    # random inverted or shuffled is random pruning again: no row, no family member
    assert list(zip(checks["method"], checks["check"])) == [("snip", "invert")]
    snip = checks.iloc[0]
    assert snip["family"] == "invert" and snip["family_size"] == 1
    assert snip["p_adjusted"] == pytest.approx(snip["p_value"])  # not raised by random's row
