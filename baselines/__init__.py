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

Baselines register in the same ``METHODS`` registry as the scorers (``pai_bench.methods.base``),
so a name means one method. Their mask logic (``Baseline.masks``) is here, beside them.

With ``rounds = K`` pruning is iterative: each round removes the same fraction of survivors,
``1 - d**(1/K)``, by magnitude of the weights the previous round trained, then rewinds and
retrains. The lottery ticket's control (same mask, fresh weights) is ``--check reinit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pai_bench import paths
from pai_bench.artifacts import read_weights
from pai_bench.io import atomic_save_torch
from pai_bench.masks import Masks
from pai_bench.methods.base import Method
from pai_bench.methods.simple import Magnitude
from pai_bench.pruning import exponential_schedule
from pai_bench.train import train

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
    start: ClassVar[str] = "trained"
    restart_schedule: ClassVar[bool] = True

    def masks(self, p, dense, folder: Path, device) -> tuple[Masks, list[Masks]]:
        """The final masks and those of the earlier rounds, for ``p`` (a ``pai_bench.plan.Plan``
        with data) on the dense run ``dense``.

        Global magnitude of the trained weights; with K rounds, prune-rewind-retrain K times.
        Round r keeps ``density ** (r / K)``; its training (rounds before the last) is stored in
        ``folder`` so that a killed iterative baseline resumes at its last finished round.
        """
        trained, masks, rounds = p.model_at(dense, p.total_steps), None, []
        schedule = exponential_schedule(p.config.density, p.rounds)
        for r, d in enumerate(schedule, start=1):
            masks = p.score_masks(Magnitude(), trained, d, 1, device, masks)
            if r == len(schedule):
                return masks, rounds
            rounds.append(masks)
            weights = paths.round_weights(folder, r)
            state = read_weights(weights, trained)
            if state is None:
                model = p.build_model()
                model.load_state_dict(p.start_state(dense, with_check=False))
                train(model, p.train_data, p.recipe, seed=p.config.seed, masks=masks,
                      device=device, start_step=p.start_step(), precision=p.config.precision,
                      compile=p.config.compile)
                masks.save(paths.round_masks(folder, r))
                atomic_save_torch(model.state_dict(), weights)
                state = model.state_dict()
            trained.load_state_dict(state)
        raise AssertionError("unreachable: the schedule has at least one round")


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
    restart_schedule = False


@dataclass
class LotteryTicket(Baseline):
    """The original lottery ticket: magnitude after training, reset to initialization"""

    name = "lottery_ticket"
    color, marker = "tab:cyan", "d"
    start = "init"
