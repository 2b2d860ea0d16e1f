"""Issue 25: what is stored is checked before it leaves (``export``), and a filesystem that cannot
take a write (read-only, a file where a folder belongs, a name too long, a full disk) is one line
naming the path and the reason, exit code 2, no traceback and no temporary file left behind."""

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from torch.nn.utils import prune

import pai_bench
from pai_bench import io, paths
from pai_bench.cli.parser import main
from pai_bench.errors import PaiBenchError, StorageError
from pai_bench.masks import Masks
from pai_bench.models import create_model

TINY = dict(model="mlp", dataset="synthetic", epochs=1, batch_size=32, subset=128,
            test_subset=50, sparsity=0.8)  # tests/test_design.py's TINY
TINY_FLAGS = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
              "--subset", "128", "--test-subset", "50", "--sparsity", "0.8", "--no-progress",
              "--device", "cpu"]


# --- helpers ---------------------------------------------------------------------------------

def tree(root: Path) -> dict:
    """Every file and folder under ``root``: its size and modification time (a write shows)."""
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def one_error_line(capsys, *words: str) -> str:
    """stderr is exactly one ``pai-bench: error:`` line holding every one of ``words`` (a
    tuple: one of its words)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pai-bench: error: "), err
    for word in words:
        assert any(w in lines[0] for w in ((word,) if isinstance(word, str) else word)), \
            (word, lines[0])
    return lines[0]


# --- finished runs, made once, copied per test ---------------------------------------------------

@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict[float, Path]:
    """Two finished runs of the tiny configuration: sparsity 0.8 and 0.5."""
    root = tmp_path_factory.mktemp("stored")
    runs = {}
    for sparsity in (0.8, 0.5):
        s = pai_bench.run(method="magnitude", results_dir=root, device="cpu",
                          log=lambda *a: None, **{**TINY, "sparsity": sparsity})
        assert s["status"] == "finished"
        runs[sparsity] = paths.stored_run_dir(root, "magnitude", s["hash"])
    return runs


@pytest.fixture
def run(stored, tmp_path) -> Path:
    """A private copy of the finished 0.8 run, in ``<tmp>/runs/<method>-<hash>``."""
    copy = tmp_path / "runs" / stored[0.8].name
    shutil.copytree(stored[0.8], copy)
    return copy


def load(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True)


def load_masks(path: Path) -> dict:
    return dict(Masks.load(path))


def save_masks(masks: dict, run: Path) -> None:
    """``masks`` as the run's own (its owner, a digest of both): only their content is wrong."""
    torch.save(pai_bench.masks.stored(masks, paths.owner(run)), run / paths.MASKS)


# --- item 1: export checks what it exports ---------------------------------------------------

def garble(run: Path, other: Path) -> None:
    """4 KiB of random bytes in the middle of weights.pt (a zip archive: it still loads)."""
    data = bytearray((run / paths.WEIGHTS).read_bytes())
    middle = len(data) * 2 // 5
    noise = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0))
    data[middle:middle + 4096] = bytes(noise.tolist())
    (run / paths.WEIGHTS).write_bytes(bytes(data))


def truncate(run: Path, other: Path) -> None:
    data = (run / paths.WEIGHTS).read_bytes()
    (run / paths.WEIGHTS).write_bytes(data[:len(data) // 2])


def masks_of_another_sparsity(run: Path, other: Path) -> None:
    shutil.copy(other / paths.MASKS, run / paths.MASKS)


def no_summary(run: Path, other: Path) -> None:
    (run / paths.SUMMARY).unlink()


def diverged(run: Path, other: Path) -> None:
    summary = json.loads((run / paths.SUMMARY).read_text())
    summary.update(status="diverged", test_accuracy=None, test_loss=None)
    (run / paths.SUMMARY).write_text(json.dumps(summary))


def summary_of_another_run(run: Path, other: Path) -> None:
    shutil.copy(other / paths.SUMMARY, run / paths.SUMMARY)


def config_of_another_run(run: Path, other: Path) -> None:
    shutil.copy(other / paths.CONFIG, run / paths.CONFIG)


def no_config(run: Path, other: Path) -> None:
    (run / paths.CONFIG).unlink()


def a_mask_missing(run: Path, other: Path) -> None:
    masks = load_masks(run / paths.MASKS)
    masks.pop(next(iter(masks)))
    save_masks(masks, run)


def a_mask_of_another_shape(run: Path, other: Path) -> None:
    masks = load_masks(run / paths.MASKS)
    name = next(reversed(masks))
    masks[name] = masks[name][:-1]
    save_masks(masks, run)


def a_pruned_weight_not_zero(run: Path, other: Path) -> None:
    weights, masks = load(run / paths.WEIGHTS), load_masks(run / paths.MASKS)
    name = next(iter(masks))
    flat = weights[name].view(-1)
    flat[int((~masks[name]).view(-1).nonzero()[0])] = 0.25
    torch.save(weights, run / paths.WEIGHTS)


def a_weight_not_finite(run: Path, other: Path) -> None:
    weights, masks = load(run / paths.WEIGHTS), load_masks(run / paths.MASKS)
    name = next(iter(masks))
    flat = weights[name].view(-1)
    flat[int(masks[name].view(-1).nonzero()[0])] = float("nan")
    torch.save(weights, run / paths.WEIGHTS)


def a_kept_weight_changed(run: Path, other: Path) -> None:
    """Finite, zero where pruned: only the digest its summary stored tells."""
    if "weights" not in (json.loads((run / paths.SUMMARY).read_text()).get("digests") or {}):
        pytest.skip("this runner stores no digest of the weights")
    weights, masks = load(run / paths.WEIGHTS), load_masks(run / paths.MASKS)
    name = next(iter(masks))
    weights[name][masks[name]] *= 1.001
    torch.save(weights, run / paths.WEIGHTS)


def weights_of_another_model(run: Path, other: Path) -> None:
    weights = load(run / paths.WEIGHTS)
    weights.pop(next(k for k in weights if k.endswith("bias")))
    torch.save(weights, run / paths.WEIGHTS)


@pytest.mark.parametrize("damage, file, words", [
    (garble, paths.WEIGHTS, [("not zero", "not finite")]),  # random bytes: NaN, or not 0
    (truncate, paths.WEIGHTS, ["cannot be read", "truncated"]),
    (masks_of_another_sparsity, paths.MASKS, ["belongs to runs/"]),  # another run's
    (no_summary, paths.SUMMARY, ["not a finished run"]),
    (diverged, paths.SUMMARY, ["an edited value"]),  # its digest tells
    (summary_of_another_run, paths.SUMMARY, ["hash"]),
    (config_of_another_run, paths.CONFIG, ["hash"]),
    (no_config, paths.CONFIG, ["missing"]),
    (a_mask_missing, paths.MASKS, ["miss"]),
    (a_mask_of_another_shape, paths.MASKS, ["shape"]),
    (a_pruned_weight_not_zero, paths.WEIGHTS, ["not zero"]),
    (a_weight_not_finite, paths.WEIGHTS, ["not finite"]),
    (a_kept_weight_changed, paths.WEIGHTS, ["does not hash"]),
    (weights_of_another_model, paths.WEIGHTS, ["not those of this run's model"]),
])
@pytest.mark.parametrize("fmt", ["prune", "state_dict"])
def test_export_refuses_a_damaged_run_in_one_line_and_writes_nothing(damage, file, words, fmt,
                                                                      run, stored, capsys):
    damage(run, stored[0.5])
    before = tree(run.parent.parent)
    assert main(["export", str(run), "--format", fmt]) == 2
    one_error_line(capsys, file, *words)
    assert tree(run.parent.parent) == before  # nothing written, renamed or quarantined


def test_export_out_an_existing_folder_is_one_line(run, tmp_path, capsys):
    folder = tmp_path / "exports"
    folder.mkdir()
    before = tree(tmp_path)
    assert main(["export", str(run), "--out", str(folder)]) == 2
    one_error_line(capsys, str(folder), "is a folder")
    assert tree(tmp_path) == before


def test_export_out_onto_the_runs_own_weights_is_one_line(run, capsys):
    before = tree(run)
    assert main(["export", str(run), "--out", str(run / paths.WEIGHTS)]) == 2
    one_error_line(capsys, str(run / paths.WEIGHTS), "the run's own files")
    assert tree(run) == before


def test_export_of_a_folder_that_is_no_run_is_one_line(tmp_path, capsys):
    folder = tmp_path / "runs" / "nothing-here"
    folder.mkdir(parents=True)
    assert main(["export", str(folder)]) == 2
    one_error_line(capsys, "not a finished run")
    assert list(folder.iterdir()) == []


def test_exported_prune_file_round_trips_through_torch_prune(run, capsys):
    assert main(["export", str(run), "--format", "prune"]) == 0
    target = Path(capsys.readouterr().out.strip())
    assert target == run / "model.prune.pt"
    exported, masks = load(target), load_masks(run / paths.MASKS)
    ours = create_model("mlp", num_classes=10, input_shape=(3, 32, 32), seed=0)
    ours.load_state_dict(load(run / paths.WEIGHTS))
    theirs = create_model("mlp", num_classes=10, input_shape=(3, 32, 32), seed=1)
    for name, module in theirs.named_modules():
        if f"{name}.weight" in masks:
            prune.identity(module, "weight")
    theirs.load_state_dict(exported)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ours.eval()(x), theirs.eval()(x))  # (the forward also sets .weight)
    modules = dict(theirs.named_modules())
    for name, mask in masks.items():
        module = modules[name.removesuffix(".weight")]
        assert torch.equal(module.weight_mask.bool(), mask)
        assert bool((module.weight[~mask] == 0).all())       # pruned: exactly zero
        assert bool((module.weight_orig[~mask] == 0).all())  # and so are their trained values
        assert int(module.weight.count_nonzero()) <= int(mask.sum())
    # made permanent, the pruned network is the suite's trained state dict
    for name in masks:
        prune.remove(modules[name.removesuffix(".weight")], "weight")
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in theirs.state_dict().items())


# --- item 2: the filesystem ------------------------------------------------------------------

@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only: chmod for a user; for root (who writes anyway), the answers the
    kernel gives other users, for that folder only (access W_OK false, creating an entry in it
    EACCES)."""
    made = []
    real_access, real_mkdir, real_open = os.access, os.mkdir, os.open

    def inside(path, folder) -> bool:
        return Path(os.path.abspath(path)).parent == folder

    def make(folder: Path) -> Path:
        folder = Path(os.path.abspath(folder))
        folder.chmod(0o555)
        made.append(folder)
        if os.geteuid() != 0:
            return folder

        def access(path, mode, *a, **k):
            if Path(os.path.abspath(path)) == folder and mode & os.W_OK:
                return False
            return real_access(path, mode, *a, **k)

        def mkdir(path, *a, **k):
            if inside(path, folder):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_mkdir(path, *a, **k)

        def open_(path, flags, *a, **k):
            if flags & os.O_CREAT and inside(path, folder) and not os.path.exists(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *a, **k)

        monkeypatch.setattr(os, "access", access)
        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "open", open_)
        return folder

    yield make
    for folder in made:
        folder.chmod(0o755)


@pytest.fixture
def full_disk(monkeypatch):
    """A disk that fills during the write: ``fsync`` of a written file fails with ENOSPC (the
    text writers), and ``torch.save`` fails as it does on a full disk, a RuntimeError
    "unexpected pos" raised while handling the OSError of the write."""
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def save(obj, f, *a, **k):
        f.write(b"PK\x03\x04" + bytes(2108))
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:  # torch's own message; the OSError is only its __context__
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos "
                               "2112 vs 2006")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(torch, "save", save)


def run_argv(results: Path) -> list[str]:
    return ["run", "--method", "magnitude", *TINY_FLAGS, "--results-dir", str(results)]


def test_run_with_runs_read_only_is_one_line(tmp_path, read_only, capsys):
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    read_only(results / "runs")
    before = tree(tmp_path)
    assert main(run_argv(results)) == 2
    one_error_line(capsys, str(results / "runs"), "read-only")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("name", ["runs", "masks", "dense", ".locks"])
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_file_where_a_results_folder_belongs_is_one_line(name, command, tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / name).write_text("a file\n")
    before = tree(tmp_path)
    argv = run_argv(results) if command == "run" else \
        ["sweep", "--methods", "magnitude",
         *[f.replace("--sparsity", "--sparsities") for f in TINY_FLAGS],
         "--results-dir", str(results)]
    assert main(argv) == 2
    one_error_line(capsys, str(results / name), "is a file, not a folder")
    assert tree(tmp_path) == before


def test_table_in_a_read_only_results_folder_is_one_line(tmp_path, read_only, capsys):
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    read_only(results)
    before = tree(tmp_path)
    assert main(["table", "--results-dir", str(results)]) == 2
    one_error_line(capsys, str(results), "read-only")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("argv", [
    lambda tmp, long: run_argv(tmp / long),
    lambda tmp, long: run_argv(tmp / long / "results"),
    lambda tmp, long: ["table", "--results-dir", str(tmp / long)],
    lambda tmp, long: ["plot", "--results-dir", str(tmp / long)],
    lambda tmp, long: ["table", "--results-dir", str(tmp), "--out", str(tmp / long)],
], ids=["run", "run-below", "table", "plot", "table-out"])
def test_a_name_over_255_characters_is_one_line(argv, tmp_path, capsys):
    long = "r" * 300
    before = tree(tmp_path)
    assert main(argv(tmp_path, long)) == 2
    one_error_line(capsys, long, "name too long")
    assert tree(tmp_path) == before


def test_run_on_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, full_disk,
                                                                     capsys):
    results = tmp_path / "results"
    assert main(run_argv(results)) == 2
    one_error_line(capsys, str(results), "no space left on device")
    assert temporaries(tmp_path) == []
    assert not list(results.glob(f"runs/*/{paths.SUMMARY}"))


def test_table_on_a_full_disk_is_one_line(run, tmp_path, full_disk, capsys):
    # one stored run (an empty folder is refused before anything is written: "no runs in")
    assert main(["table", "--results-dir", str(tmp_path)]) == 2
    one_error_line(capsys, str(tmp_path / "report"), "no space left on device")
    assert temporaries(tmp_path) == []
    assert not list((tmp_path / "report").glob("*"))


def test_export_on_a_full_disk_is_one_line(run, full_disk, capsys):
    before = tree(run)
    assert main(["export", str(run)]) == 2
    one_error_line(capsys, str(run / "model.prune.pt"), "no space left on device")
    assert tree(run) == before


@pytest.mark.parametrize("write", [
    lambda path: io.atomic_save_torch({"w": torch.zeros(3)}, path),
    lambda path: io.atomic_write_json(path, {"a": 1}),
    lambda path: io.atomic_write_text(path, "x"),
], ids=["torch", "json", "text"])
def test_atomic_writers_raise_storage_error_naming_the_file(write, tmp_path, full_disk):
    target = tmp_path / "out" / "file"
    with pytest.raises(StorageError, match="no space left on device") as caught:
        write(target)
    assert str(target) in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, PaiBenchError) and isinstance(caught.value, OSError)
    assert caught.value.errno == errno.ENOSPC
    assert not target.exists() and temporaries(tmp_path) == []


def test_an_atomic_write_over_a_folder_names_it(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(StorageError, match="is a folder, not a file"):
        io.atomic_write_text(tmp_path / "taken", "x")
    assert temporaries(tmp_path) == []


def test_a_lock_below_a_file_names_it(tmp_path):
    (tmp_path / ".locks").write_text("a file\n")
    with pytest.raises(StorageError, match="is a file, not a folder"):
        with io.file_lock(tmp_path / ".locks" / "x.lock"):
            pass


def test_check_writable_dir_still_accepts_what_it_accepted(tmp_path):
    io.check_writable_dir(tmp_path)                     # a folder
    io.check_writable_dir(tmp_path / "new" / "deeper")  # to be created
    (tmp_path / "runs").mkdir()
    io.check_writable_dir(tmp_path)                     # with its runs/ folder
    assert stat.S_ISDIR((tmp_path / "runs").stat().st_mode)


def test_sweep_on_a_full_disk_is_one_line_exit_2(tmp_path, full_disk, capsys):
    """A full disk fails every run of a sweep the same way: after trying them, the sweep ends
    with the storage error's one line and exit 2 (not one "failed" row per run and exit 1),
    and leaves no temporary file."""
    results = tmp_path / "results"
    argv = ["sweep", "--methods", "magnitude,random",
            *[f.replace("--sparsity", "--sparsities") for f in TINY_FLAGS],
            "--results-dir", str(results)]
    assert main(argv) == 2
    line = one_error_line(capsys, "no space left on device", "2 of 2 run(s) could not be stored")
    assert str(results) in line
    assert temporaries(tmp_path) == []
    assert not list(results.glob(f"runs/*/{paths.SUMMARY}"))
