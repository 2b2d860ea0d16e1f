"""Run options declared once (``pai_bench.options``): every option reaches the training loop from
every entry point (CLI and Python; run, sweep, reproduce), a masks file is one run wherever it
lies, and a plan is made once (model builds per run counted)."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

import pai_bench
from pai_bench.cli.parser import build_parser, main
from pai_bench import paths
from pai_bench.pipeline import plan as plan_module, runner
from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.sweeps.executors import ExecutorOptions
from pai_bench.sweeps.experiments import EXPERIMENTS, Experiment
from pai_bench.options import RunOptions, option_fields
from pai_bench.sweeps.sweep import SweepSpec

PLUGINS = Path(__file__).resolve().parent / "plugins"
TINY = dict(model="mlp", dataset="synthetic", epochs=1, batch_size=32, subset=128,
            test_subset=50, sparsity=0.8)
TINY_FLAGS = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
              "--subset", "128", "--test-subset", "50"]
METHODS_RUN = ("random", "magnitude")


def chosen(tmp_path) -> dict:
    """A value other than the default for every run option (``log`` aside: Python only)."""
    values = dict(results_dir=tmp_path / "results", data_root=tmp_path / "data",
                  cache_dir=tmp_path / "cache", device="cpu", threads=2,
                  plugins=("row_sum_plugin",), progress=False, eval_every=3,
                  checkpoint_every=30.0, loggers=("tensorboard",))
    declared = {f.name for f in dataclasses.fields(RunOptions)} - {"log"}
    assert set(values) == declared, "a new option needs a value here"
    return values


def flags(values: dict) -> list[str]:
    """The CLI flags of ``values``, found through the options' own declarations."""
    out = []
    for f in dataclasses.fields(RunOptions):
        if f.name not in values:
            continue
        meta, value = f.metadata, values[f.name]
        if meta["switch"]:
            out.append(meta["switch"])
        elif meta["repeat"]:
            for item in value:
                out += [meta["flag"] or "--" + f.name.replace("_", "-"), item]
        else:
            out += [meta["flag"] or "--" + f.name.replace("_", "-"), str(value)]
    return out


@pytest.fixture
def seen(monkeypatch):
    """The options and torch threads each run's training loop was built with."""
    calls = []
    real = runner.train_stage

    def spy(stage, *args, **kwargs):
        calls.append((stage.plan.config.method, stage.options, torch.get_num_threads()))
        return real(stage, *args, **kwargs)
    monkeypatch.setattr(runner, "train_stage", spy)
    monkeypatch.syspath_prepend(str(PLUGINS))
    return calls


def tiny_experiment():
    EXPERIMENTS.register(Experiment("test_tiny", {"cpu": [SweepSpec(
        methods=METHODS_RUN, sparsities=(0.8,),
        run={k: v for k, v in TINY.items() if k != "sparsity"})]}))


ENTRIES = {
    "cli run": lambda v: [main(["run", "--method", m, *TINY_FLAGS, *flags(v)])
                          for m in METHODS_RUN],
    "cli sweep": lambda v: main(["sweep", "--methods", ",".join(METHODS_RUN), *TINY_FLAGS,
                                     "--sparsities", "0.8", *flags(v)]),
    "cli reproduce": lambda v: (tiny_experiment(),
                                main(["reproduce", "test_tiny", "--scale", "cpu",
                                          *flags(v)])),
    "api run": lambda v: [pai_bench.run(method=m, **TINY, **v) for m in METHODS_RUN],
    "api sweep": lambda v: pai_bench.sweep(METHODS_RUN, sparsities=[0.8],
                                           run={k: x for k, x in TINY.items()
                                                if k != "sparsity"}, **v),
    "api reproduce": lambda v: (tiny_experiment(), pai_bench.reproduce("test_tiny", "cpu", **v)),
}


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_option_reaches_the_training_loop_from_every_entry_point(entry, tmp_path, seen):
    values = chosen(tmp_path)
    ENTRIES[entry](values)
    assert sorted(m for m, _, _ in seen) == sorted(METHODS_RUN), seen
    for method, options, threads in seen:
        for name, value in values.items():
            got = getattr(options, name)
            assert got == value, f"{entry}: option {name} reached the loop as {got!r}"
        assert threads == 2  # --threads really set for the run
    # --logger tensorboard: event files for every run of the entry (a sweep's and a
    # reproduction's too: commands.sweep_options once dropped it)
    runs = sorted((values["results_dir"] / "runs").iterdir())
    assert len(runs) == len(METHODS_RUN)
    for run in runs:
        assert list((run / paths.LOGS).glob("events.out.tfevents.*")), run


def test_the_python_sweep_takes_every_option_the_cli_sweep_has(tmp_path):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["sweep"]
    cli_dests = {a.dest for a in sub._actions}
    for cls in (RunOptions, ExecutorOptions):
        for f in option_fields(cls, "sweep"):
            assert f.metadata["python_only"] or f.name in cli_dests, f.name
    # each executor option reaches the executor from Python: its own checks answer
    base = dict(results_dir=tmp_path, progress=False, log=None,
                run={k: v for k, v in TINY.items() if k != "sparsity"})
    with pytest.raises(ConfigError, match="--ray-address applies to --executor ray"):
        pai_bench.sweep(["random"], ray_address="localhost:1", **base)
    with pytest.raises(ConfigError, match="--runs-per-gpu needs CUDA GPUs"):
        pai_bench.sweep(["random"], runs_per_gpu=2, **base)
    with pytest.raises(ConfigError, match="--workers must be a positive integer"):
        pai_bench.sweep(["random"], workers=0, **base)
    with pytest.raises(ConfigError, match="unknown --executor value 'slurm'"):
        pai_bench.sweep(["random"], executor="slurm", **base)
    with pytest.raises(ConfigError, match="unknown option 'worker'"):
        pai_bench.reproduce("main", "cpu", worker=2, **{k: v for k, v in base.items()
                                                        if k != "run"})


def test_one_masks_file_under_two_paths_is_one_run(tmp_path, capsys):
    source = pai_bench.run(method="magnitude", results_dir=tmp_path / "src", log=None, **TINY)
    masks = paths.run_dir(tmp_path / "src", RunConfig.from_dict(source["config"])) / paths.MASKS
    first, second = tmp_path / "a" / "m.pt", tmp_path / "b" / "copy.pt"
    for target in (first, second):
        target.parent.mkdir()
        shutil.copy(masks, target)
    out = tmp_path / "results"
    base = ["run", *TINY_FLAGS, "--no-progress", "--results-dir", str(out)]
    assert main([*base, "--masks", str(first)]) == 0
    capsys.readouterr()
    assert main([*base, "--masks", str(second)]) == 0
    assert "(stored result, not retrained)" in capsys.readouterr().out
    # --sparsity that contradicts the file is refused, not silently overridden
    assert main([*base, "--masks", str(first), "--sparsity", "0.5"]) == 2
    assert "contradicts the masks file" in capsys.readouterr().err
    (run,) = (out / "runs").iterdir()
    assert run.name.startswith("masks-")
    stored = (run / paths.CONFIG).read_text()
    assert str(first) not in stored and str(second) not in stored  # no path in the identity
    config = json.loads(stored)["config"]
    assert [k for k, _ in config["method_args"]] == ["sha256"]


def test_masks_file_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    out = tmp_path / "results"
    base = ["run", *TINY_FLAGS, "--results-dir", str(out)]
    for argv, message in (([*base, "--masks", str(bad)], "cannot read masks file"),
                          ([*base, "--masks", str(tmp_path)], "is a folder"),
                          ([*base, "--masks", str(tmp_path / "no.pt")], "not found")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.rglob("*.json"))


@pytest.mark.parametrize("method, most", [("magnitude", 4), ("ltr", 7)])
def test_a_run_builds_its_network_a_few_times_only(method, most, tmp_path, monkeypatch):
    """Names, shapes and MACs are learnt once per plan (``ModelFacts``); networks are built to
    score, to train and to load a dense snapshot only. Before the plan was made once: 7
    builds for magnitude, 16 for ltr (its dense run included)."""
    builds = []
    real = plan_module.create_model
    monkeypatch.setattr(plan_module, "create_model",
                        lambda *a, **k: builds.append(1) or real(*a, **k))
    pai_bench.run(method=method, results_dir=tmp_path, log=None, **TINY)
    assert len(builds) <= most, len(builds)


def test_registration_refuses_duplicates_from_the_api_too():
    from pai_bench.methods import METHODS
    from pai_bench.methods.simple import Magnitude

    assert pai_bench.register_method(Magnitude) is Magnitude  # registered by subclassing
    impostor = type("Impostor", (), {"name": "magnitude"})
    with pytest.raises(ConfigError, match="method 'magnitude' is registered twice"):
        pai_bench.register_method(impostor)
    assert METHODS.get("magnitude") is Magnitude
