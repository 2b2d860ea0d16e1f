"""Issue 25: nothing wrong is ever stored. Each test corrupts a stored file, kills a worker or
makes a network diverge, and checks the suite recomputes what depends on it (to the numbers an
untouched run gives) or records the result it really is."""

import csv
import json
import shutil

import pytest
import torch

import pai_bench
from pai_bench import paths
from pai_bench.pipeline import runner
from pai_bench.config import RunConfig, dense_config
from pai_bench.sweeps.executors import ExecutorOptions
from pai_bench.io import tensor_digest
from pai_bench.masks import Masks
from pai_bench.options import RunOptions
from pai_bench.sweeps.sweep import run_sweep
from pai_bench.training.train import Callback

TINY = dict(model="mlp", dataset="synthetic", epochs=3, batch_size=32, subset=128,
            test_subset=50, sparsity=0.8)


def options(folder, **kw) -> RunOptions:
    """Quiet, with a checkpoint at every epoch's end (the tests interrupt after the first)."""
    return RunOptions(results_dir=folder, progress=False, log=None, **{"checkpoint_every": 0, **kw})


class StopAfterEpoch(Callback):
    """Interrupts training after the first epoch's checkpoint is written (a killed run)."""

    def on_epoch_end(self, loop):
        raise KeyboardInterrupt


def interrupted(config, folder):
    with pytest.raises(KeyboardInterrupt):
        runner.execute(config, options(folder), callbacks=(StopAfterEpoch(),))
    return paths.run_dir(folder, config)


def same_numbers(a: dict, b: dict) -> bool:
    keys = ("status", "test_accuracy", "test_loss", "kept", "cost")
    return all(a[k] == b[k] for k in keys)


@pytest.mark.parametrize("damage", ["nan_weight", "huge_weights_same_digest_field", "rows",
                                    "optimizer"])
def test_a_checkpoint_with_bad_values_is_quarantined_not_trusted(damage, tmp_path):
    """A NaN weight (before: trusted, the run stored as diverged), 19 weights of 1e25 (finite:
    only the digest catches them), garbage metric rows or optimizer state (before: every rerun
    failed on them)."""
    config = RunConfig(method="magnitude", **TINY)
    reference = runner.execute(config, options(tmp_path / "ref"))
    rdir = interrupted(config, tmp_path / "run")
    state = torch.load(rdir / paths.CHECKPOINT, weights_only=True)
    weight = state["model"]["fc1.weight"]
    if damage == "huge_weights_same_digest_field":  # flipped bytes; the stored digest catches it
        weight.view(-1)[:19] = 1e25
    else:  # the digest recomputed: the finite and form checks catch these
        if damage == "nan_weight":
            weight[0, 0] = float("nan")
        else:
            state[damage] = "garbage"
        state["digest"] = tensor_digest({k: v for k, v in state.items() if k != "digest"})
    torch.save(state, rdir / paths.CHECKPOINT)
    summary = runner.execute(config, options(tmp_path / "run"))
    assert (rdir / (paths.CHECKPOINT + ".corrupt")).exists()
    assert summary["status"] == "finished" and same_numbers(summary, reference)


def test_a_resumed_run_compares_its_masks_with_the_shared_copy(tmp_path, capsys):
    config = RunConfig(method="magnitude", **TINY)
    reference = runner.execute(config, options(tmp_path / "ref"))
    rdir = interrupted(config, tmp_path / "run")
    masks = Masks.load(rdir / paths.MASKS)
    moved = {n: m.flatten()[torch.randperm(m.numel(), generator=torch.Generator()
                                            .manual_seed(1))].view_as(m)
             for n, m in masks.items()}  # the right kept count, other positions
    Masks(moved).save(rdir / paths.MASKS, owner=paths.owner(rdir))  # the run's own, moved
    summary = runner.execute(config, options(tmp_path / "run"))
    assert "differ from those the method's masks give" in capsys.readouterr().err
    assert Masks.load(rdir / paths.MASKS) == masks
    assert same_numbers(summary, reference)


def level_dirs(folder):
    return {json.loads((d / paths.CONFIG).read_text())["config"]["sparsity"]: d
            for d in (folder / "runs").glob("imp-*")}


@pytest.mark.parametrize("victim", [paths.MASKS, paths.WEIGHTS])
def test_a_corrupt_level_of_an_imp_chain_is_recomputed(victim, tmp_path):
    config = RunConfig(method="imp", **{**TINY, "epochs": 2, "sparsity": 0.488})  # 3 levels
    reference = runner.execute(config, options(tmp_path / "ref"))
    runner.execute(config, options(tmp_path / "run"))
    middle = level_dirs(tmp_path / "run")[0.36]
    original = (middle / victim).read_bytes()
    (middle / victim).write_bytes(original[: len(original) // 2])  # truncated
    top = paths.run_dir(tmp_path / "run", config)
    (top / paths.SUMMARY).unlink()  # the top level asked for again
    summary = runner.execute(config, options(tmp_path / "run"))
    assert (middle / (victim + ".corrupt")).exists()
    assert (middle / victim).read_bytes() == original  # recomputed, to the same bytes
    assert summary["cost"] == reference["cost"]  # every level counted
    assert same_numbers(summary, reference)


def test_a_finished_runs_files_are_checked_when_it_is_asked_for_again(tmp_path, monkeypatch):
    config = RunConfig(method="magnitude", **TINY)
    first = runner.execute(config, options(tmp_path))
    rdir = paths.run_dir(tmp_path, config)
    report = (rdir / paths.LAYERS).read_text()
    trainings = []
    real = runner.train_stage
    monkeypatch.setattr(runner, "train_stage", lambda *a, **k: trainings.append(1) or real(*a, **k))
    # a garbled layer report is rebuilt from the masks, without training
    (rdir / paths.LAYERS).write_text("garbage\n")
    again = runner.execute(config, options(tmp_path))
    assert (rdir / paths.LAYERS).read_text() == report and trainings == []
    assert same_numbers(again, first)
    # garbled metric rows or weights: the run is trained again, to the same numbers
    for victim in (paths.METRICS, paths.WEIGHTS):
        (rdir / victim).write_bytes(b"\x00garbage")
        again = runner.execute(config, options(tmp_path))
        assert same_numbers(again, first) and (rdir / (victim + ".corrupt")).exists()
    assert len(trainings) == 2
    rows = list(csv.DictReader(open(rdir / paths.METRICS)))
    assert len(rows) == TINY["epochs"]


def test_a_diverged_dense_network_makes_its_baselines_diverged_once(tmp_path, monkeypatch):
    settings = {**TINY, "lr": 1e30, "epochs": 1}
    config = RunConfig(method="ltr", **settings)
    summary = runner.execute(config, options(tmp_path))
    assert summary["status"] == "diverged" and "dense" in summary["error"] or \
        summary["status"] == "diverged"
    dense = paths.dense_dir(tmp_path, dense_config(config))
    assert json.loads((dense / paths.SUMMARY).read_text())["status"] == "diverged"
    trainings = []
    import pai_bench.pipeline.dense
    real = pai_bench.pipeline.dense.train
    monkeypatch.setattr(pai_bench.pipeline.dense, "train",
                        lambda *a, **k: trainings.append(1) or real(*a, **k))
    other = runner.execute(RunConfig(method="magnitude_after_training", **settings),
                           options(tmp_path))
    assert other["status"] == "diverged" and trainings == []  # not trained again
    # a scorer pruning after one step of that dense network: diverged, not a ScoreError
    early = runner.execute(RunConfig(method="snip", prune_at=1, **settings), options(tmp_path))
    assert early["status"] == "diverged"


KILLER = """
import os, signal
from dataclasses import dataclass
from pathlib import Path

import torch

from pai_bench.methods import Scorer


@dataclass
class Killer(Scorer):
    \"\"\"Kills its own worker process: once (a marker file remembers), or every time.\"\"\"

    name = "killer"
    needs_data = False
    always: int = 0

    def score(self, ctx):
        marker = Path(os.environ["KILLER_DIR"]) / f"killed-{self.always}"
        if self.always or not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return {n: torch.rand(m.shape, generator=ctx.generator) for n, m in ctx.masks.items()}
"""


def test_a_killed_worker_fails_its_run_not_the_sweep(tmp_path, monkeypatch):
    (tmp_path / "killer_plugin.py").write_text(KILLER)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers start with this sys.path
    monkeypatch.setenv("KILLER_DIR", str(tmp_path))
    small = {**TINY, "epochs": 1}
    configs = [RunConfig(method="killer", **small),  # killed once: retried, finishes
               RunConfig(method="killer", method_args=(("always", "1"),), **small),  # always
               RunConfig(method="random", **small), RunConfig(method="magnitude", **small)]
    results = run_sweep(configs, options(tmp_path / "r", plugins=("killer_plugin",)),
                        ExecutorOptions(workers=2))
    status = {(r["config"]["method"] if isinstance(r["config"], dict) else r["config"].method,
               str(r["config"]["method_args"] if isinstance(r["config"], dict)
                   else r["config"].method_args)): r["status"] for r in results}
    assert sorted(status.values()) == ["failed", "finished", "finished", "finished"], status
    failed = [r for r in results if r["status"] == "failed"]
    assert "died twice" in failed[0]["error"]
    assert (paths.run_dir(tmp_path / "r", configs[1]) / paths.ERROR).exists()
    shutil.rmtree(tmp_path / "r")


MASK_SHAPES = {"fc1.weight": (300, 3072), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}


def _masks_file(kind: str, path):
    good = {n: torch.rand(s, generator=torch.Generator().manual_seed(0)) > 0.5
            for n, s in MASK_SHAPES.items()}
    torch.save(good, path)
    data = path.read_bytes()
    contents = {"empty": b"", "random": bytes(range(256)) * 8,
                "truncated": data[: len(data) // 2],
                "pickled": __import__("pickle").dumps({"a": 1})}
    if path.suffix == ".safetensors":
        from safetensors.torch import save  # a test dependency ([test] extra)
        data = save(good)
        contents = {"truncated": data[: len(data) // 2], "bad_header": b"\xff" * 8 + data[8:]}
        path.write_bytes(contents[kind])
    elif kind == "sparse":
        torch.save({n: m.to_sparse() for n, m in good.items()}, path)
    elif kind == "all_pruned":
        torch.save({n: torch.zeros_like(m) for n, m in good.items()}, path)
    else:
        path.write_bytes(contents[kind])


@pytest.mark.parametrize("kind, words", [
    ("empty", "cannot read masks file"), ("random", "cannot read masks file"),
    ("truncated", "cannot read masks file"), ("pickled", "cannot read masks file"),
    ("sparse", "sparse tensors"), ("all_pruned", "keeps no weight"),
    ("truncated.safetensors", "cannot read masks file"),
    ("bad_header.safetensors", "cannot read masks file")])
def test_a_bad_masks_file_is_one_line_exit_2_and_nothing_written(kind, words, tmp_path, capsys):
    from pai_bench.cli.parser import main
    path = tmp_path / (kind if kind.endswith(".safetensors") else f"{kind}.pt")
    kind = kind.removesuffix(".safetensors")
    _masks_file(kind, path)
    out = tmp_path / "results"
    argv = ["run", "--masks", str(path), "--model", "mlp", "--dataset", "synthetic",
            "--epochs", "1", "--subset", "128", "--test-subset", "50", "--results-dir", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_a_learning_rate_past_float32_is_refused_and_a_huge_one_diverges(tmp_path):
    from pai_bench.errors import ConfigError
    with pytest.raises(ConfigError, match="lr must be at most 3.403e"):  # before: a traceback
        RunConfig(method="random", lr=1e308, **TINY)  # from the optimizer, at its first step
    config = RunConfig(method="random", lr=1e38, **{**TINY, "epochs": 1})
    summary = runner.execute(config, options(tmp_path))
    assert summary["status"] == "diverged" and summary["test_accuracy"] is None
    json.loads((paths.run_dir(tmp_path, config) / paths.SUMMARY).read_text(),
               parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))


def test_a_safetensors_masks_file_runs_like_its_torch_save_twin(tmp_path):
    """The same masks as ``.safetensors`` and as ``torch.save``: the same masks are trained
    (the run's masks equal the file's) and the same accuracy is reached."""
    from safetensors.torch import save_file  # a test dependency ([test] extra)
    good = {n: torch.rand(s, generator=torch.Generator().manual_seed(0)) > 0.8
            for n, s in MASK_SHAPES.items()}
    save_file(good, tmp_path / "m.safetensors")
    torch.save(good, tmp_path / "m.pt")
    tiny = dict(model="mlp", dataset="synthetic", epochs=1, batch_size=32, subset=128,
                test_subset=50, device="cpu", log=lambda *a: None)
    a = pai_bench.run(masks=str(tmp_path / "m.safetensors"), results_dir=tmp_path / "a", **tiny)
    b = pai_bench.run(masks=str(tmp_path / "m.pt"), results_dir=tmp_path / "b", **tiny)
    assert a["status"] == b["status"] == "finished"
    assert a["test_accuracy"] == b["test_accuracy"] and a["kept"] == b["kept"]
    assert a["kept"] == sum(int(m.sum()) for m in good.values())
