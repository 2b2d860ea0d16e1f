"""Issue 39, causes 6-8: every bad input or environment is one line on stderr and exit 2 (no
usage block, no traceback); bad paths are named for what they are; method options name one run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from pai_bench import io as pio
from pai_bench.cli.parser import main
from pai_bench.config import RunConfig
from pai_bench.precision import resolve
from pai_bench.sweeps.sweep import load_spec

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--subset", "128",
        "--test-subset", "50", "--no-progress", "--threads", "1"]


def one_line(capsys, argv: list[str], code: int = 2) -> str:
    """Run the CLI in this process: exit ``code`` and one stderr line, which is returned."""
    try:
        got = main(argv)
    except SystemExit as e:  # argparse's own exit
        got = e.code
    err = capsys.readouterr().err
    assert got == code, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv, words", [
    (["run", "--method", "random", "--sparsity", "abc"], ["--sparsity", "'abc'"]),
    (["run", "--method", "random", "--seed", "1e3"], ["--seed", "'1e3'"]),
    (["run", "--method", "random", "--precision", "fp16"], ["--precision", "'fp16'", "bf16"]),
    (["run", "--method", "random", "--check", "foo"], ["--check", "'foo'", "shuffle"]),
    (["run", "--method", "random", "--threads", "x"], ["--threads", "'x'"]),
    (["sweep", "--methods", "random", "--sparsities", "0.5,x"], ["--sparsities", "0.5,x"]),
    (["reproduce", "foo"], ["'foo'", "main"]),
    (["reproduce", "main", "--scale", "gpu"], ["--scale", "'gpu'", "paper"]),
    (["run", "--method", "random", "--results-dir", ""], ["--results-dir", "''"]),
    (["table", "--out", ""], ["--out", "''"]),
    (["plot", "--results-dir", ""], ["--results-dir", "''"]),
    (["sweep", "--methods", "random", "--data-root", " "], ["--data-root", "' '"]),
    (["run", "--method", "random", "--cache-dir", "a_file"], ["--cache-dir", "a_file",
                                                              "is a file, not a folder"]),
    (["run", "--method", "random", "--device", "cuda"], ["'cuda'", "valid here: auto, cpu"]),
])
def test_a_bad_flag_value_is_one_line_naming_flag_value_and_choices(argv, words, capsys,
                                                                     tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "--cache-dir" in argv:
        (tmp_path / "a_file").write_text("")
    if "--device" in argv and torch.cuda.is_available():
        pytest.skip("CUDA is here: --device cuda is valid")
    err = one_line(capsys, argv)
    assert all(w in err for w in words), err
    assert "usage:" not in err  # and nothing written:
    assert [p.name for p in tmp_path.iterdir()] == (["a_file"] if "--cache-dir" in argv else [])


@pytest.fixture
def stored(tmp_path_factory) -> Path:
    """A results folder holding one finished tiny run."""
    results = tmp_path_factory.mktemp("stored")
    assert main(["run", "--method", "random", *TINY, "--results-dir", str(results)]) == 0
    return results


def _bad(kind: str, tmp_path: Path) -> Path:
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        return tmp_path / "fifo"
    return Path("/dev/zero")


@pytest.mark.parametrize("case, words", [
    ("device meta", ["unknown device 'meta'", "cuda:N"]),
    ("device mps", ["'mps'", "not available"]),
    ("threads 2**64", ["--threads", "at most"]),
    ("workers 2**64", ["--workers", "at most"]),
    ("epochs 10**11", ["epochs", "100000000000"]),
    ("masks fifo", ["masks file", "named pipe"]),
    ("masks /dev/zero", ["masks file", "device file"]),
    ("config fifo", ["sweep file", "named pipe"]),
    ("config /dev/zero", ["sweep file", "device file"]),
    ("run folder is a file", ["is a file, not a folder"]),
    ("table results is a file", ["results folder", "is a file, not a folder"]),
    ("plugin exits at import", ["exit_plugin", "SystemExit"]),
])
def test_a_bad_input_or_environment_is_one_line_not_a_traceback(case, words, capsys, tmp_path,
                                                               monkeypatch):
    results = tmp_path / "r"
    run = ["run", "--method", "random", *TINY, "--results-dir", str(results)]
    sweep = ["sweep", "--methods", "random", *TINY, "--results-dir", str(results)]
    argv = {"device meta": [*run, "--device", "meta"], "device mps": [*run, "--device", "mps"],
            "threads 2**64": [*run, "--threads", str(2**64)],
            "workers 2**64": [*sweep, "--workers", str(2**64)],
            "epochs 10**11": [*run, "--epochs", str(10**11)],
            "table results is a file": ["table", "--results-dir", str(tmp_path / "file")],
            "plugin exits at import": ["list", "--plugin", "exit_plugin"]}.get(case)
    if case.startswith("masks"):
        argv = ["run", "--masks", str(_bad(case.split()[1].strip("/dev"), tmp_path)), *TINY,
                "--results-dir", str(results)]
    if case.startswith("config"):
        argv = [*sweep, "--config", str(_bad(case.split()[1].strip("/dev"), tmp_path))]
    if case == "run folder is a file":
        config = RunConfig(method="random", model="mlp", dataset="synthetic", epochs=1,
                           subset=128, test_subset=50, precision=_precision())
        name = f"random-{config.hash()}"
        (results / "runs").mkdir(parents=True)
        (results / "runs" / name).write_text("")
        argv = run
    (tmp_path / "file").write_text("")
    (tmp_path / "exit_plugin.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    err = one_line(capsys, argv)
    assert all(w in err for w in words), err


def _precision() -> str:
    return resolve(RunConfig(method="random", precision="auto"), torch.device("cpu")).precision


@pytest.mark.parametrize("value, words", [("nan", "[0, 1)"), ("-1", "[0, 1)"), ("5", "[0, 1)"),
                                          ("inf", "[0, 1)"), ("0.5", "no run has it")])
def test_plot_refuses_a_layer_sparsity_that_no_figure_would_show(value, words, stored, capsys,
                                                                 tmp_path):
    err = one_line(capsys, ["plot", "--results-dir", str(stored), "--out", str(tmp_path / "p"),
                            f"--layer-sparsity={value}"])
    assert words in err and "0.9" in err, err  # the sparsities the runs have


def _image_folder(root: Path, bad: str) -> Path:
    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(folder / f"{i}.png")
    if bad == "decompression bomb":  # 400 megapixels in 48 KB: PIL refuses to decode it
        Image.new("1", (20000, 20000)).save(root / "train" / "a" / "1.png")
    else:
        os.rename(root / "train" / "a" / "0.png", os.fsencode(root / "train" / "a") + b"/\xff.png")
    return root


@pytest.mark.parametrize("bad, words", [("decompression bomb", "exceeds limit"),
                                        ("non-UTF-8 name", "not UTF-8")])
def test_a_bad_image_folder_is_one_line(bad, words, capsys, tmp_path):
    root = _image_folder(tmp_path / "data", bad)
    err = one_line(capsys, ["run", "--method", "random", "--model", "mlp", "--dataset",
                            "imagefolder", "--data-root", str(root), "--epochs", "1",
                            "--batch-size", "2", "--no-progress", "--results-dir",
                            str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")])
    assert words in err, err


def test_a_layer_report_cut_in_its_last_row_is_rebuilt_not_a_traceback(stored, capsys):
    report = next(stored.glob("runs/*/masks.layers.csv"))
    text = report.read_text()
    report.write_text(text[: text.rstrip().rindex(",")])  # the last field lost
    assert main(["run", "--method", "random", *TINY, "--results-dir", str(stored)]) == 0
    out, err = capsys.readouterr()
    assert "masks.layers.csv" in err and "rebuilding it" in err and "Traceback" not in err
    assert report.read_text() == text


def test_a_corrupt_summary_in_a_read_only_folder_is_a_warning(stored, capsys, monkeypatch):
    """The quarantine cannot move it aside (root ignores permissions, so the rename fails here
    as it does in a read-only folder): the table warns and goes on without it."""
    summary = next(stored.glob("runs/*/summary.json"))
    summary.write_text("{")

    def read_only(self, target):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "rename", read_only)
    code = main(["table", "--results-dir", str(stored), "--out", str(stored / "t")])
    err = capsys.readouterr().err
    assert code == 2 and "no runs" in err  # the only run was not trusted
    assert "cannot be moved aside" in err and "Traceback" not in err
    monkeypatch.undo()
    assert summary.read_text() == "{"


def _cli(*argv, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "pai_bench", *argv], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, **kwargs)


def test_a_table_on_an_ascii_only_stdout_replaces_the_plus_minus_sign(stored):
    out = _cli("table", "--results-dir", str(stored), env={"PYTHONIOENCODING": "ascii"})
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "12.00 ? 0.00" in out.stdout or "? " in out.stdout


@pytest.mark.parametrize("command", ["list", "run"])
def test_a_reader_that_stops_early_is_no_traceback(command, stored):
    """``pai-bench list | head -1``; ``run ... | head -1`` of a stored run: here the reader
    (``true``) is gone before the first line is written, as ``head`` is once it has its line."""
    argv = ["list"] if command == "list" else ["run", "--method", "random", *TINY,
                                               "--results-dir", str(stored)]
    shell = (f"{sys.executable} -m pai_bench {' '.join(argv)} | true; "
             f"echo rc=${{PIPESTATUS[0]}} >&2")
    out = subprocess.run(["bash", "-c", shell], cwd=REPO, text=True, capture_output=True)
    assert "Traceback" not in out.stderr and "Exception" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == ["rc=141"], out.stderr


@pytest.mark.parametrize("a, b", [("2", "2.0"), ("2", "2e0"), ("0.5", "0.50"), ("5", 5.0)])
def test_method_options_name_one_run_whatever_their_spelling(a, b):
    one = RunConfig(method="random", method_args=(("x", a),))
    other = RunConfig(method="random", method_args=(("x", b),))
    assert one.hash() == other.hash() and one.method_args == other.method_args


def test_a_toml_table_of_method_options_is_read_as_key_value_pairs(tmp_path):
    (tmp_path / "s.toml").write_text('methods = ["random"]\n[run]\nmethod_args = {ab = 1}\n')
    (config,) = load_spec(tmp_path / "s.toml").configs()
    assert config.method_args == (("ab", "1"),)


def test_quarantine_failing_to_move_a_file_still_says_it_is_invalid(tmp_path, capsys,
                                                                   monkeypatch):
    (tmp_path / "f").write_text("x")
    monkeypatch.setattr(Path, "rename", lambda self, t: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied")))
    assert pio.quarantine(tmp_path / "f", "bad") == tmp_path / "f"
    assert "cannot be moved aside (Permission denied)" in capsys.readouterr().err
