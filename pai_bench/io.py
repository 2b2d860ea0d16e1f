"""Atomic file writes (a reader never sees a half-written result: write temp, then rename), and
the one inter-process lock.

A write the filesystem refuses (a read-only folder, a file where a folder belongs, a name too
long, a full disk) is a ``StorageError``: one line naming the path and the reason, and no
temporary file left behind."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from pai_bench import paths
from pai_bench.errors import ConfigError, StorageError

TEMPORARY = ".tmp"  # the suffix of atomic_write's temporary files
NAME_MAX = 255  # the longest file name most filesystems take (ext4, xfs, btrfs, tmpfs, APFS)
PATH_MAX = 4096  # the longest path Linux takes


def atomic_write(path: Path, write) -> None:
    """``write(file)`` into a temporary file beside ``path``, then renamed over it: a reader (and
    a process killed mid-write) never leaves ``path`` half-written. The temporary's name holds
    the writer's process id (``.<name>.<pid>.<random>.tmp``), so that what a killed writer left
    is found and removed (``clean_temporaries``)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=TEMPORARY)
    except OSError as e:
        raise storage_error(path, e) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        cause = os_error(e, path.parent)
        if cause is not None and not isinstance(e, StorageError):
            raise storage_error(path, cause) from None
        raise


def os_error(e: BaseException, folder: Path) -> OSError | None:
    """The OSError behind ``e``: itself, the one it was raised from or while handling
    (``torch.save`` turns the ENOSPC of its write into a RuntimeError "unexpected pos"), or,
    for a RuntimeError, an ENOSPC if ``folder``'s disk has no space left; None otherwise."""
    seen: BaseException | None = e
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    if isinstance(e, RuntimeError):
        try:
            if os.statvfs(folder).f_bavail == 0:
                return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            pass
    return None


def storage_error(path: Path, e: OSError) -> StorageError:
    """``e`` of a write of ``path`` as one line: the path, and the reason in words."""
    error = StorageError(f"cannot write {path}: {os_error_reason(path, e)}")
    error.errno = e.errno
    return error


def os_error_reason(path: Path, e: OSError) -> str:
    """Why the filesystem refused to write or reach ``path``, in words (naming the file or
    folder to blame where the error is about one)."""
    path = Path(path)
    code = e.errno
    if code == errno.ENOSPC:
        return "no space left on device"
    if code == errno.EDQUOT:
        return "disk quota exceeded"
    if code == errno.ENAMETOOLONG:
        return name_too_long(path) or "name too long"
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in reversed(path.parents)
                        if os.path.lexists(p) and not os.path.isdir(p)), None)
        if blocker is not None:
            return f"{blocker} is a file, not a folder"
    if code == errno.EISDIR:
        return f"{path} is a folder, not a file"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        folder = next((p for p in path.parents if os.path.isdir(p)), path.parent)
        how = "a read-only file system" if code == errno.EROFS else "permission denied"
        return f"{folder} is read-only ({how})"
    return (e.strerror or str(e) or type(e).__name__).splitlines()[0]


def name_too_long(path: Path) -> str | None:
    """What is too long in ``path`` ("name too long: ..."), or None."""
    longest = max(Path(path).parts, key=lambda part: len(os.fsencode(part)), default="")
    size = len(os.fsencode(longest))
    if size > NAME_MAX:
        return (f"name too long (a name of {size} characters, the limit is {NAME_MAX}: "
                f"{longest[:24]}...)")
    total = len(os.fsencode(os.path.abspath(path)))
    if total >= PATH_MAX:
        return f"name too long (a path of {total} characters, the limit is {PATH_MAX})"
    return None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Strict JSON: a NaN or infinite float is an error here, never a non-standard literal."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def atomic_save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically; a write the disk refuses is a StorageError, never torch's
    "unexpected pos" (``atomic_write`` finds the OSError behind it)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def clean_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder`` (of ``name`` only,
    when given) and return them: those whose writer process is gone (its id is in the name,
    ``atomic_write``; a name without one is an older version's, whose writer is gone too).
    Called where a killed write can have left one: when a process takes the lock of a run,
    a dense network or a method's masks (every writer there holds it), and before the image
    cache or a figure is written; a live process's temporary is never touched."""
    pattern = f".{name}.*{TEMPORARY}" if name else f".*{TEMPORARY}"
    removed = []
    for tmp in Path(folder).glob(pattern):
        if not _writer_alive(tmp.name):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:  # gone already, or a read-only folder: nothing to clean here
                pass
    return removed


def _writer_alive(tmp_name: str) -> bool:
    """Whether the process that named a temporary ``.<name>.<pid>.<random>.tmp`` runs."""
    parts = tmp_name[: -len(TEMPORARY)].split(".")
    pid = parts[-2] if len(parts) >= 3 else ""
    if not pid.isdigit() or int(pid) == 0:
        return False  # a temporary of an older version, whose writer gave no id
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def json_digest(obj: Any) -> str:
    """sha256 (16 hex digits) of ``obj`` as canonical JSON: what a summary's ``digest`` is of
    its other fields (an edited accuracy, count or status changes it)."""
    text = json.dumps(obj, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 (16 hex digits) of a file's bytes (a metric row, layer report or config.json
    a summary describes)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def atomic_save_figure(fig: Any, path: Path, **savefig) -> None:
    """A matplotlib figure saved atomically, in the format its suffix names (``.png``, ``.pdf``)."""
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format=path.suffix.lstrip("."), **savefig))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def check_writable_dir(path: Path) -> None:
    """ConfigError unless ``path`` is a folder that can be written, or can be created as one,
    and so are the folders the suite keeps in it (``paths.RESULT_FOLDERS``: runs, masks, dense,
    .locks) where they exist (checked before any work starts, so nothing is computed that could
    not be stored). One line naming the path to blame: a file where a folder belongs, a folder
    that is read-only, a name too long."""
    path = Path(path)
    too_long = name_too_long(path)
    if too_long:
        raise ConfigError(f"results folder {path} cannot be written: {too_long}")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ConfigError(f"results path {path} exists and is not a folder")
    existing = next(p for p in (path, *path.absolute().parents) if os.path.lexists(p))
    if not os.path.isdir(existing):
        raise ConfigError(f"results folder {path} cannot be written: {existing} is a file, "
                          f"not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"results folder {path} cannot be written: {existing} is read-only")
    if existing != path:
        return
    for name in paths.RESULT_FOLDERS:
        folder = path / name
        if not os.path.lexists(folder):
            continue
        if not os.path.isdir(folder):
            raise ConfigError(f"results folder {path} cannot be written: {folder} is a file, "
                              f"not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"results folder {path} cannot be written: {folder} is read-only")


@contextmanager
def file_lock(path: Path):
    """An exclusive ``fcntl`` lock on ``path`` (created if missing), held for the ``with`` block.

    Processes on this machine (and on a shared filesystem that supports ``fcntl`` locks) wait for
    one another; the kernel releases the lock if its holder dies, so a killed worker never leaves
    a stale lock behind. The block gets whether it had to wait for another holder."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "w")
    except OSError as e:
        raise storage_error(path, e) from None
    with handle as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            fcntl.flock(f, fcntl.LOCK_EX)
            waited = True
        try:
            yield waited
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def to_host(obj: Any) -> Any:
    """``obj`` (nested dicts, lists, tuples) with every tensor on the CPU: one device-to-host
    copy per tensor, made once, for a state that is both hashed and saved (a CPU tensor is
    itself, not a copy)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        host = type(obj)((k, to_host(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # a state_dict's module versions, which loading reads
            host._metadata = obj._metadata
        return host
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_host(v) for v in obj)
    return obj


def tensor_digest(obj: Any) -> str:
    """sha256 (16 hex digits) of every tensor in ``obj`` (nested dicts, lists, tuples), with
    its key path, dtype and shape, in a fixed order: what a stored state must still hash to
    when it is read back (a flipped byte in a weight changes it; 1e25 is finite and would pass
    any range check)."""
    h = hashlib.sha256()

    def walk(value, key: str) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
            if t.numel():  # hashed in place, through the buffer protocol: no copy
                h.update(t.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(value, dict):
            for k in sorted(value, key=str):
                walk(value[k], f"{key}/{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{key}/{i}")
        else:
            h.update(f"{key}={value!r}|".encode())
    walk(obj, "")
    return h.hexdigest()[:16]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Invalid(Exception):
    """A stored file that does not fit the run it belongs to."""


def quarantine(path: Path, reason: str, then: str = "recomputing") -> Path:
    """Move ``path`` aside as ``<name>.corrupt`` (``.corrupt.1``, ... if taken); say so once,
    with what happens next (``then``: "recomputing" where the caller recomputes it, else what
    the user can do)."""
    target = path.with_name(path.name + ".corrupt")
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt.{n}")
    try:
        path.rename(target)
    except OSError as e:  # a read-only folder: still a warning, the file is not used
        print(f"[pai-bench] warning: {path} is invalid ({reason}); it cannot be moved aside "
              f"({e.strerror}), so it is left in place; {then}", file=sys.stderr)
        return path
    print(f"[pai-bench] warning: {path} is invalid ({reason}); kept as {target.name}, "
          f"{then}", file=sys.stderr)
    return target
