"""Ops dispatched and host synchronisations per training step, and the CPU step time.

For ResNet-20 and VGG-16, dense and masked at 90 %, fp32 and bf16 autocast: one step of the
training loop's own body (a batch cut and augmented by the in-memory split, ``batch_to``,
``train.train_step``) on CIFAR-shaped uint8 data at the paper's batch size. Counted with
``opcount.OpCount``:

* ops: every ATen op dispatched (forward, backward, optimizer, masks, bookkeeping, batch);
* kernel ops: the same without views and allocations (``detach``, ``view``, ``empty``, ...),
  which launch nothing: about the kernel launches of the step on a GPU;
* data ops: those of cutting and augmenting the batch;
* host syncs: the step's reads of device values (must be 0: the loop reads once per epoch).

On a GPU the launches, not the arithmetic, bound a small network's step (ResNet-20: ~0.1 ms of
arithmetic, ~10-15 us of host time per launch). The counts are the CPU's dispatch: autocast's
CPU policy decides the casts, the optimizer runs its multi-tensor (foreach) kernels as on CUDA.

Run (a quiet machine; 1 thread)::

    OMP_NUM_THREADS=1 PAI_BENCH_OPS_LABEL=after \
        python -m pytest benchmarks/test_ops_per_step.py --benchmark-only -s

The table is written (its section replaced, other sections kept) to
``results/benchmarks/ops_per_step.md`` under the heading ``PAI_BENCH_OPS_LABEL`` (default
"current").
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest
import torch

from pai_bench.data.memory import CropFlip, MemorySplit
from pai_bench.io import atomic_write_text
from pai_bench.masks import Masks, PreparedMasks, apply_
from pai_bench.models import create_model, prunable_names
from opcount import OpCount
from pai_bench.recipes import CIFAR
from pai_bench.training.train import Loop, batch_to, make_optimizer, train_step

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "results" / "benchmarks" / "ops_per_step.md"
LABEL = os.environ.get("PAI_BENCH_OPS_LABEL", "current")
CPU = torch.device("cpu")
NO_KERNEL = {"empty", "empty_like", "empty_strided", "_record_function_enter_new",
             "_record_function_exit", "lift_fresh"}
ROWS: dict[tuple, dict] = {}


def cifar_like(n: int = 1024) -> MemorySplit:
    """CIFAR-shaped uint8 images (random pixels) with CIFAR-10's normalization and augmentation."""
    g = torch.Generator().manual_seed(0)
    return MemorySplit(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                       torch.randint(0, 10, (n,), generator=g), num_classes=10,
                       mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26), augment=CropFlip(4))


def setup(model_name: str, masked: bool, precision: str, device: torch.device = CPU):
    """(batch stream, step) of one training run as ``train.train`` sets it up: the model in
    training mode, the masks applied, batches of an endless sequence of epochs."""
    model = create_model(model_name, num_classes=10, input_shape=(3, 32, 32), seed=0).to(device)
    prepared = None
    if masked:
        prepared = PreparedMasks(model, Masks.random(model, prunable_names(model), 0.9, seed=0))
        apply_(model, prepared)
    model.train()
    data = cifar_like().to(device)
    loop = Loop(model, make_optimizer(model, CIFAR), CIFAR, 8, 0, 10**9)
    stream = itertools.chain.from_iterable(
        data.batches(CIFAR.batch_size, generator=torch.Generator().manual_seed(e), augment=True,
                     drop_last=True) for e in itertools.count())

    def step():
        x, y = next(stream)
        train_step(loop, batch_to(x, device), y.to(device, non_blocking=True), prepared, device,
                   precision)
    return stream, step


def counts(model_name: str, masked: bool, precision: str) -> dict:
    """Ops (all, kernel, data) and syncs of one step after two warm-up steps."""
    stream, step = setup(model_name, masked, precision)
    step(), step()
    with OpCount() as data_ops:
        next(stream)  # a batch cut and augmented (the next step cuts its own)
    with OpCount() as c:
        step()
    views = sum(n for op, n in c.by_op.items() if op in NO_KERNEL or _is_view(op))
    return dict(ops=c.ops, kernel_ops=c.ops - views, data_ops=data_ops.ops, syncs=c.syncs,
                sync_sites=c.sync_sites, by_op=dict(c.by_op))


def _is_view(name: str) -> bool:
    packet = getattr(torch.ops.aten, name, None)
    overloads = [getattr(packet, o) for o in packet.overloads()] if packet is not None else []
    return bool(overloads) and all(o.is_view for o in overloads)


CASES = [(m, masked, p) for m in ("cifar_resnet_20", "cifar_vgg_16") for masked in (False, True)
         for p in ("fp32", "bf16")]


@pytest.fixture(scope="module", autouse=True)
def table():
    yield
    if ROWS:
        write_table(ROWS, LABEL)


@pytest.mark.parametrize("model_name,masked,precision", CASES,
                         ids=[f"{m}-{'masked' if k else 'dense'}-{p}" for m, k, p in CASES])
def test_ops_per_step(benchmark, model_name, masked, precision):
    torch.set_num_threads(1)
    row = counts(model_name, masked, precision)
    _, step = setup(model_name, masked, precision)
    step()
    benchmark.extra_info.update({k: v for k, v in row.items() if k != "by_op"})
    benchmark.pedantic(step, rounds=5 if "vgg" in model_name else 10, iterations=1,
                       warmup_rounds=1)
    stats = getattr(benchmark.stats, "stats", benchmark.stats)
    ROWS[(model_name, masked, precision)] = row | {"ms": 1000 * stats.median}
    print(f"\n{model_name} {'masked' if masked else 'dense'} {precision}: {row['ops']} ops, "
          f"{row['kernel_ops']} kernel ops ({row['data_ops']} data), {row['syncs']} syncs "
          f"{row['sync_sites']}, {1000 * stats.median:.1f} ms")
    assert row["syncs"] == 0, row["sync_sites"]


def write_table(rows: dict, label: str) -> None:
    lines = [f"## {label}", "",
             "| model | masks | precision | ops/step | kernel ops/step | of which data | "
             "host syncs/step | CPU step (ms, median) |", "|---|---|---|---|---|---|---|---|"]
    for (m, masked, p), r in sorted(rows.items()):
        lines.append(f"| {m} | {'90 %' if masked else 'dense'} | {p} | {r['ops']} | "
                     f"{r['kernel_ops']} | {r['data_ops']} | {r['syncs']} | {r['ms']:.1f} |")
    section = "\n".join(lines) + "\n"
    old = TABLE.read_text() if TABLE.exists() else (
        "# Ops dispatched per training step\n\n"
        "Made by `benchmarks/test_ops_per_step.py` (its docstring says how to run it and what "
        "the columns count).\n\n")
    pattern = re.compile(rf"^## {re.escape(label)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", old) if pattern.search(old) else old + section + "\n"
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(TABLE, text)
