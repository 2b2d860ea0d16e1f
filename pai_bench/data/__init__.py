"""Data sets: a registry of ``DatasetSpec`` and ``load_split``, the one way to get examples.

Example::

    from pai_bench.data import load_split

    train = load_split("cifar10", "../shared/data/cifar10-jpeg", "train")
    g = torch.Generator().manual_seed(0)
    for images, labels in train.batches(128, generator=g, augment=True):
        ...                                   # float32 (128, 3, 32, 32), int64 (128,)
    snip = load_split("cifar10", root, "train", subset=100, seed=0)   # 10 per class

Registered: cifar10, cifar100, tinyimagenet (in memory, decoded once and cached), imagenet
(streamed), synthetic (seeded tensors for tests, no files).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from pai_bench.data.base import DATASETS, SPLITS, DatasetSpec, Split
from pai_bench.data.memory import MemorySplit
from pai_bench.errors import ConfigError, DataNotFoundError
from pai_bench.data import imagenet, sets  # noqa: F401  (importing them registers them)

DATA_ENV, CACHE_ENV = "PAI_BENCH_DATA", "PAI_BENCH_CACHE"
DEFAULT_DATA_ROOT = Path("data")  # relative to the working directory

__all__ = ["DATASETS", "DatasetSpec", "MemorySplit", "Split", "balanced_indices",
           "default_cache_dir", "load_split", "resolve_data_root"]


def resolve_data_root(value: str | Path | None) -> Path:
    """The --data-root value, else $PAI_BENCH_DATA, else ./data."""
    if value not in (None, ""):
        return Path(value).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return DEFAULT_DATA_ROOT


def default_cache_dir() -> Path:
    """Where decoded images are cached: $PAI_BENCH_CACHE, else ~/.cache/pai_bench."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "pai_bench"


def balanced_indices(labels: Tensor, count: int, num_classes: int,
                     generator: torch.Generator, what: str | None = None) -> Tensor:
    """A seeded class-balanced sample of ``count`` indices, sorted.

    Each class gets ``count // num_classes`` examples and the first ``count % num_classes``
    classes one more. Vectorized: shuffle once, stable-sort the shuffled labels to group classes,
    and keep the first ``need[c]`` of each group. ``what``: the option that asked for ``count``
    (``--test-subset``), named by the errors.
    """
    n = len(labels)
    asked = f"{what} {count}" if what else f"subset size {count}"
    if not num_classes <= count <= n:
        raise ConfigError(f"{asked} is out of range: the subset size must be between the number "
                          f"of classes ({num_classes}) and the split size ({n})")
    need = torch.full((num_classes,), count // num_classes)
    need[: count % num_classes] += 1
    if n and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        raise ConfigError(f"labels must lie in [0, {num_classes}), got [{int(labels.min())}, "
                          f"{int(labels.max())}]")
    have = torch.bincount(labels, minlength=num_classes)
    short = torch.nonzero(have < need).flatten()
    if len(short):
        c = int(short[0])
        raise ConfigError(f"{asked}: cannot draw {count} class-balanced examples: class {c} "
                          f"has {int(have[c])} examples, {int(need[c])} needed")
    perm = torch.randperm(n, generator=generator)
    order = torch.argsort(labels[perm], stable=True)
    grouped, grouped_labels = perm[order], labels[perm][order]
    starts = torch.cumsum(have, 0) - have  # first position of each class in the grouping
    rank = torch.arange(n) - starts[grouped_labels]
    return torch.sort(grouped[rank < need[grouped_labels]]).values


def load_split(name: str, root: Path | str | None, split: str, *, subset: int | None = None,
               seed: int = 0, cache_dir: Path | None = None, at_most: bool = False,
               what: str | None = None) -> Split:
    """Load a registered data set's split ("train" or "test").

    ``root`` goes through ``resolve_data_root`` (ignored by data sets with needs_root False);
    ``subset`` keeps a class-balanced sample of that many examples drawn with ``seed``;
    ``cache_dir`` defaults to ``default_cache_dir()``; ``at_most``: a ``subset`` as large as the
    split or larger means the whole split (a preset's size on a small data set), not an error;
    ``what``: the option that set ``subset`` (``--subset``), named by its errors.
    """
    spec = DATASETS.get(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    path = resolve_data_root(root) if spec.needs_root else None
    try:
        data = spec.load(path, split,
                         Path(cache_dir) if cache_dir is not None else default_cache_dir())
    except PermissionError as error:  # e.g. a root that cannot be entered: one line, any loader
        raise DataNotFoundError(f"cannot read the data of {name} at {error.filename or path}: "
                                f"permission denied. Fix: make it readable (chmod -R u+rX) or "
                                f"pass another --data-root") from None
    if subset is None or (at_most and subset >= len(data)):
        return data
    generator = torch.Generator().manual_seed(seed)
    return data.subset(balanced_indices(data.labels, subset, data.num_classes, generator, what))
