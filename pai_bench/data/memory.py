"""In-memory splits: every example held as one tensor, batches cut and augmented vectorized.

Images stay in their stored dtype (uint8 for decoded photos: 4x smaller than float32) and are
normalized one batch at a time. Augmentation works on the whole batch with tensor indexing,
never a per-image Python loop, so it costs ~1 ms per CIFAR batch of 128.

``split.to(device)`` keeps the images on the training device (a GPU holds CIFAR-10 in 150 MB):
batches are then cut, cropped, flipped and normalized there, and only the random draws (the
epoch's permutation, crop offsets and flips: a few integers per image) come from the CPU
generator, so a seed gives the very same batches on every device. A batch's indices and draws
reach the GPU in one non-blocking copy from pinned memory: the host never waits for the GPU.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pai_bench.data.base import Split, check_batch_args
from pai_bench.device import canonical
from pai_bench.errors import ConfigError

# (raw batch, generator) -> raw batch. One with ``draw(n, generator)`` and ``apply(raw, draws)``
# (as CropFlip) has its draws shipped to a GPU with the batch's indices, in one copy.
Augment = Callable[[Tensor, torch.Generator], Tensor]


def crop_flip_at(padded: Tensor, top: Tensor, left: Tensor, flip: Tensor,
                 size: tuple[int, int], grids: dict | None = None) -> Tensor:
    """Crop ``size`` windows at per-sample offsets from a padded batch, mirrored where ``flip``.

    padded (n, C, H+2p, W+2p); top, left int64 (n,); flip bool (n,). One gather does both:
    output column j reads padded column left + j, or left + (W-1-j) when flipped (torchvision's
    order: crop first, then flip the crop). ``grids``: a dict that keeps the index grids no draw
    changes, per batch shape, from one call to the next (``MemorySplit.batches``: one per epoch).
    """
    n, c = padded.shape[:2]
    h, w = size
    dev = padded.device
    top, left, flip = top.to(dev), left.to(dev), flip.to(dev)
    grids, key = {} if grids is None else grids, (n, c, h, w, dev)
    if key not in grids:
        grids[key] = _index_grid(*key)
    samples, channels, down, straight, mirrored = grids[key]
    rows = top[:, None] + down  # (n, h)
    cols = torch.where(flip[:, None], mirrored, straight) + left[:, None]  # (n, w)
    return padded[samples, channels, rows[:, None, :, None], cols[:, None, None, :]]


def _index_grid(n: int, c: int, h: int, w: int, device: torch.device) -> tuple[Tensor, ...]:
    """The parts of a batch's crop indices that no draw changes (made once per epoch, not per
    batch: each is a kernel launch on a GPU): sample and channel indices broadcast for the
    gather, the rows 0..h-1, and the columns 0..w-1 straight and mirrored."""
    columns = torch.arange(w, device=device)
    return (torch.arange(n, device=device)[:, None, None, None],
            torch.arange(c, device=device)[None, :, None, None], torch.arange(h, device=device),
            columns[None], (w - 1 - columns)[None])


class CropFlip:
    """Random crop with ``pad`` pixels of zero padding, then a random horizontal flip: the
    standard CIFAR (pad 4) / TinyImageNet (pad 8) training augmentation. Picklable.

    Zero is padded in the stored pixel space (black for uint8), as torchvision's
    ``RandomCrop(padding=pad)`` does before ``Normalize``. In two halves, so that a split on a
    GPU draws on the CPU and ships the draws with the batch's indices in one copy:
    ``draw(n, generator)`` takes, in this order, the top offsets, the left offsets and the flips
    (a (3, n) int64 tensor); ``apply(raw, draws)`` crops and flips on the images' device.
    """

    def __init__(self, pad: int):
        self.pad = pad

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        span = 2 * self.pad + 1
        top = torch.randint(0, span, (n,), generator=generator)
        left = torch.randint(0, span, (n,), generator=generator)
        flip = torch.randint(0, 2, (n,), generator=generator)
        return torch.stack([top, left, flip])

    def apply(self, images: Tensor, draws: Tensor, grids: dict | None = None) -> Tensor:
        p = self.pad
        padded = F.pad(images, (p, p, p, p))
        return crop_flip_at(padded, draws[0], draws[1], draws[2].bool(), images.shape[-2:],
                            grids)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        return self.apply(images, self.draw(len(images), generator))

    def __repr__(self) -> str:
        return f"CropFlip(pad={self.pad})"


def to_device(idx: Tensor, draws: Tensor | None, device: torch.device
              ) -> tuple[Tensor, Tensor | None]:
    """A batch's indices (and augmentation draws) on ``device`` in ONE copy: from pinned memory
    without blocking the host on CUDA, so that cutting a batch never waits for the GPU."""
    packed = idx[None] if draws is None else torch.cat([idx[None], draws])
    if device.type == "cuda":
        packed = packed.pin_memory()
    packed = packed.to(device, non_blocking=True)
    return packed[0], (None if draws is None else packed[1:])


class MemorySplit(Split):
    """A split held in memory: raw images (uint8 in [0, 255] or float), labels, mean/std.

    Normalization is ``(x / 255 - mean) / std`` for uint8 (torchvision's ToTensor + Normalize)
    and ``(x - mean) / std`` for float images.
    """

    def __init__(self, images: Tensor, labels: Tensor, *, num_classes: int, mean: Sequence[float],
                 std: Sequence[float], augment: Augment | None = None, classes: Sequence[str] = ()):
        if images.dim() != 4 or len(images) != len(labels):
            raise ValueError(f"need images (N, C, H, W) and labels (N,), got "
                             f"{tuple(images.shape)} and {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.num_classes = num_classes
        self.mean, self.std = tuple(mean), tuple(std)
        self.augment = augment
        self.classes = tuple(classes)
        self._copies: dict[torch.device, "MemorySplit"] = {}  # to(device), made once each
        # (1, C, 1, 1) on the images' device, made once: a tensor built on a GPU is a copy the
        # host waits for, which normalize() must not make per batch
        self._mean, self._std = (torch.tensor(v, dtype=torch.float32, device=images.device)
                                 .view(1, -1, 1, 1) for v in (self.mean, self.std))

    def subset(self, indices: Tensor) -> "MemorySplit":
        return MemorySplit(self.images[indices], self.labels[indices], num_classes=self.num_classes,
                           mean=self.mean, std=self.std, augment=self.augment, classes=self.classes)

    def to(self, device: torch.device | str) -> "MemorySplit":
        """This split with its images and labels on ``device`` (itself if already there). The
        copy is made once per device and kept: the training loop and every per-epoch evaluation
        ask for it, and must not copy the data set each time; ``cuda`` and ``cuda:0`` are one
        device, with one copy (``device.canonical``)."""
        device = canonical(device)
        if self.images.device == device:
            return self
        if device not in self._copies:
            self._copies[device] = MemorySplit(
                self.images.to(device), self.labels.to(device), num_classes=self.num_classes,
                mean=self.mean, std=self.std, augment=self.augment, classes=self.classes)
        return self._copies[device]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def normalize(self, raw: Tensor) -> Tensor:
        """Raw stored images -> normalized float32 network inputs (on the images' device)."""
        x = raw.to(torch.float32)
        if raw.dtype == torch.uint8:
            x = x.div_(255)
        return x.sub_(self._mean).div_(self._std)

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        indices = indices.to(self.images.device)
        return self.normalize(self.images[indices]), self.labels[indices]

    def batches(self, batch_size: int, *, generator: torch.Generator | None = None,
                augment: bool = False, drop_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        check_batch_args(batch_size, generator, augment)
        if augment and self.augment is None:
            raise ConfigError("this split has no training augmentation; use augment=False")
        n, device = len(self), self.images.device
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        two_halves = augment and hasattr(self.augment, "draw")  # CropFlip: draw, then apply
        grids: dict = {}  # its index grids, made at the epoch's first batch of each shape
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if drop_last and len(idx) < batch_size:
                return
            # the draws are the CPU generator's, always, in the same order on every device
            draws = self.augment.draw(len(idx), generator) if two_halves else None
            if device.type != "cpu":
                idx, draws = to_device(idx, draws, device)
            raw = self.images[idx]
            if two_halves:
                raw = self.augment.apply(raw, draws, grids)
            elif augment:
                raw = self.augment(raw, generator)
            yield self.normalize(raw), self.labels[idx]
