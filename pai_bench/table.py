"""The results table: mean +- std over seeds, sanity-check verdicts, matching sparsity."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pai_bench import paths
from pai_bench.io import atomic_write_text
from pai_bench.config import RunConfig, dense_fields, setting_fields
from pai_bench.results import load_runs, verdicts

# The columns every accuracy table shows first. The table groups by every field of the setting
# (``config.setting_fields``: all but the seed); fields other than these are shown, and split
# rows, only where they vary among the runs tabulated.
SHOWN_FIRST = ["model", "dataset", "method", "check", "prune_at", "sparsity"]


def group_columns(runs: pd.DataFrame, first: list[str], fields: list[str]) -> list[str]:
    """``first``, then every other field of ``fields`` whose value varies among ``runs``."""
    rest = [f for f in fields if f not in first and f in runs.columns
            and runs[f].nunique(dropna=False) > 1]
    return first + rest


def accuracy_table(runs: pd.DataFrame, config_cls: type = RunConfig) -> pd.DataFrame:
    """One row per setting and check (every field but the seed): accuracy mean, std, n, with
    the cost columns (means) beside it. Diverged runs are counted apart, not averaged."""
    keys = group_columns(runs, SHOWN_FIRST, setting_fields(config_cls))
    ok = runs[runs["status"] == "finished"]
    g = ok.groupby(keys, dropna=False)
    table = g["test_accuracy"].agg(mean="mean", std="std", seeds="count").reset_index()
    table["std"] = table["std"].fillna(0.0)
    extra = g[["effective_sparsity", "train_epochs", "train_macs", "inference_macs"]].mean()
    table = table.merge(extra.reset_index(), on=keys)
    diverged = runs[runs["status"] == "diverged"].groupby(keys, dropna=False).size()
    table["diverged"] = [int(diverged.get(tuple(r), 0)) for r in table[keys].itertuples(index=False)]
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


# What the Markdown shows of each table (the CSV has every column).
SHOWN = {
    "accuracy": ["model", "method", "check", "prune_at", "sparsity", "accuracy (%)", "seeds",
                 "diverged", "effective_sparsity", "train_epochs", "train_macs",
                 "inference_macs"],
    "verdicts": ["model", "method", "sparsity", "prune_at", "check", "seeds", "accuracy",
                 "accuracy_original", "difference", "ci_low", "ci_high", "p_value", "reading"],
}


def readable(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: accuracy as 'mean ± std' in percent, the chosen columns only."""
    out = table.copy()
    if name == "accuracy":
        out["accuracy (%)"] = [f"{100 * m:.2f} ± {100 * s:.2f}"
                               for m, s in zip(out["mean"], out["std"])]
    columns = [c for c in SHOWN.get(name, out.columns) if c in out.columns]
    if name == "accuracy":  # the fields that vary besides the usual ones, after the sparsity
        keys = list(out.columns[:list(out.columns).index("mean")])  # accuracy_table's groups
        extra = [c for c in keys if c not in columns and c not in SHOWN_FIRST]
        at = columns.index("sparsity") + 1
        columns = columns[:at] + extra + columns[at:]
    return out[columns]


def markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' ``to_markdown`` would need the tabulate package)."""
    def cell(v) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.4g}"
        return "" if v is None else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |",
             "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def build_tables(results_dir: Path, configs=None,
                 config_cls: type = RunConfig) -> dict[str, pd.DataFrame]:
    runs = load_runs(results_dir, configs, config_cls)
    if runs.empty:
        return {"runs": runs}
    table = accuracy_table(runs, config_cls)
    dense = dense_table(runs, config_cls)
    return {"runs": runs, "accuracy": table, "dense": dense,
            "verdicts": verdicts(runs, config_cls=config_cls),
            "matching": matching_sparsity(table, dense)}


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path, latex: bool = False) -> str:
    """Write every table as CSV and Markdown (and LaTeX on request); return the Markdown."""
    parts = []
    titles = {"accuracy": "Test accuracy (mean ± std over seeds)", "dense": "Dense networks",
              "verdicts": "Sanity checks against the unmodified method",
              "matching": "Matching sparsity (within one std of dense)"}
    for name, title in titles.items():
        df = tables.get(name)
        if df is None or df.empty:
            continue
        shown = readable(name, df)
        atomic_write_text(paths.table_file(out_dir, name, "csv"), df.to_csv(index=False))
        md = markdown(shown)
        parts.append(f"## {title}\n\n{md}\n")
        if latex:
            atomic_write_text(paths.table_file(out_dir, name, "tex"),
                              shown.to_latex(index=False, float_format="%.4g"))
    text = "\n".join(parts) if parts else "no finished runs\n"
    atomic_write_text(Path(out_dir) / paths.TABLES, text)
    return text
