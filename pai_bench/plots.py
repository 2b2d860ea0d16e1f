"""Figures like the paper's: accuracy vs sparsity, the checks per method, pruning early in
training, per-layer density.

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
from pai_bench.methods import METHODS  # noqa: E402
from pai_bench.table import accuracy_table, dense_table  # noqa: E402

BASELINE_STYLE = dict(linestyle="--", marker="s")
CHECK_ORDER = ("none", "shuffle", "reinit", "invert")
CHECK_LABEL = {"none": "original"}
CHECK_STYLE = {"none": "-", "shuffle": "--", "reinit": ":", "invert": "-."}
CHECK_COLOR = {"none": "tab:blue", "shuffle": "tab:orange", "reinit": "tab:green",
               "invert": "tab:red"}


def _after_training(method: str) -> bool:
    return method in METHODS and METHODS.get(method).after_training


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = paths.figure_files(out_dir, name)
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
    """Mean over seeds with a ± std error bar at each point and a band between points."""
    g = g.sort_values("sparsity")
    x = 100 * (1 - g["sparsity"])
    mean, std = 100 * g["mean"], 100 * g["std"].fillna(0.0)
    line = ax.errorbar(x, mean, yerr=std, label=label, capsize=3, **style)
    if len(g) > 1:
        ax.fill_between(x, mean - std, mean + std, alpha=0.15, color=line.lines[0].get_color())


def _legend(ax, **kwargs) -> None:
    """Legend in drawing order with the dense reference last (matplotlib puts error bars last)."""
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == "dense")
    ax.legend([handles[i] for i in order], [labels[i] for i in order], **kwargs)


def _checks(g: pd.DataFrame) -> list[str]:
    present = set(g["check"])
    return [c for c in CHECK_ORDER if c in present] + sorted(present - set(CHECK_ORDER))


def _settings(table: pd.DataFrame, dense: pd.DataFrame):
    """One figure per setting: ``(name, label, rows, dense rows)`` for each group of the accuracy
    table's setting columns less the method, check, prune point and sparsity (which a figure
    shows). Runs that differ in anything else (data set, recipe, width, ...) never share a line.
    """
    shown = ("method", "check", "prune_at", "sparsity")
    columns = list(table.columns)
    keys = [c for c in columns[:columns.index("mean")] if c not in shown]
    for values, g in table.groupby(keys, dropna=False, sort=True):
        setting = dict(zip(keys, values if isinstance(values, tuple) else (values,)))
        extra = {k: v for k, v in setting.items()
                 if k != "model" and table[k].nunique(dropna=False) > 1}
        name = str(setting["model"]) + "".join(f"_{k}-{v}" for k, v in extra.items())
        label = str(setting["model"]) + "".join(f", {k} {v}" for k, v in extra.items())
        d = dense
        for k in dense.columns:
            if k in setting:  # the same value, missing (None) included
                d = d[(d[k] == setting[k]) | (d[k].isna() & pd.isna(setting[k]))]
        yield name, label, g, d


def _dense_line(ax, d: pd.DataFrame) -> None:
    if len(d):
        m, s = 100 * d["mean"].iloc[0], 100 * d["std"].iloc[0]
        ax.axhline(m, color="black", linewidth=1, label="dense")
        ax.axhspan(m - s, m + s, color="black", alpha=0.08)


def accuracy_vs_sparsity(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One panel per model: a line per method (unmodified, at step 0), baselines dashed."""
    table, dense = accuracy_table(runs), dense_table(runs)
    base = table[(table["check"] == "none") & (table["prune_at"] == 0)]
    files = []
    for model, label, g, d in _settings(base, dense):
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for method, mg in g.groupby("method"):
            _line(ax, mg, method, **(BASELINE_STYLE if _after_training(method) else {"marker": "o"}))
        _dense_line(ax, d)
        _remaining_axis(ax, g["sparsity"])
        ax.set_title(f"{label}: accuracy vs sparsity (mean ± std over seeds)")
        _legend(ax, fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
        files += _save(fig, out_dir, f"accuracy_vs_sparsity_{model}")
    return files


def checks_per_method(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The original method and each sanity check (shuffle, reinit, invert).

    Over a sparsity grid: one panel per method, accuracy vs weights remaining, a line per check.
    At a single sparsity: one panel, a group of points (± std) per method, one colour per check.
    """
    table, dense = accuracy_table(runs), dense_table(runs)
    files = []
    for model, label, g, d in _settings(table[table["prune_at"] == 0], dense):
        methods = [m for m, mg in g.groupby("method") if mg["check"].nunique() > 1]
        if not methods:
            continue
        g = g[g["method"].isin(methods)]
        if g["sparsity"].nunique() == 1:
            fig = _checks_at_one_sparsity(g, d, label, methods)
        else:
            fig = _checks_over_sparsities(g, d, label, methods)
        files += _save(fig, out_dir, f"checks_{model}")
    return files


def _checks_at_one_sparsity(g, dense, model, methods):
    checks = _checks(g)
    fig, ax = plt.subplots(figsize=(1.3 * len(methods) + 2.5, 4.2))
    width = 0.8 / len(checks)
    for j, check in enumerate(checks):
        cg = g[g["check"] == check].set_index("method")
        xs = [i + (j - (len(checks) - 1) / 2) * width for i, m in enumerate(methods)
              if m in cg.index]
        ms = [m for m in methods if m in cg.index]
        ax.errorbar(xs, 100 * cg.loc[ms, "mean"], yerr=100 * cg.loc[ms, "std"].fillna(0.0),
                    fmt="o", capsize=3, color=CHECK_COLOR.get(check),
                    label=CHECK_LABEL.get(check, check))
    _dense_line(ax, dense)
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"{model}: sanity checks at {100 * (1 - g['sparsity'].iloc[0]):g}% weights "
                 f"remaining\n(mean ± std over seeds)")
    _legend(ax, fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def _checks_over_sparsities(g, dense, model, methods):
    cols = min(3, len(methods))
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), sharey=True,
                             squeeze=False)
    for ax, method in zip(axes.flat, methods):
        mg = g[g["method"] == method]
        for check in _checks(mg):
            _line(ax, mg[mg["check"] == check], CHECK_LABEL.get(check, check),
                  linestyle=CHECK_STYLE.get(check, "-"), color=CHECK_COLOR.get(check),
                  marker="o")
        _dense_line(ax, dense)
        _remaining_axis(ax, g["sparsity"])
        ax.set_title(method)
        _legend(ax, fontsize=7)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    fig.suptitle(f"{model}: sanity checks (mean ± std over seeds)")
    fig.tight_layout()
    return fig


def pruning_early(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy vs the training step at which each method pruned (0 = at initialization): one
    panel per sparsity, a line per method; only for models with more than one pruning step."""
    table, dense = accuracy_table(runs), dense_table(runs)
    base = table[table["check"] == "none"]
    files = []
    for model, label, g, d in _settings(base, dense):
        steps = sorted(g["prune_at"].unique())
        if len(steps) < 2:
            continue
        sparsities = sorted(s for s, sg in g.groupby("sparsity") if sg["prune_at"].nunique() > 1)
        fig, axes = plt.subplots(1, len(sparsities), figsize=(5.5 * len(sparsities) + 1.5, 4.2),
                                 sharey=True, squeeze=False)
        for ax, s in zip(axes[0], sparsities):
            for method, mg in g[g["sparsity"] == s].groupby("method"):
                if mg["prune_at"].nunique() < 2:
                    continue
                mg = mg.sort_values("prune_at")
                ax.errorbar(mg["prune_at"], 100 * mg["mean"], yerr=100 * mg["std"].fillna(0.0),
                            marker="o", capsize=3, label=method)
            _dense_line(ax, d)
            ax.set_xscale("symlog", linthresh=max(1, min(x for x in steps if x > 0)))
            ax.set_xticks(steps, [f"{x:g}" for x in steps])
            ax.set_xlim(-0.5 * steps[1], 1.5 * steps[-1])  # room for the end points' error bars
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_xlabel("training step at which the network is pruned (symlog)")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{100 * (1 - s):g}% weights remaining")
            ax.grid(alpha=0.3)
        _legend(axes[0][-1], fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
        fig.suptitle(f"{label}: pruning early in training (mean ± std over seeds)")
        fig.tight_layout()
        files += _save(fig, out_dir, f"pruning_early_{model}")
    return files


def layer_densities(results_dir: Path, runs: pd.DataFrame, sparsity: float,
                    out_dir: Path) -> list[Path]:
    """Per-layer density of each method's mask (seed 0, unmodified) at ``sparsity``."""
    pick = runs[(runs["check"] == "none") & (runs["prune_at"] == 0) & (runs["seed"] == 0)
                & ((runs["sparsity"] - sparsity).abs() < 1e-9)]
    files = []
    table = accuracy_table(runs)
    keys = [c for c in table.columns[:list(table.columns).index("mean")]
            if c not in ("method", "check", "prune_at", "sparsity")]
    # a row of the accuracy table stands for its setting; the runs of seed 0 are drawn
    for model, label, setting, _ in _settings(table[table["check"] == "none"], dense_table(runs)):
        values = setting[keys].drop_duplicates()
        g = pick.merge(values, on=keys)
        if g.empty:
            continue
        fig, ax = plt.subplots(figsize=(9, 4.5))
        names: list[str] = []
        for _, row in g.sort_values("method").iterrows():
            csv_path = paths.stored_run_dir(results_dir, row["method"], row["hash"]) / paths.LAYERS
            if not csv_path.exists():
                continue
            with open(csv_path) as f:
                layers = list(csv.DictReader(f))
            dens = [float(r["density"]) for r in layers]
            names = [r["name"].removesuffix(".weight") for r in layers]
            ax.plot(range(len(dens)), [100 * d for d in dens], marker=".", label=row["method"])
        ax.set_yscale("log")
        if names:
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_xlabel("prunable layer (input to output)")
        ax.set_ylabel("weights remaining in the layer (%), log")
        ax.set_title(f"{label}: per-layer density at sparsity {sparsity:g}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
        files += _save(fig, out_dir, f"layer_density_{model}_{sparsity:g}")
    return files
