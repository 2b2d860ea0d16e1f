"""The image files of one split (``FileList``): below both the folder reader
(``pai_bench.data.folders``) and the decoded-image cache (``pai_bench.data.cache``), which checks
a cache entry against it."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from pai_bench.errors import DataNotFoundError


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
