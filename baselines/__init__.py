"""After-training baselines: what pruning at initialization is measured against.

Each baseline is the same three moves on the shared dense run (``pai_bench.dense``): prune the
trained weights by global magnitude, choose the weights the sparse network starts from, and
train it from some step of the schedule to the end. They differ only in those choices, so each
is a small value, not a copy of a training loop:

| name | starts from | schedule starts at |
|---|---|---|
| ``magnitude_after_training`` | the trained weights | step 0 (learning-rate rewinding, Renda et al. 2020) |
| ``ltr`` | the dense weights at ``rewind_iter`` | ``rewind_iter`` (Frankle et al. 2020) |
| ``lottery_ticket`` | the initial weights | step 0 (Frankle & Carbin 2019) |

With ``rounds = K`` pruning is iterative: each round removes the same fraction of survivors,
``1 - d**(1/K)``, by magnitude of the weights the previous round trained, then rewinds and
retrains. The lottery ticket's control (same mask, fresh weights) is ``--check reinit``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pai_bench.registry import Registry

# LTR's default rewind point, as a fraction of training. Frankle et al. (2020, "Linear mode
# connectivity") find CIFAR ResNet-20 and VGG-16 stable to SGD noise after about 1-3% of training;
# 2% (1251 of ResNet-20's 62,560 iterations) sits inside that window for both.
REWIND_FRACTION = 0.02


@dataclass(frozen=True)
class Baseline:
    """How an after-training baseline starts its sparse network.

    ``start``: "trained" (the dense run's final weights), "rewind" (its weights at the rewind
    step) or "init" (its step-0 weights). ``restart_schedule``: whether the learning-rate schedule
    starts again at step 0 (True) or continues from the rewind step (False).
    """

    name: str
    start: str
    restart_schedule: bool
    description: str


BASELINES: Registry[Baseline] = Registry("method")

for _b in (
    Baseline("magnitude_after_training", "trained", True,
             "Magnitude pruning after training, retrained with learning-rate rewinding"),
    Baseline("ltr", "rewind", False,
             "Lottery-ticket rewinding: magnitude after training, rewind to an early step"),
    Baseline("lottery_ticket", "init", True,
             "The original lottery ticket: magnitude after training, reset to initialization"),
):
    BASELINES.register(_b.name, _b)


def default_rewind_step(total_steps: int) -> int:
    return round(REWIND_FRACTION * total_steps)
