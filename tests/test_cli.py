"""The command line: bad input, the end-to-end run on real data, stored results, plugins."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pai_bench.cli.parser import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
        "--subset", "128", "--test-subset", "64", "--no-progress"]


@pytest.mark.parametrize("argv, message", [
    (["--method", "nope"], "unknown method 'nope'; valid methods: "),
    (["--method", "random", "--model", "resnet"], "valid models: cifar_resnet_110"),
    (["--method", "random", "--dataset", "mnist"], "valid datasets: cifar10"),
    (["--method", "random", "--sparsity", "1"], "sparsity must be in [0, 1)"),
    (["--method", "random", "--sparsity", "-0.5"], "sparsity must be in [0, 1)"),
    (["--method", "random", "--seed", "-3"], "seed must be an integer in [0, 4294967295]"),
    (["--method", "random", "--method-arg", "oops"], "KEY=VALUE"),
    (["--method", "random", "--method-arg", "k=1"], "has no option 'k'"),
    (["--method", "random", "--model", "cifar_vgg_16", "--width", "8"], "takes no width"),
])
def test_bad_input_exits_2_and_writes_nothing(argv, message, tmp_path, capsys):
    assert main(["run", *argv, "--results-dir", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_missing_data_root_exits_2_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise OSError("no network in tests")
    monkeypatch.setattr(tvu, "download_url", offline)
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["run", "--method", "random", "--preset", "smoke", "--data-root", str(empty),
                 "--results-dir", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "--data-root" in err
    assert not (tmp_path / "r").exists()
    assert list(empty.iterdir()) == []
    absent = tmp_path / "absent" / "deeper"
    assert main(["run", "--method", "random", "--preset", "smoke", "--data-root", str(absent),
                 "--results-dir", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "absent").exists()  # the failed download left no folder behind


def test_tiny_run_then_stored_result(tmp_path, capsys):
    argv = ["run", "--method", "magnitude", "--sparsity", "0.8", *TINY,
            "--results-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "sparsity of prunable weights: 0.800000" in out and "fc1.weight" in out
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and 0 <= summary["test_accuracy"] <= 1
    assert not (run / "checkpoint.pt").exists()
    mtime = (run / "summary.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert "stored result, not retrained" in capsys.readouterr().out
    assert (run / "summary.json").stat().st_mtime_ns == mtime


def test_end_to_end_on_real_cifar10(cifar_root, tmp_path):
    """The README's command, shrunk to a few hundred images, as a user runs it."""
    cmd = [sys.executable, "-m", "pai_bench", "run", "--method", "magnitude",
           "--model", "cifar_resnet_20", "--width", "8", "--dataset", "cifar10",
           "--data-root", str(cifar_root), "--sparsity", "0.9", "--preset", "smoke",
           "--subset", "300", "--test-subset", "200", "--batch-size", "50",
           "--results-dir", str(tmp_path), "--no-progress"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "test accuracy:" in done.stdout and "blocks.8.conv2.weight" in done.stdout
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_examples"] == 300 and summary["test_examples"] == 200
    assert abs(summary["kept"] - round(0.1 * summary["prunable"])) == 0
    for name in ("config.json", "masks.pt", "masks.layers.csv", "metrics.csv"):
        assert (run / name).exists()
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 2  # header + 2 epochs


def test_list_names_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("magnitude", "random", "cifar_vgg_16", "imagenet_resnet_50", "mlp", "cifar10",
                 "synthetic"):
        assert f"  {name} " in out


def test_list_describes_each_experiment_and_each_methods_options(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = {text.split()[0]: text for text in lines if text.startswith("  ")}
    assert "(--method-arg: samples_per_class=10, batch_size=256)" in line["snip"]
    assert "(--method-arg: max_steps=64)" in line["phew"]
    assert "--method-arg" not in line["random"]  # no options, none listed
    assert "against random pruning and the after-training baselines" in line["main"]
    assert all(len(line[name].split(maxsplit=1)) == 2 for name in
               ("main", "ablations", "successors", "noninferiority", "early", "contested"))


def test_compile_trains_through_torch_compile_and_is_recorded(tmp_path, capsys):
    """``--compile`` is a training setting: recorded in config.json, part of the run's hash
    (a compiled run is stored beside, not over, the eager one), and the run trains and scores."""
    argv = ["run", "--method", "random", "--sparsity", "0.5", *TINY]
    assert main([*argv, "--compile", "--results-dir", str(tmp_path)]) == 0
    assert "test accuracy:" in capsys.readouterr().out
    assert main([*argv, "--results-dir", str(tmp_path)]) == 0
    recorded = {json.loads(p.read_text())["config"]["compile"]: p.parent
                for p in tmp_path.glob("runs/*/config.json")}
    assert set(recorded) == {True, False} and recorded[True] != recorded[False]
    summary = json.loads((recorded[True] / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["test_accuracy"] is not None
