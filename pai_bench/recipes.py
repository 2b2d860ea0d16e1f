"""Training recipes: the paper's (docs/protocol.md, "Networks and data") and how presets shrink them.

A recipe is a frozen value. Learning-rate milestones and warmup are given in epochs; when an
override changes the number of epochs they are scaled in proportion, so ``--epochs 2`` on the
paper's CIFAR recipe still decays at 50% and 75% of training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pai_bench.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    batch_size: int
    lr: float
    epochs: int
    milestones: tuple[float, ...] = ()  # epochs at which the lr is multiplied by ``gamma``
    gamma: float = 0.1
    warmup_epochs: float = 0.0  # linear warmup from 0 to ``lr``
    momentum: float = 0.9
    weight_decay: float = 1e-4

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")

    def with_epochs(self, epochs: int) -> "Recipe":
        """The same schedule stretched or shrunk to ``epochs`` (milestones, warmup scaled)."""
        f = epochs / self.epochs
        return dataclasses.replace(
            self,
            epochs=epochs,
            milestones=tuple(m * f for m in self.milestones),
            warmup_epochs=self.warmup_epochs * f,
        )

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based).

        Warmup: ``lr * (step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, so step 0
        already moves. Decay: x``gamma`` for every milestone whose step ``round(m * spe)`` has
        been reached. Used by the training loop *and* by rewinding (lottery-ticket rewinding): the lr after
        rewinding to step k is ``lr_at(k)``.
        """
        warmup_steps = round(self.warmup_epochs * steps_per_epoch)
        decays = sum(step >= round(m * steps_per_epoch) for m in self.milestones)
        lr = self.lr * self.gamma**decays
        if step < warmup_steps:
            lr *= (step + 1) / warmup_steps
        return lr

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.epochs * steps_per_epoch


# The paper's recipes (docs/protocol.md). SGD with momentum 0.9 and weight decay 1e-4 throughout.
CIFAR = Recipe(batch_size=128, lr=0.1, epochs=160, milestones=(80, 120))
TINYIMAGENET = Recipe(batch_size=256, lr=0.2, epochs=200, milestones=(100, 150), warmup_epochs=5)
IMAGENET = Recipe(batch_size=1024, lr=0.4, epochs=90, milestones=(30, 60, 80), warmup_epochs=5)
# Not in the paper: the MLP is our fast fully-connected check. Same optimizer family.
MLP = Recipe(batch_size=128, lr=0.05, epochs=20, milestones=(10, 15))

# ``--preset smoke``: the same code path shrunk to about a minute on 2 CPU cores.
SMOKE_EPOCHS = 2
SMOKE_TRAIN_SUBSET = 10000  # class-balanced training images: 2 epochs = 156 steps of 128
SMOKE_TEST_SUBSET = 2000   # class-balanced test images


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Training drops the last partial batch (a batch of 1 breaks BatchNorm in train mode)."""
    if num_examples < batch_size:
        raise ConfigError(
            f"the training set has {num_examples} examples, fewer than the batch size "
            f"{batch_size}; use a larger --subset or a smaller --batch-size"
        )
    return num_examples // batch_size


__all__ = ["Recipe", "CIFAR", "TINYIMAGENET", "IMAGENET", "MLP", "steps_per_epoch"]

# The iterations at which the pruning-early experiment applies a method instead of at step 0
# (Frankle et al. 2021: a few hundred to a few thousand iterations). The shared dense run
# snapshots them on its first pass, so each prune point costs no extra dense training.
PRUNE_EARLY_STEPS = (100, 200, 500, 1000, 2000, 4000)
