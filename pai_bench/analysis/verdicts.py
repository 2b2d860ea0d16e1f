"""Verdicts that answer a question: is a check worse, better, not worse or equivalent, with power.

A two-sided test with 3 seeds reads "no significant difference" almost always, which cannot tell
"no effect" from "too few seeds". The paper's claims are directional, so each comparison asks
one of four questions about the difference d = mean(a) - mean(b) (accuracies as fractions; the
margin δ > 0 in the same unit):

============ ================ ================== ===============================================
question     claim (H1)       null (H0)          test (Welch, unequal variances)
============ ================ ================== ===============================================
worse        d < 0            d >= 0             one-sided t-test
better       d > 0            d <= 0             one-sided t-test
not worse    d > -δ           d <= -δ            one-sided t-test against -δ (non-inferiority)
equivalent   -δ < d < δ       |d| >= δ           TOST: both one-sided tests, p = the larger p
============ ================ ================== ===============================================

The reading is the claim when the p-value, Holm-adjusted over the comparisons of the claim's
family (one family per finding, ``pai_bench.analysis.findings``), is below α. Otherwise it is the
*opposite* (``OPPOSITE``: what the data show when they lie wholly on the far side of the null)
when that is established as carefully: the one-sided test of the other side at the same
boundary, its p-values Holm-adjusted over the same family. Otherwise "inconclusive".

============ ======================= ============ =============================================
question     opposite                its claim    its test
============ ======================= ============ =============================================
worse        better                  d > 0        one-sided t-test
better       worse                   d < 0        one-sided t-test
not worse    worse by more than δ    d < -δ       one-sided t-test against -δ
equivalent   different (beyond ±δ)   |d| > δ      both one-sided tests against ±δ; p = twice
                                                  the smaller (Bonferroni over the directions)
============ ======================= ============ =============================================

So a reading other than "inconclusive" is shown when the 1 - 2α interval lies wholly on one side
of the null's boundary (for "different": the 1 - α interval wholly beyond +δ or -δ) and stays so
after Holm's adjustment; each direction holds its family-wise error rate at α.
The interval reported is the two-sided 1 - 2α Welch interval (90% for α = 0.05): its bounds are
the one-sided 1 - α bounds that the tests above compare with 0 or ±δ (unadjusted).

Power (``detectable_difference``, ``seeds_to_settle``) uses the equal-variance t-test of
statsmodels' ``TTestIndPower``, a close approximation of Welch's at equal group sizes, at the
level α/m of the family's m comparisons (the strictest step of Holm's procedure, so the stated
power holds whatever the other p-values are). For equivalence each of the two one-sided tests
gets power 1 - (1 - POWER)/2: by the union bound both then pass with probability >= POWER.
Every distribution, test and power calculation is statsmodels' or scipy's, never a hand formula.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the library loads where used
    from statsmodels.stats.weightstats import CompareMeans

from pai_bench.errors import ConfigError

# question -> the reading when its claim is established
READINGS = {"worse": "worse", "better": "better", "not worse": "not worse (within δ)",
            "equivalent": "equivalent (within ±δ)"}
# question -> the reading when the data lie wholly on the far side of its null (the module doc)
OPPOSITE = {"worse": "better", "better": "worse", "not worse": "worse by more than δ",
            "equivalent": "different (beyond ±δ)"}
INCONCLUSIVE = "inconclusive"
POWER = 0.8  # the conventional power of a study designed to detect an effect
MIN_SEEDS = 2  # Welch's test needs a variance in each group


def check_question(question: str, margin: float, alpha: float) -> None:
    """A ConfigError naming the bad value: an unknown question, a margin <= 0, or α outside
    (0, 0.5)."""
    if question not in READINGS:
        raise ConfigError(f"unknown question {question!r}; valid questions: {', '.join(READINGS)}")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        raise ConfigError(f"margin must be a positive number (a fraction of accuracy), "
                          f"got {margin!r}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 0.5):
        raise ConfigError(f"alpha must be in (0, 0.5), got {alpha!r}")


def answer(a, b, question: str, margin: float, alpha: float = 0.05) -> dict:
    """The unadjusted verdict on mean(a) - mean(b) for ``question``: group sizes and means, the
    difference, its 1 - 2α Welch interval, the question's p-value, the p-value of its opposite
    (``OPPOSITE``) and the pooled standard deviation (for power). ``margin``: δ as a fraction
    (0.02 = 2 points)."""
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW
    check_question(question, margin, alpha)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < MIN_SEEDS or len(b) < MIN_SEEDS:
        raise ConfigError(f"a verdict needs >= {MIN_SEEDS} seeds per group, got {len(a)} and "
                          f"{len(b)}")
    cm = CompareMeans(DescrStatsW(a), DescrStatsW(b))
    diff = float(a.mean() - b.mean())
    se = float(cm.std_meandiff_separatevar)
    if se == 0:  # every seed gave the same accuracy: the means are the whole story
        low = high = diff
        p = 0.0 if _claim_holds(diff, question, margin) else 1.0
        p_opposite = 0.0 if _opposite_holds(diff, question, margin) else 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = (float(x) for x in cm.tconfint_diff(alpha=2 * alpha, usevar="unequal"))
            p = _p_value(a, b, cm, question, margin)
            p_opposite = _p_opposite(cm, question, margin)
    # sd_pooled: sqrt(((n1-1) s1² + (n2-1) s2²) / (n1 + n2 - 2)), from statsmodels' pooled SE
    sd = float(cm.std_meandiff_pooledvar) / math.sqrt(1 / len(a) + 1 / len(b))
    return dict(question=question, margin=margin, alpha=alpha, seeds=len(a),
                seeds_reference=len(b), accuracy=float(a.mean()),
                accuracy_reference=float(b.mean()), difference=diff, confidence=1 - 2 * alpha,
                ci_low=low, ci_high=high, p_value=p, p_opposite=p_opposite, sd_pooled=sd)


def _claim_holds(diff: float, question: str, margin: float) -> bool:
    return {"worse": diff < 0, "better": diff > 0, "not worse": diff > -margin,
            "equivalent": -margin < diff < margin}[question]


def _opposite_holds(diff: float, question: str, margin: float) -> bool:
    return {"worse": diff > 0, "better": diff < 0, "not worse": diff < -margin,
            "equivalent": abs(diff) > margin}[question]


def _welch_p(cm: CompareMeans, alternative: str, value: float) -> float:
    """Welch's one-sided p-value of d against ``value`` (statsmodels); NaN reads as 1."""
    p = float(cm.ttest_ind(alternative=alternative, usevar="unequal", value=value)[1])
    return 1.0 if math.isnan(p) else p


def _p_opposite(cm: CompareMeans, question: str, margin: float) -> float:
    """The p-value of the question's opposite (``OPPOSITE``): the one-sided test of the far
    side of the same boundary; for "different", the smaller of the tests beyond +δ and -δ,
    doubled (Bonferroni: either direction may be the one that comes out)."""
    if question == "equivalent":
        return min(1.0, 2 * min(_welch_p(cm, "larger", margin),
                                _welch_p(cm, "smaller", -margin)))
    alternative, value = {"worse": ("larger", 0.0), "better": ("smaller", 0.0),
                          "not worse": ("smaller", -margin)}[question]
    return _welch_p(cm, alternative, value)


def _p_value(a, b, cm: CompareMeans, question: str, margin: float) -> float:
    """The question's Welch p-value (statsmodels); NaN, which nothing proves, reads as 1."""
    from statsmodels.stats.weightstats import ttost_ind
    if question == "equivalent":
        p = float(ttost_ind(a, b, -margin, margin, usevar="unequal")[0])
        return 1.0 if math.isnan(p) else p
    alternative, value = {"worse": ("smaller", 0.0), "better": ("larger", 0.0),
                          "not worse": ("larger", -margin)}[question]
    return _welch_p(cm, alternative, value)


def holm(pvalues) -> list[float]:
    """Holm's step-down adjustment, in the input order (statsmodels' ``multipletests``): with
    the m p-values sorted ascending, p_(k) becomes max_{j <= k} min(1, (m - j + 1) p_(j)); it
    controls the family-wise error rate at any α."""
    from statsmodels.stats.multitest import multipletests
    pvalues = list(pvalues)
    if not pvalues:
        return []
    return [float(p) for p in multipletests(pvalues, method="holm")[1]]


def read(question: str, p_adjusted: float, alpha: float, p_opposite_adjusted: float = 1.0) -> str:
    """The claim of ``question`` when its adjusted p is below α, else its opposite
    (``OPPOSITE``) when the opposite's adjusted p is, else "inconclusive". (The two cannot both
    be below α < 0.5: their tests reject on the two sides of one boundary.)"""
    if p_adjusted < alpha:
        return READINGS[question]
    return OPPOSITE[question] if p_opposite_adjusted < alpha else INCONCLUSIVE


def _one_sided(question: str, level: float) -> tuple[float, float]:
    """(level, power) of each one-sided test behind ``question`` (TOST: two, union bound)."""
    if question == "equivalent":
        return level, 1 - (1 - POWER) / 2
    return level, POWER


def detectable_difference(n1: int, n2: int, sd: float, question: str, alpha: float,
                          family_size: int = 1) -> float:
    """The smallest true distance from the null's boundary (|d| for worse and better, d + δ for
    not worse, δ - |d| for equivalent) that n1 and n2 seeds detect with probability POWER at
    level α/family_size: Cohen's d from ``TTestIndPower.solve_power`` times the pooled SD."""
    from statsmodels.stats.power import TTestIndPower
    level, power = _one_sided(question, alpha / family_size)
    if sd == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        effect = TTestIndPower().solve_power(nobs1=n1, ratio=n2 / n1, alpha=level, power=power,
                                             alternative="larger")
    return float(effect) * sd


def distance(diff: float, question: str, margin: float) -> float:
    """How far the observed difference lies on the claim's side of the null's boundary."""
    return {"worse": -diff, "better": diff, "not worse": diff + margin,
            "equivalent": margin - abs(diff)}[question]


def seeds_to_settle(diff: float, sd: float, question: str, margin: float, alpha: float,
                    family_size: int = 1) -> int | None:
    """Seeds per group that would establish the claim with probability POWER if the true
    difference and SD were the observed ones (``TTestIndPower.solve_power`` for nobs1, equal
    groups); None when no number would: the observed difference lies on the null's side."""
    from statsmodels.stats.power import TTestIndPower
    gap = distance(diff, question, margin)
    if gap <= 0 or sd == 0:
        return None if gap <= 0 else MIN_SEEDS
    level, power = _one_sided(question, alpha / family_size)
    solver = TTestIndPower()
    if solver.power(effect_size=gap / sd, nobs1=MIN_SEEDS, alpha=level,
                    alternative="larger") >= power:
        return MIN_SEEDS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = solver.solve_power(effect_size=gap / sd, alpha=level, power=power,
                               alternative="larger")
    return None if n is None or not math.isfinite(float(n)) else math.ceil(float(n))
