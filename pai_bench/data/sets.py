"""The registered in-memory data sets: CIFAR-10/100, TinyImageNet, and a synthetic one.

A data set is found under ``root`` itself or under ``root/<name>`` (so one ``--data-root``
can hold several data sets); the error for a missing one lists every path it tried.
"""

from __future__ import annotations

import hashlib
import shutil
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from pai_bench.data.base import DATASETS, DatasetSpec
from pai_bench.data.folders import (FileList, annotated_folder, cache_path, class_folders,
                                    folders_fingerprint, image_size, read_images)
from pai_bench.data.imagenet import IMAGENET_STATS
from pai_bench.data.memory import CropFlip, MemorySplit
from pai_bench.errors import DataNotFoundError

# Per-channel (mean, std) of the training images, in [0, 1] pixel units.
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
TINYIMAGENET_STATS = ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821))
# The fingerprints (``data.folders.files_fingerprint``) the name cifar10 stands for in the
# image-folder form: the JPEG copy of the shared data folder (its README). Another export is
# refused (docs/identity.md); CIFAR-100, TinyImageNet and ImageNet are checked by their class
# count only (no copy here to take a fingerprint from).
CIFAR10_FINGERPRINTS = ("0dd8a731ceb82919",)
CIFAR_PAD, TINYIMAGENET_PAD = 4, 8  # zero padding of the random-crop augmentation, in pixels


def _candidates(root: Path, *names: str) -> list[Path]:
    root = Path(root).absolute()
    return [root] + [root / name for name in names]


def _check_classes(name: str, files: FileList, num_classes: int) -> None:
    """A folder with another class count is another data set: fail before decoding it."""
    if len(files.classes) != num_classes:
        shown = ", ".join(files.classes[:5]) + (", ..." if len(files.classes) > 5 else "")
        raise DataNotFoundError(f"{files.folder} has {len(files.classes)} classes ({shown}) but "
                                f"{name} has {num_classes}: does the data root hold another "
                                "data set?")


def _from_folder(name: str, files: FileList, split: str, num_classes: int, size: int,
                 cache_dir: Path | None) -> tuple:
    _check_classes(name, files, num_classes)
    cache = cache_path(cache_dir, name, files.folder, split) if cache_dir is not None else None
    return read_images(files, (size, size), cache)


def _split_folders(bases: list[Path], test_names: tuple[str, ...] = ("test",)
                   ) -> dict[str, Path] | None:
    """{split: the first ``base/split`` folder}, as the loaders find them; None if a split
    has no such folder (CIFAR in torchvision's archive form)."""
    found = {}
    for split, names in (("train", ("train",)), ("test", test_names)):
        found[split] = next((b / n for b in bases for n in names if (b / n).is_dir()), None)
    return None if None in found.values() else found


def cifar_fingerprint(root: Path, *, name: str) -> str | None:
    """The fingerprint of CIFAR's image folders under ``root`` (None: the archive form)."""
    splits = _split_folders(_candidates(root, name))
    return folders_fingerprint(splits) if splits is not None else None


def imagefolder_fingerprint(root: Path) -> str | None:
    """The fingerprint of an ``imagefolder`` tree: its train/ and test/ (or val/) files."""
    splits = _split_folders([Path(root).absolute()], ("test", "val"))
    return folders_fingerprint(splits) if splits is not None else None


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, the outermost first."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    return missing[::-1]


def _torchvision_cifar(root: Path, split: str, name: str, tv_class: str, searched: list[Path]):
    """torchvision's CIFAR archive under ``root``, downloaded there if absent."""
    import torchvision.datasets  # only where the image folders are absent
    cls = getattr(torchvision.datasets, tv_class)
    created = _missing_parents(root)
    try:
        data = cls(root=str(root), train=split == "train", download=True)
    except Exception as error:
        for folder in created:  # a failed download leaves no empty folders behind
            shutil.rmtree(folder, ignore_errors=True)
        raise DataNotFoundError(
            f"{name} {split} split not found. Looked for image folders {split}/<class>/*.jpg|png "
            f"in {', '.join(map(str, searched))}, then for torchvision's {cls.base_folder}/ in "
            f"{searched[0]}, whose download of {cls.filename} failed: {error}. Fix: pass "
            f"--data-root (or set PAI_BENCH_DATA) to a folder holding train/<class>/ and "
            f"test/<class>/ image folders or {cls.base_folder}/, or run once with network access "
            f"so torchvision downloads it.") from error
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    return images, torch.tensor(data.targets, dtype=torch.int64), tuple(data.classes)


def load_cifar(root: Path, split: str, cache_dir: Path | None, *, name: str, tv_class: str,
               num_classes: int, stats: tuple) -> MemorySplit:
    """CIFAR from ``<root>[/<name>]/<split>/<class>/*`` image folders, else torchvision's
    archive in ``root`` (downloaded if absent)."""
    searched = _candidates(root, name)
    folder = next((base / split for base in searched if (base / split).is_dir()), None)
    if folder is not None:
        images, labels, classes = _from_folder(name, class_folders(folder), split, num_classes,
                                               32, cache_dir)
    else:
        images, labels, classes = _torchvision_cifar(searched[0], split, name, tv_class, searched)
    return MemorySplit(images, labels, num_classes=num_classes, mean=stats[0], std=stats[1],
                       augment=CropFlip(CIFAR_PAD), classes=classes)


def _tinyimagenet_files(root: Path, split: str) -> FileList:
    """train/: class folders; test: val/ in the original layout (images/ + val_annotations.txt)
    or as class folders, else test/<class>/ (the original test/ has no labels)."""
    searched = []
    for base in _candidates(root, "tinyimagenet", "tiny-imagenet-200"):
        for folder in [base / "train"] if split == "train" else [base / "val", base / "test"]:
            searched.append(folder)
            if (folder / "val_annotations.txt").is_file():
                return annotated_folder(folder)
            if folder.is_dir():
                return class_folders(folder)
    raise DataNotFoundError(
        f"tinyimagenet {split} split not found; looked in {', '.join(map(str, searched))}. "
        "Expected train/<wnid>/images/*.JPEG (or train/<class>/*) and val/images/ with "
        "val/val_annotations.txt (or val/<class>/* or test/<class>/*), as in "
        "tiny-imagenet-200.zip. "
        "Fix: pass --data-root (or set PAI_BENCH_DATA) to that folder.")


def load_tinyimagenet(root: Path, split: str, cache_dir: Path | None, *,
                      num_classes: int = 200) -> MemorySplit:
    """TinyImageNet 64x64 in memory; training augmentation: random crop with 8-pixel zero
    padding (scaled from CIFAR's 4 for the doubled image size) + horizontal flip."""
    files = _tinyimagenet_files(root, split)
    images, labels, classes = _from_folder("tinyimagenet", files, split, num_classes, 64, cache_dir)
    mean, std = TINYIMAGENET_STATS
    return MemorySplit(images, labels, num_classes=num_classes, mean=mean, std=std,
                       augment=CropFlip(TINYIMAGENET_PAD), classes=classes)


def load_imagefolder(root: Path, split: str, cache_dir: Path | None) -> MemorySplit:
    """Any ``root/{train,test}/<class>/*.{jpg,jpeg,png}`` tree (``val/`` is taken for a missing
    ``test/``), held in memory. Every image must have the size of the first; the classes are the
    sorted folder names (the same in both splits); normalization uses ImageNet's statistics;
    training augmentation: random crop with 1/8 of the side as zero padding + horizontal flip.
    """
    folder = Path(root) / split
    if split == "test" and not folder.is_dir():
        folder = Path(root) / "val"
    if not folder.is_dir():
        raise DataNotFoundError(f"imagefolder {split} split not found: expected {folder}/<class>/"
                                f"*.jpg|png. Fix: pass --data-root (or set PAI_BENCH_DATA) to "
                                f"a folder holding train/ and test/ (or val/) class folders.")
    files = class_folders(folder)
    width, height = image_size(files.folder / files.paths[0])
    name = f"imagefolder-{hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]}"
    cache = cache_path(cache_dir, name, files.folder, split) if cache_dir is not None else None
    images, labels, classes = read_images(files, (height, width), cache)
    mean, std = IMAGENET_STATS
    return MemorySplit(images, labels, num_classes=len(classes), mean=mean, std=std,
                       augment=CropFlip(max(1, min(height, width) // 8)), classes=classes)


SYNTHETIC_SIZES = {"train": 1024, "test": 512}
SYNTHETIC_SEEDS = {"patterns": 0, "train": 1, "test": 2}  # fixed: the data never changes
SYNTHETIC_GRID = 4  # class patterns: random 4x4 grids upsampled, smooth enough to survive crops
SYNTHETIC_NOISE = 0.5  # per-pixel noise std; patterns have std ~0.6: learnable, not trivial


def load_synthetic(root: Path | None, split: str, cache_dir: Path | None, *,
                   num_classes: int = 10, shape: tuple[int, int, int] = (3, 32, 32)) -> MemorySplit:
    """A deterministic learnable problem for tests: class pattern + Gaussian noise, float images
    already zero-mean (identity normalization), balanced classes in a seeded order."""
    c, h, w = shape
    grid = torch.randn(num_classes, c, SYNTHETIC_GRID, SYNTHETIC_GRID,
                       generator=torch.Generator().manual_seed(SYNTHETIC_SEEDS["patterns"]))
    patterns = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
    g = torch.Generator().manual_seed(SYNTHETIC_SEEDS[split])
    n = SYNTHETIC_SIZES[split]
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]
    images = patterns[labels] + SYNTHETIC_NOISE * torch.randn(n, c, h, w, generator=g)
    return MemorySplit(images, labels, num_classes=num_classes, mean=(0.0,) * c, std=(1.0,) * c,
                       augment=CropFlip(CIFAR_PAD),
                       classes=tuple(f"class{i}" for i in range(num_classes)))


DATASETS.register(DatasetSpec(
    "cifar10", 10, (3, 32, 32),
    partial(load_cifar, name="cifar10", tv_class="CIFAR10", num_classes=10, stats=CIFAR10_STATS),
    "CIFAR-10: 50k train / 10k test 32x32 images, 10 classes (image folders or torchvision)",
    fingerprint=partial(cifar_fingerprint, name="cifar10"), known=CIFAR10_FINGERPRINTS))
DATASETS.register(DatasetSpec(
    "cifar100", 100, (3, 32, 32),
    partial(load_cifar, name="cifar100", tv_class="CIFAR100", num_classes=100,
            stats=CIFAR100_STATS),
    "CIFAR-100: 50k train / 10k test 32x32 images, 100 classes (image folders or torchvision)",
    known=()))
DATASETS.register(DatasetSpec(
    "tinyimagenet", 200, (3, 64, 64), load_tinyimagenet,
    "TinyImageNet: 100k train / 10k val 64x64 images, 200 classes (tiny-imagenet-200 folder)",
    known=()))
DATASETS.register(DatasetSpec(
    "imagefolder", 0, (3, 0, 0), load_imagefolder,
    "any --data-root holding train/<class>/* and test/<class>/* images (classes and size from "
    "the files)", fingerprint=imagefolder_fingerprint))
DATASETS.register(DatasetSpec(
    "synthetic", 10, (3, 32, 32), load_synthetic,
    "synthetic: 1024 train / 512 test seeded 32x32 class patterns + noise, for tests",
    needs_root=False))
