"""``--sparse-kernels auto``: prunable layers that train faster sparse run with sparse kernels.

A layer in the sparse layout (``SparseConv2d``, ``SparseLinear``) holds only its kept weights as
a parameter (``values``, in the row-major order of its mask, ``masks.kept_values``): the pruned
positions do not exist, so nothing has to hold them at zero, and forward, input gradient and
weight gradient cost in proportion to the kept weights. The kernels are SparseProp's (Nikdan et
al. 2023, the ``sparse`` extra: CPU, float32; convolutions with a square kernel, stride 1
or 2, symmetric zero padding, no groups or dilation). The state dict of a sparse layer is the
dense one (``weight`` with zeros at the pruned positions, ``masks.dense_weight``), so
checkpoints, ``weights.pt``, digests and export are what the dense masked path writes.

Which layers go sparse is measured, never assumed (``choose``): on a batch of the run's size,
one forward and backward of the layer dense against each sparse variant, alternating, the
median of ``ROUNDS``; a layer goes sparse only if its best sparse time is at most ``MARGIN`` of
its dense time. Measurements are cached in the cache folder (``<cache>/sparse_kernels/``), keyed
by the layer's shape, stride, padding, input, density, batch, threads, CPU and the torch and
sparseprop versions. Where the path cannot help (a GPU, bfloat16, ``torch.compile``, no
sparseprop, an unsupported layer) every such layer stays dense, and ``describe`` says why.

Override, for tests and benchmarks only: ``PAI_BENCH_SPARSE_FORCE=sparse`` (every supported
layer sparse, no measurement) or ``=dense`` (every layer dense).

Example::

    decisions = choose(model, masks, (3, 32, 32), 128, cache_dir=Path("~/.cache/pai_bench"))
    convert(model, masks, decisions)        # in place; model.state_dict() stays dense
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pai_bench.io import atomic_write_json
from pai_bench.masks import Masks, dense_weight, kept_values, owner
from pai_bench.precision import cpu_name

MARGIN = 0.9  # sparse only where it takes at most 90 % of the dense time: noise never wins
ROUNDS = 5    # alternating measurements per layer (median)
FORCE_ENV = "PAI_BENCH_SPARSE_FORCE"
CONV_VARIANTS = ("over_batch", "over_width")  # SparseProp's two conv loops (vectorized over
LINEAR_VARIANTS = ("csr",)                    # the batch, or over the output width)
BATCH_VECTOR = 8  # SparseProp's conv forward over the batch is wrong unless it is a multiple
MAX_PER_CHANNEL = 2**15 - 1  # SparseProp counts an output channel's kept weights in int16
LAYOUT = 2  # what a sparse layer runs, in the cache key: a change re-measures every layer


@functools.lru_cache(maxsize=1)
def kernels():
    """SparseProp's autograd functions, or None where it is not installed."""
    try:
        from sparseprop.modules.functions import SparseConvFunction, SparseLinearFunction
    except ImportError:
        return None

    def standard_layout(function):
        """SparseProp computes a convolution batch-last, (C, H, W, B), and hands its output and
        input gradient back as a permuted view of that memory; a linear layer's, when its
        widths are not multiples of 16, as a transposed view. The batch norms, ReLUs and
        pools around the layer would then run on strided tensors, a cost outside the layer
        that a measurement of the layer alone does not see (the likely place of the time the
        2-thread sparse step loses outside its kernels; docs/sparse_kernels.md). Both leave
        in the standard layout, and the incoming gradient, which its kernels read as
        contiguous memory, arrives in it."""
        class Standard(function):
            @staticmethod
            def forward(ctx, *args):
                return function.forward(ctx, *args).contiguous()

            @staticmethod
            def backward(ctx, grad):
                grad_input, *rest = function.backward(ctx, grad.contiguous())
                return (grad_input.contiguous() if ctx.needs_input_grad[0] else None, *rest)
        return Standard
    return standard_layout(SparseConvFunction), standard_layout(SparseLinearFunction)


def library_version() -> str | None:
    try:
        return metadata.version("sparseprop")
    except metadata.PackageNotFoundError:
        return None


class SparseLayer(nn.Module):
    """What both sparse layers share: ``values`` (the kept weights), ``keep`` (the mask),
    ``bias`` (the dense layer's own parameter), and a dense state dict."""

    sparse_layout = True  # masks.sparse_layer: PreparedMasks has nothing to zero here

    def __init__(self, layer: nn.Module, keep: torch.Tensor, variant: str):
        super().__init__()
        keep = keep.to(layer.weight.device)
        self.values = nn.Parameter(kept_values(layer.weight, keep))  # first: the weight's place
        self.bias = layer.bias
        self.register_buffer("keep", keep.clone(), persistent=False)
        self.variant = variant
        self.register_state_dict_post_hook(_dense_state)
        self.register_load_state_dict_pre_hook(_sparse_state)

    @property
    def weight(self) -> torch.Tensor:
        """The dense weight (zeros at the pruned positions), a copy: not a parameter."""
        return dense_weight(self.values, self.keep)


def _dense_state(module, state, prefix, local_metadata) -> None:
    """``<prefix>values`` written as ``<prefix>weight``, in its place (the dense layer's keys)."""
    ours = [k for k in state if k.startswith(prefix) and "." not in k[len(prefix):]]
    items = [(k, state.pop(k)) for k in ours]
    for key, value in items:
        if key == prefix + "values":
            key, value = prefix + "weight", dense_weight(value, module.keep)
        state[key] = value


def _sparse_state(module, state, prefix, *args) -> None:
    """A dense ``<prefix>weight`` loaded as the kept values (its pruned entries are dropped)."""
    if prefix + "weight" in state:
        state[prefix + "values"] = kept_values(state.pop(prefix + "weight"), module.keep)


class SparseConv2d(SparseLayer):
    def __init__(self, conv: nn.Conv2d, keep: torch.Tensor, variant: str = "over_batch"):
        super().__init__(conv, keep, variant)
        out_c, in_c, k, _ = keep.shape
        per_input = keep.reshape(out_c, in_c, k * k).sum(2)               # (out, in)
        per_output = torch.zeros(out_c + 1, dtype=torch.int32)
        per_output[1:] = per_input.sum(1).cumsum(0)
        within = torch.zeros(out_c, in_c + 1, dtype=torch.int16)
        within[:, 1:] = per_input.cumsum(1)
        where = keep.cpu().nonzero()                                        # row-major
        self.index = (per_output, within.reshape(-1), where[:, 2].to(torch.uint8),
                      where[:, 3].to(torch.uint8))
        self.out_channels, self.kernel = out_c, k
        self.stride, self.padding = conv.stride[0], conv.padding[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        over_width = self.variant == "over_width"
        forward_over_width = over_width and self.stride == 1  # SparseProp's: stride 1 only
        batch = len(x)
        if not forward_over_width and batch % BATCH_VECTOR:  # its loop over the batch reads
            x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, -batch % BATCH_VECTOR))  # whole vectors
        y = kernels()[0].apply(x.contiguous(), self.values, self.index, self.bias,
                               self.out_channels, self.kernel, self.padding, self.stride,
                               forward_over_width, over_width)
        return y[:batch]


class SparseLinear(SparseLayer):
    def __init__(self, linear: nn.Linear, keep: torch.Tensor, variant: str = "csr"):
        super().__init__(linear, keep, variant)
        rows = torch.zeros(keep.shape[0] + 1, dtype=torch.int32)
        rows[1:] = keep.sum(1).cumsum(0)
        self.index = (rows, keep.cpu().nonzero()[:, 1].to(torch.int32))
        self.out_features = keep.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels()[1].apply(x.contiguous(), self.values, self.index, self.bias,
                                  self.out_features)


def unsupported(layer: nn.Module) -> str | None:
    """Why the sparse kernels cannot run ``layer``, or None."""
    if isinstance(layer, nn.Linear):
        return None
    if not isinstance(layer, nn.Conv2d):
        return f"a {type(layer).__name__}"
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    if layer.groups != 1 or layer.dilation != (1, 1) or layer.padding_mode != "zeros":
        return "groups, dilation or non-zero padding"
    if isinstance(p, str) or k[0] != k[1] or s[0] != s[1] or p[0] != p[1] or s[0] not in (1, 2):
        return "a non-square kernel, stride or padding, or a stride other than 1 or 2"
    if layer.in_channels * k[0] * k[1] > MAX_PER_CHANNEL:
        return "too many inputs per output channel"
    return None


def sparse_module(layer: nn.Module, keep: torch.Tensor, variant: str) -> SparseLayer:
    cls = SparseLinear if isinstance(layer, nn.Linear) else SparseConv2d
    return cls(layer, keep, variant)


@dataclass(frozen=True)
class Decision:
    """One prunable layer: ``layout`` "sparse" or "dense", the SparseProp ``variant``, why, and
    the measured seconds of a forward and backward (None where nothing was measured)."""

    name: str
    layout: str
    reason: str
    variant: str | None = None
    dense_s: float | None = None
    sparse_s: float | None = None


def choose(model: nn.Module, masks: Masks, input_shape: tuple[int, ...], batch: int, *,
           cache_dir: Path, device: torch.device = torch.device("cpu"),
           precision: str = "fp32", compile: bool = False) -> list[Decision]:
    """The layout of every masked layer of ``model`` (trained on batches of ``batch`` inputs
    of ``input_shape``), measured here or read from the cache (module docstring)."""
    why_not = ("the device is a GPU (the sparse kernels are CPU kernels)" if device.type != "cpu"
               else f"precision {precision} (the sparse kernels are float32)"
               if precision != "fp32" else "torch.compile" if compile
               else "sparseprop is not installed (docs/sparse_kernels.md)"
               if kernels() is None else None)
    force = os.environ.get(FORCE_ENV)
    shapes = input_shapes(model, list(masks), input_shape) if why_not is None else {}
    out = []
    for name in masks:
        layer = owner(model, name)
        reason = why_not or unsupported(layer)
        if reason is not None:
            out.append(Decision(name, "dense", reason))
        elif force in ("sparse", "dense"):
            variant = CONV_VARIANTS[0] if isinstance(layer, nn.Conv2d) else LINEAR_VARIANTS[0]
            out.append(Decision(name, force, f"{FORCE_ENV}={force}",
                                variant if force == "sparse" else None))
        else:
            in_shape, grad_in = shapes[name]
            out.append(decide(name, measured(layer, masks[name], (batch, *in_shape), grad_in,
                                             Path(cache_dir))))
    return out


def decide(name: str, times: dict[str, float]) -> Decision:
    """Sparse with its fastest variant where that takes at most ``MARGIN`` of the dense time."""
    dense = times["dense"]
    variant = min((v for v in times if v != "dense"), key=times.get)
    ratio = times[variant] / dense
    layout = "sparse" if ratio <= MARGIN else "dense"
    reason = f"measured sparse/dense {ratio:.2f}" + ("" if layout == "sparse" else
                                                     f" (> {MARGIN}: not faster)")
    return Decision(name, layout, reason, variant if layout == "sparse" else None, dense,
                    times[variant])


@torch.enable_grad()
def input_shapes(model: nn.Module, names: list[str], input_shape) -> dict:
    """{parameter name: (its layer's input shape without the batch, whether that input needs
    a gradient)} from one forward pass of one example in eval mode (no statistics change)."""
    layers = {owner(model, n): n for n in names}
    seen: dict[str, tuple] = {}

    def record(layer, args):
        seen[layers[layer]] = (tuple(args[0].shape[1:]), args[0].requires_grad)
    handles = [layer.register_forward_pre_hook(record) for layer in layers]
    was_training = model.training
    try:
        param = next(model.parameters())
        model.eval()(torch.zeros(1, *input_shape, dtype=param.dtype, device=param.device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return seen


def measured(layer: nn.Module, keep: torch.Tensor, x_shape: tuple, grad_in: bool,
             cache_dir: Path) -> dict[str, float]:
    """{"dense": s, <variant>: s, ...}: seconds of one forward and backward, cached."""
    key = dict(layer=repr(layer), layout=LAYOUT, input=list(x_shape), input_grad=grad_in,
               density=round(float(keep.float().mean()), 4), threads=torch.get_num_threads(),
               torch=torch.__version__, sparseprop=library_version(), cpu=cpu_name())
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / "sparse_kernels" / f"{digest}.json"
    try:
        stored = json.loads(path.read_text())
        if stored["key"] == key and all(v > 0 for v in stored["seconds"].values()):
            return stored["seconds"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # not measured yet, or an unreadable entry: measured again
    seconds = time_layer(layer, keep, x_shape, grad_in)
    atomic_write_json(path, dict(key=key, seconds=seconds))
    return seconds


def time_layer(layer: nn.Module, keep: torch.Tensor, x_shape: tuple, grad_in: bool = True,
               rounds: int = ROUNDS) -> dict[str, float]:
    """Median seconds of a forward and backward of ``layer`` dense and in each sparse variant
    on a random input of ``x_shape``, alternating between them round by round."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(x_shape, generator=g).requires_grad_(grad_in)
    dense = type(layer)(*_dense_args(layer)).requires_grad_(True)
    with torch.no_grad():
        dense.weight.copy_(dense_weight(kept_values(layer.weight, keep), keep))
    variants = CONV_VARIANTS if isinstance(layer, nn.Conv2d) else LINEAR_VARIANTS
    candidates = {"dense": dense, **{v: sparse_module(dense, keep, v) for v in variants}}
    grad = torch.randn(dense(x).shape, generator=g)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for r in range(rounds + 1):  # round 0 warms up
        for name, module in candidates.items():
            t0 = time.perf_counter()
            module(x).backward(grad)
            if r:
                times[name].append(time.perf_counter() - t0)
            x.grad = None
            module.zero_grad(set_to_none=True)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _dense_args(layer: nn.Module) -> tuple:
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features, layer.bias is not None
    return (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
            layer.dilation, layer.groups, layer.bias is not None)


def convert(model: nn.Module, masks: Masks, decisions: list[Decision]) -> list[str]:
    """Put the layers ``decisions`` make sparse into the sparse layout, in place; return their
    names. The model's state dict, and what it loads, stay the dense ones."""
    names = []
    for d in decisions:
        if d.layout != "sparse":
            continue
        path, _, _ = d.name.rpartition(".")
        parent, _, attr = path.rpartition(".")
        owner = model.get_submodule(parent)
        setattr(owner, attr, sparse_module(getattr(owner, attr), masks[d.name], d.variant))
        names.append(d.name)
    return names


def optimizer_state_like(state: dict | None, model: nn.Module, masks: Masks) -> dict | None:
    """An SGD state dict with each momentum buffer in the layout of its parameter in ``model``
    now: a checkpoint written under another layout choice (the cache emptied, other threads)
    resumes in this one. The kept positions' buffers are the same in either layout."""
    if state is None:
        return None
    named = list(model.named_parameters())
    out = {}
    for index, entry in state["state"].items():
        name, param = named[index]
        buf = entry.get("momentum_buffer")
        if buf is not None and buf.shape != param.shape:
            values = name.endswith(".values")  # a sparse layer now: "<layer>.weight" masked
            mask = masks[name.removesuffix(".values") + ".weight" if values else name]
            buf = kept_values(buf, mask) if values else dense_weight(buf, mask)
        out[index] = {**entry, "momentum_buffer": buf}
    return {**state, "state": out}


def describe(decisions: list[Decision]) -> str:
    """The run's log line: how many layers are sparse, and why the others are not."""
    sparse = [d for d in decisions if d.layout == "sparse"]
    head = f"[pai-bench] sparse kernels: {len(sparse)} of {len(decisions)} layers sparse"
    lines = [head] + [f"  {d.name}: {d.layout} ({d.reason}"
                      + (f"; dense {1e3 * d.dense_s:.1f} ms, sparse {1e3 * d.sparse_s:.1f} ms"
                         if d.dense_s is not None else "") + ")" for d in decisions]
    return "\n".join(lines)
