"""Figures like the paper's: accuracy vs weights remaining, the checks per method, pruning early
in training, per-layer density. Every figure is written as PNG and PDF (matplotlib only).

Conventions, the same in every figure:

* a method has one colour and one marker everywhere (``method_style``: the registry's, or a
  deterministic one for a plugin that sets none);
* the x axis of accuracy figures is weights remaining (%) on a log axis, decreasing to the right
  (as in Frankle et al. 2021), so the extreme sparsities where the methods differ get the room;
* a curve is a line (with a ± std band) only where it has at least three measured points;
  otherwise its points are markers with ± std error bars, side by side, and nothing is drawn
  between them;
* the dense network is a black line with its ± std band, both in the legend; figures of the
  checks and of pruning early show random pruning as a reference;
* a caption line says how the setting differs from the paper's (width, training subset,
  epochs, ...) and over how many seeds the means are taken;
* a method trained for the compute-matched budget (``--budget matched``) is drawn beside its
  equal-epoch curve in the accuracy figure, in its colour with open markers and a dotted line;
  the other figures show the equal-epoch runs only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dataclasses
import zlib
from pathlib import Path


if TYPE_CHECKING:  # annotations only: the library loads where used
    import pandas as pd

from pai_bench import paths
from pai_bench.artifacts import read_run_layer_report
from pai_bench.config import RunConfig
from pai_bench.io import atomic_save_figure, clean_temporaries
from pai_bench.methods import METHODS
from pai_bench.analysis.table import accuracy_table, dense_table

CHECK_ORDER = ("none", "shuffle", "reinit", "invert")
CHECK_LABEL = {"none": "original"}
CHECK_MARKER = {"none": "o", "shuffle": "s", "reinit": "^", "invert": "X"}
CHECK_FILL = {"none": True, "shuffle": False, "reinit": False, "invert": True}
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h")
MIN_LINE_POINTS = 3  # fewer measured sparsities: markers with error bars, no line
REMAINING = "weights remaining (%)"
SHOWN = ("method", "check", "prune_at", "sparsity", "budget")  # what a figure shows itself
BUDGET_LABEL = {"matched": "compute-matched"}  # accuracy figures: a curve's label suffix


def pyplot():
    """matplotlib's pyplot on the headless Agg backend, loaded with the first figure: a command
    that draws nothing does not pay for it (``benchmarks/test_startup.py``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def method_style(name: str) -> tuple[str, str]:
    """(colour, marker) of a method in every figure: the registered class's ``color`` and
    ``marker``, or, for a method that sets none, a deterministic pick from its name."""
    cls = METHODS.get(name) if name in METHODS else None
    h = zlib.crc32(name.encode())
    color = getattr(cls, "color", None) or PALETTE[h % len(PALETTE)]
    marker = getattr(cls, "marker", None) or MARKERS[(h // len(PALETTE)) % len(MARKERS)]
    return color, marker


def _linestyle(method: str) -> str:
    """The method's own line style (baselines after training: dashed)."""
    return METHODS.get(method).linestyle if method in METHODS else "-"


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    """Each figure file written atomically (a plot killed mid-write leaves the previous figure
    whole, a full disk a StorageError); temporaries a killed plot left of them are removed."""
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    files = paths.figure_files(out_dir, name)
    try:
        for f in files:
            clean_temporaries(f.parent, f.name)
            atomic_save_figure(fig, f, dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)
    return files


CAPTION = {"width": "width {}", "subset": "{:,} training images", "test_subset": "{:,} test images",
           "epochs": "{} epochs", "batch_size": "batch {}", "lr": "lr {:g}", "preset": "{} preset",
           "precision": "precision {}", "scope": "{} threshold", "rounds": "{} rounds",
           "rewind_iter": "rewind to step {}", "method_args": "{}"}


def caption(runs: pd.DataFrame, seeds: int) -> str:
    """How the runs' setting differs from the paper's (the fields all of them set to something
    other than the default) and over how many seeds the means are taken."""
    import pandas as pd
    differs = []
    for f in dataclasses.fields(RunConfig):
        if f.name not in CAPTION or f.name not in runs or runs[f.name].nunique(dropna=False) != 1:
            continue
        value = runs[f.name].iloc[0]
        if pd.isna(value) or value in ("", f.default):
            continue
        value = int(value) if f.metadata.get("kind") is int else value
        differs.append(CAPTION[f.name].format(value))
    data = runs["dataset"].iloc[0] if len(runs) else ""
    where = "; differs from the paper: " + ", ".join(differs) if differs else ", the paper's recipe"
    return f"{data}{where}; mean ± std over {seeds} seed(s)"


def _settings(table: pd.DataFrame, dense: pd.DataFrame, runs: pd.DataFrame):
    """One figure per setting: ``(name, setting, rows, dense rows)`` for each group of the
    accuracy table's setting columns less what a figure shows itself (method, check, prune
    point, sparsity). Runs that differ in anything else never share a figure. ``setting``
    also holds ``caption``, said from the setting's ``runs``."""
    import pandas as pd
    columns = list(table.columns)
    keys = [c for c in columns[:columns.index("mean")] if c not in SHOWN]
    for values, g in table.groupby(keys, dropna=False, sort=True):
        setting = dict(zip(keys, values if isinstance(values, tuple) else (values,)))
        these = runs.merge(pd.DataFrame([setting]), on=keys)
        # named by the model, and what tells its figures apart (not what tells models apart:
        # "mlp", not "mlp_width-nan", beside "cifar_vit_width-32")
        own = table[table["model"] == setting["model"]]
        extra = {k: v for k, v in setting.items()
                 if k != "model" and own[k].nunique(dropna=False) > 1}
        name = str(setting["model"]) + "".join(f"_{k}-{_plain(v)}" for k, v in extra.items())
        d = dense
        for k in dense.columns:
            if k in setting:  # the same value, missing (None) included
                d = d[(d[k] == setting[k]) | (d[k].isna() & pd.isna(setting[k]))]
        setting["caption"] = caption(these, int(g["seeds"].max()))
        yield name, setting, g, d


def _plain(value) -> str:
    """A setting's value in a file name: 8, not 8.0 (a column with gaps is float)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _equal_budget(table: pd.DataFrame) -> pd.DataFrame:
    """The rows trained for the recipe's epochs (``budget`` "equal"; all, if the column is
    absent): the figures other than accuracy vs sparsity compare those only."""
    return table[table["budget"] == "equal"] if "budget" in table.columns else table


def _remaining_axis(ax, sparsities) -> None:
    """Weights remaining on a log axis, decreasing to the right, ticked at the measured points."""
    from matplotlib.ticker import NullLocator
    ticks = sorted({round(100 * (1 - s), 3) for s in sparsities})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] * 1.5, ticks[0] / 1.5)
    elif len(ticks) < MIN_LINE_POINTS:  # room for side-by-side markers
        ax.set_xlim(ticks[-1] * 1.3, ticks[0] / 1.3)
    if not ax.xaxis_inverted():
        ax.invert_xaxis()
    ax.set_xlabel(f"{REMAINING}, log scale")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)


def _curve(ax, g: pd.DataFrame, label: str, color: str, marker: str, offset: float = 1.0,
           linestyle: str = "-", filled: bool = True) -> None:
    """Mean over seeds against weights remaining: a line with a ± std band where there are at
    least MIN_LINE_POINTS sparsities, else markers with ± std error bars (x scaled by
    ``offset`` so that methods at the same sparsity sit side by side)."""
    g = g.sort_values("sparsity")
    x = 100 * (1 - g["sparsity"])
    mean, std = 100 * g["mean"], 100 * g["std"].fillna(0.0)
    face = color if filled else "white"
    if len(g) >= MIN_LINE_POINTS:
        ax.plot(x, mean, color=color, marker=marker, linestyle=linestyle, label=label,
                markerfacecolor=face)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.12, linewidth=0)
    else:
        ax.errorbar(x * offset, mean, yerr=std, color=color, marker=marker, linestyle="none",
                    capsize=3, label=label, markerfacecolor=face)


def _offsets(n: int, spread: float = 0.06, widest: float = 0.2) -> list[float]:
    """Multiplicative x offsets (log axis) that spread ``n`` markers around a point: ``spread``
    apart, closer when ``n`` is large, so that all stay within ``1 ± widest`` (inside the
    axis margins of ``_remaining_axis``)."""
    step = min(spread, 2 * widest / (n - 1)) if n > 1 else 0.0
    return [1 + step * (i - (n - 1) / 2) for i in range(n)]


def _dense_line(ax, d: pd.DataFrame) -> None:
    if len(d):
        m, s = 100 * d["mean"].iloc[0], 100 * d["std"].iloc[0]
        ax.axhline(m, color="black", linewidth=1)
        ax.axhspan(m - s, m + s, color="black", alpha=0.08, linewidth=0)


def _random_line(ax, table: pd.DataFrame, sparsity: float | None = None) -> bool:
    """Random pruning at step 0 (the reference every method must beat), dotted; whether the
    table had it to draw."""
    r = table[(table["method"] == "random") & (table["check"] == "none")
              & (table["prune_at"] == 0)]
    if sparsity is not None:
        r = r[(r["sparsity"] - sparsity).abs() < 1e-9]
    if len(r) == 1:
        color, _ = method_style("random")
        m, s = 100 * r["mean"].iloc[0], 100 * r["std"].iloc[0]
        ax.axhline(m, color=color, linestyle=":", linewidth=1.2)
        ax.axhspan(m - s, m + s, color=color, alpha=0.08, linewidth=0)
        return True
    return False


def _legend(ax, dense: pd.DataFrame, random: bool = False, **kwargs) -> None:
    """The drawn curves, then the references: dense (mean line and ± std band) and random."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles, labels = ax.get_legend_handles_labels()
    if random:
        color, _ = method_style("random")
        handles.append((Line2D([], [], color=color, linestyle=":"),
                        Patch(color=color, alpha=0.15)))
        labels.append("random pruning (± std)")
    if len(dense):
        handles.append((Line2D([], [], color="black", linewidth=1),
                        Patch(color="black", alpha=0.15)))
        labels.append("dense (mean ± std)")
    ax.legend(handles, labels, **{"fontsize": 8, **kwargs})


def _title(fig, ax, text: str, g, setting) -> None:
    """The title names the model; its second line says how the setting differs from the
    paper's and over how many seeds (on the figure when ``ax`` is None: several panels)."""
    if ax is None:
        fig.suptitle(f"{setting['model']}: {text}\n{setting['caption']}", fontsize=9, y=1.02)
        return
    ax.set_title(f"{setting['model']}: {text}\n{setting['caption']}", fontsize=9)


def accuracy_vs_sparsity(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One figure per setting: a curve per method (unmodified, at step 0), baselines dashed."""
    plt = pyplot()
    table, dense = accuracy_table(runs), dense_table(runs)
    base = table[(table["check"] == "none") & (table["prune_at"] == 0)]
    if "budget" not in base.columns:  # one budget among the runs: the table leaves it out
        base = base.assign(budget="equal")
    files = []
    for name, setting, g, d in _settings(base, dense, runs):
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        curves = sorted(set(zip(g["method"], g["budget"])), key=lambda c: (c[0], c[1] != "equal"))
        for (method, budget), offset in zip(curves, _offsets(len(curves))):
            color, marker = method_style(method)
            label = f"{method}, {BUDGET_LABEL[budget]}" if budget in BUDGET_LABEL else method
            rows = g[(g["method"] == method) & (g["budget"] == budget)]
            _curve(ax, rows, label, color, marker, offset, filled=budget == "equal",
                   linestyle=_linestyle(method) if budget == "equal" else ":")
        _dense_line(ax, d)
        _remaining_axis(ax, g["sparsity"])
        _legend(ax, d, loc="center left", bbox_to_anchor=(1.02, 0.5))
        _title(fig, ax, "test accuracy vs weights remaining", g, setting)
        files += _save(fig, out_dir, f"accuracy_vs_sparsity_{name}")
    return files


def checks_per_method(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Each method (its colour) with its sanity checks (marker and fill: original filled
    circle, shuffle open square, reinit open triangle, invert cross), random as a reference.

    Over a sparsity grid: one panel per method. At a single sparsity: one panel, a group of
    points per method."""
    table, dense = _equal_budget(accuracy_table(runs)), dense_table(runs)
    files = []
    for name, setting, g, d in _settings(table[table["prune_at"] == 0], dense, runs):
        methods = [m for m, mg in g.groupby("method") if mg["check"].nunique() > 1]
        if not methods:
            continue
        checked = g[g["method"].isin(methods)]
        if checked["sparsity"].nunique() == 1:
            fig, ax = _checks_at_one_sparsity(checked, g, d, methods)
        else:
            fig, ax = _checks_over_sparsities(checked, g, d, methods)
        _title(fig, ax, "sanity checks", checked, setting)
        files += _save(fig, out_dir, f"checks_{name}")
    return files


def _checks(g: pd.DataFrame) -> list[str]:
    present = set(g["check"])
    return [c for c in CHECK_ORDER if c in present] + sorted(present - set(CHECK_ORDER))


def _check_handles(checks) -> tuple[list, list]:
    from matplotlib.lines import Line2D
    return ([Line2D([], [], color="dimgray", marker=CHECK_MARKER.get(c, "o"), linestyle="none",
                    markerfacecolor="dimgray" if CHECK_FILL.get(c, True) else "white")
             for c in checks], [CHECK_LABEL.get(c, c) for c in checks])


def _checks_at_one_sparsity(g, everything, dense, methods):
    plt = pyplot()
    checks = _checks(g)
    fig, ax = plt.subplots(figsize=(1.3 * len(methods) + 2.5, 4.2))
    width = 0.8 / len(checks)
    for j, check in enumerate(checks):
        cg = g[g["check"] == check].set_index("method")
        for i, method in enumerate(methods):
            if method not in cg.index:
                continue
            color, _ = method_style(method)
            ax.errorbar(i + (j - (len(checks) - 1) / 2) * width, 100 * cg.loc[method, "mean"],
                        yerr=100 * cg.loc[method, "std"], fmt=CHECK_MARKER.get(check, "o"),
                        color=color, capsize=3,
                        markerfacecolor=color if CHECK_FILL.get(check, True) else "white")
    _dense_line(ax, dense)
    random = _random_line(ax, everything, float(g["sparsity"].iloc[0]))
    ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right")
    for tick, method in zip(ax.get_xticklabels(), methods):
        tick.set_color(method_style(method)[0])
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, axis="y")
    handles, labels = _check_handles(checks)
    for h, lab in zip(handles, labels):
        ax.plot([], [], linestyle="none", marker=h.get_marker(), color="dimgray",
                markerfacecolor=h.get_markerfacecolor(), label=lab)
    _legend(ax, dense, random=random, loc="center left", bbox_to_anchor=(1.02, 0.5))
    remaining = 100 * (1 - g["sparsity"].iloc[0])
    ax.set_xlabel(f"method, at {remaining:g}% {REMAINING.split(' (')[0]}")
    return fig, ax


def _checks_over_sparsities(g, everything, dense, methods):
    plt = pyplot()
    cols = min(3, len(methods))
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), sharey=True,
                             squeeze=False)
    for ax, method in zip(axes.flat, methods):
        mg = g[g["method"] == method]
        color, _ = method_style(method)
        checks = _checks(mg)
        for check, offset in zip(checks, _offsets(len(checks))):
            _curve(ax, mg[mg["check"] == check], CHECK_LABEL.get(check, check), color,
                   CHECK_MARKER.get(check, "o"), offset, filled=CHECK_FILL.get(check, True))
        _dense_line(ax, dense)
        _remaining_axis(ax, g["sparsity"])
        ax.set_title(method, color=color)
        _legend(ax, dense, fontsize=7)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig, None


def pruning_early(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy vs the training step at which each method pruned (0 = at initialization): one
    panel per sparsity, a curve per method, random pruning at step 0 as the reference; only
    for settings with more than one pruning step."""
    from matplotlib.ticker import NullLocator
    plt = pyplot()
    table, dense = _equal_budget(accuracy_table(runs)), dense_table(runs)
    base = table[table["check"] == "none"]
    files = []
    for name, setting, g, d in _settings(base, dense, runs):
        steps = sorted(g["prune_at"].unique())
        if len(steps) < 2:
            continue
        sparsities = sorted(s for s, sg in g.groupby("sparsity") if sg["prune_at"].nunique() > 1)
        fig, axes = plt.subplots(1, len(sparsities), figsize=(5.5 * len(sparsities) + 1.5, 4.2),
                                 sharey=True, squeeze=False)
        random = False
        for ax, s in zip(axes[0], sparsities):
            for method, mg in g[g["sparsity"] == s].groupby("method"):
                if mg["prune_at"].nunique() < 2:
                    continue
                mg = mg.sort_values("prune_at")
                color, marker = method_style(method)
                ax.errorbar(mg["prune_at"], 100 * mg["mean"], yerr=100 * mg["std"].fillna(0.0),
                            color=color, marker=marker, capsize=3, label=method,
                            linestyle="-" if len(mg) >= MIN_LINE_POINTS else "none")
            _dense_line(ax, d)
            random = _random_line(ax, g, s) or random
            ax.set_xscale("symlog", linthresh=max(1, min(x for x in steps if x > 0)))
            ax.set_xticks(steps, [f"{x:g}" for x in steps])
            ax.set_xlim(-0.5 * steps[1], 1.5 * steps[-1])  # room for the end points' error bars
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlabel("training step at which the network is pruned (symlog)")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{100 * (1 - s):g}% weights remaining")
            ax.grid(alpha=0.3)
        _legend(axes[0][-1], d, random=random, loc="center left", bbox_to_anchor=(1.02, 0.5))
        fig.suptitle(f"{setting['model']}: pruning early in training\n{setting['caption']}",
                     fontsize=9)
        fig.tight_layout()
        files += _save(fig, out_dir, f"pruning_early_{name}")
    return files


def layer_densities(results_dir: Path, runs: pd.DataFrame, sparsity: float,
                    out_dir: Path) -> list[Path]:
    """Per-layer density of each method's mask (unmodified, at step 0) at ``sparsity``: the
    mean over the seeds stored, each method in its colour, marker and line style, slightly
    offset so that methods with equal densities (ltr and magnitude after training share
    their masks) stay visible."""
    plt = pyplot()
    pick = _equal_budget(runs[(runs["check"] == "none") & (runs["prune_at"] == 0)
                              & ((runs["sparsity"] - sparsity).abs() < 1e-9)])
    files = []
    table = _equal_budget(accuracy_table(runs))
    keys = [c for c in table.columns[:list(table.columns).index("mean")] if c not in SHOWN]
    styles = ("-", "--", "-.", ":")
    for name, setting, rows, _ in _settings(table[table["check"] == "none"], dense_table(runs),
                                            runs):
        g = pick.merge(rows[keys].drop_duplicates(), on=keys)
        if g.empty:
            continue
        fig, ax = plt.subplots(figsize=(9, 4.5))
        names: list[str] = []
        methods = sorted(g["method"].unique())
        seeds = 0
        for i, method in enumerate(methods):
            offset = 0.5 * (i - (len(methods) - 1) / 2) / len(methods)  # within +-0.25 layer
            reports = []
            for _, row in g[g["method"] == method].iterrows():
                folder = row.get("source") or results_dir  # the run's own folder
                rdir = paths.stored_run_dir(folder, row["method"], row["hash"])
                report = read_run_layer_report(rdir, row["hash"])  # invalid: kept aside
                if report is not None:
                    reports.append(report)
            if not reports:
                continue
            seeds = max(seeds, len(reports))
            names = [r["name"].removesuffix(".weight") for r in reports[0]]
            dens = [100 * sum(float(rep[k]["density"]) for rep in reports) / len(reports)
                    for k in range(len(names))]
            color, marker = method_style(method)
            ax.plot([k + offset for k in range(len(dens))], dens, color=color,
                    marker=marker, markersize=4,  # a line style per method, as its colour
                    linestyle=styles[zlib.crc32(method.encode()) % len(styles)],
                    label=f"{method}")
        ax.set_yscale("log")
        if names:
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_xlabel("prunable layer (input to output)")
        ax.set_ylabel(f"{REMAINING} in the layer, log")
        ax.set_title(f"{setting['model']}: per-layer density at {100 * (1 - sparsity):g}% "
                     f"weights remaining, mean over {seeds} seed(s)\n"
                     f"{setting['caption'].rsplit(';', 1)[0]}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
        files += _save(fig, out_dir, f"layer_density_{name}_{sparsity:g}")
    return files
