"""The decoded-image cache: one file per (data set, root, split), trusted only after two checks.

Issue 25 ("nothing wrong is ever stored"): a cache entry is used only if

* it is not *stale*: it stores the file list it was decoded from, with every file's size and
  modification time (``st_size``, ``st_mtime_ns``); any difference (a file added, removed, or
  rewritten in place under the same name) means the folder changed since: one warning line,
  decoded again, the entry overwritten;
* it is not *corrupt*: it stores a sha256 of the decoded arrays (images and labels), and its
  labels must be those of its file list; a mismatch, or a file that is no entry of this split at
  all (truncated, another type, 5 images for 90 labels), is kept aside as ``.corrupt``
  (``artifacts.quarantine``, the results' convention: one warning line), and decoded again.

Cost of the checks on CIFAR-10's 50,000 training images (150 MB of pixels): about 0.35 s per
read (docs/protocol.md, section 7, "Models and data"), against 20 s to decode them.
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

import torch
from torch import Tensor

from pai_bench.io import Invalid, quarantine, tensor_digest
from pai_bench.data.files import FileList
from pai_bench.errors import DataNotFoundError

CACHE_FORMAT = 3  # bump when the cache file's content changes: old files then stop matching
# (2: file sizes and modification times, sha256 of the decoded arrays)
SEPARATOR = "\0"  # of the stored paths: one string unpickles ~25x faster than 50,000 (0.25 s)


def cache_path(cache_dir: Path, name: str, root: Path, split: str) -> Path:
    """The cache file of one split: named by a hash of the data set, resolved root and split."""
    key = f"{CACHE_FORMAT}|{name}|{Path(root).resolve()}|{split}"
    return Path(cache_dir) / f"{name}-{split}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def content_digest(images: Tensor, labels: Tensor) -> str:
    """The decoded arrays' digest: ``io.tensor_digest``, the one the stored states use."""
    return tensor_digest({"images": images, "labels": labels})


def make_entry(files: FileList, stats: tuple[Tensor, Tensor], images: Tensor) -> dict:
    """What is stored: the arrays, their digest, and the file list with its ``stats`` (taken
    *before* decoding, so that an image edited while it was decoded reads as stale next time)."""
    labels = torch.tensor(files.labels, dtype=torch.int64)
    return {"format": CACHE_FORMAT, "paths": SEPARATOR.join(files.paths), "list": files.digest(),
            "sizes": stats[0], "mtimes": stats[1], "classes": list(files.classes),
            "images": images, "labels": labels, "content": content_digest(images, labels)}


def _check_shape(entry, size: tuple[int, int]) -> None:
    """Invalid unless ``entry`` is an entry of this format whose parts agree in type and count."""
    if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
        raise Invalid(f"not a data cache entry of format {CACHE_FORMAT}")
    if not isinstance(entry.get("paths"), str):
        raise Invalid("it has no file list")
    n = len(entry["paths"].split(SEPARATOR))
    wanted = {"images": (torch.uint8, (n, 3, *size)), "labels": (torch.int64, (n,)),
              "sizes": (torch.int64, (n,)), "mtimes": (torch.int64, (n,))}
    for key, (dtype, shape) in wanted.items():
        value = entry.get(key)
        if not isinstance(value, Tensor) or value.dtype != dtype or tuple(value.shape) != shape:
            got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, Tensor) else \
                type(value).__name__
            raise Invalid(f"{key} should be {dtype} {shape} for its {n} files, got {got}")
    if not (isinstance(entry.get("list"), str) and isinstance(entry.get("content"), str)
            and isinstance(entry.get("classes"), list)):
        raise Invalid("it has no class list, file-list digest or content digest")


def _stale(entry: dict, files: FileList, sizes: Tensor, mtimes: Tensor) -> str | None:
    """Why ``entry`` was not decoded from the files as they are now; None if it was."""
    if entry["paths"] != SEPARATOR.join(files.paths):
        cached = entry["paths"].split(SEPARATOR)
        new, gone = sorted(set(files.paths) - set(cached)), sorted(set(cached) - set(files.paths))
        what = f"{new[0]} is new" if new else f"{gone[0]} is gone" if gone else "reordered"
        return f"{len(files.paths)} files, {len(cached)} when cached; {what}"
    changed = torch.nonzero((entry["sizes"] != sizes) | (entry["mtimes"] != mtimes)).flatten()
    if len(changed):
        return (f"{files.paths[int(changed[0])]} and {len(changed) - 1} other file(s) changed "
                f"size or modification time")
    if entry["list"] != files.digest():
        return "the class of some files changed"
    return None


def _check_content(entry: dict, files: FileList) -> None:
    if content_digest(entry["images"], entry["labels"]) != entry["content"]:
        raise Invalid("its images or labels do not match their sha256")
    if entry["classes"] != list(files.classes) or not torch.equal(
            entry["labels"], torch.tensor(files.labels, dtype=torch.int64)):
        raise Invalid("its classes or labels are not those of its file list")


def read_cache(path: Path, files: FileList, size: tuple[int, int]) -> dict | None:
    """The entry at ``path`` if it exists, was decoded from ``files`` as they are now and holds
    what it was stored with; None otherwise (stale: a warning; corrupt: kept as .corrupt)."""
    if not path.exists():
        return None
    try:
        entry = torch.load(path, weights_only=True)
        _check_shape(entry, size)
        why = _stale(entry, files, *files.stats())
        if why is None:
            _check_content(entry, files)
    except DataNotFoundError:  # an image of the folder cannot be read: not the cache's fault
        raise
    except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, decode again
        _set_aside(path, f"{type(error).__name__}: {error}".splitlines()[0][:200])
        return None
    if why is not None:
        print(f"[pai-bench] warning: data cache {path} is stale ({why}); decoding again",
              file=sys.stderr)
        return None
    return entry


def _set_aside(path: Path, reason: str) -> None:
    try:
        quarantine(path, reason)
    except OSError as error:  # a read-only cache folder: decode anyway, it will not be written
        warnings.warn(f"could not move the invalid data cache {path} aside ({reason}): {error}")
