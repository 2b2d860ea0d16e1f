"""Reference results (issue 38, point 1): stored runs written by the tool as one CSV file, read
back beside results folders by ``load_runs``, ``table`` and ``plot``; a row whose fields no
longer give its hash is stale: listed and left out, never used."""

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch

from pai_bench.cli.parser import main
from pai_bench.config import RunConfig
from pai_bench.analysis.reference import RESULT_COLUMNS
from pai_bench.analysis.results import load_runs

TINY = ["--model", "mlp", "--dataset", "synthetic", "--batch-size", "32", "--subset", "320",
        "--test-subset", "100", "--epochs", "1", "--no-progress", "--threads", "1",
        "--sparsities", "0.9", "--seeds", "0,1"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict[str, Path]:
    """Two results folders of tiny runs: ``paper`` (random and magnitude, the paper's methods
    whose runs become the reference file ``ref``) and ``mine`` (a new method, snip)."""
    root = tmp_path_factory.mktemp("reference")
    assert main(["sweep", "--methods", "random,magnitude", *TINY,
                 "--results-dir", str(root / "paper")]) == 0
    assert main(["sweep", "--methods", "snip", *TINY, "--results-dir", str(root / "mine")]) == 0
    ref = root / "reference" / "cpu.csv"
    assert main(["reference", "export", str(root / "paper"), "--out", str(ref)]) == 0
    return {"paper": root / "paper", "mine": root / "mine", "ref": ref}


def test_export_writes_one_row_per_run_with_every_field_and_measurement(stored):
    table = pd.read_csv(stored["ref"], dtype=object, keep_default_na=False)
    runs = load_runs(stored["paper"])
    assert len(table) == len(runs) == 4 and set(table["hash"]) == set(runs["hash"])
    fields = [f.name for f in dataclasses.fields(RunConfig)]
    assert list(table.columns) == [*fields, "hash", *RESULT_COLUMNS]
    assert (table["torch"] == torch.__version__).all()
    assert (table["machine"] != "").all() and (table["status"] == "finished").all()
    assert (table["precision"].isin(["fp32", "bf16"])).all()  # resolved, never "auto"
    # read back, every row counts and says what its run said
    back = load_runs([], references=[stored["ref"]]).set_index("hash")
    here = runs.set_index("hash")
    for column in ("method", "seed", "sparsity", "test_accuracy", "test_loss", "kept",
                   "train_macs", "machine", "precision"):
        assert back.loc[here.index, column].tolist() == here[column].tolist(), column
    assert set(back["source"]) == {str(stored["ref"])}


def stale_copy(stored, tmp_path, **changes) -> Path:
    """The reference file with its first row's fields changed (its hash kept)."""
    table = pd.read_csv(stored["ref"], dtype=object, keep_default_na=False)
    for column, value in changes.items():
        table.loc[0, column] = value
    path = tmp_path / "stale.csv"
    table.to_csv(path, index=False)
    return path


def test_a_stale_reference_row_is_listed_and_left_out(stored, tmp_path, capsys):
    path = stale_copy(stored, tmp_path, epochs="2")  # another recipe under the old hash
    first = pd.read_csv(path, dtype=object)["hash"][0]
    runs = load_runs([], references=[path])
    assert len(runs) == 3 and first not in set(runs["hash"])
    err = capsys.readouterr().err
    assert f"reference file {path}: 1 stale row(s) left out" in err
    assert f"hash {first}): its fields give hash " in err
    # a field this code does not have: every row is stale
    table = pd.read_csv(stored["ref"], dtype=object, keep_default_na=False)
    table["gone_field"] = "x"
    table.to_csv(tmp_path / "gone.csv", index=False)
    assert load_runs([], references=[tmp_path / "gone.csv"]).empty
    assert "4 stale row(s)" in capsys.readouterr().err


def test_table_counts_a_stale_row_nowhere(stored, tmp_path, capsys):
    path = stale_copy(stored, tmp_path, epochs="2")
    assert main(["table", "--reference", str(path), "--out", str(tmp_path / "report")]) == 0
    assert "1 stale row(s) left out" in capsys.readouterr().err
    accuracy = pd.read_csv(tmp_path / "report" / "accuracy.csv")
    assert sorted(accuracy["seeds"]) == [1, 2]  # the stale seed is in no mean
    assert "epochs" not in accuracy.columns  # nor a setting of its own (epochs 2)


def test_rows_from_a_file_and_a_folder_combine_in_table(stored, tmp_path):
    assert main(["table", "--results-dir", str(stored["mine"]), "--reference", str(stored["ref"]),
                 "--out", str(tmp_path / "combined")]) == 0
    accuracy = pd.read_csv(tmp_path / "combined" / "accuracy.csv")
    assert set(accuracy["method"]) == {"snip", "random", "magnitude"}
    assert (accuracy["seeds"] == 2).all()
    verdicts = pd.read_csv(tmp_path / "combined" / "verdicts.csv")
    assert {("snip", "random"), ("magnitude", "random")} <= set(
        zip(verdicts["method"], verdicts["reference"]))  # the folder's run against the file's
    runs = pd.read_csv(tmp_path / "combined" / "runs.csv")
    assert sorted(runs["source"].unique()) == sorted([str(stored["mine"]), str(stored["ref"])])
    # the same runs read from their two folders give the same table
    assert main(["table", "--results-dir", str(stored["mine"]), "--results-dir",
                 str(stored["paper"]), "--out", str(tmp_path / "folders")]) == 0
    folders = pd.read_csv(tmp_path / "folders" / "accuracy.csv")
    assert folders.drop(columns="seconds_per_epoch").equals(
        accuracy.drop(columns="seconds_per_epoch"))


def test_a_run_in_a_folder_and_a_file_counts_once(stored):
    runs = load_runs([stored["paper"]], references=[stored["ref"]])
    assert len(runs) == 4 and set(runs["source"]) == {str(stored["paper"])}  # the folder's


def test_plot_draws_a_folder_beside_a_reference_file(stored, tmp_path):
    assert main(["plot", "--results-dir", str(stored["mine"]), "--reference", str(stored["ref"]),
                 "--out", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "accuracy_vs_sparsity_mlp.png").exists()


def test_only_reference_files_need_an_out_folder(stored, capsys):
    assert main(["table", "--reference", str(stored["ref"])]) == 2
    assert "--out is needed" in capsys.readouterr().err
