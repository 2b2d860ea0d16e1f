"""Bad input (issue 25): one line on stderr naming the option given and the valid choices, exit
code 2, and nothing new under the results folder; a plugin scorer's malformed scores are refused,
naming the scorer, before any mask is stored."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

import pai_bench
from pai_bench.sweeps import ray_executor
from pai_bench.cli.parser import main
from pai_bench.errors import ConfigError
from pai_bench.methods import Scorer
from pai_bench.analysis.results import load_runs

TINY = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
        "--subset", "128", "--test-subset", "50", "--no-progress"]
TOML_RUN = ('\n[run]\nmodel = "mlp"\ndataset = "synthetic"\nepochs = 1\nbatch_size = 32\n'
            'subset = 128\ntest_subset = 50\n')
RESULTS = "{results}"


def tree(root: Path) -> dict:
    """Every file and folder under ``root``, with its size and modification time."""
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def one_error_line(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pai-bench: error: "), err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


# (argv, files written beside the results folder {name: text or bytes}, words of the message)
CASES = [
    pytest.param(["sweep", "--config", "{tmp}/sweep.toml", "--no-progress"],
                 {"sweep.toml": 'methods = ["random"]\nrun = 5\n'},
                 ["sweep.toml", "'run'", "[run]", "5"], id="toml-run-is-a-number"),
    pytest.param(["sweep", "--config", "{tmp}/sweep.toml", "--no-progress"],
                 {"sweep.toml": 'methods = ["random"]\n[[run]]\nmodel = "mlp"\n'},
                 ["sweep.toml", "[[run]]", "[run]"], id="toml-run-is-an-array-of-tables"),
    pytest.param(["sweep", "--config", "{tmp}/sweep.toml", "--no-progress"],
                 {"sweep.toml": b'methods = ["random"]  # caf\xe9 in Latin-1\n'},
                 ["sweep.toml", "UTF-8"], id="toml-not-utf8"),
    pytest.param(["sweep", "--methods", "random", "--sparsities", "", *TINY], {},
                 ["a sweep needs at least one value of sparsities", "--sparsities"],
                 id="empty-sparsities-flag"),
    pytest.param(["sweep", "--config", "{tmp}/sweep.toml", "--no-progress"],
                 {"sweep.toml": 'methods = ["random"]\nsparsities = []\n' + TOML_RUN},
                 ["a sweep needs at least one value of sparsities"], id="empty-sparsities-toml"),
    pytest.param(["sweep", "--config", "{tmp}/sweep.toml", "--no-progress"],
                 {"sweep.toml": 'methods = ["random"]\nseeds = []\n' + TOML_RUN},
                 ["a sweep needs at least one value of seeds"], id="empty-seeds-toml"),
    pytest.param(["run", "--method", "random", "--rounds", "100000000", *TINY], {},
                 ["rounds", "100000000", "10000"], id="rounds-absurd"),
    pytest.param(["run", "--method", "random_erk", "--scope", "layerwise", *TINY], {},
                 ["random_erk", "--scope layerwise", "global"], id="random-erk-layerwise"),
    pytest.param(["run", "--method", "random_uniform", "--scope", "layerwise", *TINY], {},
                 ["random_uniform", "--scope layerwise", "global"], id="random-uniform-layerwise"),
    pytest.param(["run", "--method", "random", *TINY, "--test-subset", "5"], {},
                 ["--test-subset 5", "10", "512"], id="test-subset-too-small"),
    pytest.param(["run", "--method", "random", *TINY, "--test-subset", "100000"], {},
                 ["--test-subset 100000", "10", "512"], id="test-subset-too-large"),
    pytest.param(["run", "--method", "random", *TINY, "--subset", "5"], {},
                 ["--subset 5", "10", "1024"], id="subset-too-small"),
    pytest.param(["run", "--method", "masks", *TINY], {},
                 ["--method masks", "--masks FILE"], id="method-masks-without-file"),
    pytest.param(["table", "--results-dir", RESULTS], {},
                 ["no runs in", RESULTS], id="table-on-an-empty-folder"),
    pytest.param(["plot", "--results-dir", RESULTS], {},
                 ["no runs in", RESULTS], id="plot-on-an-empty-folder"),
    pytest.param(["sweep", "--methods", "random", *TINY, "--executor", "ray",
                  "--ray-address", "10.255.255.1:6379"], {},
                 ["10.255.255.1:6379", "Ray cluster", "--ray-address"], id="ray-unreachable"),
]


@pytest.mark.parametrize("argv, files, words", CASES)
def test_bad_input_is_one_line_exit_2_and_nothing_written(argv, files, words, tmp_path, capsys,
                                                          monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.setattr(ray_executor, "CONNECT_TIMEOUT_S", 3.0, raising=False)  # an unreachable address: 3 s

    def fill(text: str) -> str:
        return text.replace("{tmp}", str(tmp_path)).replace(RESULTS, str(results))
    argv = [fill(a) for a in argv]
    if "--results-dir" not in argv:
        argv += ["--results-dir", str(results)]
    before = tree(tmp_path)
    assert main(argv) == 2
    one_error_line(capsys, *(fill(w) for w in words))
    assert tree(tmp_path) == before


def test_rounds_beyond_the_number_of_weights_are_refused(tmp_path, capsys):
    pai_bench.register_model("test_26_weights", lambda n, shape, width: nn.Sequential(
        nn.Conv2d(shape[0], 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, n)))
    results = tmp_path / "results"
    results.mkdir()
    before = tree(tmp_path)
    argv = ["run", "--method", "random", *TINY, "--model", "test_26_weights",
            "--rounds", "27", "--results-dir", str(results)]
    assert main(argv) == 2
    one_error_line(capsys, "--rounds 27", "26 prunable weights", "test_26_weights")
    assert tree(tmp_path) == before
    argv[argv.index("27")] = "26"  # one round per weight is allowed
    assert main(argv) == 0


def test_load_runs_of_a_missing_folder_names_it(tmp_path):
    with pytest.raises(ConfigError, match=f"results folder {tmp_path / 'nope'} does not exist"):
        load_runs(tmp_path / "nope")
    assert load_runs(tmp_path).empty  # an existing folder without runs: no rows


# --- a plugin scorer's malformed scores ---------------------------------------------------

def _flat_ones(ctx):
    return {n: torch.ones(m.numel()) for n, m in ctx.masks.items()}


def _with_nan(ctx):
    scores = {n: torch.rand(m.shape, generator=ctx.generator) for n, m in ctx.masks.items()}
    first = next(iter(scores))
    scores[first].view(-1)[3] = float("nan")
    return scores


def _missing_one(ctx):
    return {n: torch.rand(m.shape, generator=ctx.generator)
            for n, m in list(ctx.masks.items())[1:]}


def _unknown_one(ctx):
    return {**{n: torch.rand(m.shape, generator=ctx.generator) for n, m in ctx.masks.items()},
            "nope.weight": torch.ones(3)}


BAD_SCORES = [
    pytest.param(lambda ctx: [torch.ones(m.shape) for m in ctx.masks.values()],
                 ["a list", "dict"], id="a-list"),
    pytest.param(lambda ctx: None, ["None", "dict"], id="none"),
    pytest.param(lambda ctx: {n: m.clone() for n, m in ctx.masks.items()},
                 ["torch.bool", "fc1.weight", "real"], id="bool-tensor"),
    pytest.param(lambda ctx: {n: torch.ones(m.shape, dtype=torch.complex64)
                              for n, m in ctx.masks.items()},
                 ["torch.complex64", "fc1.weight", "real"], id="complex-tensor"),
    pytest.param(lambda ctx: {n: 1.0 for n in ctx.masks}, ["float", "fc1.weight", "tensor"],
                 id="a-number-not-a-tensor"),
    pytest.param(_flat_ones, ["shape (921600,)", "fc1.weight", "(300, 3072)"], id="wrong-shape"),
    pytest.param(_missing_one, ["missing", "fc1.weight"], id="missing-layer"),
    pytest.param(_unknown_one, ["unknown", "nope.weight"], id="unknown-layer"),
    pytest.param(_with_nan, ["NaN", "fc1.weight", "1 "], id="nan-scores"),
]


@pytest.mark.parametrize("output, words", BAD_SCORES)
def test_a_plugin_scorers_bad_scores_are_refused_before_masks_are_stored(output, words,
                                                                         tmp_path):
    @dataclass
    class BadScores(Scorer):
        """A test scorer whose scores are malformed."""

        name = "test_bad_scores"
        needs_data = False

        def score(self, ctx):
            return output(ctx)

    with pytest.raises(ConfigError) as caught:
        pai_bench.run(method="test_bad_scores", results_dir=tmp_path, device="cpu",
                      log=lambda *a: None, model="mlp", dataset="synthetic", epochs=1,
                      batch_size=32, subset=128, test_subset=50, sparsity=0.8)
    message = str(caught.value)
    assert "test_bad_scores" in message and len(message.splitlines()) == 1, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert not list(tmp_path.rglob("masks.pt")), "masks were stored from malformed scores"


def test_integer_scores_are_scores(tmp_path):
    """Any real tensor ranks: integer scores are accepted (only bool and complex are not)."""
    @dataclass
    class IntScores(Scorer):
        name = "test_int_scores"
        needs_data = False

        def score(self, ctx):
            return {n: torch.randint(0, 100, m.shape, generator=ctx.generator)
                    for n, m in ctx.masks.items()}

    summary = pai_bench.run(method="test_int_scores", results_dir=tmp_path, device="cpu",
                            log=lambda *a: None, model="mlp", dataset="synthetic", epochs=1,
                            batch_size=32, subset=128, test_subset=50, sparsity=0.8)
    assert summary["status"] == "finished"


def test_a_scorer_that_raises_is_one_line_naming_it_and_leaves_no_run_folder(tmp_path, capsys):
    """A plugin's own exception while scoring (here the error CUDA gives for tensors of two
    devices) is one line naming the scorer, exit 1 (a failed run, not bad input), and the new
    run leaves no folder behind (no ``config.json`` of a run that never had masks)."""
    @dataclass
    class Raises(Scorer):
        """A test scorer whose own code fails."""

        name = "test_raises"
        needs_data = False

        def score(self, ctx):
            raise RuntimeError("Expected all tensors to be on the same device, but found at "
                               "least two devices, cuda:0 and cpu!\nsecond line of detail")

    results = tmp_path / "results"
    code = main(["run", "--method", "test_raises", "--sparsity", "0.8", *TINY,
                 "--results-dir", str(results)])
    assert code == 1
    line = one_error_line(capsys, "test_raises", "failed while scoring", "RuntimeError",
                          "same device")
    assert "second line" not in line
    assert not (results / "runs").exists() or not any((results / "runs").iterdir())
