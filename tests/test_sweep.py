"""Sweeps survive SIGKILL; tables survive truncated files; sweep files are validated."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pai_bench.cli.parser import main
from pai_bench.errors import ConfigError
from pai_bench.analysis.results import load_runs
from pai_bench.options import RunOptions
from pai_bench.sweeps.sweep import spec_from_dict

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["--model", "mlp", "--dataset", "synthetic", "--batch-size", "32", "--subset", "640",
         "--test-subset", "100", "--no-progress", "--threads", "1",
         "--checkpoint-every", "0"]  # a checkpoint at every epoch's end, for the kill tests


def summaries(results: Path) -> list[Path]:
    return sorted(results.glob("runs/*/summary.json"))


def kill_when(cmd: list[str], ready, timeout: float = 300) -> None:
    """Start ``cmd`` and SIGKILL it as soon as ``ready()`` is true (it must not end first)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and not ready():
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()


def test_killed_sweep_resumes_and_records_every_run_once(tmp_path):
    cmd = [sys.executable, "-m", "pai_bench", "sweep", "--methods", "random,magnitude",
           "--sparsities", "0.5,0.9", "--epochs", "12", *SWEEP, "--results-dir", str(tmp_path)]
    partial = []

    def half_trained():  # after one run, with a checkpoint of the next
        partial[:] = [p for p in tmp_path.glob("runs/*/checkpoint.pt")
                      if not (p.parent / "summary.json").exists()]
        return summaries(tmp_path) and partial
    kill_when(cmd, half_trained)
    killed_with = len(summaries(tmp_path))
    assert 1 <= killed_with < 4 and partial
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{killed_with} already done" in again.stderr + again.stdout
    found = summaries(tmp_path)
    assert len(found) == 4 and len({p.parent for p in found}) == 4
    for path in found:
        summary = json.loads(path.read_text())
        assert summary["status"] == "finished"
        steps = [int(line.split(",")[0]) for line in
                 (path.parent / "metrics.csv").read_text().splitlines()[1:]]
        assert steps == sorted(set(steps)) and len(steps) == 12  # resumed, no duplicate rows
        assert not (path.parent / "checkpoint.pt").exists()
    # a third invocation has nothing left to do
    third = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "4 already done, 0 to run" in third.stderr + third.stdout


def test_table_warns_about_a_truncated_result_and_goes_on(tmp_path, capsys):
    assert main(["sweep", "--methods", "random", "--sparsities", "0.5", "--seeds", "0,1",
                 "--epochs", "1", *SWEEP, "--results-dir", str(tmp_path)]) == 0
    first, second = summaries(tmp_path)
    second.write_text(second.read_text()[:40])  # a truncated file
    capsys.readouterr()
    runs = load_runs(tmp_path)
    assert len(runs) == 1
    err = capsys.readouterr().err
    assert str(second) in err and "invalid" in err  # one line naming it
    assert second.with_name("summary.json.corrupt").exists()  # kept aside, not deleted
    assert main(["table", "--results-dir", str(tmp_path)]) == 0
    assert "random" in capsys.readouterr().out


def test_sweep_specs_are_validated():
    with pytest.raises(ConfigError, match="unknown sweep keys"):
        spec_from_dict({"methods": ["snip"], "sparsity": [0.9]})
    with pytest.raises(ConfigError, match="unknown run settings"):
        spec_from_dict({"methods": ["snip"], "run": {"modle": "mlp"}})
    with pytest.raises(ConfigError, match="at least one method"):
        spec_from_dict({"sparsities": [0.9]})
    spec = spec_from_dict({"methods": ["snip", "ltr"], "seeds": [0, 1], "prune_at": [0, 100],
                           "run": {"model": "mlp"}})
    configs = spec.configs()
    # prune-at points apply to scorers only: snip 2 seeds x 2 points, ltr 2 seeds
    assert len(configs) == 6 and all(c.model == "mlp" for c in configs)


def test_sweep_from_a_toml_file(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text('methods = ["random", "magnitude"]\nsparsities = [0.7]\n'
                    '[run]\nmodel = "mlp"\ndataset = "synthetic"\nepochs = 1\nbatch_size = 32\n'
                    'subset = 320\ntest_subset = 50\n')
    assert main(["sweep", "--config", str(path), "--no-progress",
                 "--results-dir", str(tmp_path / "r")]) == 0
    assert len(summaries(tmp_path / "r")) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('methods = ["nope"]\n')
    assert main(["sweep", "--config", str(bad), "--results-dir", str(tmp_path / "r")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_runs_per_gpu_binds_n_workers_to_each_gpu(tmp_path):
    from pai_bench.config import RunConfig
    from pai_bench.sweeps.executors import LocalExecutor, gpu_slots
    assert gpu_slots(2, 3) == ["cuda:0"] * 3 + ["cuda:1"] * 3
    executor = LocalExecutor(runs_per_gpu=3, device_count=2)  # a faked machine with 2 GPUs
    assert executor.workers == 6 and "3 run(s) on each of 2 GPU(s)" in executor.where()
    with pytest.raises(ConfigError, match="needs CUDA GPUs"):
        LocalExecutor(runs_per_gpu=2, device_count=0).where()
    # each worker process runs on the slot it claimed, not on the sweep's device: with slots
    # naming a device that does not exist, every run fails saying so
    executor = LocalExecutor(runs_per_gpu=2, device_count=1)
    executor.slots = ["nosuchdevice:0", "nosuchdevice:0"]
    configs = [RunConfig(method="random", seed=s, model="mlp", dataset="synthetic", epochs=1,
                         batch_size=32, subset=128, test_subset=50) for s in (0, 1)]
    results = []
    executor.run(configs, RunOptions(results_dir=tmp_path, device="cpu", threads=1).for_worker(),
                 lambda c, r, t0: results.append(r))
    assert len(results) == 2
    assert all(r["status"] == "failed" and "nosuchdevice" in r["error"] for r in results)


def test_workers_that_die_at_start_fail_their_runs_instead_of_looping(tmp_path):
    """A pool whose workers die in their initializer (here: a slot torch cannot even parse)
    starts no run; after a second fresh pool dies the same way, the runs fail saying so and
    the sweep ends (it used to replace the pool forever)."""
    from pai_bench.config import RunConfig
    from pai_bench.sweeps.executors import LocalExecutor
    executor = LocalExecutor(runs_per_gpu=1, device_count=1)
    executor.slots = [None]
    configs = [RunConfig(method="random", seed=s, model="mlp", dataset="synthetic", epochs=1,
                         batch_size=32, subset=128, test_subset=50) for s in (0, 1)]
    results = []
    executor.run(configs, RunOptions(results_dir=tmp_path, device="cpu", threads=1).for_worker(),
                 lambda c, r, t0: results.append(r), say=lambda *a: None)
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert all("died at start twice" in r["error"] for r in results)


BARRIER_METHOD = """
import os, time
from dataclasses import dataclass
from pathlib import Path

import torch

from pai_bench.methods import Scorer


@dataclass
class Barrier(Scorer):
    \"\"\"Scores at random, once every run of the sweep has started scoring: runs one after
    another never get past it.\"\"\"

    name = "barrier"

    def score(self, ctx):
        folder = Path(os.environ["BARRIER_DIR"])
        (folder / str(os.getpid())).touch()
        deadline = time.monotonic() + 60
        while len(list(folder.iterdir())) < int(os.environ["BARRIER_RUNS"]):
            if time.monotonic() > deadline:
                raise RuntimeError("the other runs never started: not run at once")
            time.sleep(0.05)
        return {n: torch.rand(m.shape) for n, m in ctx.masks.items()}
"""


def test_runs_per_gpu_runs_n_runs_at_once(tmp_path, monkeypatch):
    """N runs per GPU are N runs at once: each run's scorer waits until all have started (a
    barrier that runs one after another never pass), each in its own worker process. The
    faked GPU slots name the CPU, the only device here."""
    from pai_bench.config import RunConfig
    from pai_bench.sweeps.executors import LocalExecutor
    (tmp_path / "barrier_method.py").write_text(BARRIER_METHOD)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers start with this sys.path
    barrier = tmp_path / "arrived"
    barrier.mkdir()
    monkeypatch.setenv("BARRIER_DIR", str(barrier))
    monkeypatch.setenv("BARRIER_RUNS", "3")
    executor = LocalExecutor(runs_per_gpu=3, device_count=1)
    executor.slots = ["cpu"] * 3
    configs = [RunConfig(method="barrier", seed=s, model="mlp", dataset="synthetic", epochs=1,
                         batch_size=32, subset=128, test_subset=50, sparsity=0.5)
               for s in (0, 1, 2)]
    results = []
    executor.run(configs, RunOptions(results_dir=tmp_path / "r", device="cuda", threads=1,
                                     plugins=("barrier_method",)).for_worker(),
                 lambda c, r, t0: results.append(r))
    assert [r["status"] for r in results] == ["finished"] * 3, [r.get("error") for r in results]
    assert len(list(barrier.iterdir())) == 3  # three worker processes


def level_runs(results: Path) -> dict[float, Path]:
    """The run folders of an imp chain, by sparsity."""
    found = {}
    for folder in results.glob("runs/imp-*"):
        if (folder / "config.json").exists():
            found[json.loads((folder / "config.json").read_text())["config"]["sparsity"]] = folder
    return found


def test_an_imp_chain_killed_at_level_2_resumes_there_and_matches_an_uninterrupted_one(tmp_path):
    levels = (0.2, 0.36, 0.488)
    cmd = [sys.executable, "-m", "pai_bench", "sweep", "--methods", "imp", "--sparsities",
           ",".join(map(str, levels)), "--epochs", "12", *SWEEP]
    killed = tmp_path / "killed"

    def level_2_half_trained():
        runs = level_runs(killed)
        return 0.36 in runs and (runs[0.36] / "checkpoint.pt").exists()
    kill_when([*cmd, "--results-dir", str(killed)], level_2_half_trained)
    runs = level_runs(killed)
    assert (runs[0.2] / "summary.json").exists() and not (runs[0.36] / "summary.json").exists()
    level1 = (runs[0.2] / "summary.json").read_bytes()
    again = subprocess.run([*cmd, "--results-dir", str(killed)], cwd=REPO, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert (runs[0.2] / "summary.json").read_bytes() == level1  # level 1 not trained again
    whole = tmp_path / "whole"
    subprocess.run([*cmd, "--results-dir", str(whole)], cwd=REPO, check=True,
                   capture_output=True, timeout=600)
    resumed, uninterrupted = level_runs(killed), level_runs(whole)
    assert sorted(resumed) == sorted(uninterrupted) == list(levels)
    for s in levels:  # the resumed chain is the uninterrupted one, to the last bit
        a, b = (json.loads((r[s] / "summary.json").read_text()) for r in (resumed, uninterrupted))
        assert a["status"] == "finished" and a["test_accuracy"] == b["test_accuracy"]
        assert a["test_loss"] == b["test_loss"] and a["kept"] == b["kept"]
