"""``precision = "auto"``: bfloat16 autocast only where the device computes it natively.

bf16 autocast is about 1.75x faster than float32 on a CPU with native bfloat16 (AVX512-BF16 or
AMX) and about ten times *slower* where it is emulated (an AVX2-only CPU: measured 734-752 ms
against 73-95 ms for a ResNet-20 step at width 8). So ``auto`` resolves to:

* CUDA: ``bf16`` when ``torch.cuda.is_bf16_supported()``, else ``fp32``;
* CPU: ``bf16`` when the CPU flags (``/proc/cpuinfo``) include ``avx512_bf16`` or ``amx_bf16``,
  ``fp32`` when they are readable and include neither; where they cannot be read (not Linux), a
  short measured comparison of the two, cached per machine in the cache folder.

The resolution happens before a run's identity is computed (``resolve``): a run records the
precision it actually used, and runs made with different precisions never share a table row.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from pathlib import Path

import torch
from torch import nn

from pai_bench.io import atomic_write_text
from pai_bench.recipes import Recipe
from pai_bench.training.train import check_cuda_graphs, step_times

PROBE_RECIPE = Recipe(batch_size=32, lr=0.01, epochs=1)  # the measurement's: any would do

CPUINFO = Path("/proc/cpuinfo")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CACHE_ENV = "PAI_BENCH_CACHE"


def cpuinfo(text: str | None = None) -> dict[str, str]:
    """The first CPU's fields of /proc/cpuinfo (``text``: its contents), {} where unreadable."""
    if text is None:
        try:
            text = CPUINFO.read_text()
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags, or None where they cannot be read."""
    fields = cpuinfo()
    flags = fields.get("flags", fields.get("Features"))
    return None if flags is None else set(flags.split())


def cpu_name(text: str | None = None) -> str:
    """The CPU, for a cache key and the record: its model name, family, model and stepping
    (virtual machines name different Xeons alike, "Intel(R) Xeon(R) Processor") and what torch
    runs on it (e.g. "AVX512, avx512_bf16, amx_bf16"). ``text``: /proc/cpuinfo's contents."""
    fields = cpuinfo(text)
    model = fields.get("model name") or platform.processor() or platform.machine()
    ids = " ".join(f"{k.split()[-1]} {fields[k]}" for k in ("cpu family", "model", "stepping")
                   if k in fields)
    return f"{model} ({', '.join(filter(None, [ids, cpu_capability()]))})"


def machine(device: torch.device | str) -> str:
    """The machine a run computed on, for its summary (timings and bf16 numbers depend on it):
    the GPU's name on CUDA, else ``cpu_name()``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def cpu_capability() -> str:
    """What ``torch`` and the flags say of this CPU, for the record: e.g. "AVX512, avx512_bf16"."""
    flags = cpu_flags()
    native = [f for f in NATIVE_BF16_FLAGS if flags and f in flags]
    return ", ".join([torch.backends.cpu.get_cpu_capability(), *native] if native
                     else [torch.backends.cpu.get_cpu_capability(), "no native bf16"])


def cpu_native_bf16() -> bool:
    flags = cpu_flags()
    if flags is not None:
        return any(f in flags for f in NATIVE_BF16_FLAGS)
    return measured_bf16_faster()


def measured_bf16_faster() -> bool:
    """Time a small conv step in fp32 and in bf16 autocast; cached per machine."""
    key = f"{platform.machine()}-{platform.processor() or platform.node()}-{torch.__version__}"
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pai_bench") / "bf16.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = step_seconds("bf16") < step_seconds("fp32")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache, json.dumps(known))  # a killed write: never half a file
        except OSError:
            pass  # an unwritable cache costs a measurement next time, nothing else
    return bool(known[key])


def step_seconds(precision: str, device: torch.device = torch.device("cpu"),
                 repeats: int = 3) -> float:
    """Median seconds of a training step (``train.train_step``) of a small conv net, batch 32
    of 32x32 images."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    x = torch.randn(32, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)
    times = step_times(net, x, y, PROBE_RECIPE, device=device, precision=precision,
                       steps=repeats + 1)[1:]
    return sorted(times)[len(times) // 2]


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_native_bf16()


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def resolve(config, device: torch.device):
    """``config`` with ``precision = "auto"`` replaced by what ``device`` runs fast; a setting
    ``device`` cannot run (``cuda_graphs`` off CUDA) is refused here, before anything runs."""
    check_cuda_graphs(getattr(config, "cuda_graphs", False), torch.device(device),
                      getattr(config, "compile", False))
    if config.precision != "auto":
        return config
    return dataclasses.replace(config, precision=resolve_precision("auto", torch.device(device)))
