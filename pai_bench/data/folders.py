"""Image folders -> one uint8 tensor, decoded once and cached.

Decoding CIFAR-10's 60,000 JPEGs with PIL costs seconds of CPU time per run, so the decoded
tensor (with labels and class names) is saved as ONE file per (data set, root, split) in a cache
folder (the data folder may be read-only) and reused while the split's file list is unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pai_bench.errors import DataNotFoundError
from pai_bench.io import atomic_save_torch

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
CACHE_FORMAT = 1  # bump when the cache file's content changes: old files then stop matching
DECODE_CHUNK = 2500  # images per worker task; fewer than two chunks are decoded in-process
MAX_DECODE_WORKERS = 8


@dataclass(frozen=True)
class FileList:
    """The image files of one split: paths relative to ``folder``, labels, class names."""

    folder: Path
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]

    def digest(self) -> str:
        """Hash of the (file, class) list: a cache is valid only for the same list."""
        h = hashlib.sha256()
        for path, label in zip(self.paths, self.labels):
            h.update(f"{path}\t{self.classes[label]}\n".encode())
        return h.hexdigest()


def _image_names(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries
                      if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))


def class_folders(folder: Path) -> FileList:
    """``folder/<class>/*.{jpg,jpeg,png}``, or ``folder/<class>/images/*`` (TinyImageNet's
    original train layout). Labels index the sorted class folder names."""
    with os.scandir(folder) as entries:
        classes = sorted(e.name for e in entries if e.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        sub = f"{name}/images" if (folder / name / "images").is_dir() else name
        names = _image_names(folder / sub)
        paths += [f"{sub}/{n}" for n in names]
        labels += [label] * len(names)
    if not paths:
        raise DataNotFoundError(f"no .jpg/.jpeg/.png images in {folder}/<class>/")
    return FileList(folder, tuple(paths), tuple(labels), tuple(classes))


def annotated_folder(folder: Path, annotations: str = "val_annotations.txt") -> FileList:
    """TinyImageNet's original validation layout: ``images/*``, labelled by the annotations
    file (lines ``file<TAB>wnid<TAB>box...``). Labels index the sorted wnids."""
    rows = [line.split("\t")[:2] for line in (folder / annotations).read_text().splitlines()
            if line.strip()]
    if not rows:
        raise DataNotFoundError(f"{folder / annotations} lists no images")
    rows.sort()
    classes = sorted({wnid for _, wnid in rows})
    index = {wnid: i for i, wnid in enumerate(classes)}
    return FileList(folder, tuple(f"images/{name}" for name, _ in rows),
                    tuple(index[wnid] for _, wnid in rows), tuple(classes))


def _decode_chunk(paths: list[str], size: tuple[int, int]) -> np.ndarray:
    """Decode images to RGB uint8 (n, H, W, 3); a worker task, so a module-level function."""
    out = np.empty((len(paths), *size, 3), np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as e:  # PIL: truncated, foreign, unreadable
            raise DataNotFoundError(f"cannot read image {path}: {e}") from None
        if pixels.shape[:2] != size:
            raise DataNotFoundError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]} pixels; "
                                    f"this data set expects {size[1]}x{size[0]}")
        out[i] = pixels
    return out


def decode_images(files: FileList, size: tuple[int, int]) -> Tensor:
    """All images of ``files`` as uint8 (N, 3, H, W), decoded on up to all cores."""
    paths = [str(files.folder / p) for p in files.paths]
    chunks = [paths[i:i + DECODE_CHUNK] for i in range(0, len(paths), DECODE_CHUNK)]
    workers = min(len(chunks), os.cpu_count() or 1, MAX_DECODE_WORKERS)
    if workers <= 1:
        arrays = [_decode_chunk(chunk, size) for chunk in chunks]
    else:
        with ProcessPoolExecutor(workers) as pool:
            arrays = list(pool.map(_decode_chunk, chunks, repeat(size)))
    return torch.from_numpy(np.concatenate(arrays)).permute(0, 3, 1, 2).contiguous()


def cache_path(cache_dir: Path, name: str, root: Path, split: str) -> Path:
    """The cache file of one split: named by a hash of the data set, resolved root and split."""
    key = f"{CACHE_FORMAT}|{name}|{Path(root).resolve()}|{split}"
    return Path(cache_dir) / f"{name}-{split}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def _read_cache(path: Path, files: FileList) -> dict | None:
    """The cached entry if it exists, loads, and was made from the same file list."""
    if not path.exists():
        return None
    try:
        entry = torch.load(path, weights_only=True)
    except Exception as error:  # a truncated or foreign file: decode again and overwrite
        warnings.warn(f"ignoring unreadable data cache {path}: {error}")
        return None
    same = entry.get("count") == len(files.paths) and entry.get("digest") == files.digest()
    return entry if same else None


def read_images(files: FileList, size: tuple[int, int], cache_file: Path | None
                ) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """(uint8 images (N, 3, H, W), int64 labels, class names) of ``files``, from ``cache_file``
    when it matches the file list, else decoded and written there (None: no cache)."""
    entry = _read_cache(cache_file, files) if cache_file is not None else None
    if entry is None:
        start = time.perf_counter()
        entry = {"format": CACHE_FORMAT, "count": len(files.paths), "digest": files.digest(),
                 "classes": list(files.classes), "images": decode_images(files, size),
                 "labels": torch.tensor(files.labels, dtype=torch.int64)}
        log.info("decoded %d images of %s in %.1f s", len(files.paths), files.folder,
                 time.perf_counter() - start)
        if cache_file is not None:
            try:
                atomic_save_torch(entry, cache_file)  # temp file + os.replace
            except OSError as error:  # an unwritable cache costs time, not correctness
                warnings.warn(f"could not write the data cache {cache_file}: {error}")
    return entry["images"], entry["labels"], tuple(entry["classes"])
