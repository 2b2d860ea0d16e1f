"""``judge``: one method's runs planned from the design, references taken from reference rows
(not trained again), and a verdict card whose readings equal those of references trained here."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from pai_bench import paths
from pai_bench.analysis.calibration import CALIBRATED, calibration_configs, foreign
from pai_bench.config import RunConfig
from pai_bench.sweeps import experiments
from pai_bench.sweeps import judge as judging
from pai_bench.cli.parser import main
from pai_bench.sweeps.executors import ExecutorOptions
from pai_bench.options import RunOptions
from pai_bench.precision import machine, resolve
from pai_bench.sweeps.experiments import PAPER_DATA, PAPER_MODELS, PAPER_SEEDS, PAPER_SPARSITIES
from pai_bench.analysis.reference import reference_rows, write_reference
from pai_bench.analysis.results import load_runs
from pai_bench.sweeps.sweep import run_sweep
from pai_bench.analysis.verdicts import seeds_to_settle

TINY = judging.Design(run=dict(model="mlp", dataset="synthetic", batch_size=32, subset=320,
                               test_subset=100, epochs=1, precision="fp32"),
                      sparsity=0.9, seeds=(0, 1, 2))


def options(results: Path) -> RunOptions:
    return RunOptions(results_dir=results, progress=False, threads=1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """A reference file of the paper's references (random, magnitude after training, LTR) in
    TINY's setting and of the runs a calibration compares with (experiment "calibration"),
    written by the tool from runs stored elsewhere."""
    root = tmp_path_factory.mktemp("judge")
    spec = judging.sweeps("snip", TINY)[1]
    assert spec.methods == judging.REFERENCES
    calibration = judging.calibration_runs(TINY)
    run_sweep(spec.configs() + calibration, options(root / "paper"), ExecutorOptions())
    runs = load_runs(root / "paper")
    return write_reference(reference_rows(runs), root / "reference.csv")


def test_the_quick_and_full_levels_take_their_seeds_from_the_design():
    quick = judging.sweeps("snip", judging.Design(), "quick")
    assert {c.seed for s in quick for c in s.configs()} == set(range(5))
    full = judging.sweeps("snip", judging.Design(), "full")
    # "not worse within 2 points" at SD 1.52 for no effect, m = 2 (shuffle, reinit): n seeds
    n = seeds_to_settle(0.0, 0.0152, "not worse", 0.02, 0.05, family_size=2)
    assert n > 5 and full[-1].seeds == tuple(range(n))
    assert full[-1].checks == ("none", "shuffle", "reinit")


def test_judge_takes_references_from_rows_and_reads_as_if_trained_here(reference, tmp_path,
                                                                       capsys):
    card = judging.judge("snip", options(tmp_path / "mine"), references=[reference],
                         design=TINY, out=tmp_path / "card")
    trained = load_runs(tmp_path / "mine")
    assert set(trained["method"]) == {"snip"}  # the references came from the file
    assert len(trained) == 4 * 3  # none, shuffle, reinit, invert x 3 seeds
    rows = pd.read_csv(card / "card.csv")
    assert (rows["method"] == "snip").all()
    assert rows.groupby("family").size().to_dict() == {"a": 2, "d": 2, "e": 1, "invert": 1}
    text = (card / "card.md").read_text()
    assert "# snip, judged (quick level)" in text and "## Questions" in text
    assert str(reference) in text and "![card](card.png)" in text
    assert (card / "card.png").is_file() and (card / "card_layers.csv").is_file()
    assert "Level: **quick**, the design's 3 seeds" in text and "Cost (mean over 3 seed(s)" in text
    assert "scoring time not recorded" not in text  # snip's masks were scored here
    assert text.count("\n- **") == len(rows)  # a line per question: what it could detect
    # the same comparisons with the references trained here read the same
    here = judging.judge("snip", options(tmp_path / "all"), design=TINY, out=tmp_path / "card2")
    assert set(load_runs(tmp_path / "all")["method"]) == {"snip", *judging.REFERENCES}
    local = pd.read_csv(here / "card.csv")
    columns = ["family", "check", "reference", "reading", "difference", "ci_low", "ci_high"]
    assert local[columns].equals(rows[columns])


def test_judge_refuses_an_after_training_method_by_name(tmp_path, capsys):
    assert main(["judge", "--method", "ltr", "--results-dir", str(tmp_path)]) == 2
    assert "'ltr' prunes after training" in capsys.readouterr().err


def moved(reference: Path, tmp_path: Path, shift: float) -> Path:
    """The reference file as if made on another machine, its accuracies shifted by ``shift``
    (a fraction; the hashes stay valid: accuracy is no part of a configuration)."""
    table = pd.read_csv(reference, dtype=object, keep_default_na=False)
    table["machine"] = "Another CPU (AMX)"
    table["test_accuracy"] = [f"{float(a) + shift:.6f}" for a in table["test_accuracy"]]
    path = tmp_path / "elsewhere.csv"
    table.to_csv(path, index=False)
    return path


def test_a_calibration_that_fails_makes_judge_train_the_references_here(reference, tmp_path):
    card = judging.judge("snip", options(tmp_path / "mine"),
                         references=[moved(reference, tmp_path, +0.3)], design=TINY,
                         out=tmp_path / "card")
    trained = set(load_runs(tmp_path / "mine")["method"])
    assert trained == {"snip", CALIBRATED, *judging.REFERENCES}  # the calibration's, then all
    text = (card / "card.md").read_text()
    assert f"Calibration: {CALIBRATED} here (" in text and "against the reference rows (Another CPU" in text
    assert "different, so the references are trained here" in text


def test_a_calibration_that_passes_uses_the_references(reference, tmp_path):
    wide = judging.Design(run=TINY.run, sparsity=0.9, seeds=(0, 1, 2), sd_points=5.0,
                          margin_points=40.0)  # seeds noisy, margin wide: equivalence shown
    card = judging.judge("snip", options(tmp_path / "mine"),
                         references=[moved(reference, tmp_path, 0.0)], design=wide,
                         out=tmp_path / "card")
    trained = set(load_runs(tmp_path / "mine")["method"])
    assert trained == {"snip", CALIBRATED}  # the calibration; the rest from the file
    assert "equivalent (within ±δ) at δ = 40 points: the references are used" in (
        card / "card.md").read_text()


class Planned(Exception):
    """Raised by the stand-in sweep runner: the plan is what is looked at, not training."""


def test_the_paper_scale_plans_the_papers_grid_and_trains_references_no_row_has(tmp_path,
                                                                                  monkeypatch):
    planned = []

    def run_sweep(configs, options, executor):
        planned.extend(configs)
        raise Planned

    monkeypatch.setattr(judging, "run_sweep", run_sweep)
    paper = judging.design_of("paper")
    # LTR's runs of the paper's grid as reference rows made on this machine (no calibration)
    ltr = [resolve(c, "cpu") for s in judging.sweeps("snip", paper) for c in s.configs()
           if c.method == "ltr"]
    rows = pd.DataFrame([{**c.to_dict(), "method_args": "", "hash": c.hash(),
                          "status": "finished", "test_accuracy": 0.9, "machine": machine("cpu"),
                          "source": str(tmp_path)} for c in ltr])
    table = reference_rows(rows)
    table["torch"] = torch.__version__  # made here with this torch: no calibration
    reference = write_reference(table, tmp_path / "ltr.csv")
    with pytest.raises(Planned):
        main(["judge", "--method", "snip", "--scale", "paper", "--results-dir",
              str(tmp_path / "r"), "--reference", str(reference)])
    grid = {(m, s, seed) for m in PAPER_MODELS for s in PAPER_SPARSITIES for seed in PAPER_SEEDS}
    assert len(ltr) == len(grid) == 4 * 11 * 5
    expected = {(method, check) for check in judging.JUDGE_CHECKS for method in ["snip"]} | {
        (m, "none") for m in ("random", "magnitude_after_training", "imp")}  # not LTR: rows
    assert len(planned) == len(set(planned)) == len(grid) * len(expected)
    assert {(c.method, c.check, c.model, c.sparsity, c.seed) for c in planned} == {
        (m, k, model, s, seed) for m, k in expected for model, s, seed in grid}
    assert {(c.model, c.dataset) for c in planned} == {(m, PAPER_DATA[m]) for m in PAPER_MODELS}


@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_the_calibration_experiment_holds_the_runs_a_calibration_compares_with(scale):
    design = judging.design_of(scale)
    base = RunConfig(method=CALIBRATED, sparsity=design.sparsity, seed=0, **design.run)
    wanted = calibration_configs(base, design.calibration_sd_points, design.margin_points)
    shipped = experiments.configs("calibration", scale)
    assert shipped == wanted  # the same seeds, the same setting: the rows a calibration needs


def test_rows_made_with_another_torch_are_foreign_on_the_same_machine():
    rows = pd.DataFrame({"machine": ["cpu A", "cpu A"], "torch": ["2.14.1", "2.14.1"]})
    assert not foreign(rows, "cpu A", "2.14.1")
    assert foreign(rows, "cpu A", "2.11.0")  # other kernels on the same CPU
    assert foreign(rows, "cpu B", "2.14.1")
    assert foreign(rows.drop(columns="torch"), "cpu A", "2.14.1")  # not recorded: not trusted
    assert not foreign(rows.iloc[:0], "cpu B", "2.11.0")  # no rows: nothing to calibrate


def test_judge_reads_the_shipped_references_unless_told_otherwise(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(judging, "judge", lambda method, *a, references, **k: (
        seen.append(list(references)), tmp_path)[1])
    shipped = tmp_path / "shipped.csv"
    monkeypatch.setattr(paths, "shipped_references", lambda: [shipped])
    common = ["judge", "--method", "snip", "--results-dir", str(tmp_path)]
    assert main(common) == 0 and seen[-1] == [shipped]
    assert f"references: {shipped} (shipped)" in capsys.readouterr().out
    assert main([*common, "--no-reference"]) == 0 and seen[-1] == []
    mine = tmp_path / "mine.csv"
    assert main([*common, "--reference", str(mine)]) == 0 and seen[-1] == [mine]
    with pytest.raises(SystemExit) as refused:  # one or the other
        main([*common, "--reference", str(mine), "--no-reference"])
    assert refused.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert paths.SHIPPED_REFERENCES.parent.name == "results"  # the repository's results folder
