"""precision "auto": bf16 only where the device computes it natively, resolved before a run is
named; time estimates before long work."""

import pytest
import torch

from pai_bench import console, precision
from pai_bench.sweeps.sweep import run_sweep
from pai_bench.config import RunConfig
from pai_bench.options import RunOptions
from pai_bench.analysis.results import load_runs
from pai_bench.analysis.table import accuracy_table

CPU = torch.device("cpu")
TINY = dict(model="mlp", dataset="synthetic", epochs=1, batch_size=32, subset=128,
            test_subset=50, sparsity=0.5)


@pytest.fixture
def machine(monkeypatch):
    """Fake the CPU's flags: an AVX2-only EPYC or one with AVX512-BF16."""
    def fake(flags):
        monkeypatch.setattr(precision, "cpu_flags", lambda: set(flags))
    return fake


def test_auto_resolves_to_fp32_without_native_bf16_and_bf16_with_it(machine):
    machine({"avx2", "fma"})
    assert precision.resolve_precision("auto", CPU) == "fp32"
    machine({"avx2", "avx512f", "avx512_bf16"})
    assert precision.resolve_precision("auto", CPU) == "bf16"
    machine({"avx2", "amx_bf16", "amx_tile"})
    assert precision.resolve_precision("auto", CPU) == "bf16"
    assert precision.resolve_precision("fp32", CPU) == "fp32"  # explicit choices stay


def test_the_resolved_precision_is_the_runs_identity(machine):
    auto = RunConfig(method="random", precision="auto", **TINY)
    machine({"avx2"})
    assert precision.resolve(auto, CPU) == RunConfig(method="random", **TINY)  # fp32: default
    machine({"avx512_bf16"})
    resolved = precision.resolve(auto, CPU)
    assert resolved.precision == "bf16"
    assert resolved.hash() == RunConfig(method="random", precision="bf16", **TINY).hash()


def test_unreadable_flags_fall_back_to_a_measurement(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "cpu_flags", lambda: None)
    monkeypatch.setenv("PAI_BENCH_CACHE", str(tmp_path))
    times = {"bf16": 0.1, "fp32": 0.2}
    monkeypatch.setattr(precision, "step_seconds", lambda p, *a, **k: times[p])
    assert precision.resolve_precision("auto", CPU) == "bf16"
    times.update(bf16=0.9)  # cached per machine: not measured again
    assert precision.resolve_precision("auto", CPU) == "bf16"
    assert (tmp_path / "bf16.json").exists()


def test_auto_runs_on_two_machines_are_two_table_rows(machine, tmp_path):
    configs = [RunConfig(method="random", seed=s, precision="auto", **TINY) for s in (0, 1)]
    for flags in ({"avx2"}, {"avx512_bf16"}):
        machine(flags)
        run_sweep(configs, RunOptions(results_dir=tmp_path, progress=False, log=None))
    runs = load_runs(tmp_path)
    assert len(runs) == 4 and sorted(set(runs["precision"])) == ["bf16", "fp32"]
    table = accuracy_table(runs)
    assert len(table) == 2 and list(table["seeds"]) == [2, 2] and "precision" in table.columns


def test_a_sweep_says_how_long_it_will_take_and_why_it_is_slow(monkeypatch, machine):
    configs = [RunConfig(method="random", seed=s, precision="bf16", **TINY) for s in (0, 1)]
    monkeypatch.setattr(console, "images_per_second", lambda *a, **k: 100.0)
    text = console.sweep_estimate(configs, CPU, workers=2, threads=1)
    assert "2 run(s)" in text and "100 training images/s" in text and "about" in text
    assert "warning" not in text
    machine({"avx2"})
    slow = console.sweep_estimate(configs, CPU, workers=2, threads=1, sized_for=550)
    assert "far below the 550" in slow and "without native bfloat16" in slow
