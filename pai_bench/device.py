"""The ``--device`` option: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; and
the ``--threads`` option's context (``torch_threads``)."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from pai_bench.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    return device


@contextmanager
def torch_threads(n: int | None):
    """``torch.set_num_threads(n)`` for a block, the caller's count restored (None: as is)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
