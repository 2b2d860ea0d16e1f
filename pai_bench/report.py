"""What a run prints: its summary and per-layer densities, and a time estimate before long work."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import torch

from pai_bench import paths
from pai_bench.config import RunConfig, resolve_recipe, resolve_subsets

# Training-set sizes, for estimating a run's length before its data is loaded.
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "tinyimagenet": 100_000,
               "imagenet": 1_281_167}
SLOW_SECONDS = 3600  # warn when the estimate is above an hour


def format_run(summary: dict, run_dir: Path, cached: bool = False) -> str:
    lines = [f"run {run_dir}" + ("  (stored result, not retrained)" if cached else "")]
    layers = run_dir / paths.LAYERS
    if layers.exists():
        lines.append(f"  {'layer':40s} {'shape':>16s} {'kept':>9s} {'density':>8s} "
                     f"{'effective':>9s}")
        with open(layers) as f:
            for row in csv.DictReader(f):
                eff = float(row.get("effective_density", "nan"))
                flag = ("  COLLAPSED" if row["collapsed"] == "True" else
                        "  DEAD (nothing effective)" if eff == 0 else "")
                lines.append(f"  {row['name']:40s} {row['shape']:>16s} {row['kept']:>9s} "
                             f"{float(row['density']):8.4f} {eff:9.4f}{flag}")
    acc = summary["test_accuracy"]
    lines.append(f"status: {summary['status']}")
    lines.append(f"sparsity of prunable weights: {summary['sparsity']:.6f} "
                 f"({summary['kept']} of {summary['prunable']} kept)")
    if summary.get("effective_sparsity") is not None:
        lines.append(f"effective sparsity: {summary['effective_sparsity']:.6f} "
                     f"({summary['ineffective_kept']} kept weights on no input-output path)")
    lines.append("test accuracy: " + (f"{acc:.4f}" if acc is not None else "n/a") +
                 f" on {summary['test_examples']} examples" + _dense(summary))
    cost = summary.get("cost")
    if cost:
        lines.append(f"training cost: {cost['train_epochs']:.2f} epochs "
                     f"({cost['dense_train_epochs']:.2f} dense + {cost['sparse_train_epochs']:.2f} "
                     f"sparse), {cost['train_macs'] / 1e12:.4g} TMACs; inference: "
                     f"{cost['inference_macs'] / 1e6:.4g} MMACs per example "
                     f"(dense {cost['dense_inference_macs'] / 1e6:.4g})")
    return "\n".join(lines)


def _dense(summary: dict) -> str:
    dense = summary.get("dense_test_accuracy")
    return f" (dense network: {dense:.4f})" if dense is not None else ""


def estimate_seconds(config: RunConfig, device: torch.device) -> float:
    """Seconds the run's training will take, from the speed of 2 timed steps on random input."""
    from pai_bench import runner
    p = runner.plan(config)
    model = runner.build_model(p).to(device)
    batch = min(p.recipe.batch_size, 64)
    x = torch.randn(batch, *p.data_spec.input_shape, device=device)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    per_image = min(times[1:]) / batch
    train_size = resolve_subsets(config)[0] or TRAIN_SIZES.get(config.dataset, 50_000)
    return per_image * train_size * resolve_recipe(config, p.model_spec.recipe).epochs


def warn_if_slow(config: RunConfig, device: torch.device, say) -> None:
    """Before a long run on a CPU, say how long it will take and that ``--preset smoke`` exists."""
    if device.type != "cpu" or config.preset != "paper":
        return
    seconds = estimate_seconds(config, device)
    if seconds > SLOW_SECONDS:
        say(f"[pai-bench] no GPU: the {config.preset} recipe for {config.model} will train for "
            f"about {seconds / 3600:.0f} hours on this CPU. `--preset smoke` runs the same "
            f"pipeline in about a minute; `--epochs`/`--subset` shrink it by hand.")
