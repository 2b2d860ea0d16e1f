"""Results you can trust: one setting per table row, canonical values, validated artifacts,
divergence everywhere, a dense run that resumes, and clear errors for the rest."""

import dataclasses
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import pai_bench.training.train
from pai_bench import paths
from pai_bench.pipeline import runner
from pai_bench.cli.parser import main
from pai_bench.config import RunConfig, dense_config, setting
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.options import RunOptions
from pai_bench.registry import Registry
from pai_bench.analysis.results import load_runs
from pai_bench.sweeps.sweep import run_sweep
from pai_bench.analysis.table import accuracy_table, build_tables

REPO = Path(__file__).resolve().parents[1]
TINY = dict(model="mlp", dataset="synthetic", epochs=3, batch_size=32, subset=320,
            test_subset=100)  # 10 steps per epoch
FLAGS = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
         "--subset", "128", "--test-subset", "50", "--no-progress"]


def execute(config, results):
    return runner.execute(config, RunOptions(results_dir=results, progress=False, log=None))


# 1. One definition of "the same setting" ------------------------------------------------------

def test_runs_with_different_settings_are_never_averaged(tmp_path):
    for extra in ({}, dict(lr=0.01, test_subset=60)):
        execute(RunConfig(method="magnitude", sparsity=0.8, **{**TINY, **extra}), tmp_path)
    table = accuracy_table(load_runs(tmp_path))
    assert len(table) == 2 and list(table["seeds"]) == [1, 1]
    assert {"lr", "test_subset"} <= set(table.columns)  # the columns that vary are shown
    markdown = build_tables(tmp_path)
    assert "lr" in markdown["accuracy"].columns


def test_a_new_field_splits_table_rows_with_no_other_edit(tmp_path):
    cls = dataclasses.make_dataclass(
        "Extended", [("label_smoothing", float, setting(0.0, "training", kind=float,
                                                         help="a new test setting"))],
        bases=(RunConfig,), frozen=True)
    for value in (0.0, 0.1):
        execute(cls(method="random", sparsity=0.5, label_smoothing=value, **TINY), tmp_path)
    runs = load_runs(tmp_path, config_cls=cls)
    assert len(runs) == 2
    table = accuracy_table(runs, cls)
    assert len(table) == 2 and "label_smoothing" in table.columns
    # a training field: the two runs have different dense networks
    a, b = (dense_config(cls(method="random", label_smoothing=v, **TINY)) for v in (0.0, 0.1))
    assert a.hash() != b.hash()


# 2. Canonical values -------------------------------------------------------------------------

def test_toml_integer_and_cli_float_sparsity_are_one_run(tmp_path, capsys):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('methods = ["random"]\nsparsities = [0]\n[run]\nmodel = "mlp"\n'
                     'dataset = "synthetic"\nepochs = 1\nbatch_size = 32\nsubset = 128\n'
                     'test_subset = 50\n')
    results = tmp_path / "results"
    assert main(["sweep", "--config", str(sweep), "--no-progress",
                 "--results-dir", str(results)]) == 0
    assert main(["run", "--method", "random", "--sparsity", "0", *FLAGS,
                 "--results-dir", str(results)]) == 0
    assert "stored result, not retrained" in capsys.readouterr().out
    assert len(list((results / "runs").iterdir())) == 1


def test_booleans_are_not_seeds(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('methods = ["random"]\nseeds = [true]\n')
    assert main(["sweep", "--config", str(sweep), "--results-dir", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


# 3. Validated artifacts ----------------------------------------------------------------------

def corrupt_summary_truncated(run, dense):
    path = run / paths.SUMMARY
    path.write_text(path.read_text()[:40])
    return path


def corrupt_summary_garbage(run, dense):
    (run / paths.SUMMARY).write_bytes(b"\x00\xffnot json")
    return run / paths.SUMMARY


def corrupt_summary_accuracy(run, dense):
    path = run / paths.SUMMARY
    summary = json.loads(path.read_text())
    summary["test_accuracy"] = 7.5
    path.write_text(json.dumps(summary))
    return path


def corrupt_summary_other_method(run, dense):
    path = run / paths.SUMMARY
    summary = json.loads(path.read_text())
    summary["config"]["method"] = "snip"
    summary["hash"] = RunConfig.from_dict(summary["config"]).hash()
    path.write_text(json.dumps(summary))
    return path


def corrupt_masks_truncated(run, dense):
    (run / paths.SUMMARY).unlink()
    path = run / paths.MASKS
    path.write_bytes(path.read_bytes()[:100])
    return path


def corrupt_masks_all_ones(run, dense):
    (run / paths.SUMMARY).unlink()
    path = run / paths.MASKS
    ones = {n: torch.ones_like(m) for n, m in Masks.load(path).items()}
    Masks(ones).save(path, owner=paths.owner(run))  # the run's own, keeping the wrong count
    return path


def corrupt_masks_missing_layer(run, dense):
    (run / paths.SUMMARY).unlink()
    path = run / paths.MASKS
    masks = dict(Masks.load(path))
    masks.pop(next(iter(masks)))
    Masks(masks).save(path, owner=paths.owner(run))
    return path


def corrupt_checkpoint_garbage(run, dense):
    (run / paths.SUMMARY).unlink()
    (run / paths.CHECKPOINT).write_bytes(b"garbage")
    return run / paths.CHECKPOINT


def corrupt_checkpoint_past_the_end(run, dense):
    (run / paths.SUMMARY).unlink()
    state = torch.load(paths.snapshot(dense, 0))
    state["step"], state["rows"] = 10_000, []
    torch.save(state, run / paths.CHECKPOINT)
    return run / paths.CHECKPOINT


def corrupt_dense_snapshot(run, dense):
    (run / paths.SUMMARY).unlink()
    path = max(dense.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    (dense / paths.SUMMARY).unlink()
    return path


CORRUPTIONS = [corrupt_summary_truncated, corrupt_summary_garbage, corrupt_summary_accuracy,
               corrupt_summary_other_method, corrupt_masks_truncated, corrupt_masks_all_ones,
               corrupt_masks_missing_layer, corrupt_checkpoint_garbage,
               corrupt_checkpoint_past_the_end, corrupt_dense_snapshot]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__[8:])
def test_a_corrupted_artifact_is_kept_aside_and_recomputed(corrupt, tmp_path, capsys):
    configs = [RunConfig(method=m, sparsity=s, **TINY)
               for m in ("random", "magnitude_after_training") for s in (0.5, 0.9)]
    options = RunOptions(results_dir=tmp_path, progress=False, log=None)
    run_sweep(configs, options)
    before = {c: json.loads((paths.run_dir(tmp_path, c) / paths.SUMMARY).read_text())
              for c in configs}
    victim = configs[3]  # a baseline: it has a dense network too
    bad = corrupt(paths.run_dir(tmp_path, victim), paths.dense_dir(tmp_path, dense_config(victim)))
    results = run_sweep(configs, options)
    assert len(results) == 1 and results[0]["status"] == "finished"  # only the victim reran
    assert "is invalid" in capsys.readouterr().err
    assert bad.with_name(bad.name + ".corrupt").exists()  # kept, not deleted
    runs = load_runs(tmp_path)
    assert len(runs) == 4 and set(runs["status"]) == {"finished"}
    for c in configs:  # recomputed to the very same numbers
        after = json.loads((paths.run_dir(tmp_path, c) / paths.SUMMARY).read_text())
        assert after["test_accuracy"] == before[c]["test_accuracy"]
        assert after["kept"] == before[c]["kept"]


# 4. Divergence everywhere --------------------------------------------------------------------

def test_a_huge_learning_rate_is_diverged_and_strict_json(tmp_path, capsys):
    code = main(["run", "--method", "random", "--lr", "1e6", "--sparsity", "0.5", *FLAGS,
                 "--results-dir", str(tmp_path)])
    assert code == 1
    (path,) = tmp_path.glob("runs/*/summary.json")
    summary = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert summary["status"] == "diverged" and summary["test_accuracy"] is None


def test_non_finite_weights_after_the_last_step_are_diverged(tmp_path, monkeypatch):
    real = pai_bench.training.train.train

    class Poison(pai_bench.training.train.Callback):
        def on_step_end(self, loop, loss):
            if loop.step == loop.end_step:  # after the last step's loss was checked
                with torch.no_grad():
                    next(loop.model.parameters())[0] = float("nan")

    def poisoned(*args, **kw):
        kw["callbacks"] = [*kw.get("callbacks", ()), Poison()]
        return real(*args, **kw)
    monkeypatch.setattr(runner, "train", poisoned)
    summary = execute(RunConfig(method="random", **TINY), tmp_path)
    assert summary["status"] == "diverged" and "weight" in summary["error"]


def test_a_non_finite_final_evaluation_is_diverged(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "evaluate", lambda *a, **k: {"accuracy": 0.1, "loss": float("inf")})
    summary = execute(RunConfig(method="random", **TINY), tmp_path)
    assert summary["status"] == "diverged" and "final evaluation" in summary["error"]


# 5. The dense pre-training resumes -----------------------------------------------------------

KILL_AT_EPOCH_2 = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from pai_bench.pipeline import runner
    from pai_bench.training import callbacks
    from pai_bench.config import RunConfig
    from pai_bench.options import RunOptions
    real = callbacks.Checkpointer.on_epoch_end  # the dense run's is the first to save
    def kill_after_two(self, loop):
        real(self, loop)
        if loop.step == 2 * loop.steps_per_epoch:
            os.kill(os.getpid(), signal.SIGKILL)
    callbacks.Checkpointer.on_epoch_end = kill_after_two
    config = RunConfig(method="ltr", model="mlp", dataset="synthetic", epochs=6, batch_size=32,
                       subset=320, test_subset=100)
    runner.execute(config, RunOptions(results_dir=Path(sys.argv[1]), progress=False,
                                      checkpoint_every=0))  # a checkpoint every epoch
""")


def test_dense_pretraining_killed_after_two_epochs_resumes_bit_identical(tmp_path, monkeypatch):
    config = RunConfig(method="ltr", **{**TINY, "epochs": 6})
    killed = subprocess.run([sys.executable, "-c", KILL_AT_EPOCH_2, str(tmp_path / "a")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    dense = paths.dense_dir(tmp_path / "a", dense_config(config))
    assert torch.load(dense / paths.CHECKPOINT)["step"] == 20
    assert not (tmp_path / "a" / "runs" / f"ltr-{config.hash()}" / paths.SUMMARY).exists()
    starts = []
    real = pai_bench.pipeline.dense.train

    def spy(model, data, recipe, **kw):
        starts.append(kw["start_step"])
        return real(model, data, recipe, **kw)
    monkeypatch.setattr(pai_bench.pipeline.dense, "train", spy)
    resumed = execute(config, tmp_path / "a")
    assert starts and starts[0] == 20  # from epoch 2, not from scratch
    monkeypatch.setattr(pai_bench.pipeline.dense, "train", real)
    straight = execute(config, tmp_path / "b")
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    assert resumed["test_loss"] == straight["test_loss"]
    final = paths.snapshot(dense, 60).name
    a = torch.load(dense / final)["model"]
    b = torch.load(paths.dense_dir(tmp_path / "b", dense_config(config)) / final)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# 6. Clear errors -----------------------------------------------------------------------------

def test_unreadable_image_is_named(tmp_path, capsys):
    from PIL import Image
    root = tmp_path / "data"
    for split in ("train", "test"):
        for c in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                  "truck"):
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (32, 32), (i, 0, 0)).save(folder / f"{i}.jpg")
    bad = root / "train" / "cat" / "1.jpg"
    bad.write_bytes(bad.read_bytes()[:50])
    # imagefolder: a folder of ten CIFAR class names is not CIFAR-10 (prepare.data_identity)
    code = main(["run", "--method", "random", "--dataset", "imagefolder", "--data-root",
                 str(root), "--preset", "smoke", "--no-progress",
                 "--results-dir", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["table", "--results-dir", "{tmp}/typo"], "does not exist"),
    (["plot", "--results-dir", "{tmp}/typo"], "does not exist"),
    (["sweep", "--methods", "random", "--workers", "-5", "--results-dir", "{tmp}/r"],
     "--workers must be a positive integer"),
    (["run", "--method", "random", "--results-dir", "{tmp}/file", "--data-root", "{tmp}/none"],
     "is not a folder"),
    (["list", "--plugin", "broken_plugin_for_test"], "broken_plugin_for_test"),
])
def test_bad_paths_and_options_exit_2_and_write_nothing(argv, message, tmp_path, capsys,
                                                        monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "broken_plugin_for_test.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    before = sorted(tmp_path.iterdir())
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == before
    sys.modules.pop("broken_plugin_for_test", None)


def test_plugin_error_names_the_exception(tmp_path, capsys, monkeypatch):
    (tmp_path / "boom_plugin.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "--plugin", "boom_plugin"]) == 2
    assert "RuntimeError: boom" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../../x", "a/b", "", ".hidden", "-x", "a b"])
def test_registry_names_are_simple(name):
    with pytest.raises(ConfigError, match="letters, digits"):
        Registry("method").register(type("Entry", (), {"name": name}))


CONCURRENT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from pai_bench.pipeline import runner
    from pai_bench.config import RunConfig
    from pai_bench.options import RunOptions
    config = RunConfig(method="random", model="mlp", dataset="synthetic", epochs=40,
                       batch_size=32, subset=640, test_subset=100)
    summary = runner.execute(config, RunOptions(results_dir=Path(sys.argv[1]), progress=False,
                                                log=None))
    print(json.dumps(summary["seconds"]))
""")


def test_the_same_run_started_twice_at_once_trains_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tmp_path)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    # the second returns the first's stored summary: the same training time to the digit
    assert outs[0][0] == outs[1][0]
    (run,) = (tmp_path / "runs").iterdir()
    rows = (run / paths.METRICS).read_text().splitlines()[1:]
    assert len(rows) == 40  # one training: one row per epoch, none twice


def test_a_non_finite_loss_between_the_periodic_checks_is_diverged(tmp_path, monkeypatch):
    real = pai_bench.training.train.train_step

    def poisoned(loop, x, y, *args):
        if loop.step == 3:  # mid-epoch: the loop does not read the loss at this step
            x = x * float("nan")
        return real(loop, x, y, *args)
    monkeypatch.setattr(pai_bench.training.train, "train_step", poisoned)
    summary = execute(RunConfig(method="random", **TINY), tmp_path)
    assert summary["status"] == "diverged"
    assert "at step 10" in summary["error"]  # found at the first epoch boundary
    # found before any callback saw the epoch's end: no metric row, no checkpoint of NaNs
    assert not (paths.run_dir(tmp_path, RunConfig(method="random", **TINY))
                / paths.METRICS).exists()


def test_a_garbage_layer_report_is_kept_aside_and_skipped(tmp_path, capsys):
    from pai_bench.analysis import plots
    for s in (0, 1):
        execute(RunConfig(method="random", seed=s, sparsity=0.9, **TINY), tmp_path)
    victim = paths.run_dir(tmp_path, RunConfig(method="random", seed=1, sparsity=0.9, **TINY))
    (victim / paths.LAYERS).write_text("name,shape\nfc1.weight\n")
    files = plots.layer_densities(tmp_path, load_runs(tmp_path), 0.9, tmp_path / "figs")
    assert files and "is invalid" in capsys.readouterr().err
    assert (victim / (paths.LAYERS + ".corrupt")).exists()
