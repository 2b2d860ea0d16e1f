"""What a path the user gave is, named in one line: a named pipe, a device, a file where a folder
belongs. Reading a named pipe blocks until someone writes to it, and ``/dev/zero`` never ends, so
an input file is read only when it is a regular file of a sane size.

Example::

    text = read_regular_file(Path("sweep.toml"), "sweep file", max_bytes=MAX_TEXT_BYTES)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pai_bench.errors import ConfigError, StorageError

# The largest sweep file read: a sweep of every method, sparsity and seed of the paper is 2 KB.
MAX_TEXT_BYTES = 1 << 20

KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe", stat.S_ISCHR: "a device file",
         stat.S_ISBLK: "a device file", stat.S_ISSOCK: "a socket", stat.S_ISREG: "a file"}


def kind(path: Path) -> str | None:
    """``"a file"``, ``"a folder"``, ``"a named pipe"``, ``"a device file"``, ``"a socket"``,
    or None when nothing is there (a dangling link too)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise ConfigError(f"{path} cannot be read: {e.strerror}") from None
    return next((name for test, name in KINDS.items() if test(mode)), "not a regular file")


def require_regular_file(path: Path, what: str, max_bytes: int | None = None) -> int:
    """The size of ``path``, or a ConfigError saying what it is instead of a regular file
    (``what``: "masks file", "sweep file") or that it is larger than ``max_bytes``."""
    found = kind(path)
    if found is None:
        raise ConfigError(f"{what} {path} not found")
    if found != "a file":
        raise ConfigError(f"{what} {path} is {found}, not a regular file; give the file")
    size = os.stat(path).st_size
    if max_bytes is not None and size > max_bytes:
        raise ConfigError(f"{what} {path} is {size:,} bytes; at most {max_bytes:,} are read")
    return size


def read_regular_file(path: Path, what: str, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path`` once ``require_regular_file`` accepts it (read at most
    ``max_bytes`` + 1, so a file that grows meanwhile is refused, not read to the end)."""
    require_regular_file(path, what, max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(-1 if max_bytes is None else max_bytes + 1)
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise ConfigError(f"{what} {path} is over {max_bytes:,} bytes; at most that is read")
    return data


def require_folder(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a ConfigError saying what is there instead."""
    found = kind(path)
    if found is None:
        raise ConfigError(f"{what} {path} does not exist")
    if found != "a folder":
        raise ConfigError(f"{what} {path} is {found}, not a folder")
    return path


def make_folder(path: Path, what: str) -> Path:
    """``mkdir -p path``, or a StorageError naming what is in the way (a file where the folder
    or one above it belongs: FileExistsError or NotADirectoryError from the OS)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (Path(path), *Path(path).parents)
                        if kind(p) not in (None, "a folder")), Path(path))
        raise StorageError(f"{what} {path} cannot be made: {blocker} is {kind(blocker)}, "
                           f"not a folder; move it away") from None
    return Path(path)


__all__ = ["MAX_TEXT_BYTES", "kind", "require_regular_file", "read_regular_file",
           "require_folder", "make_folder"]
