"""CUDA's device rules on a machine without a GPU: ``with FakeCuda() as gpu: ...``.

Inside the block this process looks like a one-GPU machine: ``torch.cuda.is_available()`` is
True, and a tensor moved or created "on cuda" (``.to("cuda")``, ``.cuda()``, ``device="cuda:0"``,
a module's ``.to(device)``) reports ``device.type == "cuda"`` (``cuda:0``) while its numbers stay
in CPU memory and every kernel runs on the CPU. What CUDA refuses is refused, with CUDA's
message, so the device-mixing bug that would crash on the first GPU run crashes in CI instead:

* tensors of two devices in one op (``Expected all tensors to be on the same device``); as on
  CUDA, a 0-d CPU tensor (a scalar) may meet device tensors, a CPU index may index a device
  tensor, and ``copy_`` / ``.to`` cross devices;
* a random draw on the device with a CPU ``torch.Generator`` (or a CUDA one on the CPU);
* ``.numpy()`` (and ``np.asarray``) of a device tensor; ``pin_memory()`` of one;
* a device index other than 0 (``cuda:1``: "invalid device ordinal").

It counts what costs a GPU run time: ``gpu.syncs`` host synchronisations (``.item()``,
``bool()``, ``float()``, ``int()``, ``.tolist()``, ``.cpu()``, ``.to("cpu")``, ops whose output
size depends on the data such as ``nonzero``, and ``torch.cuda.synchronize()``), each with its
source line in ``gpu.sync_sites``, counted only for tensors on the device (a CPU tensor's
``.item()`` waits for nothing); and ``gpu.ops``, the ATen ops dispatched
(``opcount.OpCount``, whose per-op counts are ``gpu.by_op``).

``torch.cuda`` answers as one GPU does: ``device_count() == 1``, ``current_device() == 0``,
``set_device`` (recorded in ``gpu.set_device_calls``), ``synchronize``, ``manual_seed``,
``is_bf16_supported``, ``get_device_name``, ``Event`` (host-timed), memory statistics (zeros).
``torch.autocast("cuda", ...)`` runs as CPU autocast (the bf16 path is taken), and CUDA-graph
capture (``torch.cuda.graph``, ``CUDAGraph``) raises ``CaptureRefused``: code is covered up to
the capture call. cuDNN's and oneDNN's flags are restored on exit.

On a CPU without AVX-512 the block also turns oneDNN off (``onednn_crashes``): the tensors
of a CUDA run are channels-last (``pai_bench.training.train``), and oneDNN's AVX2 kernel for the
weight gradient of a channels-last 1x1 stride-2 convolution with 4 input channels crashes the
process (a segmentation fault; torch 2.14.1 on an AMD EPYC, the width-4 ResNets of the tests).
PyTorch's own convolutions take those layers instead.

Example::

    with FakeCuda() as gpu:
        runner.execute(config, RunOptions(device="cuda", ...))
    assert gpu.syncs < 100

A whole process, and the processes it starts, run under the harness with the environment
variable ``PAI_BENCH_FAKE_CUDA=1`` (for tests only: ``from_environment`` is called at the start
of the CLI, of a sweep's worker processes and of ``benchmarks/gpu_check.py`` and its workers;
the children inherit the variable). That is how ``gpu_check.py --smoke`` runs on "CUDA" in the
tests, process pools and all.

Not modelled: asynchrony (nothing overlaps), streams, memory limits, numerics (CUDA kernels and
CPU kernels round differently) and other threads (torch's function modes are per thread; a
DataLoader's pin-memory thread would see the real, absent CUDA).
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
import types
from pathlib import Path
from typing import Any

import torch
import torch._dynamo  # noqa: F401  (before the harness wraps make_subclass: dynamo, which
# torchvision's models import on first use, checks that function's signature when it loads)
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves, tree_map
from torch.utils.weak import WeakIdKeyDictionary

from opcount import OpCount

DEVICE = torch.device("cuda", 0)
CPU = torch.device("cpu")
NAME = "fake CUDA (fake_cuda: tensors on the CPU)"

# Tensor methods and torch functions that wait for the device when their input is on it
SYNC_METHODS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "__complex__",
                "__format__", "nonzero", "argwhere", "masked_select", "unique",
                "unique_consecutive", "equal", "allclose")
# ops that may mix devices by CUDA's own rules (copies across devices; autograd plumbing; the
# helpers that group tensors by device)
CROSS_DEVICE = ("to", "cuda", "cpu", "copy_", "_group_tensors_by_device_and_dtype", "grad",
                "backward", "__deepcopy__", "__reduce_ex__", "set_", "__setstate__",
                "_has_compatible_shallow_copy_type", "__set__", "__get__", "__setitem__",
                "index_put_", "index_put")
INDEXING = ("__getitem__", "__setitem__", "index_put_", "index_put")
_HERE = str(Path(__file__).resolve())
_TORCH = str(Path(torch.__file__).resolve().parent)


class CaptureRefused(RuntimeError):
    """CUDA-graph capture asked for under ``FakeCuda``: it needs a real GPU."""


def _refuse_capture(*args, **kwargs):
    raise CaptureRefused("CUDA graph capture needs a real GPU: fake_cuda runs the code "
                         "up to the capture call only")


class _Graph:
    def __init__(self, *args, **kwargs):
        _refuse_capture()


def _site() -> str:
    """The innermost source line outside torch and this module: where a sync was asked for."""
    for frame in reversed(traceback.extract_stack()):
        if frame.filename != _HERE and not frame.filename.startswith(_TORCH) \
                and "opcount.py" not in frame.filename:
            return f"{Path(frame.filename).name}:{frame.lineno}: {(frame.line or '').strip()}"
    return "?"


def _check_index(device: torch.device) -> torch.device:
    if device.type == "cuda":
        if device.index not in (None, 0):
            raise RuntimeError(f"CUDA error: invalid device ordinal (fake_cuda: one GPU, asked "
                               f"for {device})")
        return DEVICE
    return device


def _as_device(value) -> torch.device | None:
    if value is None:
        return None
    if isinstance(value, int):
        return torch.device("cuda", value)
    return torch.device(value)


class FakeGenerator(torch._C.Generator):
    """``torch.Generator`` under ``FakeCuda``: ``device="cuda"`` gives a CPU generator that says
    it is on ``cuda:0`` (and may only draw there)."""

    def __new__(cls, device="cpu"):
        self = super().__new__(cls, "cpu")
        self._on_device = _check_index(_as_device(device)).type == "cuda"
        return self

    @property
    def device(self) -> torch.device:
        return DEVICE if self._on_device else CPU


def _on_device_generator(g) -> bool:
    return getattr(g, "_on_device", False)


class FakeEvent:
    """``torch.cuda.Event``, timed on the host (nothing is asynchronous here)."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False,
                 interprocess: bool = False):
        self.t = None

    def record(self, stream=None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None: ...
    def wait(self, stream=None) -> None: ...

    def query(self) -> bool:
        return True

    def elapsed_time(self, end: "FakeEvent") -> float:
        return (end.t - self.t) * 1000.0


class _Stream:
    def synchronize(self) -> None: ...
    def wait_stream(self, other) -> None: ...
    def wait_event(self, event) -> None: ...
    def record_event(self, event=None):
        event = event or FakeEvent()
        event.record()
        return event


def onednn_crashes(capability: str | None = None) -> bool:
    """Whether oneDNN's channels-last convolution backward may crash on this CPU (module
    docstring): true where torch runs below AVX-512 (``capability``: torch's CPU capability,
    e.g. "AVX2", "AVX512"; default: this machine's)."""
    capability = torch.backends.cpu.get_cpu_capability() if capability is None else capability
    return not capability.upper().startswith("AVX512")


class FakeCuda(TorchFunctionMode):
    """The context manager (module docstring). ``syncs``, ``sync_sites``: host synchronisations
    of device tensors; ``ops``, ``by_op``: dispatched ATen ops; ``set_device_calls``: the
    indices ``torch.cuda.set_device`` was given. ``count_ops=False``: no op counting (faster)."""

    def __init__(self, count_ops: bool = True):
        super().__init__()
        self._device = WeakIdKeyDictionary()  # tensors "on cuda:0" (identity, weakly held)
        self._pinned = WeakIdKeyDictionary()
        self.sync_sites: list[str] = []
        self.set_device_calls: list[int] = []
        self.counter = OpCount() if count_ops else None
        self._patches: list[tuple[Any, str, Any, bool]] = []
        self._flags = None  # cuDNN's and oneDNN's, restored on exit

    # --- what the caller reads ------------------------------------------------------------
    @property
    def syncs(self) -> int:
        return len(self.sync_sites)

    @property
    def ops(self) -> int:
        return self.counter.ops if self.counter is not None else 0

    @property
    def by_op(self):
        return self.counter.by_op if self.counter is not None else {}

    def reset_counts(self) -> None:
        self.sync_sites.clear()
        if self.counter is not None:
            self.counter.by_op.clear()

    def on_device(self, t) -> bool:
        """Whether ``t`` (a tensor) is on the fake GPU."""
        return isinstance(t, torch.Tensor) and t in self._device

    # --- entering and leaving -------------------------------------------------------------
    def _patch(self, obj, name: str, value) -> None:
        had = name in vars(obj)
        self._patches.append((obj, name, vars(obj).get(name), had))
        setattr(obj, name, value)

    def __enter__(self) -> "FakeCuda":
        cuda = torch.cuda
        self._flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
                       torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
                       torch.backends.mkldnn.enabled)
        if onednn_crashes():
            torch.backends.mkldnn.enabled = False

        def set_device(device) -> None:
            d = _check_index(_as_device(device) if not isinstance(device, int)
                             else torch.device("cuda", device))
            self.set_device_calls.append(d.index)

        def synchronize(device=None) -> None:
            self._sync("torch.cuda.synchronize")

        patches = dict(
            is_available=lambda: True, device_count=lambda: 1, current_device=lambda: 0,
            set_device=set_device, synchronize=synchronize, is_initialized=lambda: True,
            init=lambda: None, _lazy_init=lambda: None,
            manual_seed=lambda seed: None, manual_seed_all=lambda seed: None,
            seed=lambda: None, seed_all=lambda: None,
            is_bf16_supported=lambda *a, **k: True, get_device_name=lambda *a: NAME,
            get_device_capability=lambda *a: (9, 0),
            get_device_properties=lambda *a: types.SimpleNamespace(
                name=NAME, major=9, minor=0, total_memory=80 * 2**30, multi_processor_count=132),
            Event=FakeEvent, current_stream=lambda *a: _Stream(), default_stream=lambda *a: _Stream(),
            Stream=lambda *a, **k: _Stream(), stream=lambda *a, **k: contextlib.nullcontext(),
            set_stream=lambda *a: None,
            memory_allocated=lambda *a: 0, max_memory_allocated=lambda *a: 0,
            memory_reserved=lambda *a: 0, max_memory_reserved=lambda *a: 0,
            reset_peak_memory_stats=lambda *a: None, empty_cache=lambda: None,
            graph=_Graph, CUDAGraph=_Graph, make_graphed_callables=_refuse_capture,
        )
        for name, value in patches.items():
            self._patch(cuda, name, value)
        real_autocast = torch.autocast

        class autocast(real_autocast):  # CUDA autocast on CPU tensors would do nothing
            def __init__(self, device_type, *args, **kwargs):
                super().__init__("cpu" if device_type == "cuda" else device_type,
                                 *args, **kwargs)
        self._patch(torch, "autocast", autocast)
        self._patch(torch.amp, "autocast", autocast)
        self._patch(torch, "Generator", FakeGenerator)
        real_make_subclass = torch._C.TensorBase._make_subclass
        marks = self._device

        def make_subclass(cls, data, *args, **kwargs):  # nn.Parameter(t): on t's device
            out = real_make_subclass(cls, data, *args, **kwargs)
            if data in marks:
                marks[out] = True
            return out
        self._patch(torch.Tensor, "_make_subclass", staticmethod(make_subclass))
        super().__enter__()
        if self.counter is not None:
            self.counter.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.counter is not None:
                self.counter.__exit__(*exc)
            super().__exit__(*exc)
        finally:
            for obj, name, value, had in reversed(self._patches):
                if had:
                    setattr(obj, name, value)
                else:
                    delattr(obj, name)
            self._patches.clear()
            (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.mkldnn.enabled) = self._flags

    # --- the rules ------------------------------------------------------------------------
    def _sync(self, what: str) -> None:
        self.sync_sites.append(f"{what} at {_site()}")

    def _mark(self, out, inputs: list) -> Any:
        """Every tensor of ``out`` that is not one of ``inputs``, marked as on the device."""
        keep = {id(t) for t in inputs}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and id(t) not in keep:
                self._device[t] = True
        return out

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name in ("__get__", "__set__"):
            return self._property(func, args)
        if name in ("to", "cuda", "cpu") and args and isinstance(args[0], torch.Tensor) \
                and getattr(func, "__qualname__", "").startswith(("TensorBase.", "Tensor.")):
            return self._move(name, args[0], args[1:], kwargs)
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        on = [self.on_device(t) for t in tensors]
        if name == "numpy" or name == "__array__":
            if any(on):
                raise TypeError("can't convert cuda:0 device type tensor to numpy. Use "
                                "Tensor.cpu() to copy the tensor to host memory first.")
        elif name == "pin_memory":
            return self._pin(args[0])
        elif name == "is_pinned":
            return bool(args[0] in self._pinned)
        elif name == "get_device":
            return 0 if any(on) else -1
        device = self._factory_device(kwargs)
        placed = device.type == "cuda" if device is not None else any(on)
        self._check_generator(name, args, kwargs, placed)
        if name in INDEXING and len(args) > 1 and not self.on_device(args[0]) \
                and any(self.on_device(i) for i in tree_leaves(args[1])):
            raise RuntimeError("indices should be either on cpu or on the same device as the "
                               "indexed tensor (cpu)")
        if device is None and name not in CROSS_DEVICE:
            self._check_mixed(func, name, tensors, on, args)
        if any(on) and (name in SYNC_METHODS or (name == "__getitem__" and _bool_index(args))):
            self._sync(name)
        if name == "copy_" and len(args) > 1 and on[1] and not on[0] \
                and not kwargs.get("non_blocking", False):
            self._sync("copy_ to the host")
        out = func(*args, **kwargs)
        if name == "grad" and getattr(func, "__module__", "") == "torch.autograd":
            return self._grads(out, args, kwargs)
        if placed:
            self._mark(out, tensors)
        return out

    def _property(self, func, args):
        t, prop = args[0], func.__self__.__name__
        if func.__name__ == "__set__":
            value = args[1]
            if prop == "grad" and isinstance(value, torch.Tensor) \
                    and self.on_device(value) != self.on_device(t):
                raise RuntimeError("attempting to assign a gradient with device type "
                                   f"'{self._dev(value).type}' to a tensor with device type "
                                   f"'{self._dev(t).type}'. Please ensure that the gradient "
                                   f"and the tensor are on the same device")
            func(t, value)
            if prop == "data":  # module.to(device) moves parameters this way
                if self.on_device(value):
                    self._device[t] = True
                else:
                    self._device.pop(t, None)
            return None
        if not isinstance(t, torch.Tensor):
            return func(*args)
        on = self.on_device(t)
        if prop == "device":
            return DEVICE if on else func(*args)
        if prop == "is_cuda":
            return on or func(*args)
        if prop == "is_cpu":
            return not on and func(*args)
        out = func(*args)
        if on and isinstance(out, torch.Tensor) and out is not t:  # data, grad, T, mT, ...
            self._device[out] = True
        return out

    def _dev(self, t) -> torch.device:
        return DEVICE if self.on_device(t) else t.device

    def _move(self, name: str, t: torch.Tensor, args: tuple, kwargs: dict):
        """``.to(...)``, ``.cuda()``, ``.cpu()``: a copy across devices, ``self`` where nothing
        changes (as torch does)."""
        copy = kwargs.pop("copy", False)
        if name == "cuda":
            target = _check_index(_as_device(args[0] if args else kwargs.pop("device", None))
                                  or DEVICE)
            dtype, non_blocking = None, kwargs.get("non_blocking", False)
            memory_format = kwargs.get("memory_format", torch.preserve_format)
        elif name == "cpu":
            target, dtype, non_blocking = CPU, None, False
            memory_format = kwargs.get("memory_format", torch.preserve_format)
        else:
            other = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if other is not None:
                target, dtype = self._dev(other), other.dtype
                non_blocking = kwargs.get("non_blocking", False)
                memory_format = torch.preserve_format
            else:
                target, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
                memory_format = memory_format if memory_format is not None \
                    else torch.preserve_format
        on = self.on_device(t)
        if target is not None and target.type not in ("cuda", "cpu"):
            return torch.Tensor.to(t, *args, **kwargs)  # meta and the like: torch's own
        to_device = on if target is None else _check_index(target).type == "cuda"
        moved = to_device != on
        if on and not to_device and not non_blocking:
            self._sync(f"{name}(cpu)")
        out = torch.Tensor.to(t, dtype=dtype or t.dtype, memory_format=memory_format,
                              copy=copy or moved)
        if to_device and out is not t:
            self._device[out] = True
        return out

    def _pin(self, t: torch.Tensor) -> torch.Tensor:
        if self.on_device(t):
            raise RuntimeError(f"cannot pin '{t.type().replace('torch.', 'torch.cuda.')}' only "
                               f"dense CPU tensors can be pinned")
        out = t.clone()
        self._pinned[out] = True
        return out

    def _factory_device(self, kwargs: dict) -> torch.device | None:
        """The ``device=`` of a factory call (``torch.zeros(..., device="cuda")``), replaced by
        the CPU in ``kwargs``; ``pin_memory=True`` dropped (recorded on the result later)."""
        if "pin_memory" in kwargs:
            kwargs.pop("pin_memory")
        if kwargs.get("device") is None:
            return None
        device = _check_index(_as_device(kwargs["device"]))
        if device.type == "cuda":
            kwargs["device"] = CPU
        return device

    def _check_generator(self, name: str, args, kwargs, placed: bool) -> None:
        g = kwargs.get("generator")
        if g is None:
            g = next((a for a in args if isinstance(a, torch._C.Generator)), None)
        if g is None:
            return
        if placed and not _on_device_generator(g):
            raise RuntimeError("Expected a 'cuda' device type for generator but found 'cpu' "
                               f"(fake_cuda: {name} draws on cuda:0 with a CPU generator)")
        if not placed and _on_device_generator(g):
            raise RuntimeError("Expected a 'cpu' device type for generator but found 'cuda' "
                               f"(fake_cuda: {name} draws on the CPU with a CUDA generator)")

    def _check_mixed(self, func, name: str, tensors: list, on: list, args) -> None:
        if not any(on) or all(on):
            return
        cpu = [t for t, o in zip(tensors, on) if not o and t.dim() > 0]
        if name == "__getitem__" and args and self.on_device(args[0]):
            cpu = []  # a CPU index into a device tensor: copied over, as CUDA does
        if cpu:
            what = getattr(func, "__qualname__", name)
            raise RuntimeError("Expected all tensors to be on the same device, but found at "
                               f"least two devices, cuda:0 and cpu! (fake_cuda: {what} of "
                               f"{_shapes(tensors, on)})")

    def _grads(self, out, args, kwargs):
        """``torch.autograd.grad``: each gradient on its input's device."""
        inputs = kwargs.get("inputs", args[1] if len(args) > 1 else ())
        inputs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
        for g, x in zip(out, inputs):
            if isinstance(g, torch.Tensor) and self.on_device(x):
                self._device[g] = True
        return out


def _bool_index(args) -> bool:
    index = args[1] if len(args) > 1 else None
    items = index if isinstance(index, (tuple, list)) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _shapes(tensors, on) -> str:
    return ", ".join(f"{'cuda:0' if o else 'cpu'} {tuple(t.shape)}" for t, o in zip(tensors, on))


def tree_devices(value, gpu: FakeCuda) -> set[str]:
    """The devices of every tensor in ``value`` (nested containers) as ``gpu`` sees them."""
    found: set[str] = set()

    def visit(t):
        if isinstance(t, torch.Tensor):
            found.add("cuda:0" if gpu.on_device(t) else str(t.device))
        return t
    tree_map(visit, value)
    return found


ENV = "PAI_BENCH_FAKE_CUDA"  # "1": the process runs under the harness (``from_environment``)
_PROCESS: FakeCuda | None = None


def from_environment() -> FakeCuda | None:
    """The harness for the rest of this process (entered once, never left; no op counting)
    where ``PAI_BENCH_FAKE_CUDA=1`` (module docstring), else None. Call it in the process's
    main thread before anything touches torch.cuda: function modes are per thread."""
    global _PROCESS
    if os.environ.get(ENV) != "1":
        return None
    if _PROCESS is None:
        _PROCESS = FakeCuda(count_ops=False).__enter__()
    return _PROCESS


__all__ = ["FakeCuda", "FakeGenerator", "FakeEvent", "CaptureRefused", "DEVICE", "tree_devices",
           "from_environment"]
