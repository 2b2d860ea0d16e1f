"""ImageNet, streamed from image folders: 1.28M JPEGs do not fit in memory as uint8 tensors.

Layout: ``<root>[/imagenet]/train/<wnid>/*`` and ``.../val/<wnid>/*`` (torchvision ImageFolder;
the "test" split reads val/). Training batches are RandomResizedCrop(224) + flip; ``get`` and
unaugmented batches are Resize(256) + CenterCrop(224).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from pai_bench.data.base import DATASETS, DatasetSpec, Split, check_batch_args
from pai_bench.errors import DataNotFoundError

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IMAGE_SIZE, RESIZE = 224, 256  # network input side; test images are resized to 256 then cropped
SEED_RANGE = 2**62  # per-example augmentation seeds are drawn from [0, SEED_RANGE)


def _transforms(image_size: int, resize: int):
    """(train, test) torchvision pipelines ending in normalized float32 tensors."""
    from torchvision import transforms as T  # torchvision loads where ImageNet is read
    normalize = [T.ToTensor(), T.Normalize(*IMAGENET_STATS)]
    train = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), *normalize])
    test = T.Compose([T.Resize(resize), T.CenterCrop(image_size), *normalize])
    return train, test


class _Examples(Dataset):
    """Maps (index, seed, augment) to (image, label). The seed makes a sample's augmentation a
    function of the caller's generator alone, whatever process or worker decodes it."""

    def __init__(self, samples: list[tuple[str, int]], train_transform, test_transform):
        self.samples = samples
        self.train_transform, self.test_transform = train_transform, test_transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int, bool]) -> tuple[Tensor, int]:
        index, seed, augment = item
        path, label = self.samples[index]
        from torchvision.datasets.folder import default_loader
        image = default_loader(path)
        if not augment:
            return self.test_transform(image), label
        with torch.random.fork_rng(devices=[]):  # torchvision transforms draw from the global RNG
            torch.manual_seed(seed)
            return self.train_transform(image), label


class _EpochOrder:
    """A sampler whose items the split replaces before each epoch, so that one DataLoader, and
    its worker processes, serve every epoch (``persistent_workers``)."""

    def __init__(self):
        self.items: list[tuple[int, int, bool]] = []

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class StreamingSplit(Split):
    """A split decoded batch by batch from image files by a DataLoader."""

    def __init__(self, samples: list[tuple[str, int]], classes: tuple[str, ...], num_classes: int,
                 *, image_size: int = IMAGE_SIZE, resize: int = RESIZE,
                 num_workers: int | None = None):
        self.samples, self.classes, self.num_classes = samples, tuple(classes), num_classes
        self.labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
        self.image_size, self.resize = image_size, resize
        self.num_workers = min(8, os.cpu_count() or 1) if num_workers is None else num_workers
        self.train_transform, self.test_transform = _transforms(image_size, resize)
        self._loaders: dict[tuple[int, bool], tuple[DataLoader, _EpochOrder]] = {}

    def subset(self, indices: Tensor) -> "StreamingSplit":
        return StreamingSplit([self.samples[i] for i in torch.as_tensor(indices).tolist()],
                              self.classes, self.num_classes, image_size=self.image_size,
                              resize=self.resize, num_workers=self.num_workers)

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        examples = _Examples(self.samples, self.train_transform, self.test_transform)
        images = [examples[(i, 0, False)][0] for i in torch.as_tensor(indices).tolist()]
        return torch.stack(images), self.labels[indices]

    def batches(self, batch_size: int, *, generator: torch.Generator | None = None,
                augment: bool = False, drop_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        check_batch_args(batch_size, generator, augment)
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        seeds = (torch.randint(0, SEED_RANGE, (n,), generator=generator) if augment
                 else torch.zeros(n, dtype=torch.int64))
        loader, epoch = self._loader(batch_size, drop_last)
        epoch.items = [(i, s, augment) for i, s in zip(order.tolist(), seeds.tolist())]
        yield from loader

    def _loader(self, batch_size: int, drop_last: bool) -> tuple[DataLoader, _EpochOrder]:
        """One DataLoader per batch shape, kept across epochs: its workers persist, batches
        land in pinned memory when a GPU is there (so the copy to it does not block)."""
        key = (batch_size, drop_last)
        if key not in self._loaders:
            epoch = _EpochOrder()
            workers = self.num_workers
            loader = DataLoader(_Examples(self.samples, self.train_transform, self.test_transform),
                                batch_size=batch_size, sampler=epoch, drop_last=drop_last,
                                num_workers=workers, persistent_workers=workers > 0,
                                pin_memory=torch.cuda.is_available())
            self._loaders[key] = (loader, epoch)
        return self._loaders[key]


def load_imagenet(root: Path, split: str, cache_dir: Path | None = None, *,
                  num_classes: int = 1000, **options) -> StreamingSplit:
    """ImageNet's ``train/`` or (for "test") ``val/`` class folders; ``options`` go to
    StreamingSplit (image_size, resize, num_workers). ``cache_dir`` is unused: no decode cache."""
    sub = "train" if split == "train" else "val"
    searched = [Path(root).absolute() / sub, Path(root).absolute() / "imagenet" / sub]
    folder = next((f for f in searched if f.is_dir()), None)
    if folder is None:
        raise DataNotFoundError(
            f"imagenet {split} split not found; looked for {', '.join(map(str, searched))}. "
            "Expected ILSVRC-2012 as image folders train/<wnid>/*.JPEG and val/<wnid>/*.JPEG "
            "(val sorted into class folders). Fix: pass --data-root (or set PAI_BENCH_DATA).")
    from torchvision.datasets import ImageFolder
    try:
        found = ImageFolder(str(folder))
    except FileNotFoundError as error:  # no class folders, or a class without images
        raise DataNotFoundError(f"imagenet {split} split in {folder}: {error}") from error
    if len(found.classes) != num_classes:
        raise DataNotFoundError(f"{folder} has {len(found.classes)} classes; imagenet has "
                                f"{num_classes}: does the data root hold another data set?")
    return StreamingSplit(found.samples, tuple(found.classes), num_classes, **options)


DATASETS.register(DatasetSpec(
    "imagenet", 1000, (3, IMAGE_SIZE, IMAGE_SIZE), load_imagenet,
    "ImageNet (ILSVRC-2012): 1.28M train / 50k val images, 1000 classes, streamed from folders",
    known=()))
