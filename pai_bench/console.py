"""What a run prints: its summary and per-layer densities, and time estimates before long work
(a run on the paper recipe, a sweep, a reproduction)."""

from __future__ import annotations

from pathlib import Path

import torch

from pai_bench import paths
from pai_bench.artifacts import read_layer_report
from pai_bench.config import RunConfig, dense_config, resolve_recipe, resolve_subsets
from pai_bench.data import DATASETS
from pai_bench.device import torch_threads
from pai_bench.models import MODELS, create_model
from pai_bench.methods import make_method
from pai_bench.precision import cpu_capability, cpu_native_bf16
from pai_bench.training.train import step_times

# Training-set sizes, for estimating a run's length before its data is loaded.
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "tinyimagenet": 100_000,
               "imagenet": 1_281_167}
SLOW_SECONDS = 3600  # warn when the estimate is above an hour


REUSED = {"stored": "  (stored result, not retrained)",
          "waited": "  (trained by another process; this one waited for it)"}


def format_run(summary: dict, run_dir: Path) -> str:
    """What ``run`` prints of a summary (``summary["reused"]``: how this call got it, if it
    did not train it: ``runner.execute``)."""
    lines = [f"run {run_dir}" + REUSED.get(summary.get("reused"), "")]
    digest = (summary.get("digests") or {}).get("layers")  # the summary vouches for it
    layers = read_layer_report(run_dir / paths.LAYERS, digest=digest) if digest else None
    if layers is not None:
        lines.append(f"  {'layer':40s} {'shape':>16s} {'kept':>9s} {'density':>8s} "
                     f"{'effective':>9s}")
        for row in layers:
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
    if summary.get("seconds_per_epoch") is not None:
        lines.append(f"measured: {summary['seconds_per_epoch']:.4g} s per epoch of sparse "
                     f"training (sparse kernels: {summary['config'].get('sparse_kernels', 'off')})")
    return "\n".join(lines)


def _dense(summary: dict) -> str:
    dense = summary.get("dense_test_accuracy")
    return f" (dense network: {dense:.4f})" if dense is not None else ""


def images_per_second(config: RunConfig, device: torch.device, threads: int | None = None) -> float:
    """Training images per second of ``config``'s network on ``device``, measured on 3 steps of
    random input (the first not counted) of the training loop's own step, with the run's
    precision and ``threads`` threads."""
    data = DATASETS.get(config.dataset)
    # a data set that learns its classes and image size from its files (imagefolder): guess
    shape = data.input_shape if min(data.input_shape) > 0 else (3, 32, 32)
    model = create_model(config.model, num_classes=max(data.num_classes, 2), input_shape=shape,
                         seed=0, width=config.width)
    recipe = _recipe(config)
    batch = min(recipe.batch_size, 64)
    x, y = torch.randn(batch, *shape), torch.zeros(batch, dtype=torch.long)
    with torch_threads(threads):
        times = step_times(model, x, y, recipe, device=device, precision=config.precision)
    return batch / min(times[1:])


def training_images(config: RunConfig) -> int:
    """Images one training of ``config`` processes: training-set size x epochs."""
    train_size = resolve_subsets(config)[0] or TRAIN_SIZES.get(config.dataset, 50_000)
    return train_size * _recipe(config).epochs


def _recipe(config: RunConfig):
    return resolve_recipe(config, MODELS.get(config.model).recipe)


def estimate_seconds(config: RunConfig, device: torch.device) -> float:
    """Seconds the run's training will take, from a measured throughput on random input."""
    return training_images(config) / images_per_second(config, device)


def sweep_estimate(configs: list[RunConfig], device: torch.device, workers: int = 1,
                   threads: int | None = 1, sized_for: float | None = None,
                   results_dir: Path | None = None) -> str:
    """What a sweep of ``configs`` (the runs still to do) will take here, said before it starts:
    the runs, the dense networks they train first, the measured throughput of one run, the
    wall time with ``workers`` runs at once (``Executor.at_once``: on CUDA, runs per GPU x
    GPUs; runs sharing a GPU are assumed to keep the speed of one alone, which
    ``benchmarks/gpu_check.py``'s concurrency part measures); and, when the throughput is far
    below ``sized_for`` (images/s per worker that the experiment was sized for), the likely
    cause. The throughput is timed with the device synchronized before each timer read
    (``train.step_times``)."""
    if not configs:
        return ""
    speed: dict[tuple, float] = {}
    images = 0.0
    seconds = 0.0
    dense = {dense_config(c) for c in configs
             if make_method(c.method, dict(c.method_args)).needs_dense(c)}
    if results_dir is not None:  # those already trained cost nothing
        dense = {d for d in dense if not (paths.dense_dir(results_dir, d) / paths.SUMMARY).exists()}
    for c in [*configs, *dense]:
        key = (c.model, c.width, c.dataset, c.batch_size, c.precision)
        if key not in speed:
            speed[key] = images_per_second(c, device, threads)
        n = training_images(c)
        images += n
        seconds += n / speed[key]
    rate = images / seconds
    wall = seconds / max(1, workers)
    text = (f"[pai-bench] estimate: {len(configs)} run(s) and {len(dense)} dense network(s), "
            f"{rate:,.0f} training images/s per run measured here ({configs[0].precision}, "
            f"{threads or torch.get_num_threads()} thread(s)): about {_duration(wall)} with "
            f"{workers} run(s) at once" + _sharing(device, workers))
    if sized_for and rate < sized_for / 2:
        text += (f"\n[pai-bench] warning: that is far below the {sized_for:,.0f} images/s per "
                 f"worker this experiment was sized for; likely cause: "
                 f"{_likely_cause(configs[0], device, threads)}")
    return text


def _sharing(device: torch.device, at_once: int) -> str:
    gpus = max(1, torch.cuda.device_count()) if torch.device(device).type == "cuda" else 0
    if gpus and at_once > gpus:
        return (f" on {gpus} GPU(s) (if runs sharing a GPU keep the speed of one alone: "
                f"benchmarks/gpu_check.py measures it)")
    return ""


def _likely_cause(config: RunConfig, device: torch.device, threads: int | None) -> str:
    if device.type == "cpu" and config.precision == "bf16" and not cpu_native_bf16():
        return ("bf16 on a CPU without native bfloat16 (emulated, about 10x slower): use "
                "--precision auto or fp32")
    if device.type == "cpu" and config.precision == "fp32" and not cpu_native_bf16():
        return (f"this CPU has no native bfloat16 ({cpu_capability()}), so precision auto runs "
                f"fp32, about 2.5x slower than the bf16 the experiment was sized with")
    return (f"a slower CPU or fewer threads than sized for ({threads or torch.get_num_threads()} "
            f"thread(s) per worker); another process using the cores")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} hours"


def warn_if_slow(config: RunConfig, device: torch.device, say) -> None:
    """Before a long run on a CPU, say how long it will take and that ``--preset smoke`` exists."""
    if device.type != "cpu" or config.preset != "paper":
        return
    seconds = estimate_seconds(config, device)
    if seconds > SLOW_SECONDS:
        say(f"[pai-bench] no GPU: the {config.preset} recipe for {config.model} will train for "
            f"about {seconds / 3600:.0f} hours on this CPU. `--preset smoke` runs the same "
            f"pipeline in about a minute; `--epochs`/`--subset` shrink it by hand.")
