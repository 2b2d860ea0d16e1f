"""Atomic file writes (a reader never sees a half-written result: write temp, then rename), and
the one inter-process lock."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from pai_bench.errors import ConfigError


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Strict JSON: a NaN or infinite float is an error here, never a non-standard literal."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def atomic_save_torch(obj: Any, path: Path) -> None:
    _atomic(path, lambda f: torch.save(obj, f))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def check_writable_dir(path: Path) -> None:
    """ConfigError unless ``path`` is a folder that can be written, or can be created as one
    (checked before any work starts, so nothing is computed that could not be stored)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"results path {path} exists and is not a folder")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"results folder {path} cannot be written ({existing} is not a "
                          f"writable folder)")


@contextmanager
def file_lock(path: Path):
    """An exclusive ``fcntl`` lock on ``path`` (created if missing), held for the ``with`` block.

    Processes on this machine (and on a shared filesystem that supports ``fcntl`` locks) wait for
    one another; the kernel releases the lock if its holder dies, so a killed worker never leaves
    a stale lock behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Invalid(Exception):
    """A stored file that does not fit the run it belongs to."""


def quarantine(path: Path, reason: str) -> Path:
    """Move ``path`` aside as ``<name>.corrupt`` (``.corrupt.1``, ... if taken); say so once."""
    target = path.with_name(path.name + ".corrupt")
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt.{n}")
    path.rename(target)
    print(f"[pai-bench] warning: {path} is invalid ({reason}); kept as {target.name}, "
          f"recomputing", file=sys.stderr)
    return target
