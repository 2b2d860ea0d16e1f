"""Named reproductions of the paper's experiments (Frankle et al. 2021), at two scales.

``--scale paper``: the paper's networks, recipes, sparsity grid and 5 seeds (GPU-days).
``--scale cpu``: a miniature of the same code path for 2 CPU cores, sized so that ``main`` and
``ablations`` finish within 75 minutes together (68 min measured; times in
``results/README.md``):

* ResNet-20 at width 8 instead of 16 (about 4x fewer MACs, 68k prunable weights; the same
  depth and topology, so the same layer-collapse and per-layer-density effects); measured here
  at about 1,150 images/s per core with bfloat16 autocast, against 300 for width 16 in float32;
* 5,000 class-balanced CIFAR-10 training images, 8 epochs with the paper's schedule shape
  (x0.1 at 50% and 75%), batch 32 and lr 0.05 (more steps for the same compute: measured dense
  accuracy 48.9% against 44.2% with batch 128 and lr 0.1, and 45.7% for 10,000 images x 4
  epochs), ``precision="auto"``: bfloat16 autocast on a CPU with native bfloat16 (the machine
  of the committed results), float32 where bf16 would be emulated (``pai_bench.precision``:
  ten times slower there); the two are different settings, never averaged together; the full
  10,000-image test set (evaluation is cheap, and it
  halves the noise of a 2,000-image slice);
* sparsities 0.5 and 0.9: at width 8, 90% sparsity leaves 6.8k weights, where the methods part
  ways without all collapsing to chance; 3 seeds, enough for Welch's test to call large
  differences. The ablations use 0.9 only.

``successors`` holds the sanity checks of the methods that came after the paper (iterative SNIP,
FORCE, ProsPr, NTK-SAP, PHEW); the methods themselves are in ``main`` at both scales (at CPU
scale at 90% only, where the methods at initialization part ways; their 50% runs are in
``successors``, which keeps ``main`` + ``ablations`` within the CPU budget), and in
``ablations`` at paper scale. Iterative magnitude pruning by levels (``imp``) is in ``main`` and
``ablations`` at paper scale only: 90% sparsity is level 11 of its chain (11 trainings per seed),
beyond the CPU budget.

Each experiment is a list of sweeps (one per network); ``python -m pai_bench reproduce NAME``,
or ``reproduce(NAME, scale, ...)`` from Python. (An *experiment* is a named list of sweeps; a
*preset*, the ``preset`` field of a run, is its training recipe: paper or smoke.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from pai_bench import report
from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.executors import ExecutorOptions
from pai_bench.findings import MARGIN_POINTS, PAPER_FINDINGS, Finding, select
from pai_bench.options import RunOptions
from pai_bench.precision import resolve
from pai_bench.recipes import PRUNE_EARLY_STEPS
from pai_bench.registry import Registry
from pai_bench.sweeps import SweepSpec, run_sweep

PAI_METHODS = ("random", "magnitude", "snip", "grasp", "grasp_abs", "synflow")
# The methods at initialization that came after the paper (methods/progressive.py, prospr.py,
# ntk_sap.py, phew.py), run through the same protocol.
SUCCESSORS = ("iterative_snip", "force", "prospr", "ntk_sap", "phew")
AFTER_TRAINING = ("magnitude_after_training", "ltr")
# At paper scale also iterative magnitude pruning by levels: the paper's grid is its levels, so
# one chain per seed trains every sparsity (19 levels), the others one network per sparsity.
AFTER_TRAINING_PAPER = (*AFTER_TRAINING, "imp")
CHECKS = ("none", "shuffle", "reinit", "invert")
PAPER_MODELS = ("cifar_resnet_20", "cifar_vgg_16", "tinyimagenet_resnet_18",
                "imagenet_resnet_50")
PAPER_DATA = {"cifar_resnet_20": "cifar10", "cifar_vgg_16": "cifar10",
              "tinyimagenet_resnet_18": "tinyimagenet", "imagenet_resnet_50": "imagenet"}
# Weights remaining 0.8^k (the lottery-ticket grid), from 80% down to about 1.4%.
PAPER_SPARSITIES = tuple(round(1 - 0.8**k, 6) for k in (1, 2, 3, 5, 7, 9, 11, 13, 15, 17, 19))
PAPER_SEEDS = (0, 1, 2, 3, 4)

CPU_RUN = dict(model="cifar_resnet_20", width=8, dataset="cifar10", epochs=8, subset=5000,
               batch_size=32, lr=0.05, precision="auto")
# Training images/s per worker (1 thread) the CPU scale was sized with: the measured throughput
# of CPU_RUN's network (console.images_per_second) on the machine of the committed results (AMD
# EPYC with AVX512-BF16, bf16): 565-606; fp32 there: 425-461. Sweeps warn below half of it.
CPU_SIZED_FOR = 550
CPU_SPARSITIES = (0.5, 0.9)
CPU_SEEDS = (0, 1, 2)


def _paper(methods, checks=("none",), prune_at=(0,)) -> list[SweepSpec]:
    return [SweepSpec(methods=methods, sparsities=PAPER_SPARSITIES, seeds=PAPER_SEEDS,
                      checks=checks, prune_at=prune_at,
                      run=dict(model=m, dataset=PAPER_DATA[m])) for m in PAPER_MODELS]


@dataclass(frozen=True)
class Experiment:
    """A named experiment: its sweeps at each scale ("paper", "cpu") and the paper's findings
    its verdicts test (``pai_bench.findings``: each a question, a margin, a family)."""

    name: str
    scales: dict[str, list[SweepSpec]]
    findings: tuple[Finding, ...] = PAPER_FINDINGS


EXPERIMENTS: Registry[Experiment] = Registry("experiment")

EXPERIMENTS.register(Experiment("main", {
    "paper": _paper(PAI_METHODS + SUCCESSORS + AFTER_TRAINING_PAPER),
    # The methods after the paper at 90% only, to stay within the CPU budget; their 50%
    # runs are in ``successors``.
    "cpu": [SweepSpec(methods=PAI_METHODS + AFTER_TRAINING, sparsities=CPU_SPARSITIES,
                      seeds=CPU_SEEDS, run=CPU_RUN),
            SweepSpec(methods=SUCCESSORS, sparsities=CPU_SPARSITIES[1:], seeds=CPU_SEEDS,
                      run=CPU_RUN)],
}, findings=select("a", "e")))

EXPERIMENTS.register(Experiment("ablations", {
    "paper": _paper(PAI_METHODS[1:] + SUCCESSORS + AFTER_TRAINING_PAPER, checks=CHECKS),
    "cpu": [SweepSpec(methods=("magnitude", "snip", "grasp", "synflow", "ltr"),
                      sparsities=CPU_SPARSITIES[1:], seeds=CPU_SEEDS, checks=CHECKS,
                      run=CPU_RUN)],
}, findings=select("b", "c", "d", "invert", "other checks")))

# The sanity checks of the methods after the paper (their "none" runs: main).
EXPERIMENTS.register(Experiment("successors", {
    "paper": _paper(SUCCESSORS, checks=CHECKS),
    "cpu": [SweepSpec(methods=SUCCESSORS, sparsities=CPU_SPARSITIES[1:], seeds=CPU_SEEDS,
                      checks=CHECKS, run=CPU_RUN),
            SweepSpec(methods=SUCCESSORS, sparsities=CPU_SPARSITIES[:1], seeds=CPU_SEEDS,
                      run=CPU_RUN)],
}, findings=select("d", "invert", "other checks")))

EXPERIMENTS.register(Experiment("early", {
    "paper": _paper(("magnitude", "snip", "grasp", "synflow"),
                    prune_at=(0, *PRUNE_EARLY_STEPS)),
    "cpu": [SweepSpec(methods=("magnitude", "snip", "grasp", "synflow"),
                      sparsities=CPU_SPARSITIES[1:], seeds=CPU_SEEDS,
                      prune_at=(0, 50, 100, 200), run=CPU_RUN)],
}, findings=select("a-early", "e")))


def experiment(name: str, scale: str) -> list[SweepSpec]:
    """The sweeps of experiment ``name`` at ``scale`` ("paper" or "cpu")."""
    scales = EXPERIMENTS.get(name).scales
    if scale not in scales:
        raise ConfigError(f"unknown scale {scale!r}; valid scales: {', '.join(scales)}")
    return scales[scale]


def configs(name: str, scale: str) -> list[RunConfig]:
    """Every run of experiment ``name`` at ``scale``."""
    return [c for spec in experiment(name, scale) for c in spec.configs()]


def reproduce(name: str, scale: str, options: RunOptions,
              executor: ExecutorOptions = ExecutorOptions(),
              out: Path | str | None = None) -> tuple[list[dict], Path]:
    """Run experiment ``name`` (resumable, like any sweep) and write its tables and figures to
    ``out`` (default ``<results_dir>/<scale>/<name>``). Returns the results of the runs done
    this time and the report folder."""
    options = options.resolved()
    runs = list(dict.fromkeys(resolve(c, options.torch_device) for c in configs(name, scale)))
    sized_for = CPU_SIZED_FOR if scale == "cpu" else None
    results = run_sweep(runs, options, executor, sized_for=sized_for)
    out = Path(out) if out is not None else options.results_dir / scale / name
    options.say(report.write_report(options.results_dir, out, latex=True,
                                    configs=with_random_reference(runs),
                                    findings=EXPERIMENTS.get(name).findings,
                                    margin_points=MARGIN_POINTS[scale]))
    return results, out


def with_random_reference(runs: list[RunConfig]) -> list[RunConfig]:
    """``runs`` and random pruning at step 0 in each of their settings: the reference the
    figures draw, taken from the stored runs when another experiment made them (``main``)."""
    random = [dataclasses.replace(c, method="random", check="none", prune_at=0,
                                  rewind_iter=None, rounds=None, method_args=()) for c in runs]
    return list(dict.fromkeys([*runs, *random]))
