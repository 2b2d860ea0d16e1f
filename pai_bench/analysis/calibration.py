"""Calibration: are reference rows made on another machine usable on this one?

Another CPU (other kernels: AMX against AVX512-BF16) or precision trains the same configuration
to other accuracies; whether the shift matters is a question for the data, not an assumption.
Before ``judge`` uses reference rows whose ``machine`` or torch version is not this one's, it
trains a few seeds of one reference configuration here (``CALIBRATED``: magnitude pruning at
initialization, as cheap as random pruning and with no dense network, but steadier: random
masks add their own seed-to-seed variance; at the CPU scale the SD measured over 11 seeds of
random was 2.2-2.3 points, where 11 seeds are enough only near 1.5, magnitude's; its reference
rows: ``experiments`` "calibration") and
asks whether this machine's accuracies are *equivalent* to the reference rows' within the
margin δ (``verdicts.answer``: TOST, Welch). The seeds are those that give the
equivalence test ``verdicts.POWER`` power when there is no shift, at the design's measured SD
(``verdicts.seeds_to_settle``). Equivalent: the references are used. Otherwise (a shift, or
too few seeds to show there is none) they are not, and the references are trained here; the
card says which, and why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the library loads where used
    import pandas as pd

from pai_bench.config import RunConfig
from pai_bench.analysis.verdicts import INCONCLUSIVE, answer, read, seeds_to_settle

CALIBRATED = "magnitude"  # the reference configuration trained here: no data, no dense run


@dataclass(frozen=True)
class Calibration:
    """The outcome: whether the reference rows are used, the equivalence verdict behind it (None
    when no calibration was needed: every reference row was made on this machine), and why."""

    used: bool
    why: str
    verdict: dict | None = None


def foreign(rows: pd.DataFrame, here: str, torch_version: str) -> bool:
    """Whether any of reference ``rows`` was made on another machine than ``here`` (or does
    not say where), or with another torch than ``torch_version`` (other kernels on the same
    CPU) or a torch it does not record."""
    if not len(rows):
        return False
    elsewhere = not (rows["machine"].fillna("") == here).all()
    if "torch" not in rows:
        return True
    return elsewhere or not (rows["torch"].fillna("").astype(str) == torch_version).all()


def calibration_configs(config: RunConfig, sd_points: float, margin_points: float,
                        alpha: float = 0.05) -> list[RunConfig]:
    """The runs of CALIBRATED in ``config``'s setting to train here: seeds 0..n-1, n the seeds
    equivalence within ±δ needs at the measured SD when there is no shift."""
    n = seeds_to_settle(0.0, sd_points / 100, "equivalent", margin_points / 100, alpha) or 2
    base = dataclasses.replace(config, method=CALIBRATED, check="none", method_args=())
    return [dataclasses.replace(base, seed=s) for s in range(max(n, 2))]


def calibrate(here_runs: pd.DataFrame, reference_runs: pd.DataFrame, margin_points: float,
              here: str, alpha: float = 0.05) -> Calibration:
    """Compare this machine's runs of the calibration configurations (``here_runs``) with the
    reference rows of the same configurations (``reference_runs``): equivalent within ±δ, the
    references are used; otherwise not."""
    mine = here_runs["test_accuracy"].dropna().astype(float).tolist()
    theirs = reference_runs["test_accuracy"].dropna().astype(float).tolist()
    machines = "; ".join(sorted(set(reference_runs["machine"].fillna("not recorded"))))
    if len(mine) < 2 or len(theirs) < 2:
        return Calibration(False, f"the reference rows hold {len(theirs)} run(s) of "
                                  f"{CALIBRATED} to compare with {len(mine)} here: not enough "
                                  f"to calibrate, so the references are trained here")
    v = answer(mine, theirs, "equivalent", margin_points / 100, alpha)
    reading = read("equivalent", v["p_value"], alpha, v["p_opposite"])
    said = (f"{CALIBRATED} here ({here}, {len(mine)} seeds) against the reference rows "
            f"({machines}, {len(theirs)} seeds): {100 * v['difference']:+.2f} points, "
            f"{100 * v['confidence']:g}% CI [{100 * v['ci_low']:+.2f}, "
            f"{100 * v['ci_high']:+.2f}], {reading} at δ = {margin_points:g} points")
    if reading == "equivalent (within ±δ)":
        return Calibration(True, said + ": the references are used", v)
    why = "not shown equivalent" if reading == INCONCLUSIVE else "different"
    return Calibration(False, said + f": {why}, so the references are trained here", v)
