"""The ``--device`` option: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; a device
made the process's own (``use_device``: ``set_device``, cuDNN's flags), one name per device
(``canonical``); and the ``--threads`` option's context (``torch_threads``)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch

from pai_bench.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):  # meta: no data to train
        raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here; "
                          f"valid here: auto, cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for, but MPS (Apple GPU) is not available "
                          f"here; valid: auto, cpu, cuda, cuda:N")
    return device


def canonical(device: torch.device | str) -> torch.device:
    """``device`` with its index: a bare ``cuda`` is the current CUDA device (``cuda:0`` unless
    ``torch.cuda.set_device`` chose another), so ``cuda`` and ``cuda:0`` name one device: one
    copy of a data set on it (``data/memory.py``), one key wherever something is kept per
    device."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


# cuDNN's choices for every CUDA run (``use_device``). benchmark=True: cuDNN times its
# convolution algorithms once per input shape and keeps the fastest (shapes are fixed here:
# every training batch has the same shape, ``train`` drops the last), a large speed-up for
# ResNet/VGG steps; the price is that the algorithm, hence the last bits of a result, may differ
# between two processes. deterministic=False for the same reason (the deterministic kernels are
# slower). TF32 stays PyTorch's default (on for convolutions, off for matmuls). So the promise
# "the same seed gives the same numbers, and a resumed run ends bit-identical to an
# uninterrupted one" is made on the CPU; on a GPU it is not promised until measured there
# (benchmarks/gpu_check.py, docs/protocol.md).
CUDNN_BENCHMARK = True
CUDNN_DETERMINISTIC = False


def use_device(device: torch.device | str) -> torch.device:
    """Make ``device`` this process's device before anything runs on it: on CUDA,
    ``torch.cuda.set_device`` (so that streams, cuDNN handles and memory statistics are those of
    the run's GPU, and a worker bound to ``cuda:1`` creates no context on ``cuda:0``) and cuDNN's
    flags (``CUDNN_BENCHMARK``, ``CUDNN_DETERMINISTIC``). The device, with its index."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device.index if device.index is not None
                              else torch.cuda.current_device())
        torch.backends.cudnn.benchmark = CUDNN_BENCHMARK
        torch.backends.cudnn.deterministic = CUDNN_DETERMINISTIC
        device = canonical(device)
    return device


def check_resume_threads(state: dict, device: torch.device, what: Path | str) -> None:
    """ConfigError when the training state ``what`` (a checkpoint) was written on another
    number of torch threads than this process's, on a CPU: there the count cuts every
    reduction into other partial sums, so a run resumed on another count would be neither
    the run of the one nor of the other (docs/running.md, "Determinism"). States written before the
    count was recorded, and CUDA runs, resume as they are."""
    then, now = state.get("threads"), torch.get_num_threads()
    if torch.device(device).type != "cpu" or then is None or then == now:
        return
    raise ConfigError(f"{what} was trained on {then} torch thread(s) and would resume on {now}: "
                      f"on a CPU the thread count changes the numbers. Fix: resume with "
                      f"--threads {then} (threads={then}), or delete {what} to train it again "
                      f"from the start")


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
