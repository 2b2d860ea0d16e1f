"""Figures like the paper's: accuracy vs sparsity, the checks per method, per-layer density.

Weights remaining go on a log axis (as in Frankle et al. 2021), so the extreme sparsities where
the methods differ get the room. Every figure is written as PNG and PDF.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pai_bench import paths  # noqa: E402
from pai_bench.table import accuracy_table, dense_table  # noqa: E402

BASELINE_STYLE = dict(linestyle="--", marker="s")
CHECK_STYLE = {"none": "-", "shuffle": "--", "reinit": ":", "invert": "-."}


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for f in files:
        fig.savefig(f, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return files


def _remaining_axis(ax, sparsities) -> None:
    """Weights remaining on a log axis, decreasing to the right, ticked at the measured points."""
    ticks = sorted({round(100 * (1 - s), 3) for s in sparsities})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%), log scale")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)


def _line(ax, g: pd.DataFrame, label: str, **style) -> None:
    g = g.sort_values("sparsity")
    x = 100 * (1 - g["sparsity"])
    ax.plot(x, 100 * g["mean"], label=label, **style)
    ax.fill_between(x, 100 * (g["mean"] - g["std"]), 100 * (g["mean"] + g["std"]), alpha=0.2)


def _dense_line(ax, dense: pd.DataFrame, model: str) -> None:
    d = dense[dense["model"] == model]
    if len(d):
        m, s = 100 * d["mean"].iloc[0], 100 * d["std"].iloc[0]
        ax.axhline(m, color="black", linewidth=1, label="dense")
        ax.axhspan(m - s, m + s, color="black", alpha=0.08)


def accuracy_vs_sparsity(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One panel per model: a line per method (unmodified, at step 0), baselines dashed."""
    from baselines import BASELINES
    table, dense = accuracy_table(runs), dense_table(runs)
    base = table[(table["check"] == "none") & (table["prune_at"] == 0)]
    files = []
    for model, g in base.groupby("model"):
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for method, mg in g.groupby("method"):
            _line(ax, mg, method, **(BASELINE_STYLE if method in BASELINES else {"marker": "o"}))
        _dense_line(ax, dense, model)
        _remaining_axis(ax, g["sparsity"])
        ax.set_title(f"{model}: accuracy vs sparsity (mean ± std over seeds)")
        ax.legend(fontsize=8)
        files += _save(fig, out_dir, f"accuracy_vs_sparsity_{model}")
    return files


def checks_per_method(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One panel per method: the original and each sanity check (shuffle, reinit, invert)."""
    table, dense = accuracy_table(runs), dense_table(runs)
    files = []
    for model, g in table[table["prune_at"] == 0].groupby("model"):
        methods = [m for m, mg in g.groupby("method") if mg["check"].nunique() > 1]
        if not methods:
            continue
        fig, axes = plt.subplots(1, len(methods), figsize=(4 * len(methods), 3.6), sharey=True,
                                 squeeze=False)
        for ax, method in zip(axes[0], methods):
            for check, cg in g[g["method"] == method].groupby("check"):
                _line(ax, cg, check, linestyle=CHECK_STYLE.get(check, "-"), marker="o")
            _dense_line(ax, dense, model)
            _remaining_axis(ax, g["sparsity"])
            ax.set_title(method)
            ax.legend(fontsize=7)
        fig.suptitle(f"{model}: sanity checks (mean ± std over seeds)")
        fig.tight_layout()
        files += _save(fig, out_dir, f"checks_{model}")
    return files


def layer_densities(results_dir: Path, runs: pd.DataFrame, sparsity: float,
                    out_dir: Path) -> list[Path]:
    """Per-layer density of each method's mask (seed 0, unmodified) at ``sparsity``."""
    pick = runs[(runs["check"] == "none") & (runs["prune_at"] == 0) & (runs["seed"] == 0)
                & ((runs["sparsity"] - sparsity).abs() < 1e-9)]
    files = []
    for model, g in pick.groupby("model"):
        fig, ax = plt.subplots(figsize=(8, 4))
        for _, row in g.sort_values("method").iterrows():
            csv_path = Path(results_dir) / "runs" / f"{row['method']}-{row['hash']}" / paths.LAYERS
            if not csv_path.exists():
                continue
            with open(csv_path) as f:
                dens = [float(r["density"]) for r in csv.DictReader(f)]
            ax.plot(range(len(dens)), [100 * d for d in dens], marker=".", label=row["method"])
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("prunable layer index (input to output)")
        ax.set_ylabel("weights remaining in the layer (%), log")
        ax.set_title(f"{model}: per-layer density at sparsity {sparsity:g}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        files += _save(fig, out_dir, f"layer_density_{model}_{sparsity:g}")
    return files
