"""The decoded-image cache is checked by content and by file list (issue 25, #4), and bad image
folders are one clear error (#7): an empty class folder, an unreadable folder.

Tiny ``imagefolder`` trees (3 classes x 3 images of 8x8 pixels); every test decodes in-process.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pai_bench.data.folders as folders
from pai_bench.cli.parser import main
from pai_bench.data import load_split
from pai_bench.errors import DataNotFoundError

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("ant", "bee", "cow")
SIZE = 8  # pixels per side


def write_tree(root: Path, per_class: int = 3, empty: tuple[str, ...] = ()) -> Path:
    """``root/{train,test}/<class>/<i>.png``, seeded random pixels; ``empty``: no images."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(0 if name in empty else per_class):
                pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def load(root: Path, cache: Path):
    return load_split("imagefolder", root, "train", cache_dir=cache)


@pytest.fixture
def cached(tmp_path):
    """(data root, cache folder, the split as first decoded, its one cache file)."""
    root, cache = write_tree(tmp_path / "data"), tmp_path / "cache"
    split = load(root, cache)
    (entry,) = cache.glob("*.pt")
    return root, cache, split, entry


def tamper(entry: Path, **changes) -> None:
    """Rewrite the cache file with some of its values changed (a valid torch file)."""
    content = torch.load(entry, weights_only=True)
    content.update(changes)
    torch.save(content, entry)


def zeroed(content):
    return {"images": torch.zeros_like(content["images"])}


def shuffled_labels(content):
    return {"labels": content["labels"].roll(1)}


def five_images(content):  # 5 images for 9 labels, every other value as written
    return {"images": content["images"][:5].clone()}


@pytest.mark.parametrize("change", [zeroed, shuffled_labels, five_images])
def test_a_tampered_cache_is_kept_as_corrupt_and_recomputed(change, cached, capsys):
    root, cache, first, entry = cached
    tamper(entry, **change(torch.load(entry, weights_only=True)))
    capsys.readouterr()
    again = load(root, cache)
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert [p.name for p in cache.glob("*.corrupt")] == [entry.name + ".corrupt"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kept as" in err[0] and "recomputing" in err[0]
    assert torch.equal(load(root, cache).images, first.images)  # the rewritten cache is valid


@pytest.mark.parametrize("content", [[1, 2, 3], "images", torch.zeros(3), None])
def test_a_cache_of_the_wrong_type_is_corrupt_not_a_traceback(content, cached, capsys):
    root, cache, first, entry = cached
    torch.save(content, entry)
    capsys.readouterr()
    assert torch.equal(load(root, cache).images, first.images)
    assert (cache / (entry.name + ".corrupt")).exists()
    assert "kept as" in capsys.readouterr().err


def test_a_truncated_cache_is_kept_as_corrupt(cached, capsys):
    root, cache, first, entry = cached
    entry.write_bytes(entry.read_bytes()[:100])
    assert torch.equal(load(root, cache).images, first.images)
    assert (cache / (entry.name + ".corrupt")).exists()


def test_an_image_edited_in_place_is_decoded_again(cached, capsys):
    root, cache, first, entry = cached
    path = root / "train" / "bee" / "1.png"
    before = path.stat()
    Image.new("RGB", (SIZE, SIZE), (255, 0, 0)).save(path)  # same name, new pixels
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # a later edit
    capsys.readouterr()
    again = load(root, cache)
    index = again.classes.index("bee") * 3 + 1
    assert torch.equal(again.images[index], torch.tensor([255, 0, 0])[:, None, None].expand(
        3, SIZE, SIZE).to(torch.uint8))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stale" in err[0] and "bee/1.png" in err[0]
    assert not list(cache.glob("*.corrupt")) and len(list(cache.glob("*.pt"))) == 1


def test_a_valid_cache_is_read_without_decoding(cached, monkeypatch, capsys):
    root, cache, first, entry = cached

    def no_decoding(*args):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(folders, "decode_images", no_decoding)
    assert torch.equal(load(root, cache).images, first.images)
    assert capsys.readouterr().err == ""


# #7: bad folders

def test_an_empty_class_folder_is_an_error_naming_it(tmp_path):
    root = write_tree(tmp_path / "data", empty=("cow",))
    with pytest.raises(DataNotFoundError, match=r"train/cow\b.*no .*images"):
        load(root, tmp_path / "cache")


def test_an_empty_class_folder_exits_2_in_one_line(tmp_path, capsys):
    root = write_tree(tmp_path / "data", empty=("bee",))
    code = main(["run", "--method", "random", "--model", "mlp", "--dataset", "imagefolder",
                 "--data-root", str(root), "--epochs", "1", "--batch-size", "2",
                 "--no-progress", "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(root / "train" / "bee") in err[0]


@pytest.mark.parametrize("unreadable", ["train", "train/bee"])
def test_an_unreadable_folder_is_one_clear_error(unreadable, tmp_path, monkeypatch):
    """Permission denied, as a non-root user gets it from ``chmod 000`` (the tests may run as
    root, which reads everything, so ``os.scandir`` is made to refuse that one folder)."""
    root = write_tree(tmp_path / "data")
    denied, scandir = root / unreadable, os.scandir

    def refuse(path="."):
        if Path(path) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(folders.os, "scandir", refuse)
    with pytest.raises(DataNotFoundError, match=f"{denied}.*[Pp]ermission denied"):
        load(root, tmp_path / "cache")


def test_a_chmod_000_class_folder_exits_2_in_one_line(tmp_path):
    """The real thing, end to end: ``chmod 000`` on a class folder, read through the CLI by a
    process that may not bypass file modes (as root: without CAP_DAC_OVERRIDE, via setpriv)."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root reads a chmod-000 folder, and setpriv is missing to drop that")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    root = write_tree(tmp_path / "data")
    denied = root / "train" / "bee"
    denied.chmod(0)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PAI_BENCH_CACHE": str(tmp_path / "cache")}
    try:
        done = subprocess.run([*prefix, sys.executable, "-m", "pai_bench", "run", "--method",
                               "random", "--model", "mlp", "--dataset", "imagefolder",
                               "--data-root", str(root), "--results-dir", str(tmp_path / "r")],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    finally:
        denied.chmod(0o755)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert str(denied) in err[0] and "Permission denied" in err[0]


def test_a_data_root_that_cannot_be_entered_is_one_clear_error(tmp_path, monkeypatch):
    """``chmod 000`` on the root itself: looking for its split folders is denied (simulated as
    above); the loaders' own ``is_dir`` checks must not leak a PermissionError traceback."""
    root = write_tree(tmp_path / "data")
    is_dir = Path.is_dir

    def refuse(self):
        if self.parent == root:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return is_dir(self)

    monkeypatch.setattr(Path, "is_dir", refuse)
    for name in ("imagefolder", "cifar10"):
        with pytest.raises(DataNotFoundError, match=f"{root}.*permission denied"):
            load_split(name, root, "train", cache_dir=tmp_path / "cache")
