"""After-training baselines: what pruning at initialization is measured against.

Each baseline is the same three moves on the shared dense run (``pai_bench.pipeline.dense``): prune the
trained weights by global magnitude, choose the weights the sparse network starts from, and
train it from some step of the schedule to the end. They differ only in those choices, so each
is a small value, not a copy of a training loop:

| name | starts from | schedule starts at |
|---|---|---|
| ``magnitude_after_training`` | the trained weights | step 0 (learning-rate rewinding, Renda et al. 2020) |
| ``ltr`` | the dense weights at ``rewind_iter`` | ``rewind_iter`` (Frankle et al. 2020) |
| ``lottery_ticket`` | the initial weights | step 0 (Frankle & Carbin 2019) |
| ``imp`` (by levels, below) | the dense weights at ``rewind_iter`` | ``rewind_iter`` |

Baselines register in the same ``METHODS`` registry as the scorers (``pai_bench.methods.base``),
so a name means one method. Their mask logic (``Baseline.masks``) is here, beside them.

Iterative pruning goes by *levels* (open_lth's lottery branch): level k prunes the survivors of
level k-1 by the magnitude of their trained weights, rewinds (or resets, or keeps) the weights and
trains again. **Every level is one stored run**, the next level's parent (``Baseline.parent``): a
level is trained once whatever asks for it, a killed chain resumes at its last finished level
(and mid-level from its checkpoint), and a sweep over the levels' sparsities trains each once.

* ``imp``: levels of a fixed pruning fraction (20% of the survivors, ``--method-arg
  fraction=``), rewinding like LTR; level k has density 0.8^k, and a sparsity between two levels
  is reached by a last, smaller step from the level above it. A sweep over the 0.8^k grid is one
  chain.
* ``--rounds K`` on any baseline: K levels of equal fraction ``1 - d**(1/K)`` down to the target
  density d; level k is the run (same method, density ``d**(k/K)``, rounds k).

The lottery ticket's control (same mask, fresh weights) is ``--check reinit``. A check applies
to the last level only: the levels above it are the unmodified chain.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.methods.base import Method
from pai_bench.methods.simple import Magnitude

# LTR's default rewind point, as a fraction of training. Frankle et al. (2020, "Linear mode
# connectivity") find CIFAR ResNet-20 and VGG-16 stable to SGD noise after about 1-3% of training;
# 2% (1251 of ResNet-20's 62,560 iterations) sits inside that window for both.
REWIND_FRACTION = 0.02


def default_rewind_step(total_steps: int) -> int:
    return round(REWIND_FRACTION * total_steps)


@dataclass
class Baseline(Method):
    """An after-training baseline: global magnitude of the trained weights, then retraining.

    ``start``: the weights the sparse network starts from, "trained" (the dense run's final
    weights), "rewind" (its weights at the rewind step) or "init" (its step-0 weights).
    ``restart_schedule``: whether the learning-rate schedule starts again at step 0 (True) or
    continues from the rewind step (False).
    """

    after_training: ClassVar[bool] = True
    family: ClassVar[str] = "baselines after training"
    takes_prune_at: ClassVar[bool] = False
    linestyle: ClassVar[str] = "--"
    start: ClassVar[str] = "trained"
    restart_schedule: ClassVar[bool] = True

    def validate(self, config: RunConfig) -> None:
        super().validate(config)
        if config.prune_at:
            raise ConfigError(f"--prune-at applies to methods at initialization; "
                              f"{config.method!r} prunes after training")
        self.levels(config)  # ConfigError on rounds a baseline does not take

    def rounds(self, config: RunConfig) -> int:
        """Prune-retrain levels from the dense network to this run."""
        return self.levels(config)

    def start_step(self, plan) -> int:
        return 0 if self.restart_schedule else self.rewind_step(plan)

    def rewind_step(self, plan) -> int:
        c = plan.config
        return c.rewind_iter if c.rewind_iter is not None else default_rewind_step(plan.total_steps)

    def dense_steps(self, plan) -> int:
        return plan.total_steps  # the whole dense training, counted in its cost

    def needs_dense(self, config: RunConfig) -> bool:
        return True

    def start_state(self, stage) -> dict:
        """"trained": the weights of the level above (learning-rate rewinding, Renda et al.
        2020: each cycle retrains the weights the last one trained), the first level the dense
        network's; else the network at ``start_step`` (the rewind step, or the initialization)."""
        if self.start == "trained":
            return stage.trained_state()
        return super().start_state(stage)

    def levels(self, config: RunConfig) -> int:
        """How many prune-retrain levels lead from the dense network to ``config``: its
        ``rounds`` (default 1, one shot)."""
        return config.rounds or 1

    def parent(self, config: RunConfig) -> RunConfig | None:
        """The previous level: the run whose trained survivors this run prunes (None: the dense
        network). Level k-1 of K equal levels to density d has density ``d**((k-1)/k)``."""
        k = self.levels(config)
        if k <= 1:
            return None
        return dataclasses.replace(config, sparsity=level_sparsity(config.density ** ((k - 1) / k)),
                                   rounds=k - 1 if k > 2 else None, check="none")

    def masks(self, stage) -> Masks:
        """Global magnitude of the trained weights of the level above among its survivors
        (the first level: every weight of the dense network), at the run's density; with the
        inversion check, the smallest are kept instead."""
        trained, survivors = stage.previous_level()
        return stage.score(Magnitude(), trained, stage.plan.config.density, 1, survivors)


def level_sparsity(density: float) -> float:
    """The sparsity of a level of density ``density``, rounded to 6 decimals as the sweep grids
    are (``experiments.PAPER_SPARSITIES``), so that a level asked for by the next one and the same
    sparsity asked for by a sweep are one run."""
    return round(1.0 - density, 6)


@dataclass
class MagnitudeAfterTraining(Baseline):
    """Magnitude pruning after training, retrained with learning-rate rewinding"""

    name = "magnitude_after_training"
    color, marker = "navy", "*"


@dataclass
class LTR(Baseline):
    """Lottery-ticket rewinding: magnitude after training, rewind to an early step"""

    name = "ltr"
    color, marker = "tab:orange", "X"
    start = "rewind"
    rewinds = True
    restart_schedule = False


@dataclass
class LotteryTicket(Baseline):
    """The original lottery ticket: magnitude after training, reset to initialization"""

    name = "lottery_ticket"
    color, marker = "tab:cyan", "d"
    start = "init"


# open_lth's default: each level removes 20% of the survivors (Frankle & Carbin 2019 prune
# 20% of the convolutional weights per round on CIFAR).
IMP_FRACTION = 0.2
# Sweep grids round sparsities to 6 decimals; a density that far from a level is that level.
LEVEL_TOLERANCE = 1e-3


@dataclass
class IMP(LTR):
    """Iterative magnitude pruning by levels: prune 20% of the survivors, rewind, retrain"""

    name = "imp"
    color, marker = "olive", "8"
    fraction: float = IMP_FRACTION

    def __post_init__(self):
        if not 0.0 < self.fraction < 1.0:
            raise ConfigError(f"option 'fraction' of method 'imp' must be in (0, 1), "
                              f"got {self.fraction}")

    def levels(self, config: RunConfig) -> int:
        """The first level at or below ``config``'s density: level k has density
        ``(1 - fraction)**k``; a density between two levels is reached from the level above."""
        if config.rounds is not None:
            raise ConfigError("--rounds does not apply to imp: its levels follow from --sparsity "
                              "and its fraction (--method-arg fraction=0.2); use ltr --rounds K "
                              "for K equal rounds")
        exact = math.log(config.density) / math.log(1.0 - self.fraction)
        return max(1, math.ceil(exact - LEVEL_TOLERANCE))

    def parent(self, config: RunConfig) -> RunConfig | None:
        k = self.levels(config)
        if k <= 1:
            return None
        return dataclasses.replace(config, sparsity=level_sparsity((1.0 - self.fraction) ** (k - 1)),
                                   check="none")
