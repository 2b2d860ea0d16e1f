"""The results tables: mean +- std over seeds, verdicts per finding, matching sparsity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathlib import Path


if TYPE_CHECKING:  # annotations only: the library loads where used
    import pandas as pd

from pai_bench import paths
from pai_bench.io import atomic_write_text
from pai_bench.config import RunConfig, dense_fields, setting_fields
from pai_bench.analysis.findings import caption
from pai_bench.analysis.latex import latex_symbols, latex_text
from pai_bench.analysis.results import COUNTED, load_runs, verdicts
from pai_bench.analysis.verdicts import INCONCLUSIVE

# The columns every accuracy table shows first. The table groups by every field of the setting
# (``config.setting_fields``: all but the seed); fields other than these are shown, and split
# rows, only where they vary among the runs tabulated.
SHOWN_FIRST = ["model", "dataset", "method", "check", "prune_at", "sparsity"]
# How the readable tables write a field's values (the CSV keeps the values themselves).
SHOWN_AS = {"budget": {"equal": "equal epochs", "matched": "compute-matched"}}


def group_columns(runs: pd.DataFrame, first: list[str], fields: list[str]) -> list[str]:
    """``first``, then every other field of ``fields`` whose value varies among ``runs``."""
    rest = [f for f in fields if f not in first and f in runs.columns
            and runs[f].nunique(dropna=False) > 1]
    return first + rest


def accuracy_table(runs: pd.DataFrame, config_cls: type = RunConfig) -> pd.DataFrame:
    """One row per setting and check (every field but the seed): accuracy mean, std, n, with
    the cost columns (means) beside it. Diverged runs are counted apart, not averaged."""
    import pandas as pd
    keys = group_columns(runs, SHOWN_FIRST, setting_fields(config_cls))
    counted = runs[runs["status"].isin(COUNTED)]
    # measured where a run recorded it (runs stored before it did: NaN)
    counted = counted.assign(seconds_per_epoch=pd.to_numeric(counted.get("seconds_per_epoch"),
                                                             errors="coerce"))
    # a setting whose every run diverged keeps its row: no accuracy, its diverged count
    g = counted.assign(test_accuracy=counted["test_accuracy"].where(
        counted["status"] == "finished")).groupby(keys, dropna=False)
    table = g["test_accuracy"].agg(mean="mean", std="std", seeds="count").reset_index()
    table["std"] = table["std"].where(table["seeds"] != 1, 0.0)  # one seed: no spread
    finished = counted[counted["status"] == "finished"].groupby(keys, dropna=False)
    extra = finished[["effective_sparsity", "train_epochs", "train_macs", "inference_macs",
                      "seconds_per_epoch"]].mean()
    table = table.merge(extra.reset_index(), on=keys, how="left")
    diverged = g["status"].agg(lambda s: int((s == "diverged").sum()))
    table["diverged"] = diverged.to_numpy()
    return table.sort_values(keys).reset_index(drop=True)


def dense_table(runs: pd.DataFrame, config_cls: type = RunConfig) -> pd.DataFrame:
    """Dense accuracy per dense setting (model, data set, and any other field of the dense key
    that varies): mean and std over the seeds that report it."""
    keys = dense_keys(runs, config_cls)
    d = runs.dropna(subset=["dense_test_accuracy"]).drop_duplicates(keys + ["seed"])
    g = d.groupby(keys, dropna=False)["dense_test_accuracy"]
    return g.agg(mean="mean", std="std", seeds="count").fillna(0.0).reset_index()


def dense_keys(runs: pd.DataFrame, config_cls: type = RunConfig) -> list[str]:
    """The columns that tell dense networks apart in ``runs`` (``config.dense_fields``)."""
    return group_columns(runs, ["model", "dataset"],
                         [f for f in dense_fields(config_cls) if f != "seed"])


def matching_sparsity(table: pd.DataFrame, dense: pd.DataFrame) -> pd.DataFrame:
    """Per method (unmodified, pruned at step 0 or after training) and dense setting: the
    highest sparsity whose mean accuracy is within one standard deviation of the dense
    network's mean."""
    import pandas as pd
    keys = [c for c in dense.columns if c not in ("mean", "std", "seeds")]
    base = table[(table["check"] == "none") & (table["prune_at"] == 0)]
    ref = dense[keys + ["mean", "std"]].rename(columns={"mean": "dense_mean", "std": "dense_std"})
    rows = []
    for key, g in base.merge(ref, on=keys).groupby(keys + ["method"], dropna=False):
        floor = float(g["dense_mean"].iloc[0] - g["dense_std"].iloc[0])
        ok = g[g["mean"] >= floor]
        rows.append({**dict(zip(keys + ["method"], key)),
                     "matching_sparsity": float(ok["sparsity"].max()) if len(ok) else None,
                     "dense_mean": float(g["dense_mean"].iloc[0])})
    return pd.DataFrame(rows)


def _pct(value) -> str:
    import pandas as pd
    return "" if value is None or pd.isna(value) else f"{100 * value:.2f}"


def _shown(column: str, values: pd.Series) -> pd.Series:
    """``values`` as the readable tables write them (``SHOWN_AS``)."""
    names = SHOWN_AS.get(column)
    return values.map(lambda v: names.get(v, v)) if names else values


def _pm(mean, std) -> str:
    import pandas as pd
    return "" if pd.isna(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def readable(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """The table as shown in Markdown and LaTeX: accuracies and sparsities in percent
    (differences in percentage points), "none" written out, the columns that matter. The CSV
    keeps every column as the fractions computed."""
    import pandas as pd
    t = table
    keys = list(t.columns[:list(t.columns).index("mean")]) if "mean" in t.columns else []
    extra = [c for c in keys if c not in SHOWN_FIRST]  # setting fields that vary
    if name == "accuracy":
        out = t[["model", "method", "check", "prune_at"]].copy()
        out["sparsity (%)"] = t["sparsity"].map(_pct)
        for c in extra:
            out[c] = _shown(c, t[c])
        out["accuracy (%)"] = [_pm(m, s) for m, s in zip(t["mean"], t["std"])]
        out["seeds"] = t["seeds"]
        out["diverged"] = t["diverged"]
        out["effective sparsity (%)"] = t["effective_sparsity"].map(_pct)
        for c in ("train_epochs", "train_macs", "inference_macs", "seconds_per_epoch"):
            out[c.replace("_", " ")] = t[c]
        return out
    if name == "dense":
        out = t[[c for c in t.columns if c not in ("mean", "std", "seeds")]].copy()
        out["accuracy (%)"] = [_pm(m, s) for m, s in zip(t["mean"], t["std"])]
        out["seeds"] = t["seeds"]
        return out
    if name == "verdicts":
        return readable_verdicts(t)
    if name == "matching":
        out = t[[c for c in t.columns if c not in ("matching_sparsity", "dense_mean")]].copy()
        out["matching sparsity (%)"] = [
            "none" if v is None or pd.isna(v) else _pct(v) for v in t["matching_sparsity"]]
        out["dense accuracy (%)"] = t["dense_mean"].map(_pct)
        return out
    return t


def readable_verdicts(t: pd.DataFrame) -> pd.DataFrame:
    """The verdict table in points: what is compared with what, the finding's question, the
    numbers behind the reading, and the power (``results.verdicts`` names every column)."""
    import pandas as pd
    keys = list(t.columns[:list(t.columns).index("comparison")])  # the setting's fields
    out = t[["model"]].copy()
    out["sparsity (%)"] = t["sparsity"].map(_pct)
    for c in keys:  # the other setting fields, where they vary
        if c not in ("model", "sparsity", "method", "check", "prune_at") \
                and t[c].nunique(dropna=False) > 1:
            out[c] = _shown(c, t[c])
    out["method"], out["check"], out["prune at"] = t["method"], t["check"], t["prune_at"]
    out["against"], out["family"], out["question"] = t["reference"], t["family"], t["question"]
    out["seeds"] = [f"{_seeds(n, d)} / {_seeds(m, e)}" for n, d, m, e in
                    zip(t["seeds"], t.get("diverged", 0 * t["seeds"]), t["seeds_reference"],
                        t.get("diverged_reference", 0 * t["seeds"]))]
    out["accuracy (%)"] = t["accuracy"].map(_pct)
    out["reference (%)"] = t["accuracy_reference"].map(_pct)
    out["difference (points)"] = [f"{100 * d:+.2f}" for d in t["difference"]]
    levels = t["confidence"].unique()
    ci = f"{100 * levels[0]:g}% CI (points)" if len(levels) == 1 else "CI (points)"
    out[ci] = [f"[{100 * lo:+.2f}, {100 * hi:+.2f}]" for lo, hi in zip(t["ci_low"], t["ci_high"])]
    out["p"] = t["p_value"].map(lambda p: f"{p:.3g}")
    out["p (Holm)"] = t["p_adjusted"].map(lambda p: f"{p:.3g}")
    out["p opposite (Holm)"] = t["p_opposite_adjusted"].map(lambda p: f"{p:.3g}")
    out["reading"] = t["reading"]
    out["detectable (points)"] = t["detectable_difference"].map(lambda d: f"{100 * d:.2f}")
    out["seeds to settle"] = [("never" if r == INCONCLUSIVE else "") if pd.isna(n) else str(n)
                              for n, r in zip(t["seeds_to_settle"], t["reading"])]
    return out


def _seeds(finished, diverged) -> str:
    """A verdict's seeds: those compared, and those that diverged beside them."""
    return f"{finished} (+{int(diverged)} diverged)" if diverged else f"{finished}"


def markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' ``to_markdown`` would need the tabulate package)."""
    import pandas as pd
    def cell(v) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.4g}"
        return "" if v is None else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |",
             "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def build_tables(results_dir, configs=None, config_cls: type = RunConfig, *,
                 findings=None, margin_points: float | None = None,
                 references=()) -> dict[str, pd.DataFrame]:
    """Every table of the runs under ``results_dir`` (one folder or several) and in the
    reference files ``references`` (``results.load_runs``); ``findings``, ``margin_points``:
    the verdicts' (``results.verdicts``: default the paper's findings, δ by scale)."""
    runs = load_runs(results_dir, configs, config_cls, references=references)
    if runs.empty:
        return {"runs": runs}
    table = accuracy_table(runs, config_cls)
    dense = dense_table(runs, config_cls)
    return {"runs": runs, "accuracy": table, "dense": dense,
            "verdicts": verdicts(runs, config_cls=config_cls, findings=findings,
                                 margin_points=margin_points),
            "matching": matching_sparsity(table, dense)}


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path, latex: bool = False) -> str:
    """Write every table as CSV and Markdown (and LaTeX on request), and ``runs.csv`` (one row
    per run, ``results.load_runs``); return the Markdown."""
    parts = []
    titles = {"accuracy": "Test accuracy (mean ± std over seeds)", "dense": "Dense networks",
              "verdicts": "Verdicts: checks against the unmodified method, methods against "
                          "random and against after-training baselines",
              "matching": "Matching sparsity (the highest sparsity within one std of dense; "
                          "none: no sparsity tested is)"}
    for name, title in titles.items():
        df = tables.get(name)
        if df is None or df.empty:
            continue
        shown = readable(name, df)
        atomic_write_text(paths.table_file(out_dir, name, "csv"), df.to_csv(index=False))
        md = markdown(shown)
        text = caption(df) if name == "verdicts" else None  # what the verdicts mean
        parts.append(f"## {title}\n\n" + (f"{text}\n\n" if text else "") + f"{md}\n")
        if latex:  # escaped by pandas: _ % & # in names and headers compile
            tex = shown.to_latex(index=False, escape=True, float_format="%.4g",
                                 caption=latex_text(text) if text else None)
            atomic_write_text(paths.table_file(out_dir, name, "tex"), latex_symbols(tex))
    runs = tables.get("runs")
    if runs is not None and not runs.empty:  # one row per run: every field, metric and cost
        atomic_write_text(paths.table_file(out_dir, "runs", "csv"), runs.to_csv(index=False))
    text = "\n".join(parts) if parts else "no finished runs\n"
    atomic_write_text(Path(out_dir) / paths.TABLES, text)
    return text
