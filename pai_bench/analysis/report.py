"""The report of a results folder: every table (``pai_bench.analysis.table``) and figure
(``pai_bench.analysis.plots``) of its runs, written to one folder. What ``table``, ``plot`` and
``reproduce`` produce, callable from Python."""

from __future__ import annotations

from pathlib import Path

from pai_bench.analysis import plots
from pai_bench.errors import ConfigError
from pai_bench.filekinds import require_folder
from pai_bench.io import name_too_long
from pai_bench.analysis.results import load_runs
from pai_bench.analysis.table import build_tables, write_tables


def results_folder(results_dir: Path | str) -> Path:
    """``results_dir``, which must exist (a ConfigError names it otherwise)."""
    path = Path(results_dir)
    too_long = name_too_long(path)
    if too_long:
        raise ConfigError(f"results folder {path} cannot be read: {too_long}")
    return require_folder(path, "results folder")


def require_runs(results_dir, references=()):
    """``results_folder(results_dir)`` (or of each of several folders), which with the
    reference files ``references`` must hold at least one stored run: what ``table`` and
    ``plot`` say alike about a folder without runs (a ConfigError naming it)."""
    several = not isinstance(results_dir, (str, Path))
    folders = [results_folder(d) for d in (results_dir if several else [results_dir])]
    if load_runs(folders, references=references).empty:
        raise ConfigError(f"no runs in {', '.join(map(str, [*folders, *references]))}")
    return folders if several else folders[0]


def tables(results_dir, out: Path | str, latex: bool = False,
           configs=None, *, findings=None, margin_points: float | None = None,
           references=()) -> str:
    """Write every table of the runs under ``results_dir`` (one folder or several; only those
    of ``configs`` if given) and in the reference files ``references`` to ``out`` as CSV and
    Markdown (and LaTeX); return the Markdown. ``findings`` and ``margin_points`` (δ in
    accuracy points): what the verdicts ask (``results.verdicts``)."""
    built = build_tables(results_dir, configs, findings=findings,
                         margin_points=margin_points, references=references)
    return write_tables(built, Path(out), latex)


def figures(results_dir, out: Path | str, layer_sparsity: float | None = None,
            configs=None, references=()) -> list[Path]:
    """Draw every figure of the runs under ``results_dir`` (one folder or several) and in the
    reference files ``references`` into ``out``; return the files. ``layer_sparsity``: the
    sparsity of the per-layer density figure (default: the highest; drawn from the runs'
    stored layer reports, which reference rows do not have)."""
    runs = load_runs(results_dir, configs, references=references)
    if runs.empty:
        raise ConfigError(f"no runs in {results_dir}")
    out = Path(out)
    s = _layer_sparsity(layer_sparsity, runs) if layer_sparsity is not None \
        else float(runs["sparsity"].max())
    return (plots.accuracy_vs_sparsity(runs, out) + plots.checks_per_method(runs, out)
            + plots.pruning_early(runs, out) + plots.layer_densities(results_dir, runs, s, out))


def _layer_sparsity(value, runs) -> float:
    """``--layer-sparsity``: a number in [0, 1) that some stored run has (else the figure
    would silently be missing), or a ConfigError naming the sparsities the runs have."""
    stored = sorted({float(x) for x in runs["sparsity"]})
    valid = ", ".join(f"{x:g}" for x in stored)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0.0 <= value < 1.0:  # NaN fails this too
        raise ConfigError(f"--layer-sparsity must be a number in [0, 1), got {value!r}; "
                          f"the runs have {valid}")
    if not any(abs(x - value) < 1e-9 for x in stored):
        raise ConfigError(f"--layer-sparsity {value:g}: no run has it; the runs have {valid}")
    return float(value)


def write_report(results_dir: Path | str, out: Path | str, latex: bool = True,
                 configs=None, *, findings=None, margin_points: float | None = None) -> str:
    """Tables and figures together; returns the tables' Markdown. An experiment declares its
    verdicts' margin (``margin_points``, e.g. ``findings.MARGIN_POINTS[scale]``) and findings."""
    text = tables(results_dir, out, latex, configs, findings=findings,
                  margin_points=margin_points)
    if not load_runs(results_dir, configs).empty:
        figures(results_dir, out, None, configs)
    return text
