"""The results table: mean +- std over seeds, sanity-check verdicts, matching sparsity."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pai_bench.io import atomic_write_text
from pai_bench.results import load_runs, verdicts

GROUP = ["model", "dataset", "method", "check", "prune_at", "sparsity"]


def accuracy_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, data set, method, check, prune-at, sparsity): accuracy mean, std, n,
    with the cost columns (means) beside it. Diverged runs are counted apart, not averaged."""
    ok = runs[runs["status"] == "finished"]
    g = ok.groupby(GROUP, dropna=False)
    table = g["test_accuracy"].agg(mean="mean", std="std", seeds="count").reset_index()
    table["std"] = table["std"].fillna(0.0)
    extra = g[["effective_sparsity", "train_epochs", "train_macs", "inference_macs"]].mean()
    table = table.merge(extra.reset_index(), on=GROUP)
    diverged = runs[runs["status"] == "diverged"].groupby(GROUP, dropna=False).size()
    table["diverged"] = [int(diverged.get(tuple(r), 0)) for r in table[GROUP].itertuples(index=False)]
    return table.sort_values(GROUP).reset_index(drop=True)


def dense_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Dense accuracy per (model, data set): mean and std over the seeds that report it."""
    d = runs.dropna(subset=["dense_test_accuracy"]).drop_duplicates(["model", "dataset", "seed"])
    g = d.groupby(["model", "dataset"])["dense_test_accuracy"]
    return g.agg(mean="mean", std="std", seeds="count").fillna(0.0).reset_index()


def matching_sparsity(table: pd.DataFrame, dense: pd.DataFrame) -> pd.DataFrame:
    """Per method (unmodified, pruned at step 0 or after training): the highest sparsity whose
    mean accuracy is within one standard deviation of the dense network's mean."""
    rows = []
    base = table[(table["check"] == "none") & (table["prune_at"] == 0)]
    for (model, dataset, method), g in base.groupby(["model", "dataset", "method"]):
        ref = dense[(dense["model"] == model) & (dense["dataset"] == dataset)]
        if ref.empty:
            continue
        floor = float(ref["mean"].iloc[0] - ref["std"].iloc[0])
        ok = g[g["mean"] >= floor]
        rows.append(dict(model=model, dataset=dataset, method=method,
                         matching_sparsity=float(ok["sparsity"].max()) if len(ok) else None,
                         dense_mean=float(ref["mean"].iloc[0])))
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


def build_tables(results_dir: Path, configs=None) -> dict[str, pd.DataFrame]:
    runs = load_runs(results_dir, configs)
    if runs.empty:
        return {"runs": runs}
    table = accuracy_table(runs)
    dense = dense_table(runs)
    return {"runs": runs, "accuracy": table, "dense": dense, "verdicts": verdicts(runs),
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
        atomic_write_text(out_dir / f"{name}.csv", df.to_csv(index=False))
        md = markdown(shown)
        parts.append(f"## {title}\n\n{md}\n")
        if latex:
            atomic_write_text(out_dir / f"{name}.tex", shown.to_latex(index=False, float_format="%.4g"))
    text = "\n".join(parts) if parts else "no finished runs\n"
    atomic_write_text(out_dir / "tables.md", text)
    return text
