"""The data-set value types: ``Split`` (what the training loop consumes) and ``DatasetSpec``.

Kept apart from ``pai_bench.data.__init__`` so that the modules defining data sets can import
them without a circular import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor

from pai_bench.errors import ConfigError
from pai_bench.registry import Registry

SPLITS = ("train", "test")


class Split(ABC):
    """One split of a data set: examples addressed by index, yielded as normalized batches.

    Every tensor it yields is on the CPU, float32 and normalized; ``get`` never augments.
    ``batches`` is one pass (an epoch): shuffled iff a generator is given, and augmentation
    draws its randomness from that same generator, so one generator state gives bit-identical
    batches (docs/architecture.md: no global RNG).
    """

    num_classes: int
    labels: Tensor  # int64 (N,)
    classes: tuple[str, ...] = ()  # class names in label order, when the data has them

    def __len__(self) -> int:
        return len(self.labels)

    @abstractmethod
    def subset(self, indices: Tensor) -> "Split":
        """The examples at ``indices`` (in that order), as a split of the same kind."""

    @abstractmethod
    def get(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Normalized float32 images (n, C, H, W) and int64 labels (n,), without augmentation."""

    @abstractmethod
    def batches(self, batch_size: int, *, generator: torch.Generator | None = None,
                augment: bool = False, drop_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of (images, labels) batches; see the class docstring."""


def check_batch_args(batch_size: int, generator: torch.Generator | None, augment: bool) -> None:
    """Reject a batch size < 1, and augmentation without a generator to draw from."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be an integer >= 1, got {batch_size!r}")
    if augment and generator is None:
        raise ConfigError("augment=True needs a generator: augmentation draws its randomness "
                          "from it (pass generator=torch.Generator().manual_seed(seed))")


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set.

    ``load(root, split, cache_dir)`` returns the full split; ``cache_dir=None`` means "do not
    cache decoded images" (``load_split`` passes ``default_cache_dir()`` instead of None).

    Example::

        DATASETS.register(DatasetSpec("toy", 2, (1, 4, 4), load_toy, "a toy problem",
                                             needs_root=False))
    """

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W) of a network input
    load: Callable[[Path, str, Path | None], Split]
    description: str  # one line for `python -m pai_bench list`
    needs_root: bool = True  # synthetic data sets: False
    # The content's fingerprint under a data root (``data.folders.tree_fingerprint`` when not
    # given; None from it: no files to fingerprint, e.g. torchvision's CIFAR archive, which
    # torchvision checks by md5). docs/identity.md.
    fingerprint: Callable[[Path], str | None] | None = None
    # None: the files are the data set, their fingerprint is part of each run's identity
    # (imagefolder, a user's data set). A tuple: the name stands for one content, and a
    # fingerprint outside it is refused (empty: checked by structure only, the class count).
    known: tuple[str, ...] | None = None


DATASETS: Registry[DatasetSpec] = Registry("dataset")
