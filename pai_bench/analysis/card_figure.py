"""The verdict card's figure: the judged method among the paper's methods and the after-training
baselines (test accuracy, mean ± std over seeds, at the card's sparsity), and its per-layer
density against the two formulas a method's densities are usually measured by, ERK and uniform,
at the same sparsity.

Why those two: if shuffling a method's masks leaves its accuracy unchanged (the paper's finding
for SNIP, GraSP and SynFlow), all it contributes is its per-layer densities, and ERK (Evci et
al. 2020) and uniform are the densities a formula gives for free (``random_erk`` and
``random_uniform`` train them). Their densities here are computed from the layer shapes of the
method's own masks (``masks.layers.csv``) by the same arithmetic as ``random_erk``
(``pruning.erk_densities``). The numbers drawn are also written as ``card_layers.csv`` and
``card_accuracy.csv``, so the figure can be read without the picture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math
from pathlib import Path


if TYPE_CHECKING:  # annotations only: the library loads where used
    import pandas as pd

from pai_bench import paths
from pai_bench.analysis.plots import pyplot, method_style
from pai_bench.artifacts import read_layer_report
from pai_bench.io import atomic_save_figure, atomic_write_text
from pai_bench.methods import METHODS
from pai_bench.pruning import erk_densities

FIGURE = "card"  # card.png and card.pdf
FORMULAS = ("ERK", "uniform")  # the per-layer densities the method's are drawn against
FORMULA_STYLE = {"ERK": ("tab:pink", "--"), "uniform": ("tab:gray", ":")}


def formula_densities(shapes: dict[str, tuple[int, ...]], sparsity: float
                      ) -> dict[str, dict[str, float]]:
    """{formula: {layer: density}} of ``FORMULAS`` for layers of ``shapes`` at ``sparsity``:
    ERK by ``pruning.erk_densities`` (random_erk's arithmetic), uniform: 1 - sparsity in every
    layer."""
    density = 1.0 - sparsity
    return {"ERK": erk_densities(shapes, density), "uniform": {n: density for n in shapes}}


def accuracy_rows(drawn: pd.DataFrame, method: str) -> pd.DataFrame:
    """Mean and std (points) of the finished unmodified runs of each method in ``drawn``, the
    judged method first, then the others by name, the after-training baselines last."""
    done = drawn[(drawn["status"] == "finished") & (drawn["check"] == "none")]
    acc = done.assign(points=100 * done["test_accuracy"].astype(float))
    table = acc.groupby("method")["points"].agg(["mean", "std", "count"]).reset_index()
    table["std"] = table["std"].fillna(0.0)
    after = {m for m in table["method"] if m in METHODS and METHODS.get(m).after_training}
    order = sorted(table["method"], key=lambda m: (m != method, m in after, m))
    return table.set_index("method").loc[order].reset_index().rename(columns={"count": "seeds"})


def layer_rows(runs: pd.DataFrame, method: str, sparsity: float) -> pd.DataFrame:
    """Per prunable layer (input to output): its shape, the method's density (mean over the
    unmodified runs whose layer report is stored, in %), and ERK's and uniform's at
    ``sparsity`` (%). No stored report: no rows."""
    import pandas as pd
    mine = runs[(runs["method"] == method) & (runs["check"] == "none")]
    reports = [r for r in (read_layer_report(_report_path(row)) for _, row in mine.iterrows())
               if r is not None]
    if not reports:
        return pd.DataFrame(columns=["layer", "shape", method, *FORMULAS])
    names = [row["name"] for row in reports[0]]
    shapes = {row["name"]: tuple(int(d) for d in str(row["shape"]).split("x"))
              for row in reports[0]}
    formulas = formula_densities(shapes, sparsity)
    return pd.DataFrame({
        "layer": names, "shape": [reports[0][k]["shape"] for k in range(len(names))],
        method: [100 * sum(float(rep[k]["density"]) for rep in reports) / len(reports)
                 for k in range(len(names))],
        **{f: [100 * formulas[f][n] for n in names] for f in FORMULAS}})


def _report_path(row) -> Path:
    """The layer report of a stored run, in the folder the run was read from."""
    return paths.stored_run_dir(row["source"], row["method"], row["hash"]) / paths.LAYERS


def card_figure(method: str, runs: pd.DataFrame, drawn: pd.DataFrame, sparsity: float,
                out: Path) -> list[Path]:
    """Write ``card.png``, ``card.pdf`` (left: accuracy of each method in ``drawn``, ± std
    error bars; right: ``method``'s per-layer density in ``runs`` against ERK and uniform)
    and the numbers drawn (``card_accuracy.csv``, ``card_layers.csv``) to ``out``, every file
    atomically. Returns the files written."""
    plt = pyplot()
    accuracy, layers = accuracy_rows(drawn, method), layer_rows(runs, method, sparsity)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5),
                                      gridspec_kw={"width_ratios": [1, 1.3]})
    _accuracy_panel(left, accuracy, method, sparsity)
    _density_panel(right, layers, method, sparsity)
    fig.tight_layout()
    files = [out / f"{FIGURE}_accuracy.csv", out / f"{FIGURE}_layers.csv"]
    atomic_write_text(files[0], accuracy.to_csv(index=False))
    atomic_write_text(files[1], layers.to_csv(index=False))
    for path in paths.figure_files(out, FIGURE):
        atomic_save_figure(fig, path, dpi=150, bbox_inches="tight")
        files.append(path)
    plt.close(fig)
    return files


def _accuracy_panel(ax, accuracy: pd.DataFrame, method: str, sparsity: float) -> None:
    for i, row in enumerate(accuracy.itertuples(index=False)):
        color, marker = method_style(row.method)
        ax.errorbar(i, row.mean, yerr=row.std, color=color, marker=marker, capsize=4,
                    markersize=9 if row.method == method else 6, linestyle="none")
    ax.set_xticks(range(len(accuracy)), [f"{m}\n({n})" for m, n in
                                         zip(accuracy["method"], accuracy["seeds"])],
                  rotation=30, ha="right", fontsize=8)
    for tick, m in zip(ax.get_xticklabels(), accuracy["method"]):
        tick.set_fontweight("bold" if m == method else "normal")
    ax.set_ylabel("test accuracy (%), mean ± std")
    ax.set_title(f"{method} among the methods, {100 * (1 - sparsity):g}% weights remaining\n"
                 f"(seeds per method in brackets)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")


def _density_panel(ax, layers: pd.DataFrame, method: str, sparsity: float) -> None:
    x = range(len(layers))
    color, marker = method_style(method)
    ax.plot(x, layers[method], color=color, marker=marker, label=method)
    for f in FORMULAS:
        c, style = FORMULA_STYLE[f]
        ax.plot(x, layers[f], color=c, linestyle=style, marker=".", label=f"{f} (formula)")
    if len(layers) and math.isfinite(float(layers[method].min())) and layers[method].min() > 0:
        ax.set_yscale("log")
    ax.set_xticks(list(x), [n.removesuffix(".weight") for n in layers["layer"]], rotation=90,
                  fontsize=7)
    ax.set_xlabel("prunable layer (input to output)")
    ax.set_ylabel("weights remaining in the layer (%)")
    ax.set_title(f"per-layer density of {method} against ERK and uniform at "
                 f"{100 * (1 - sparsity):g}% weights remaining", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
