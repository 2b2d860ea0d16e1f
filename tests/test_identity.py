"""Issue 37: a run's name covers what changes its numbers (the data's content, the masks), what
it does not cover is recorded and said (the CPU thread count), every entry point prepares its
runs through one door (``pai_bench.pipeline.prepare``), and settings and options are one kind of field
(``pai_bench.fields``)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import pai_bench
from pai_bench import paths
from pai_bench.pipeline import prepare
from pai_bench.cli.parser import main
from pai_bench.config import RunConfig
from pai_bench.data import DatasetSpec
from pai_bench.data.sets import load_synthetic
from pai_bench.errors import ConfigError
from pai_bench.sweeps.executors import ExecutorOptions
from pai_bench.sweeps.experiments import EXPERIMENTS, Experiment
from fake_cuda import FakeCuda
from pai_bench.fields import field, identity_fields
from pai_bench.io import file_digest
from pai_bench.models import create_model
from pai_bench.options import RunOptions
from pai_bench.analysis.results import load_runs
from pai_bench.sweeps.sweep import SweepSpec
from pai_bench.sweeps.worker import run_one

from helpers import StopAt, cudnn_flags_at_training

REPO = Path(__file__).resolve().parents[1]
TINY = dict(model="mlp", dataset="synthetic", epochs=1, batch_size=32, subset=128,
            test_subset=50, sparsity=0.8)
SHARED = {k: v for k, v in TINY.items() if k != "sparsity"}  # a sweep's [run] table
FLAGS = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
         "--subset", "128", "--test-subset", "50", "--sparsity", "0.8", "--no-progress"]
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def tree(root: Path, classes, per_class: int = 4, size: int = 8) -> Path:
    """``root/{train,test}/<class>/<i>.png``, seeded random pixels."""
    rng = np.random.default_rng(len(classes))
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def summaries(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*/summary.json"))]


# --- the data's identity -----------------------------------------------------------------------

def folder_run(root: Path, results: Path) -> int:
    return main(["run", "--method", "random", "--model", "mlp", "--dataset", "imagefolder",
                 "--data-root", str(root), "--epochs", "1", "--batch-size", "4",
                 "--no-progress", "--results-dir", str(results)])


def test_two_imagefolder_folders_are_two_runs_and_a_copy_is_the_same(tmp_path, capsys):
    a = tree(tmp_path / "dsA", ("ant", "bee"))
    b = tree(tmp_path / "dsB", ("ant", "bee", "cow"))
    assert folder_run(a, tmp_path / "r") == 0 and folder_run(b, tmp_path / "r") == 0
    assert "stored result" not in capsys.readouterr().out  # dsB was trained, not dsA's reused
    assert sorted(s["test_examples"] for s in summaries(tmp_path / "r")) == [8, 12]
    # a copy has other modification times, the same files: the same data set, the same run
    shutil.copytree(a, tmp_path / "copy", copy_function=shutil.copy)
    assert folder_run(tmp_path / "copy", tmp_path / "r") == 0
    assert "stored result" in capsys.readouterr().out
    assert len(summaries(tmp_path / "r")) == 2


def as_stored_before(results: Path, new: RunConfig, old: RunConfig) -> None:
    """The run of ``new`` moved to the name ``old`` and its files rewritten as if stored so."""
    paths.run_dir(results, new).rename(paths.run_dir(results, old))
    for name in (paths.SUMMARY, paths.CONFIG):
        file = paths.run_dir(results, old) / name
        file.write_text(json.dumps({**json.loads(file.read_text()), "config": old.to_dict(),
                                    "hash": old.hash(), "non_default": old.non_default()}))


def test_an_imagefolder_run_stored_without_its_fingerprint_is_named(tmp_path, capsys):
    root = tree(tmp_path / "dsA", ("ant", "bee"))
    assert folder_run(root, tmp_path / "r") == 0
    (new,) = [RunConfig.from_dict(s["config"]) for s in summaries(tmp_path / "r")]
    old = dataclasses.replace(new, data_digest=None)  # the name before issue 37
    as_stored_before(tmp_path / "r", new, old)
    capsys.readouterr()
    assert folder_run(root, tmp_path / "r") == 0
    out = capsys.readouterr().out
    assert f"{paths.run_dir(tmp_path / 'r', old)} was stored before" in out
    assert "stored result" not in out  # not reused: it may be of other files


def test_a_named_data_set_with_other_content_is_refused_in_one_line(tmp_path, capsys):
    root = tree(tmp_path / "not_cifar", CIFAR10_CLASSES, per_class=2, size=32)
    code = main(["run", "--method", "random", "--model", "mlp", "--dataset", "cifar10",
                 "--data-root", str(root), "--epochs", "1", "--batch-size", "4", "--subset",
                 "10", "--test-subset", "10", "--no-progress",
                 "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "fingerprint" in err[0] and str(root) in err[0] and "imagefolder" in err[0]
    assert not (tmp_path / "r" / "runs").exists()


def test_a_registered_data_set_is_named_by_the_files_under_its_root(tmp_path):
    pai_bench.register_dataset(DatasetSpec("test_mine", 10, (3, 32, 32), load_synthetic,
                                           "a user's data set"))
    for name, text in (("a", "one"), ("b", "three"), ("c", "one")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.bin").write_text(text)
    config = RunConfig(method="random", dataset="test_mine")
    a, b, c = (prepare.data_identity(config, tmp_path / n) for n in "abc")
    assert a.hash() != b.hash() and a.hash() == c.hash() != config.hash()


def test_the_shared_cifar10_copy_is_the_one_the_name_stands_for(cifar_root):
    config = RunConfig(method="random")
    assert prepare.data_identity(config, cifar_root) is config  # its hash unchanged


# --- the thread count --------------------------------------------------------------------------

def test_run_and_sweep_on_other_thread_counts_say_so_and_record_it(tmp_path, capsys):
    lines = []
    first = pai_bench.run(method="random", **TINY, threads=2, results_dir=tmp_path,
                          log=lines.append)
    assert first["threads"] == 2
    pai_bench.sweep(["random"], run=SHARED, sparsities=[0.8], threads=1, results_dir=tmp_path,
                    log=lines.append)  # the sweep's default, 1 thread per worker
    assert any("trained on 2 torch thread(s), not this call's 1" in line for line in lines), lines
    pai_bench.sweep(["random"], run=SHARED, sparsities=[0.5], results_dir=tmp_path, log=None)
    assert main(["run", "--method", "random", *FLAGS[:-3], "--sparsity", "0.5", "--threads",
                 "2", "--no-progress", "--results-dir", str(tmp_path)]) == 0
    assert "trained on 1 torch thread(s), not this call's 2" in capsys.readouterr().out
    assert sorted(load_runs(tmp_path)["threads"]) == [1, 2]  # runs.csv's column


def test_a_run_killed_on_two_threads_does_not_resume_on_one(tmp_path):
    config = RunConfig(method="random", **{**TINY, "epochs": 2})  # 4 steps per epoch
    with pytest.raises(KeyboardInterrupt):
        pai_bench.run(config, threads=2, results_dir=tmp_path, checkpoint_every=0, log=None,
                      callbacks=[StopAt(6)])
    with pytest.raises(ConfigError, match=r"trained on 2 torch thread.*resume on 1.*--threads 2"):
        pai_bench.run(config, threads=1, results_dir=tmp_path, log=None)
    assert pai_bench.run(config, threads=2, results_dir=tmp_path, log=None)["threads"] == 2


# --- masks from a file -------------------------------------------------------------------------

@pytest.fixture
def given(tmp_path) -> dict:
    g = torch.Generator().manual_seed(0)
    model = create_model("mlp", num_classes=10, input_shape=(3, 32, 32), seed=0)
    return {n: torch.rand(p.shape, generator=g) < 0.3 for n, p in model.named_parameters()
            if n.endswith("weight")}


def test_the_same_masks_under_two_names_and_two_formats_are_one_run(tmp_path, given):
    torch.save(given, tmp_path / "m1.pt")
    torch.save(given, tmp_path / "m2.pt")
    save_file({n: m.float() for n, m in given.items()}, str(tmp_path / "m.safetensors"))
    assert file_digest(tmp_path / "m1.pt") != file_digest(tmp_path / "m2.pt")  # the bytes differ
    done = [pai_bench.run(masks=tmp_path / f, **SHARED, results_dir=tmp_path / "r", log=None)
            for f in ("m1.pt", "m2.pt", "m.safetensors")]
    assert [d.get("reused") for d in done] == [None, "stored", "stored"]
    assert len(list((tmp_path / "r" / "runs").glob("masks-*"))) == 1


def test_a_masks_run_stored_under_its_file_digest_is_named_not_reused(tmp_path, given):
    """Its old name (the file's sha256) is not its name now: it is not reused (a store from
    before this release carries no owner nor sealed summary), and a line names it."""
    path = tmp_path / "m.pt"
    torch.save(given, path)
    first = pai_bench.run(masks=path, **SHARED, results_dir=tmp_path, log=None)
    new = RunConfig.from_dict(first["config"])
    old = dataclasses.replace(new, method_args=(("sha256", file_digest(path)),))
    as_stored_before(tmp_path, new, old)
    said = []
    again = pai_bench.run(masks=path, **SHARED, results_dir=tmp_path, log=said.append)
    assert "reused" not in again and again["test_loss"] == first["test_loss"]
    assert any(str(paths.run_dir(tmp_path, old)) in line and "not reused" in line for line in said)
    assert paths.run_dir(tmp_path, old).exists() and paths.run_dir(tmp_path, new).exists()


def test_the_api_refuses_masks_that_contradict_the_method_or_sparsity(tmp_path, given):
    torch.save(given, tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="no --method 'snip'"):
        pai_bench.run(masks=tmp_path / "m.pt", method="snip", **SHARED, results_dir=tmp_path)
    with pytest.raises(ConfigError, match="contradicts the masks file"):
        pai_bench.run(masks=tmp_path / "m.pt", sparsity=0.5, **SHARED, results_dir=tmp_path)


# --- one front door ----------------------------------------------------------------------------

def cuda_options(folder) -> RunOptions:
    return RunOptions(results_dir=folder, progress=False, log=None, device="cuda")


ENTRIES = {
    "cli run": lambda d: main(["run", "--method", "random", *FLAGS, "--device", "cuda",
                               "--results-dir", str(d)]),
    "api run": lambda d: pai_bench.run(method="random", **TINY, device="cuda", results_dir=d,
                                       log=None),
    "local worker": lambda d: run_one(RunConfig(method="random", **TINY), cuda_options(d)),
    "reproduce": lambda d: (
        EXPERIMENTS.register(Experiment("test_door", {"cpu": [SweepSpec(
            methods=("random",), sparsities=(0.8,), run=SHARED)]})),
        pai_bench.reproduce("test_door", "cpu", device="cuda", results_dir=d, log=None)),
}


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_entry_point_binds_the_cuda_device_once(entry, tmp_path, monkeypatch):
    seen = cudnn_flags_at_training(monkeypatch)
    with FakeCuda(count_ops=False) as gpu:
        ENTRIES[entry](tmp_path)
        assert gpu.set_device_calls == [0], entry
    assert seen == [(True, False)]  # pai_bench.device: CUDNN_BENCHMARK, CUDNN_DETERMINISTIC


@pytest.fixture
def prepared(monkeypatch) -> Counter:
    """How often each config was prepared (its plan made at an entry point) in this process,
    and how often a process was set up (device bound, plugins loaded)."""
    calls = Counter()
    real_plan, real_setup = prepare.make_plan, prepare.setup

    def plan(config, *args, **kwargs):
        calls[config.sparsity] += 1
        return real_plan(config, *args, **kwargs)

    def setup(options):
        calls["setup"] += 1
        return real_setup(options)
    monkeypatch.setattr(prepare, "make_plan", plan)
    monkeypatch.setattr(prepare, "load_plugins", lambda *a: calls.update(["plugins"]))
    for module in ("pai_bench.api", "pai_bench.cli.commands", "pai_bench.sweeps.experiments",
                   "pai_bench.sweeps.sweep", "pai_bench.sweeps.worker", "pai_bench.pipeline.prepare"):
        monkeypatch.setattr(f"{module}.setup", setup, raising=False)
    return calls


def test_a_run_is_prepared_once(tmp_path, prepared):
    assert main(["run", "--method", "random", *FLAGS, "--results-dir", str(tmp_path)]) == 0
    pai_bench.run(method="random", **{**TINY, "sparsity": 0.5}, results_dir=tmp_path, log=None)
    assert prepared == Counter({0.8: 1, 0.5: 1, "setup": 2, "plugins": 2})


def test_a_sweep_in_one_process_prepares_each_config_once(tmp_path, prepared):
    pai_bench.sweep(["random"], run=SHARED, sparsities=[0.5, 0.8], results_dir=tmp_path,
                    log=None)
    assert prepared == Counter({0.8: 1, 0.5: 1, "setup": 1, "plugins": 1})


SCRIPT = '''
import sys
import torch
import pai_bench

if __name__ == "__main__":
    pai_bench.register_model("tiny_cnn3", lambda n, shape, width: torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, n)))
    pai_bench.sweep(["random"], run=dict(model="tiny_cnn3", dataset="synthetic", epochs=1,
                                         batch_size=32, subset=64, test_subset=20),
                    sparsities=[0.5, 0.8], workers=2, results_dir=sys.argv[1])
'''


def test_a_model_registered_under_main_fails_a_two_worker_sweep_at_once(tmp_path):
    (tmp_path / "script.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO),
                               "PAI_BENCH_CACHE": str(tmp_path / "c")})
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0 and "ConfigError: model 'tiny_cnn3' is registered" in last
    assert "--plugin" in last and "entry point" in last
    assert not list((tmp_path / "r").glob("runs/*/summary.json"))  # no run tried


# --- one declaration of a field ----------------------------------------------------------------

def test_settings_and_options_are_one_kind_of_field_with_an_identity_flag():
    classes = (RunConfig, RunOptions, ExecutorOptions)
    assert identity_fields(RunConfig) == [f.name for f in dataclasses.fields(RunConfig)]
    assert identity_fields(RunOptions) == [] == identity_fields(ExecutorOptions)
    assert len({frozenset(f.metadata) for c in classes for f in dataclasses.fields(c)}) == 1

    @dataclasses.dataclass(frozen=True)
    class Noted(RunConfig):  # a field that is not part of the run's name stays out of its hash
        note: str = field("", "a remark kept with the run", identity=False)
    assert Noted(method="snip", note="first try").hash() == RunConfig(method="snip").hash()
