"""What a verdict card says in words beside its table: the level it was made at, what each
question could and could not detect with the seeds it had, and what the method costs.

"Detectable" is the design's power calculation (``verdicts.detectable_difference``): the
smallest true distance from the question's null boundary that the seeds detect with
``verdicts.POWER`` probability at the family's Holm level. Read per question:

* worse / better: a true gap of at least D points is detected; a smaller one may go unseen;
* not worse (within δ): shown only when the true difference is at least D - δ points; a
  check that changes nothing (true difference 0) is shown only when D <= δ;
* equivalent (within ±δ): shown only when |true difference| <= δ - D.

An inconclusive row also says how many seeds per group would settle it if the observed
difference and SD were the truth (``verdicts.seeds_to_settle``), or that none would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING


if TYPE_CHECKING:  # annotations only: the library loads where used
    import pandas as pd

from pai_bench.analysis.verdicts import INCONCLUSIVE, POWER

LEVEL_TEXT = {
    "quick": "the design's {n} seeds per group: what the 'worse' questions need at this "
             "scale's noise ('better than random' is read with what they can detect). The "
             "'not worse within δ' "
             "questions (shuffled, reinitialized) need {full} seeds to show that a check which "
             "changes nothing is not worse: `--level full` runs them",
    "full": "the shuffled and reinitialized runs with the {full} seeds that 'not worse within "
            "δ' needs for a check that changes nothing, the other groups with {n}",
}


def level_line(level: str, seeds: int, full: int) -> str:
    """The card's level, and what its seeds are enough for."""
    return f"Level: **{level}**, {LEVEL_TEXT[level].format(n=seeds, full=full)}."


def _subject(row: dict) -> str:
    if row["comparison"] == "check":
        return f"{row['check']} against unmodified"
    return f"against {row['reference']}"


def detection(row: dict) -> str:
    """What the seeds of one verdict row could and could not detect (points)."""
    d, margin = 100 * row["detectable_difference"], 100 * row["margin"]
    question = row["question"]
    if question in ("worse", "better"):
        gap = "deficit" if question == "worse" else "advantage"
        said = (f"could detect a true {gap} of {d:.2f} points or more; a smaller one could go "
                f"unseen")
    elif question == "not worse":
        said = (f"could show 'not worse' only if the true difference is {d - margin:+.2f} "
                f"points or more; " + ("a check that changes nothing is shown" if d <= margin
                                       else "a check that changes nothing could not be shown"))
    else:
        said = (f"could show equivalence only if the true difference is within ±"
                f"{max(margin - d, 0):.2f} points")
    return f"{said} ({row['seeds']} / {row['seeds_reference']} seeds, {POWER:.0%} power)"


def settle(row: dict) -> str:
    """For an inconclusive row: the seeds per group that would settle it, or that none would."""
    import pandas as pd
    if row["reading"] != INCONCLUSIVE:
        return ""
    n = row["seeds_to_settle"]
    if pd.isna(n):
        return "; no number of seeds would settle it: the observed difference lies on the null's side"
    return f"; {int(n)} seeds per group would settle it, if the observed difference is the truth"


def question_lines(rows: pd.DataFrame) -> list[str]:
    """One line per verdict row: the question, its reading, what it could and could not see."""
    out = []
    for row in rows.to_dict("records"):
        out.append(f"- **{row['family']}**, {_subject(row)}, '{row['question']}': "
                   f"{row['reading']} ({100 * row['difference']:+.2f} points); "
                   f"{detection(row)}{settle(row)}.")
    return out


def cost_line(mine: pd.DataFrame, sparsity: float) -> str:
    """What the method cost here (its unmodified runs, mean over seeds): scoring, training,
    and what it kept (effective sparsity above nominal: weights stranded by collapsed layers)."""
    import pandas as pd
    scoring = mine["scoring_seconds"].dropna() if "scoring_seconds" in mine else pd.Series()
    scored = (f"scoring {scoring.astype(float).mean():.2f} s per seed (once per seed: the "
              f"original, shuffled and reinitialized runs share its masks)" if len(scoring)
              else "scoring time not recorded")
    machines = "; ".join(sorted(set(mine["machine"].dropna()))) if "machine" in mine else ""
    return (f"Cost (mean over {len(mine)} seed(s){', on ' + machines if machines else ''}): "
            f"{scored}; training {mine['seconds'].mean():.1f} s per run, "
            f"{mine['train_macs'].mean():.3g} training MACs. Accuracy "
            f"{100 * mine['test_accuracy'].mean():.2f}%, effective sparsity "
            f"{100 * mine['effective_sparsity'].astype(float).mean():.2f}% (nominal "
            f"{100 * sparsity:g}%: above it, weights stranded by collapsed layers).")
