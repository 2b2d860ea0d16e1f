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
from itertools import repeat
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pai_bench.data.cache import cache_path, make_entry, read_cache  # noqa: F401 (sets.py)
from pai_bench.data.files import FileList
from pai_bench.errors import DataNotFoundError
from pai_bench.io import atomic_save_torch, clean_temporaries

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
DECODE_CHUNK = 2500  # images per worker task; fewer than two chunks are decoded in-process
MAX_DECODE_WORKERS = 8


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
    dirs = sorted(name for name, is_dir, _ in found if is_dir)
    images = sorted(name for name, _, is_file in found
                    if is_file and name.lower().endswith(IMAGE_EXTENSIONS))
    for name in (*dirs, *images):  # the data's fingerprint and the cache store names as UTF-8
        if not name.isprintable() or name != name.encode("utf-8", "replace").decode():
            raise DataNotFoundError(f"the name {os.fsencode(name)!r} in {folder} is not "
                                    f"UTF-8 text. Fix: rename it")
    return dirs, images


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


# What PIL raises for a file it cannot decode: truncated, foreign, unreadable, or a
# decompression bomb (an image of more pixels than PIL's MAX_IMAGE_PIXELS guard allows).
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the image at ``path``, or a DataNotFoundError naming it."""
    try:
        with Image.open(path) as image:
            return image.size
    except UNREADABLE as e:
        raise DataNotFoundError(f"cannot read image {path}: {e}") from None


def _decode_chunk(paths: list[str], size: tuple[int, int]) -> np.ndarray:
    """Decode images to RGB uint8 (n, H, W, 3); a worker task, so a module-level function."""
    out = np.empty((len(paths), *size, 3), np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except UNREADABLE as e:
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


def files_fingerprint(splits: dict[str, FileList]) -> str:
    """sha256 (16 hex digits) of the splits' file lists: every file's path, class and size in
    bytes (docs/identity.md: the names and sizes, not the bytes, nor the modification times
    that a copy changes)."""
    h = hashlib.sha256()
    for split in sorted(splits):
        files = splits[split]
        h.update(f"{split}\n{files.digest()}\n".encode())
        h.update(_sizes(files).numpy().tobytes())
    return h.hexdigest()[:16]


def _sizes(files: FileList) -> Tensor:
    """The files' sizes, from ``FileList.stats`` (its modification times are left out)."""
    return files.stats()[0]


_FINGERPRINTS: dict[tuple, str] = {}  # (folders, their modification times) -> fingerprint


def folders_fingerprint(splits: dict[str, Path], listing=class_folders) -> str:
    """``files_fingerprint`` of the class-folder splits ``{split: folder}``, computed once per
    process while no folder of them changed (adding, removing or renaming a file changes its
    folder's modification time): CIFAR-10's 60,000 files take 0.3 s to stat, and a sweep
    prepares every config."""
    key = tuple((s, str(f.resolve()), _folder_times(f)) for s, f in sorted(splits.items()))
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = files_fingerprint({s: listing(f) for s, f in splits.items()})
    return _FINGERPRINTS[key]


def _folder_times(folder: Path) -> tuple[int, ...]:
    """Modification times of ``folder`` and the folders below it (two levels: class folders
    and TinyImageNet's ``<class>/images``)."""
    times = [os.stat(folder).st_mtime_ns]
    for sub in _entries(folder)[0]:
        times.append(os.stat(folder / sub).st_mtime_ns)
        times += [os.stat(folder / sub / s).st_mtime_ns for s in _entries(folder / sub)[0]]
    return tuple(times)


def tree_fingerprint(root: Path) -> str | None:
    """A registered data set's fingerprint when it gives none: every file under ``root``
    (relative path and size), None when ``root`` is no folder."""
    root = Path(root)
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for base, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            path = os.path.join(base, name)
            h.update(f"{os.path.relpath(path, root)}\t{os.path.getsize(path)}\n".encode())
    return h.hexdigest()[:16]
