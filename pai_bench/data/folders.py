"""Image folders -> one uint8 tensor, decoded once and cached.

Decoding CIFAR-10's 60,000 JPEGs with PIL costs seconds of CPU time per run, so the decoded
tensor (with labels and class names) is saved as ONE file per (data set, root, split) in a cache
folder (the data folder may be read-only) and reused while the split's files are unchanged.

The cache is checked by content and by file list before it is used (``pai_bench.data.cache``).
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

from pai_bench.data.cache import cache_path, make_entry, read_cache  # noqa: F401 (sets.py)
from pai_bench.errors import DataNotFoundError
from pai_bench.io import atomic_save_torch, clean_temporaries

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
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

    def stats(self) -> tuple[Tensor, Tensor]:
        """int64 (st_size, st_mtime_ns) of every file: an image rewritten in place under the
        same name changes them, so a cache keyed by names alone would serve its old pixels."""
        folder, sizes, mtimes = str(self.folder), [], []
        for path in self.paths:
            try:
                st = os.stat(os.path.join(folder, path))
            except OSError as error:
                raise DataNotFoundError(f"cannot read image {self.folder / path}: "
                                        f"{error.strerror or error}") from None
            sizes.append(st.st_size)
            mtimes.append(st.st_mtime_ns)
        return torch.tensor(sizes, dtype=torch.int64), torch.tensor(mtimes, dtype=torch.int64)


def _entries(folder: Path) -> tuple[list[str], list[str]]:
    """(sub-folder names, image file names) in ``folder``, sorted. A folder that cannot be read
    (permission denied above all) is a DataNotFoundError naming it, not an OSError traceback."""
    try:
        with os.scandir(folder) as entries:
            found = [(e.name, e.is_dir(), e.is_file()) for e in entries]
    except OSError as error:
        raise DataNotFoundError(f"cannot read the data folder {folder}: "
                                f"{error.strerror or error}. Fix: make it readable "
                                f"(chmod -R u+rX) or pass another --data-root") from None
    return (sorted(name for name, is_dir, _ in found if is_dir),
            sorted(name for name, _, is_file in found
                   if is_file and name.lower().endswith(IMAGE_EXTENSIONS)))


def class_folders(folder: Path) -> FileList:
    """``folder/<class>/*.{jpg,jpeg,png}``, or ``folder/<class>/images/*`` (TinyImageNet's
    original train layout). Labels index the sorted class folder names.

    A class folder without images is an error: its class would still get an output unit, so
    a 3-way head would train on 2 classes and the run would finish as if nothing were wrong."""
    classes = _entries(folder)[0]
    paths, labels = [], []
    for label, name in enumerate(classes):
        subs, names = _entries(folder / name)
        sub = f"{name}/images" if "images" in subs else name
        if sub != name:
            names = _entries(folder / sub)[1]
        if not names:
            raise DataNotFoundError(
                f"class folder {folder / sub} holds no {'/'.join(IMAGE_EXTENSIONS)} images, so "
                f"{len(classes)} classes would be trained on {len(classes) - 1}. Fix: add its "
                f"images or remove the folder")
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


def read_images(files: FileList, size: tuple[int, int], cache_file: Path | None
                ) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """(uint8 images (N, 3, H, W), int64 labels, class names) of ``files``, from ``cache_file``
    when it holds them (``data.cache.read_cache``), else decoded and written there (None: no
    cache)."""
    if cache_file is not None:  # what a writer killed mid-write left (78 MB for CIFAR-10)
        clean_temporaries(cache_file.parent, cache_file.name)
    entry = read_cache(cache_file, files, size) if cache_file is not None else None
    if entry is None:
        start = time.perf_counter()
        stats = files.stats()  # before decoding: an edit while decoding reads as stale later
        entry = make_entry(files, stats, decode_images(files, size))
        log.info("decoded %d images of %s in %.1f s", len(files.paths), files.folder,
                 time.perf_counter() - start)
        if cache_file is not None:
            try:
                atomic_save_torch(entry, cache_file)  # temp file + os.replace
            except OSError as error:  # an unwritable cache costs time, not correctness
                warnings.warn(f"could not write the data cache {cache_file}: {error}")
    return entry["images"], entry["labels"], tuple(entry["classes"])
