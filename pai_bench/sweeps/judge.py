"""One method, judged: the runs the paper's questions need for it, the references taken from
reference rows where they are, and a verdict card (Markdown + CSV).

The questions (``JUDGE_FAMILIES``, the paper's findings as ``pai_bench.analysis.findings`` declares
them): is the method better than random pruning (e)? worse than magnitude pruning after
training and lottery-ticket rewinding (a)? not worse (within δ) shuffled or reinitialized, i.e.
does it only learn per-layer densities (d)? worse inverted, i.e. does its ranking inform
(invert)? Each is answered as the report answers it (``results.verdicts``: Welch tests, Holm
within the family), on the method's comparisons alone, so its families hold only its rows.

Two levels (``LEVELS``): ``quick``, the design's seeds for every group (``CPU_SEEDS``: what the
"worse" and "better" questions need at the CPU scale's noise, ``experiments.design_table``);
``full``, the seeds that "not worse within δ" needs for the method and its shuffled and
reinitialized runs (``design.seeds_needed``, planned for no effect). Runs already stored, or
present in a reference file (``--reference``), are not trained again; the rest run as one
resumable sweep. Reference rows made on another machine are used only after a calibration here
shows this machine's accuracies equivalent to theirs (``pai_bench.analysis.calibration``); otherwise the
references are trained here, and the card says why. At the paper scale (``SCALES["paper"]``,
``--scale paper``) the same questions are asked over the paper's grid (its networks, sparsities
and seeds), and every reference that no reference row holds is trained here. The card's figure
and its words: ``pai_bench.analysis.card_figure``, ``pai_bench.analysis.card_text``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the library loads where used
    import pandas as pd

from pai_bench.analysis.calibration import (CALIBRATED, Calibration, calibrate, calibration_configs,
                                   foreign)
from pai_bench.analysis.card_figure import card_figure
from pai_bench.analysis.card_text import cost_line, level_line, question_lines
from pai_bench.config import RunConfig
from pai_bench.analysis.design import family_sizes, seeds_needed
from pai_bench.errors import ConfigError
from pai_bench.sweeps.executors import ExecutorOptions
from pai_bench.sweeps.experiments import (AFTER_TRAINING, AFTER_TRAINING_PAPER, CALIBRATION_SD_POINTS,
                                         CPU_MINIATURE,
                                         CPU_PLANS, CPU_RUN, CPU_SEEDS, CPU_SPARSITIES,
                                         PAI_METHODS, PAPER_DATA, PAPER_FIGURE_SPARSITY,
                                         PAPER_MODELS, PAPER_SEEDS, PAPER_SPARSITIES)
from pai_bench.analysis.findings import MARGIN_POINTS, select
from pai_bench.io import atomic_write_text
from pai_bench.methods import METHODS, load_plugins
from pai_bench.options import RunOptions
from pai_bench.precision import machine, resolve
from pai_bench.analysis.results import load_runs, verdicts
from pai_bench.sweeps.sweep import SweepSpec, run_sweep
from pai_bench.analysis.table import markdown, readable_verdicts

JUDGE_FAMILIES = ("a", "d", "e", "invert")
JUDGE_CHECKS = ("none", "shuffle", "reinit", "invert")
LEVELS = ("quick", "full")
REFERENCES = ("random", *AFTER_TRAINING)  # the methods the questions compare with


@dataclass(frozen=True)
class Design:
    """Where a method is judged: the shared settings, the sparsity, the seeds of the quick
    level, the measured seed-to-seed SD and the margin δ (points). Default: the CPU scale.

    A design over a grid (the paper scale, ``SCALES["paper"]``) also names its ``networks``
    (each a run dict laid over ``run``) and ``sparsities``; ``run`` and ``sparsity`` are then
    the setting of the card's figure."""

    run: dict = dataclasses.field(default_factory=lambda: dict(CPU_RUN))
    sparsity: float = CPU_SPARSITIES[-1]
    seeds: tuple[int, ...] = CPU_SEEDS
    sd_points: float = CPU_MINIATURE.sd_points
    calibration_sd_points: float = CALIBRATION_SD_POINTS  # the calibrated runs' own SD
    margin_points: float = MARGIN_POINTS["cpu"]
    networks: tuple[dict, ...] = ()  # default: ``run`` alone
    sparsities: tuple[float, ...] = ()  # default: ``sparsity`` alone
    reference_methods: tuple[str, ...] = REFERENCES  # what the questions compare with
    scale: str = "cpu"

    def settings(self) -> list[dict]:
        """The shared settings of every network judged."""
        return [{**self.run, **n} for n in self.networks] or [dict(self.run)]

    def grid(self) -> tuple[float, ...]:
        return self.sparsities or (self.sparsity,)


# The seed-to-seed SD at the paper's scale is not measured here: 0.5 points is an assumption of
# the order of the paper's CIFAR-10 error bars, used only for the seeds of the full level and of
# a calibration at that scale (replace it with a measured one, as CPU_MINIATURE's).
PAPER_SD_POINTS = 0.5
SCALES = {
    "cpu": Design(),
    # the paper's grid (``experiments._paper``): its networks, sparsities and seeds; the
    # after-training baselines with iterative magnitude pruning by levels
    "paper": Design(run=dict(model=PAPER_MODELS[0], dataset=PAPER_DATA[PAPER_MODELS[0]]),
                    sparsity=PAPER_FIGURE_SPARSITY, seeds=PAPER_SEEDS,
                    sd_points=PAPER_SD_POINTS, calibration_sd_points=PAPER_SD_POINTS,
                    margin_points=MARGIN_POINTS["paper"],
                    networks=tuple(dict(model=m, dataset=PAPER_DATA[m]) for m in PAPER_MODELS),
                    sparsities=PAPER_SPARSITIES,
                    reference_methods=("random", *AFTER_TRAINING_PAPER), scale="paper"),
}


def design_of(scale: str) -> Design:
    """The design of ``scale`` (``SCALES``)."""
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")
    return SCALES[scale]


def full_seeds(design: Design, method: str) -> tuple[int, ...]:
    """The seeds "not worse within δ" needs for ``method``'s shuffle and reinit checks (finding
    d, planned for no effect: ``experiments.CPU_PLANS``), never fewer than the quick level's."""
    plan = next(p for p in CPU_PLANS if (p.family, p.question) == ("d", "not worse"))
    one_seed = [c for s in sweeps(method, design, "quick") for c in s.configs()
                if c.seed == design.seeds[0]]
    m = family_sizes(one_seed, select(*JUDGE_FAMILIES), design.margin_points)["d"]
    need = seeds_needed(plan, design.sd_points, design.margin_points, max(m, 1))
    n = max(need or 0, len(design.seeds))
    return tuple(range(n))


def sweeps(method: str, design: Design, level: str = "quick") -> list[SweepSpec]:
    """The runs of ``method``'s card: the method and its checks, the references beside it."""
    if level not in LEVELS:
        raise ConfigError(f"unknown level {level!r}; valid levels: {', '.join(LEVELS)}")
    if METHODS.get(method).after_training:
        raise ConfigError(f"judge compares a method at initialization with the after-training "
                          f"baselines; {method!r} prunes after training")
    specs = []
    for run in design.settings():
        common = dict(sparsities=design.grid(), run=run)
        specs += [SweepSpec(methods=(method,), seeds=design.seeds, checks=JUDGE_CHECKS, **common),
                  SweepSpec(methods=design.reference_methods, seeds=design.seeds, **common)]
    if level == "full":
        seeds = full_seeds(design, method)
        specs += [SweepSpec(methods=(method,), seeds=seeds, checks=("none", "shuffle", "reinit"),
                            sparsities=design.grid(), run=run) for run in design.settings()]
    return specs


def judge(method: str, options: RunOptions, executor: ExecutorOptions = ExecutorOptions(),
          *, level: str = "quick", references=(), design: Design = Design(),
          out: Path | str | None = None) -> Path:
    """Judge ``method``: run what is missing (stored runs and reference rows are not trained
    again), then write its card (``card.md``, ``card.csv`` and the figures) to ``out``
    (default ``<results_dir>/judge/<method>-<level>``; at another scale than the CPU's,
    ``<method>-<scale>-<level>``). ``design``: where (``SCALES``). Returns the card's folder."""
    options = options.resolved()
    load_plugins(options.plugins)
    configs = list(dict.fromkeys(resolve(c, options.torch_device)
                                 for s in sweeps(method, design, level) for c in s.configs()))
    calibration = calibrated(configs, options, executor, references, design)
    references = tuple(references) if calibration.used else ()
    given = load_runs([], configs=configs, references=references) if references else None
    have = set() if given is None or given.empty else set(given["hash"])
    todo = [c for c in configs if c.hash() not in have]
    if todo:
        run_sweep(todo, options, executor)
    name = f"{method}-{level}" if design.scale == "cpu" else f"{method}-{design.scale}-{level}"
    out = Path(out) if out is not None else options.results_dir / "judge" / name
    runs = load_runs([options.results_dir], configs=configs, references=references)
    drawn = load_runs([options.results_dir], configs=configs + _paper(design, options),
                      references=references)
    write_card(method, level, runs, drawn[drawn["check"] == "none"], design, out, calibration)
    return out


def _paper(design: Design, options: RunOptions) -> list[RunConfig]:
    """The paper's methods in the design's setting: drawn beside the method where stored."""
    return [resolve(RunConfig(method=m, sparsity=design.sparsity, seed=seed, **design.run),
                    options.torch_device) for m in dict.fromkeys((*PAI_METHODS, *design.reference_methods))
            for seed in design.seeds]


def calibration_runs(design: Design, device="cpu") -> list[RunConfig]:
    """The runs of a calibration at ``design`` (``experiments`` "calibration" ships them): the
    calibrated method in the card's setting, with the seeds its measured SD asks for."""
    base = resolve(RunConfig(method=CALIBRATED, sparsity=design.sparsity, seed=0, **design.run),
                   device)
    return calibration_configs(base, design.calibration_sd_points, design.margin_points)


def calibrated(configs: list[RunConfig], options: RunOptions, executor: ExecutorOptions,
               references, design: Design) -> Calibration:
    """Whether the reference rows of ``configs`` may be used here (``pai_bench.analysis.calibration``):
    rows made on this machine, yes; rows made elsewhere, after a calibration run here."""
    rows = load_runs([], configs=configs, references=references) if references else None
    if rows is None or rows.empty:
        return Calibration(False, "no reference rows of these runs: every run is trained here")
    here, version = machine(options.torch_device), torch.__version__
    if not foreign(rows, here, version):
        return Calibration(True, f"every reference row used was made on this machine ({here}, "
                                 f"torch {version})")
    runs = calibration_runs(design, options.torch_device)
    run_sweep(runs, options, executor)
    return calibrate(load_runs([options.results_dir], configs=runs),
                     load_runs([], configs=runs, references=references),
                     design.margin_points, here)


def _seeds(runs: pd.DataFrame, method: str) -> str:
    counts = runs[runs["method"] == method].groupby("check").size()
    return ", ".join(f"{check} {n}" for check, n in counts.items())


def card_rows(method: str, runs: pd.DataFrame, design: Design) -> pd.DataFrame:
    """The verdicts of ``method``'s comparisons, every family holding only its rows."""
    v = verdicts(runs, findings=select(*JUDGE_FAMILIES), margin_points=design.margin_points)
    return v[v["method"] == method].reset_index(drop=True) if len(v) else v


def _settings(design: Design) -> str:
    """The networks and sparsities judged, and (on a grid) the setting of figure and cost."""
    grid = design.grid()
    said = (f"{'; '.join(map(str, design.settings()))}, sparsit{'ies' if len(grid) > 1 else 'y'} "
            f"{', '.join(f'{s:g}' for s in grid)}")
    if len(design.settings()) * len(design.grid()) > 1:
        said += f" (figure and cost: {design.run['model']} at {design.sparsity:g})"
    return said


def at_figure(runs: pd.DataFrame, design: Design) -> pd.DataFrame:
    """The rows of the figure's network and sparsity (the design's ``run``'s model and data,
    and ``sparsity``): every row at the CPU scale."""
    if runs.empty:
        return runs
    keep = (runs["sparsity"].astype(float) - design.sparsity).abs() < 1e-9
    for key in ("model", "dataset"):
        keep &= runs[key] == design.run[key]
    return runs[keep]


def write_card(method: str, level: str, runs: pd.DataFrame, drawn: pd.DataFrame,
               design: Design, out: Path, calibration: Calibration) -> Path:
    """``card.md``, ``card.csv`` and the figures of ``method`` in ``out``: the verdicts of
    ``runs``; the figures draw ``drawn`` (the method among every method of its setting)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = card_rows(method, runs, design)
    atomic_write_text(out / "card.csv", rows.to_csv(index=False))
    shown = at_figure(runs, design)
    mine = shown[(shown["method"] == method) & (shown["check"] == "none")]
    sources = sorted(set(runs["source"])) if "source" in runs else []
    machines = sorted(set(runs["machine"].dropna())) if "machine" in runs else []
    lines = [f"# {method}, judged ({level} level)", "",
             f"Setting: {_settings(design)}, δ = "
             f"{design.margin_points:g} points. Seeds per group: {_seeds(runs, method)}.",
             f"Runs from: {', '.join(sources)}. Machines: "
             f"{'; '.join(machines) or 'not recorded'}.", "",
             f"Calibration: {calibration.why}.", "",
             level_line(level, len(design.seeds), len(full_seeds(design, method))), ""]
    if len(mine):
        lines.append(cost_line(mine, design.sparsity))
    lines += ["", "## Questions", "",
              markdown(readable_verdicts(rows)) if len(rows) else "no comparison has the "
              "seeds for a verdict yet", "", "What each question could and could not detect "
              "(`detectable`: the smallest true distance from the question's null that these "
              "seeds detect with 80% power):", "", *question_lines(rows), ""]
    files = card_figure(method, shown, at_figure(drawn, design), design.sparsity, out)
    lines += ["## Figure", "", f"Left: {method} among the paper's methods and the after-training "
              "baselines stored or in the references (mean ± std over seeds). Right: its "
              "per-layer density against ERK and uniform at the same sparsity (the numbers: "
              "`card_accuracy.csv`, `card_layers.csv`).", ""]
    lines += [f"![{f.stem}]({f.name})" for f in files if f.suffix == ".png"]
    atomic_write_text(out / "card.md", "\n".join(lines))
    return out
