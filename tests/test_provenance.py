"""Issue 39: every stored file knows whose it is, and a summary vouches for what it says.

A valid file of another run (another seed, another method) copied in place of one of a run's
files is quarantined and recomputed like a truncated one; a summary, metric row, layer report
or config.json edited by hand is caught by the digests the summary holds (its own fields
included); a run is not stored with a kept count it does not have, nor into a folder deleted
while it trained; a write killed with SIGKILL leaves no temporary file for good."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pai_bench import io, paths
from pai_bench.pipeline import runner
from pai_bench.cli.parser import main
from pai_bench.config import RunConfig, dense_config
from pai_bench.errors import RunError, StorageError
from pai_bench.masks import Masks
from pai_bench.methods import Scorer
from pai_bench.pipeline.plan import make_plan
from pai_bench.analysis.results import load_runs
from pai_bench.training.train import Callback
from test_nothing_wrong_stored import TINY, interrupted, options, same_numbers

REPO = Path(__file__).resolve().parents[1]
SEED0, SEED1 = (RunConfig(method="magnitude", seed=s, **TINY) for s in (0, 1))
OTHER_METHOD = RunConfig(method="random", **TINY)
BASELINE0, BASELINE1 = (RunConfig(method="magnitude_after_training", seed=s, **TINY)
                        for s in (0, 1))
CONFIGS = (SEED0, SEED1, OTHER_METHOD, BASELINE0, BASELINE1)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> dict:
    """Finished runs (``done``) and runs interrupted after one epoch, with a checkpoint
    (``half``), of two seeds and two methods, and their summaries (``reference``)."""
    root = tmp_path_factory.mktemp("library")
    reference = {c: runner.execute(c, options(root / "done")) for c in CONFIGS}
    for c in (SEED0, SEED1, OTHER_METHOD):
        interrupted(c, root / "half")
    return {"root": root, "reference": reference}


def copy_of(library, tmp_path, which: str) -> Path:
    shutil.copytree(library["root"] / which, tmp_path / which)
    return tmp_path / which


# 1. Another run's valid file in place of this run's ---------------------------------------------

def shared_masks_dir(folder, config) -> Path:
    return paths.method_masks_dir(folder, make_plan(config).mask_source())


def _copied(folder, source, name):
    """Run ``source``'s file ``name``, valid but another run's, copied over SEED0's."""
    target = paths.run_dir(folder, SEED0) / name
    shutil.copy(paths.run_dir(folder, source) / name, target)
    return SEED0, target


def checkpoint_of_another_seed(folder):
    return _copied(folder, SEED1, paths.CHECKPOINT)


def checkpoint_of_another_method(folder):
    return _copied(folder, OTHER_METHOD, paths.CHECKPOINT)


def checkpoint_without_digest_scaled(folder):
    path = paths.run_dir(folder, SEED0) / paths.CHECKPOINT
    state = torch.load(path, weights_only=True)
    del state["digest"]
    state["model"] = {k: v * 1000 for k, v in state["model"].items()}
    torch.save(state, path)
    return SEED0, path


def run_masks_of_another_seed(folder):
    return _copied(folder, SEED1, paths.MASKS)


def method_masks_of_another_seed(folder):
    """The shared masks (masks/<method>-<hash>/masks.pt) of seed 1; the run asked for anew."""
    shared = [shared_masks_dir(folder, c) / paths.MASKS for c in (SEED0, SEED1)]
    shutil.copy(shared[1], shared[0])
    shutil.rmtree(paths.run_dir(folder, SEED0))
    return SEED0, shared[0]


def _dense_of_another_seed(folder, step_of):
    """A snapshot of seed 1's dense network over seed 0's; the baseline asked for anew."""
    dense = [paths.dense_dir(folder, dense_config(c)) for c in (BASELINE0, BASELINE1)]
    step = step_of(paths.snapshot_steps(dense[0]))
    for s in paths.snapshot_steps(dense[0]):
        if s > step:  # what it is read for: the step after it was trained from it
            paths.snapshot(dense[0], s).unlink()
    shutil.copy(paths.snapshot(dense[1], step), paths.snapshot(dense[0], step))
    (dense[0] / paths.SUMMARY).unlink()
    shutil.rmtree(paths.run_dir(folder, BASELINE0))
    shutil.rmtree(shared_masks_dir(folder, BASELINE0))
    return BASELINE0, paths.snapshot(dense[0], step)


def dense_final_snapshot_of_another_seed(folder):
    return _dense_of_another_seed(folder, max)


def dense_initialization_of_another_seed(folder):
    return _dense_of_another_seed(folder, min)


def weights_of_another_seed(folder):
    return _copied(folder, SEED1, paths.WEIGHTS)


def summary_without_digests_and_weights_of_another_seed(folder):
    path = paths.run_dir(folder, SEED0) / paths.SUMMARY
    summary = json.loads(path.read_text())
    del summary["digests"]
    path.write_text(json.dumps(summary))
    weights_of_another_seed(folder)
    return SEED0, path


HALF = [checkpoint_of_another_seed, checkpoint_of_another_method,
        checkpoint_without_digest_scaled, run_masks_of_another_seed]
DONE = [method_masks_of_another_seed, dense_final_snapshot_of_another_seed,
        dense_initialization_of_another_seed, weights_of_another_seed,
        summary_without_digests_and_weights_of_another_seed]


@pytest.mark.parametrize("replace", HALF + DONE, ids=lambda f: f.__name__)
def test_another_runs_valid_file_is_quarantined_and_recomputed(replace, library, tmp_path,
                                                               capsys):
    folder = copy_of(library, tmp_path, "half" if replace in HALF else "done")
    config, path = replace(folder)
    summary = runner.execute(config, options(folder))
    assert path.with_name(path.name + ".corrupt").exists(), capsys.readouterr().err
    assert "is invalid" in capsys.readouterr().err
    assert same_numbers(summary, library["reference"][config])


# 2. A summary, metric row, layer report or config.json edited ----------------------------------

def _edit_json(path, **fields):
    value = json.loads(path.read_text())
    value.update(fields)
    path.write_text(json.dumps(value))


def _edit_text(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _third_field(path, column, value):
    """The first data row's ``column`` of a CSV file set to ``value``."""
    lines = path.read_text().splitlines()
    index = lines[0].split(",").index(column)
    cells = lines[1].split(",")
    cells[index] = value
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def _edited_recipe(path):
    value = json.loads(path.read_text())
    value["recipe"]["lr"] = 9.9
    path.write_text(json.dumps(value))


EDITS = {  # name: (file, edit, what happens: retrain or rebuild)
    "test_accuracy": (paths.SUMMARY, lambda p: _edit_json(p, test_accuracy=0.1), "retrain"),
    "dense_test_accuracy": (paths.SUMMARY, lambda p: _edit_json(p, dense_test_accuracy=0.07),
                            "retrain"),
    "effective_sparsity": (paths.SUMMARY, lambda p: _edit_json(p, effective_sparsity=-3.0),
                           "retrain"),
    "kept": (paths.SUMMARY, lambda p: _edit_json(p, kept=5), "retrain"),
    "status": (paths.SUMMARY, lambda p: _edit_json(p, status="diverged"), "retrain"),
    "metrics_lr": (paths.METRICS, lambda p: _third_field(p, "lr", "90.05"), "retrain"),
    "metrics_nan": (paths.METRICS, lambda p: _third_field(p, "test_accuracy", "nan"), "retrain"),
    "layer_density": (paths.LAYERS, lambda p: _third_field(p, "density", "0.5867"), "rebuild"),
    "config_lr": (paths.CONFIG, _edited_recipe, "rebuild"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_file_of_a_finished_run_is_quarantined_and_rebuilt(edit, library, tmp_path,
                                                                     monkeypatch):
    folder = copy_of(library, tmp_path, "done")
    rdir = paths.run_dir(folder, BASELINE0)
    name, change, then = EDITS[edit]
    original = (rdir / name).read_bytes()
    change(rdir / name)
    if name == paths.SUMMARY:  # what `table` reads: the edited value is not tabulated
        runs = load_runs(folder)
        assert len(runs) == len(CONFIGS) - 1
    trainings = []
    real = runner.train_stage
    monkeypatch.setattr(runner, "train_stage", lambda *a, **k: trainings.append(1) or real(*a, **k))
    summary = runner.execute(BASELINE0, options(folder))
    assert (rdir / (name + ".corrupt")).exists()
    assert same_numbers(summary, library["reference"][BASELINE0])
    assert len(trainings) == (then == "retrain")
    if then == "rebuild":  # rebuilt to the same bytes (summaries and rows hold seconds)
        assert (rdir / name).read_bytes() == original
    again = runner.stored_summary(BASELINE0, folder)  # and the rebuilt run is trusted again
    assert again is not None and same_numbers(again, summary)


# 3. What a run stores is checked against what it is ----------------------------------------------

def test_a_scorer_that_zeroes_its_masks_changes_nothing_stored(tmp_path):
    class ZeroesMasks(Scorer):  # registered by its definition, removed after the test
        """A plugin that scores at random and zeroes the masks it was given (a bug)."""

        name = "zeroes_masks"
        needs_data = False

        def score(self, ctx):
            for mask in ctx.masks.values():
                mask.zero_()
            return {n: torch.rand(m.shape, generator=ctx.generator)
                    for n, m in ctx.masks.items()}

    summary = runner.execute(RunConfig(method="zeroes_masks", **TINY), options(tmp_path))
    assert summary["status"] == "finished"
    assert summary["kept"] == round(summary["prunable"] * 0.2) > 0


def test_masks_keeping_another_count_are_not_stored(tmp_path):
    class KeepsNothing(Scorer):
        """A method whose masks keep no weight, whatever the sparsity."""

        name = "keeps_nothing"
        needs_data = False

        def masks(self, stage):
            return Masks({n: torch.zeros(s, dtype=torch.bool)
                          for n, s in stage.plan.facts.prunable.items()})

        def score(self, ctx):
            raise AssertionError("not asked: its masks are its own")

    with pytest.raises(RunError, match="keep 0 of"):
        runner.execute(RunConfig(method="keeps_nothing", **TINY), options(tmp_path))
    assert not list(tmp_path.glob("runs/*/" + paths.SUMMARY))


def test_a_sparsity_that_keeps_no_weight_is_one_line_exit_2(tmp_path, capsys):
    argv = ["run", "--method", "random", "--sparsity", "0.9999999", "--model", "mlp",
            "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32", "--subset", "64",
            "--test-subset", "20",
            "--no-progress", "--results-dir", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "keeps none of the" in err[0] and "0.9999999" in err[0]
    assert not list((tmp_path / "r").glob("runs/*"))


class DeleteAt(Callback):
    def __init__(self, folder: Path):
        self.folder = folder

    def on_epoch_end(self, loop):
        if loop.step == loop.steps_per_epoch:
            shutil.rmtree(self.folder)


@pytest.mark.parametrize("deleted", ["run folder", "runs"])
def test_a_run_whose_folder_is_deleted_while_it_trains_is_not_stored(deleted, tmp_path):
    config = RunConfig(method="magnitude", **TINY)
    rdir = paths.run_dir(tmp_path, config)
    victim = rdir if deleted == "run folder" else rdir.parent
    with pytest.raises(StorageError, match="deleted or changed while the run trained"):
        runner.execute(config, options(tmp_path), callbacks=(DeleteAt(victim),))
    assert not (rdir / paths.SUMMARY).exists()
    assert load_runs(tmp_path).empty


# 4. A killed write leaves nothing for good --------------------------------------------------------

KILL_DURING = """
import os, signal, sys
from pathlib import Path
from pai_bench import io
from pai_bench.pipeline import runner
from pai_bench.config import RunConfig
from pai_bench.options import RunOptions

target, nth, folder, config = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
name = "atomic_write" if hasattr(io, "atomic_write") else "_atomic"  # (before issue 39)
real, seen = getattr(io, name), []

def killing(path, write):
    if Path(path).name == target and Path(path).parent.parent.name == sys.argv[5]:
        seen.append(path)
        if len(seen) == nth:
            def half(f):
                f.write(b"half a file" * 1000)
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, half)
    return real(path, write)

setattr(io, name, killing)
runner.execute(RunConfig.from_dict(__import__("json").loads(config)),
               RunOptions(results_dir=folder, progress=False, log=None, checkpoint_every=0))
"""

# (file, its folder's kind, which write of it): every file a run and its dense network write
WRITES = [(paths.CHECKPOINT, "runs", 1), (paths.SUMMARY, "runs", 1), (paths.METRICS, "runs", 2),
          (paths.WEIGHTS, "runs", 1), (paths.MASKS, "runs", 1), (paths.LAYERS, "runs", 1),
          (paths.CONFIG, "runs", 1), (paths.MASKS, "masks", 1), ("step_0.pt", "dense", 1),
          (paths.CHECKPOINT, "dense", 1), (paths.SUMMARY, "dense", 1)]


@pytest.mark.parametrize("target, kind, nth", WRITES, ids=lambda v: str(v))
def test_a_write_killed_by_sigkill_leaves_no_temporary_file(target, kind, nth, library, tmp_path):
    config = BASELINE0 if kind == "dense" else SEED0
    folder = tmp_path / "r"
    script = tmp_path / "kill.py"
    script.write_text(KILL_DURING)
    done = subprocess.run([sys.executable, str(script), target, str(nth), str(folder),
                           json.dumps(config.to_dict()), kind],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == -signal.SIGKILL  # killed in the middle of that write
    assert list(folder.rglob(f".{target}.*.tmp")), "the kill left no temporary to clean"
    summary = runner.execute(config, options(folder))
    assert not list(folder.rglob("*.tmp"))
    assert same_numbers(summary, library["reference"][config])


def test_a_temporary_of_a_dead_writer_is_removed_a_live_ones_kept(tmp_path):
    """Where no lock covers a folder (the image cache, figures), only a dead writer's
    temporaries are removed: a live process may still be writing its own."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    gone = tmp_path / f".cifar10-train-x.pt.{dead}.abc.tmp"
    live = tmp_path / f".cifar10-train-x.pt.{os.getpid()}.def.tmp"
    for f in (gone, live):
        f.write_bytes(b"half")
    assert io.clean_temporaries(tmp_path, "cifar10-train-x.pt") == [gone]
    assert live.exists() and not gone.exists()


FIGURE_KILLED = """
import os, signal, sys
from pathlib import Path
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from pai_bench.analysis import plots

out = Path(sys.argv[1])
real = Figure.savefig
def half(self, f, **kw):
    if sys.argv[2] == "kill":
        f = open(f, "wb") if isinstance(f, (str, Path)) else f  # (before issue 39: a path)
        f.write(b"half a figure")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, f, **kw)
Figure.savefig = half
fig, ax = plt.subplots()
ax.plot([0, 1], [1, 0])
plots._save(fig, out, "accuracy")
"""


def test_a_plot_killed_while_writing_leaves_the_old_figure_whole(tmp_path):
    script = tmp_path / "plot.py"
    script.write_text(FIGURE_KILLED)
    out = tmp_path / "figures"

    def plot(how):
        return subprocess.run([sys.executable, str(script), str(out), how], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert plot("write").returncode == 0
    before = {f: f.read_bytes() for f in paths.figure_files(out, "accuracy")}
    assert plot("kill").returncode == -signal.SIGKILL
    assert {f: f.read_bytes() for f in before} == before  # the previous figures, whole
    assert plot("write").returncode == 0
    assert not list(out.glob("*.tmp"))  # the killed plot's temporary, removed
