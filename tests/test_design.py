"""The redesign's guarantees: one definition of a setting, one method registry, namespaced
packages, masks scored once per method, and a new scorer in 15 lines from every entry point."""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pai_bench
from pai_bench.cli import commands
from pai_bench.cli.parser import build_parser
from pai_bench import paths
from pai_bench.pipeline import runner
from pai_bench.sweeps.sweep import axes
from pai_bench.config import RunConfig, dense_config, dense_fields, setting, setting_fields
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.methods import METHODS, Scorer
from pai_bench.methods.simple import Magnitude
from pai_bench.options import RunOptions
from pai_bench.sanity_checks import shuffle_masks
from pai_bench.seeding import generator

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(model="mlp", dataset="synthetic", epochs=1, batch_size=32, subset=128,
            test_subset=50, sparsity=0.8)
TINY_FLAGS = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
              "--subset", "128", "--test-subset", "50", "--sparsity", "0.8", "--no-progress"]


def extended(group: str):
    """RunConfig with one more field in ``group``, declared as any field is: nothing else edited."""
    return dataclasses.make_dataclass(
        "Extended", [("momentum_x", float, setting(0.9, group, kind=float,
                                                   help="a new test setting"))],
        bases=(RunConfig,), frozen=True)


@pytest.mark.parametrize("group", ["training", "data", "model", "pruning"])
def test_a_new_field_reaches_cli_hash_and_keys_as_its_group_says(group, capsys):
    cls = extended(group)
    parser = build_parser(cls)
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--help"])
    assert re.search(r"--momentum-x MOMENTUM_X\s+a new test setting \(default: 0\.9\)",
                     capsys.readouterr().out)
    plain = commands.config_from_args(parser.parse_args(["run", "--method", "random"]), cls)
    given = commands.config_from_args(
        parser.parse_args(["run", "--method", "random", "--momentum-x", "0.5"]), cls)
    assert given.momentum_x == 0.5 and plain.momentum_x == 0.9
    # the hash: unchanged while the field keeps its default, changed once it is set
    assert plain.hash() == RunConfig(method="random", precision="auto").hash()  # CLI default
    assert given.hash() != plain.hash()
    # the dense key holds data, model and training fields; the setting key every field but seed
    in_dense = group != "pruning"
    assert ("momentum_x" in dense_fields(cls)) == in_dense
    assert (dense_config(given).hash() != dense_config(plain).hash()) == in_dense
    assert "momentum_x" in setting_fields(cls) and "seed" not in setting_fields(cls)
    # a sweep takes it as a flag and as a [run] key of a TOML file
    args = parser.parse_args(["sweep", "--methods", "random", "--momentum-x", "0.5"])
    assert commands.settings(args, cls, exclude=tuple(axes(cls).values())) \
        == {"momentum_x": 0.5}


def test_canonical_values_give_one_hash():
    assert RunConfig(method="random", sparsity=0).hash() == \
        RunConfig(method="random", sparsity=0.0).hash()
    assert RunConfig(method="random", seed=2.0).seed == 2
    for bad in (dict(seed=True), dict(sparsity=True), dict(epochs=1.5), dict(sparsity="0.5")):
        with pytest.raises(ConfigError):
            RunConfig(method="random", **bad)


def test_one_registry_refuses_a_scorer_named_like_a_baseline():
    assert METHODS.get("ltr").after_training and not METHODS.get("snip").after_training
    with pytest.raises(ConfigError, match="method 'ltr' is registered twice"):
        class Impostor(Scorer):  # noqa: F841
            name = "ltr"


def test_checks_that_change_weights_or_positions_share_one_scoring(tmp_path, monkeypatch):
    calls = []
    real = Magnitude.score
    monkeypatch.setattr(Magnitude, "score", lambda self, ctx: calls.append(1) or real(self, ctx))
    masks = {}
    for check in ("none", "shuffle", "reinit"):
        config = RunConfig(method="magnitude", check=check, **TINY)
        runner.execute(config, RunOptions(results_dir=tmp_path, progress=False, log=None))
        masks[check] = Masks.load(paths.run_dir(tmp_path, config) / paths.MASKS)
    assert len(calls) == 1  # scored once for three runs
    # the same numbers as scoring for each run: reinit keeps them, shuffle permutes them
    assert masks["reinit"] == masks["none"]
    assert masks["shuffle"] == shuffle_masks(masks["none"], generator(0, "shuffle"))
    runner.execute(RunConfig(method="magnitude", check="invert", **TINY),
                   RunOptions(results_dir=tmp_path, progress=False, log=None))
    assert len(calls) == 2  # inversion changes the scoring itself: its own masks


def _clean_env():
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_installed_package_ignores_a_users_methods_py(tmp_path):
    (tmp_path / "methods.py").write_text("raise SystemExit('the user\\'s methods.py was imported')\n")
    (tmp_path / "baselines.py").write_text("raise SystemExit('baselines.py was imported')\n")
    done = subprocess.run([sys.executable, "-m", "pai_bench", "list"], cwd=tmp_path,
                          capture_output=True, text=True, env=_clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "baselines after training:" in done.stdout and "ltr" in done.stdout
    # nothing generic is importable from site-packages: only the pai_bench namespace
    probe = ("import importlib.util as u; "
             "print([n for n in ('methods', 'baselines', 'sanity_checks') if u.find_spec(n)])")
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-c", probe], cwd=empty, capture_output=True,
                          text=True, env=_clean_env(), timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def readme_scorer() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Adding a method"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_scorer_is_at_most_15_lines_and_runs_from_every_entry_point(tmp_path):
    code = readme_scorer()
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    work = tmp_path / "work"
    work.mkdir()
    (work / "my_method.py").write_text(code)
    args = ["run", "--plugin", "my_method", "--method", "grad_norm", *TINY_FLAGS]
    script = Path(sys.executable).parent / "pai-bench"
    assert script.exists(), f"the installed script {script} is missing: pip install -e ."
    for i, entry in enumerate(([sys.executable, "-m", "pai_bench"], [str(script)])):
        done = subprocess.run([*entry, *args, "--results-dir", str(tmp_path / f"r{i}")],
                              cwd=work, capture_output=True, text=True, env=_clean_env(),
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert "test accuracy:" in done.stdout
    # the Python API, in this process
    sys.path.insert(0, str(work))
    try:
        __import__("my_method")
        summary = pai_bench.run(method="grad_norm", results_dir=tmp_path / "api", device="cpu",
                                log=lambda *a: None, **TINY)
    finally:
        sys.path.remove(str(work))
        sys.modules.pop("my_method", None)
        METHODS.unregister("grad_norm")
    assert summary["status"] == "finished"
    assert summary["kept"] == round(0.2 * summary["prunable"])
    # the same run from the CLI and the API is one configuration: one hash
    (cli_run,) = (tmp_path / "r0" / "runs").iterdir()
    assert cli_run.name == f"grad_norm-{summary['hash']}"


def test_readme_python_api_example_runs(tmp_path, capsys):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code.replace("/tmp/pai-api", str(tmp_path)), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert any(line.startswith("finished ") for line in out.splitlines())
    runs = pai_bench.load_runs(tmp_path)
    assert len(runs) == 9 and set(runs["status"]) == {"finished"}  # 1 run + a 2x2x2 sweep
