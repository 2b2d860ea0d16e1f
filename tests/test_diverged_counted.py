"""Issue 39, cause 9: diverged runs are counted apart in the accuracy table (a row per setting,
even one whose every run diverged) and in the verdicts' seed counts, never averaged."""

import pandas as pd
import pytest

from pai_bench.config import RunConfig
from pai_bench.analysis.results import comparisons, verdicts
from pai_bench.analysis.table import accuracy_table, readable, readable_verdicts

COSTS = {"effective_sparsity": 0.5, "train_epochs": 1.0, "train_macs": 1e9,
         "inference_macs": 1e6, "seconds_per_epoch": 0.1}


def _runs(rows: list[tuple[RunConfig, str, float | None]]) -> pd.DataFrame:
    """A results frame as ``load_runs`` gives it: config fields, status, accuracy, costs."""
    out = []
    for config, status, accuracy in rows:
        row = config.to_dict()
        row["method_args"] = ",".join(f"{k}={v}" for k, v in row["method_args"])
        out.append({**row, "status": status, "test_accuracy": accuracy,
                    "dense_test_accuracy": 0.9, **COSTS})
    return pd.DataFrame(out)


def _config(method="random", seed=0, lr=None) -> RunConfig:
    return RunConfig(method=method, model="mlp", dataset="synthetic", sparsity=0.9, seed=seed,
                     lr=lr, epochs=1)


def test_a_setting_whose_runs_all_diverged_has_a_row_with_its_count():
    rows = [(_config(lr=1e30, seed=s), "diverged", None) for s in range(3)]  # all diverged
    rows += [(_config(lr=1e10, seed=s), "diverged", None) for s in range(2)]  # 2 of 4
    rows += [(_config(lr=1e10, seed=s), "finished", 0.5) for s in (2, 3)]
    rows += [(_config(seed=s), "finished", 0.6) for s in range(2)]
    table = accuracy_table(_runs(rows)).set_index("lr", drop=False)  # lr 1e10, 1e30, default
    assert list(table["diverged"]) == [2, 3, 0] and list(table["seeds"]) == [2, 0, 2], table
    assert table.loc[1e10, "mean"] == pytest.approx(0.5)
    assert pd.isna(table.loc[1e30, "mean"])
    shown = readable("accuracy", table.reset_index(drop=True))
    assert list(shown["diverged"]) == [2, 3, 0]
    assert list(shown["accuracy (%)"])[1] == ""  # no accuracy, not "nan ± nan"


def test_the_verdicts_count_the_diverged_seeds_beside_the_compared_ones():
    rows = [(_config("snip", s), "finished", 0.60 + 0.01 * s) for s in range(3)]
    rows += [(_config("snip", 3), "diverged", None)]
    rows += [(_config("random", s), "finished", 0.50 + 0.01 * s) for s in range(3)]
    rows += [(_config("random", s), "diverged", None) for s in (3, 4)]
    runs = _runs(rows)
    (against_random,) = [c for c in comparisons(runs) if c["comparison"] == "random"]
    assert len(against_random["a"]) == 3 and len(against_random["b"]) == 3
    assert (against_random["diverged"], against_random["diverged_reference"]) == (1, 2)
    table = verdicts(runs)
    row = table[table["comparison"] == "random"]
    assert len(row) == 1 and int(row["diverged"].iloc[0]) == 1
    shown = readable_verdicts(row.reset_index(drop=True))
    assert shown["seeds"].iloc[0] == "3 (+1 diverged) / 3 (+2 diverged)"
