"""A researcher's workflow: the Python API with callbacks, their own model, weights kept and
exported to torch.nn.utils.prune, test metrics per epoch, CLI help, installable beside any torch."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import pai_bench
from pai_bench import paths
from pai_bench.cli.parser import build_parser, main
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.models import MODELS, create_model

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(model="mlp", dataset="synthetic", epochs=3, batch_size=32, subset=320,
            test_subset=100, sparsity=0.8)


def test_api_run_takes_callbacks_and_keeps_test_metrics_per_epoch(tmp_path):
    class Count(pai_bench.Callback):
        steps = 0

        def on_step_end(self, loop, loss):
            Count.steps += 1

    summary = pai_bench.run(method="magnitude", results_dir=tmp_path, device="cpu",
                            callbacks=[Count()], log=lambda *a: None, **TINY)
    assert summary["status"] == "finished" and Count.steps == 30
    run = tmp_path / "runs" / f"magnitude-{summary['hash']}"
    rows = [line.split(",") for line in (run / paths.METRICS).read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    assert "test_accuracy" in header and len(rows) == 3
    last = dict(zip(header, rows[-1]))
    assert float(last["test_accuracy"]) == pytest.approx(summary["test_accuracy"])


def test_eval_every_zero_keeps_only_the_final_evaluation(tmp_path):
    summary = pai_bench.run(method="random", results_dir=tmp_path, device="cpu", eval_every=2,
                            log=lambda *a: None, **TINY)
    run = tmp_path / "runs" / f"random-{summary['hash']}"
    rows = [r.split(",") for r in (run / paths.METRICS).read_text().splitlines()[1:]]
    assert [r[6] != "" for r in rows] == [False, True, False]  # epochs 1, 2, 3: only epoch 2


def test_exported_run_loads_through_torch_prune_with_identical_logits(tmp_path):
    summary = pai_bench.run(method="snip", results_dir=tmp_path, device="cpu",
                            log=lambda *a: None, **TINY)
    run = tmp_path / "runs" / f"snip-{summary['hash']}"
    assert main(["export", str(run), "--format", "prune"]) == 0
    exported = torch.load(run / "model.prune.pt", weights_only=True)
    masks = Masks.load(run / paths.MASKS)
    # the suite's own trained network
    ours = create_model("mlp", num_classes=10, input_shape=(3, 32, 32), seed=0)
    ours.load_state_dict(torch.load(run / paths.WEIGHTS, weights_only=True))
    # a fresh network, pruned the torch way, loaded from the export
    theirs = create_model("mlp", num_classes=10, input_shape=(3, 32, 32), seed=1)
    for name, module in theirs.named_modules():
        if f"{name}.weight" in masks:
            prune.identity(module, "weight")
    theirs.load_state_dict(exported)
    x = torch.randn(16, 3, 32, 32)
    assert torch.equal(ours.eval()(x), theirs.eval()(x))
    assert all(torch.equal(dict(theirs.named_buffers())[f"{n}_mask"].bool(), m)
               for n, m in masks.items())


def test_a_users_model_keeps_its_own_initialization(tmp_path):
    def build(num_classes, input_shape, width):
        net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 64), nn.BatchNorm1d(64),
                            nn.ReLU(), nn.Linear(64, num_classes))
        return net
    pai_bench.register_model("test_own_init", build, init="keep")
    pai_bench.register_model("test_paper_init", build, init="paper")
    try:
        keep = create_model("test_own_init", num_classes=10, input_shape=(3, 32, 32), seed=0)
        paper = create_model("test_paper_init", num_classes=10, input_shape=(3, 32, 32), seed=0)
        assert torch.equal(keep[2].weight, torch.ones(64))  # torch's BatchNorm init, kept
        assert not torch.equal(paper[2].weight, torch.ones(64))  # redrawn from U[0, 1]
        assert torch.equal(keep[1].bias != 0, torch.ones(64, dtype=torch.bool))  # torch's bias
        again = create_model("test_own_init", num_classes=10, input_shape=(3, 32, 32), seed=0)
        assert torch.equal(keep[1].weight, again[1].weight)  # still a function of the seed
        summary = pai_bench.run(method="magnitude", results_dir=tmp_path, device="cpu",
                                log=lambda *a: None, **{**TINY, "model": "test_own_init"})
        assert summary["status"] == "finished"
    finally:
        MODELS.unregister("test_own_init")
        MODELS.unregister("test_paper_init")


def test_smoke_preset_takes_at_most_the_data_sets_size(tmp_path):
    # synthetic has fewer test examples than the smoke preset's 2,000: the whole split is used
    summary = pai_bench.run(method="random", results_dir=tmp_path, device="cpu",
                            log=lambda *a: None, model="mlp", dataset="synthetic",
                            preset="smoke", subset=320, batch_size=32)
    assert summary["status"] == "finished" and summary["test_examples"] < 2000
    with pytest.raises(ConfigError, match="subset size"):
        pai_bench.run(method="random", results_dir=tmp_path, device="cpu", log=lambda *a: None,
                      model="mlp", dataset="synthetic", preset="smoke", subset=320,
                      test_subset=10**6, batch_size=32)


def test_every_flag_has_help_and_closed_values_are_choices():
    parser = build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        by_dest = {a.dest: a for a in sub._actions}
        for closed in ("preset", "scope", "precision", "executor", "format", "check"):
            if closed in by_dest:
                assert by_dest[closed].choices, f"{name} --{closed} is not a choice"


def test_prog_names_the_entry_point():
    script = Path(sys.executable).parent / "pai-bench"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("usage: pai-bench")
    out = subprocess.run([sys.executable, "-m", "pai_bench", "--help"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.stdout.startswith("usage: python -m pai_bench")


def test_plugins_as_a_comma_separated_list(tmp_path, monkeypatch, capsys):
    for name in ("plugin_a_for_test", "plugin_b_for_test"):
        (tmp_path / f"{name}.py").write_text(
            "from dataclasses import dataclass\nfrom pai_bench.methods import Scorer\n"
            f"@dataclass\nclass S(Scorer):\n    '''{name}'''\n    name = '{name}'\n"
            "    def score(self, ctx):\n        return {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    try:
        assert main(["list", "--plugin", "plugin_a_for_test,plugin_b_for_test"]) == 0
        out = capsys.readouterr().out
        assert "plugin_a_for_test" in out and "plugin_b_for_test" in out
    finally:
        for name in ("plugin_a_for_test", "plugin_b_for_test"):
            pai_bench.methods.METHODS.unregister(name)
            sys.modules.pop(name, None)


def test_entry_points_register_models_and_data_sets(tmp_path, monkeypatch):
    from importlib import metadata
    (tmp_path / "ep_model_for_test.py").write_text(
        "import pai_bench\nfrom torch import nn\n"
        "pai_bench.register_model('ep_model_for_test', lambda n, s, w: nn.Sequential("
        "nn.Flatten(), nn.Linear(3 * 32 * 32, n)))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    found = [metadata.EntryPoint("ep_model_for_test", "ep_model_for_test", "pai_bench.models")]
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None: found if group == "pai_bench.models" else [])
    try:
        pai_bench.methods.load_plugins()
        assert "ep_model_for_test" in MODELS
    finally:
        MODELS.unregister("ep_model_for_test")
        sys.modules.pop("ep_model_for_test", None)


def test_dependencies_are_ranges_and_ci_pins_the_tested_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {re.split(r"[<>=!~ \[]", d)[0]: d for d in project["dependencies"]}
    for name in ("torch", "torchvision"):
        assert ">=" in deps[name] and "==" not in deps[name], deps[name]
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"torch=={torch.__version__.split('+')[0]}" in ci


def test_imagefolder_takes_any_class_tree_and_the_smoke_preset_uses_all_of_it(tmp_path, capsys):
    from PIL import Image
    root = tmp_path / "flowers"
    g = torch.Generator().manual_seed(0)
    for split, count in (("train", 12), ("test", 4)):
        for c, name in enumerate(("daisy", "rose", "tulip")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = (torch.rand(24, 20, 3, generator=g) * 60 + 80 * c).to(torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    code = main(["run", "--method", "snip", "--model", "mlp", "--dataset", "imagefolder",
                 "--data-root", str(root), "--preset", "smoke", "--batch-size", "8",
                 "--sparsity", "0.5", "--no-progress", "--results-dir", str(tmp_path / "r")])
    assert code == 0, capsys.readouterr().err
    (summary,) = [p for p in (tmp_path / "r" / "runs").glob("*/summary.json")]
    import json
    s = json.loads(summary.read_text())
    assert s["train_examples"] == 36 and s["test_examples"] == 12  # all of a small set
    assert s["status"] == "finished"


def test_masks_from_a_file_train_with_every_check(tmp_path, capsys):
    flags = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
             "--subset", "128", "--test-subset", "50", "--no-progress",
             "--results-dir", str(tmp_path / "r")]
    g = torch.Generator().manual_seed(0)
    model = create_model("mlp", num_classes=10, input_shape=(3, 32, 32), seed=0)
    shapes = {n: p.shape for n, p in model.named_parameters() if n.endswith("weight")}
    given = {n: torch.rand(s, generator=g) < 0.3 for n, s in shapes.items()}
    path = tmp_path / "my_masks.pt"
    torch.save(given, path)
    for check in ("none", "shuffle", "invert"):
        assert main(["run", "--masks", str(path), "--check", check, *flags]) == 0
    import json
    found = {json.loads(p.read_text())["config"]["check"]: p.parent
             for p in (tmp_path / "r" / "runs").glob("masks-*/summary.json")}
    assert set(found) == {"none", "shuffle", "invert"}
    kept = sum(int(m.sum()) for m in given.values())
    trained = Masks.load(found["none"] / paths.MASKS)
    assert all(torch.equal(trained[n], given[n]) for n in given)  # exactly the file's masks
    for run in found.values():
        assert json.loads((run / paths.SUMMARY).read_text())["kept"] == kept
    # a file that does not fit the model: one line naming it, exit 2, nothing written
    del given["fc2.weight"]
    bad = tmp_path / "bad.pt"
    torch.save(given, bad)
    capsys.readouterr()
    before = sorted((tmp_path / "r").rglob("*"))
    assert main(["run", "--masks", str(bad), *flags]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "fc2.weight" in err and len(err.strip().splitlines()) == 1
    assert sorted((tmp_path / "r").rglob("*")) == before


def test_tensorboard_logger_writes_an_event_file_tensorboard_reads(tmp_path):
    # the tensorboard extra is part of the README's install command, which CI runs
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    summary = pai_bench.run(method="random", results_dir=tmp_path, device="cpu",
                            loggers=["tensorboard"], log=lambda *a: None, **TINY)
    folder = tmp_path / "runs" / f"random-{summary['hash']}" / paths.LOGS
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/accuracy", "test/loss", "test/accuracy", "lr"} <= set(tags)
    acc = events.Scalars("test/accuracy")
    assert [e.step for e in acc] == [10, 20, 30]
    assert acc[-1].value == pytest.approx(summary["test_accuracy"])
