"""Results as data: every finished run under a results folder as one tidy pandas row, and the
sanity-check verdicts computed from them.
"""

from __future__ import annotations

import math
import statistics
import warnings
from pathlib import Path

import pandas as pd
from scipy import stats

from pai_bench import paths
from pai_bench.artifacts import read_summary
from pai_bench.config import RunConfig, setting_fields

METRICS = ["status", "test_accuracy", "test_loss", "kept", "prunable", "effective_sparsity",
           "ineffective_kept", "dense_test_accuracy", "seconds", "hash"]
COSTS = ["train_epochs", "dense_train_epochs", "train_macs", "inference_macs",
         "dense_inference_macs"]


def load_runs(results_dir: Path | str, configs=None, config_cls: type = RunConfig) -> pd.DataFrame:
    """One row per run summary under ``<results_dir>/runs`` (only those of ``configs`` if
    given); unreadable files are skipped with a warning that names them."""
    rows = []
    if configs is None:
        found = paths.summaries(results_dir)
    else:
        found = [paths.run_dir(results_dir, c) / paths.SUMMARY for c in configs]
        found = [f for f in found if f.exists()]
    for path in found:
        # a summary that is not a valid one of its folder's run is moved aside (artifacts.py)
        summary = read_summary(path, path.parent.name.rpartition("-")[2], config_cls)
        if summary is None:
            continue
        config = config_cls.from_dict(summary["config"]).to_dict()  # canonical, complete
        config["method_args"] = ",".join(f"{k}={v}" for k, v in config.get("method_args", []))
        row = {**config, **{k: summary.get(k) for k in METRICS},
               **{k: (summary.get("cost") or {}).get(k) for k in COSTS},
               "achieved_sparsity": summary.get("sparsity")}
        rows.append(row)
    return pd.DataFrame(rows)


def verdicts(runs: pd.DataFrame, alpha: float = 0.05,
             config_cls: type = RunConfig) -> pd.DataFrame:
    """Each sanity check against its unmodified method, per cell with >= 2 seeds on each side.

    Columns: the cell, ``check``, seeds on each side, mean accuracies, ``difference`` (check
    minus original), its 95% confidence interval (Welch-Satterthwaite degrees of freedom),
    Welch's t-test ``p_value``, ``p_adjusted`` (Holm, over every comparison of the table) and
    ``reading`` from the adjusted p: ``no significant difference`` (p_adjusted >= alpha; with a
    few seeds this is not evidence of sameness), ``better`` or ``worse``. Diverged runs count
    as missing.
    """
    out = []
    done = runs[runs["status"] == "finished"] if len(runs) else runs
    # a cell: the configuration's one definition of a setting, less the check it compares
    keys = [c for c in setting_fields(config_cls, exclude=("seed", "check")) if c in done.columns]
    for cell, group in done.groupby(keys, dropna=False, sort=True):
        base = group.loc[group["check"] == "none", "test_accuracy"].astype(float).tolist()
        for check, sub in group[group["check"] != "none"].groupby("check"):
            acc = sub["test_accuracy"].astype(float).tolist()
            if len(base) < 2 or len(acc) < 2:
                continue
            out.append({**dict(zip(keys, cell)), "check": check, **compare(acc, base, alpha)})
    for row, p in zip(out, holm([row["p_value"] for row in out])):
        row["p_adjusted"] = p
        row["reading"] = reading(row["difference"], p, alpha)
    return pd.DataFrame(out)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment for ``len(pvalues)`` comparisons, in the input order.

    With the p-values sorted ascending, p_(k) becomes ``max_{j <= k} min(1, (m - j + 1) p_(j))``
    (k counted from 1): it controls the family-wise error rate at the chosen alpha."""
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def reading(difference: float, p: float, alpha: float = 0.05) -> str:
    if p >= alpha:
        return "no significant difference"
    return "better" if difference > 0 else "worse"


def compare(a: list[float], b: list[float], alpha: float = 0.05) -> dict:
    """Welch's comparison of mean(a) - mean(b), with a 95% confidence interval."""
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    va = statistics.variance(a) if len(a) > 1 else 0.0  # exact: no cancellation warnings
    vb = statistics.variance(b) if len(b) > 1 else 0.0
    se = math.sqrt(va / len(a) + vb / len(b))
    diff = ma - mb
    if se == 0:
        p, half = (1.0 if diff == 0 else 0.0), 0.0
    else:
        dof = se**4 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
        half = stats.t.ppf(0.975, dof) * se
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return dict(seeds=len(a), seeds_original=len(b), accuracy=ma, accuracy_original=mb,
                difference=diff, ci_low=diff - half, ci_high=diff + half, p_value=p,
                reading=reading(diff, p, alpha))
