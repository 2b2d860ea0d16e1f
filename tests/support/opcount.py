"""Count what a piece of code asks of the device: dispatched ATen ops and host synchronisations.

``with OpCount() as c: ...`` counts, on any device (the CPU included):

* ``c.ops``: every ATen operator dispatched below autograd (forward, backward and optimizer
  ops alike; a ``torch._foreach_*`` op is one, as it is one multi-tensor launch on a GPU). On a
  GPU each of these is about one kernel launch (views such as ``detach`` or ``view`` launch
  nothing; ``c.by_op`` lets a reader see which they are).
* ``c.syncs``: the calls that make the host wait for a GPU: ``.item()``, ``bool()``,
  ``float()``, ``int()`` and ``__index__`` of a tensor (ATen's ``_local_scalar_dense``),
  ``.tolist()``, ``.numpy()``, ``.cpu()``, ``.to("cpu")`` of a tensor that is not on the CPU, and
  ops whose output size depends on the data (``nonzero``, ``masked_select``, boolean-mask
  indexing, ``unique``). Each sync is listed in ``c.sync_sites`` with the source line that made it,
  so a test asserting none can say where one came from.

On the CPU nothing really waits, but the same code on a GPU would: that is what lets the
training loop's "no host synchronisation inside an epoch" be a test on a machine without one.
"""

from __future__ import annotations

import traceback
from collections import Counter
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# Tensor methods that copy a value to the host (the host waits for the device to get there)
HOST_READS = ("tolist", "numpy", "cpu")
# ATen ops that read a value back, or whose output's size depends on the data (the host must
# know it to allocate the output)
SYNC_OPS = ("_local_scalar_dense", "nonzero", "masked_select", "_unique", "_unique2",
            "unique_dim", "unique_consecutive")
_HERE = str(Path(__file__).resolve())
_TORCH = str(Path(torch.__file__).resolve().parent)


def _site() -> str:
    """The innermost source line outside torch and this module: where a sync was asked for."""
    for frame in reversed(traceback.extract_stack()):
        if frame.filename != _HERE and not frame.filename.startswith(_TORCH):
            return f"{Path(frame.filename).name}:{frame.lineno}: {(frame.line or '').strip()}"
    return "?"


def _is_bool_index(args) -> bool:
    """``aten.index.Tensor(x, [idx, ...])`` with a boolean mask among the indices."""
    return len(args) > 1 and any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
                                 for i in (args[1] or ()))


class _Counting:
    """A torch mode that reports to an ``OpCount``."""

    def __init__(self, counter: "OpCount"):
        super().__init__()
        self.counter = counter


class _Syncs(_Counting, TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.counter._sync(name)
        elif name == "to" and args and isinstance(args[0], torch.Tensor) \
                and args[0].device.type != "cpu" and _to_cpu(args[1:], kwargs):
            self.counter._sync("to(cpu)")
        return func(*args, **kwargs)


def _to_cpu(args, kwargs) -> bool:
    target = kwargs.get("device", args[0] if args else None)
    if isinstance(target, (str, torch.device)):
        return torch.device(target).type == "cpu"
    return False


class _Ops(_Counting, TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        self.counter.by_op[name] += 1
        if name in SYNC_OPS or (name == "index" and _is_bool_index(args)):
            self.counter._sync(name)
        return func(*args, **kwargs)


class OpCount:
    """A context manager counting dispatched ATen ops (``ops``, ``by_op``) and host
    synchronisations (``syncs``, ``sync_sites``) of the code run inside it (this thread;
    backward included, which autograd runs in the calling thread on the CPU)."""

    def __init__(self):
        self.by_op: Counter[str] = Counter()
        self.sync_sites: list[str] = []
        self._modes = (_Syncs(self), _Ops(self))

    @property
    def ops(self) -> int:
        return sum(self.by_op.values())

    @property
    def syncs(self) -> int:
        return len(self.sync_sites)

    def _sync(self, what: str) -> None:
        self.sync_sites.append(f"{what} at {_site()}")

    def __enter__(self) -> "OpCount":
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)

    def __repr__(self) -> str:
        return f"OpCount(ops={self.ops}, syncs={self.syncs})"
