"""Tests of pai_bench.data: sampling, real CIFAR-10 decoding and its cache, augmentation,
epochs, fake TinyImageNet/ImageNet folders, and the errors. No test touches the network."""

from __future__ import annotations

import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import pai_bench.data.folders as folders
from pai_bench.data import (DATASETS, MemorySplit, balanced_indices, default_cache_dir,
                            load_split, resolve_data_root)
from pai_bench.data.imagenet import load_imagenet
from pai_bench.data.memory import CropFlip, crop_flip_at
from pai_bench.data.sets import load_tinyimagenet
from pai_bench.errors import ConfigError, DataNotFoundError
from opcount import OpCount

CIFAR_ROOT = Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")


def write_images(folder: Path, count: int, size: tuple[int, int], seed: int, ext=".png"):
    """``count`` random RGB images of size (width, height), seeded, in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}{ext}")


@pytest.fixture
def offline(monkeypatch):
    """No network: torchvision's download fails as without one, and so does any socket."""
    def no_download(*args, **kwargs):
        raise urllib.error.URLError("network disabled by the test")

    def no_connect(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", no_download)
    monkeypatch.setattr(socket.socket, "connect", no_connect)


@pytest.fixture(scope="session")
def cifar_cache(tmp_path_factory):
    assert CIFAR_ROOT.is_dir(), (f"the real CIFAR-10 image folders are missing at {CIFAR_ROOT}; "
                                 "see ../shared/data/README.md")
    return tmp_path_factory.mktemp("cifar-cache")


@pytest.fixture(scope="session")
def cifar_test(cifar_cache):
    """CIFAR-10's test split (10,000 JPEGs): decoded once for the whole session."""
    return load_split("cifar10", CIFAR_ROOT, "test", cache_dir=cifar_cache)


# balanced_indices and subsets

def test_balanced_indices_counts_and_seeding():
    labels = torch.arange(1000) % 10
    idx = balanced_indices(labels, 25, 10, torch.Generator().manual_seed(0))
    assert torch.equal(torch.bincount(labels[idx]), torch.tensor([3] * 5 + [2] * 5))
    assert torch.equal(idx, idx.sort().values) and len(idx.unique()) == 25
    again = balanced_indices(labels, 25, 10, torch.Generator().manual_seed(0))
    other = balanced_indices(labels, 25, 10, torch.Generator().manual_seed(1))
    assert torch.equal(idx, again) and not torch.equal(idx, other)


@pytest.mark.parametrize("count, match", [(9, "between the number of classes"),
                                          (1001, "split size"), (0, "out of range")])
def test_balanced_indices_rejects_bad_counts(count, match):
    with pytest.raises(ConfigError, match=match) as error:
        balanced_indices(torch.arange(1000) % 10, count, 10, torch.Generator())
    assert str(count) in str(error.value) and "1000" in str(error.value)


def test_balanced_indices_rejects_a_short_class():
    labels = torch.tensor([0] * 10 + [1] * 2)
    with pytest.raises(ConfigError, match="class 1 has 2 examples, 5 needed"):
        balanced_indices(labels, 10, 2, torch.Generator())


def test_load_split_subset_is_the_seeded_balanced_sample():
    full = load_split("synthetic", None, "train")
    part = load_split("synthetic", None, "train", subset=30, seed=3)
    idx = balanced_indices(full.labels, 30, 10, torch.Generator().manual_seed(3))
    assert torch.equal(part.images, full.images[idx]) and torch.equal(part.labels, full.labels[idx])


# real CIFAR-10 and the decode cache

def test_cifar10_folders_decode_exactly(cifar_test):
    assert cifar_test.classes == CIFAR_CLASSES and cifar_test.num_classes == 10
    assert cifar_test.images.shape == (10000, 3, 32, 32) and cifar_test.images.dtype == torch.uint8
    assert torch.equal(cifar_test.labels, torch.arange(10).repeat_interleave(1000))
    for label, number in [(0, 0), (3, 7), (9, 999)]:
        files = sorted((CIFAR_ROOT / "test" / CIFAR_CLASSES[label]).iterdir())
        index = label * 1000 + number
        expected = np.array(Image.open(files[number]).convert("RGB"))
        assert torch.equal(cifar_test.images[index].permute(1, 2, 0), torch.from_numpy(expected))
        mean, std = torch.tensor(cifar_test.mean), torch.tensor(cifar_test.std)
        pixels = torch.from_numpy(expected).permute(2, 0, 1) / 255
        want = (pixels - mean[:, None, None]) / std[:, None, None]  # ToTensor + Normalize
        x, y = cifar_test.get(torch.tensor([index]))
        assert torch.allclose(x[0], want, atol=1e-6) and int(y) == label


def test_second_load_reads_the_cache(cifar_test, cifar_cache, monkeypatch):
    def no_decoding(*args):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(folders, "decode_images", no_decoding)
    again = load_split("cifar10", CIFAR_ROOT, "test", cache_dir=cifar_cache)
    assert torch.equal(again.images, cifar_test.images) and again.classes == cifar_test.classes
    assert len(list(cifar_cache.glob("cifar10-test-*.pt"))) == 1


def test_a_changed_folder_is_decoded_again(tmp_path):
    for i, name in enumerate(CIFAR_CLASSES):
        write_images(tmp_path / "data/test" / name, 2, (32, 32), seed=i)
    cache = tmp_path / "cache"
    assert len(load_split("cifar10", tmp_path / "data", "test", cache_dir=cache)) == 20
    write_images(tmp_path / "data/test/ship", 3, (32, 32), seed=99)  # one new file, two rewritten
    split = load_split("cifar10", tmp_path / "data", "test", cache_dir=cache)
    assert len(split) == 21 and int((split.labels == 8).sum()) == 3
    assert len(list(cache.iterdir())) == 1  # replaced, not added; no temporary file left


# augmentation and epochs

def test_crop_flip_at_matches_pad_and_slice():
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    padded = F.pad(images, (4, 4, 4, 4))
    out = crop_flip_at(padded, torch.tensor([1, 7]), torch.tensor([6, 0]),
                       torch.tensor([False, True]), (8, 8))
    assert torch.equal(out[0], padded[0, :, 1:9, 6:14])
    assert torch.equal(out[1], padded[1, :, 7:15, 0:8].flip(-1))
    # sample 1 (window at row 7, column 0 of the padded image): image rows 3-7 and columns 0-3
    # land top-left once mirrored; the rest is padding
    assert torch.equal(out[1, :, :5, :4], images[1, :, 3:, :4].flip(-1))
    assert out[1, :, :, 4:].eq(0).all() and out[1, :, 5:, :].eq(0).all()


def test_a_batch_makes_no_index_grid_after_the_first_of_its_shape():
    """The crop's index grids (samples, channels, rows, straight and mirrored columns) do not
    depend on the draws: made at an epoch's first batch of each shape, not per batch (each is a
    GPU launch), and a batch of another shape gets its own (issue 26)."""
    split = MemorySplit(torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8),
                        torch.randint(0, 10, (40,)), num_classes=10, mean=(0.5,) * 3,
                        std=(0.25,) * 3, augment=CropFlip(2))
    batches = split.batches(16, generator=torch.Generator().manual_seed(0), augment=True)
    next(batches)
    with OpCount() as again:
        next(batches)
    with OpCount() as other_shape:  # the last batch: 8 examples
        next(batches)
    assert again.by_op["arange"] == 0 and again.by_op["rsub"] == 0, dict(again.by_op)
    assert other_shape.by_op["arange"] > 0


def test_crop_flip_draws_valid_and_varied_crops():
    images = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = CropFlip(2)(images, torch.Generator().manual_seed(0))
    padded = F.pad(images, (2, 2, 2, 2))
    seen = set()
    for i in range(64):
        match = [(t, left, f) for t in range(5) for left in range(5) for f in (0, 1)
                 if torch.equal(out[i], padded[i, :, t:t + 8, left:left + 8].flip(-1) if f
                                else padded[i, :, t:t + 8, left:left + 8])]
        assert match, f"sample {i} is no crop of its padded image"
        seen.add(match[0])
    assert len(seen) > 20 and {f for _, _, f in seen} == {0, 1}


def test_augmented_batches_are_seeded_and_get_is_plain(cifar_test):
    split = cifar_test.subset(torch.arange(0, 10000, 50))

    def epoch(seed):
        return list(split.batches(64, generator=torch.Generator().manual_seed(seed), augment=True))

    a, b, c = epoch(0), epoch(0), epoch(1)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    plain = torch.cat([x for x, _ in split.batches(64)])
    assert torch.equal(plain, split.get(torch.arange(len(split)))[0])
    assert torch.equal(plain, split.normalize(split.images))
    assert plain.dtype == torch.float32 and abs(plain.mean().item()) < 0.2


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("seed", [None, 0])
def test_an_epoch_covers_every_example_once(drop_last, seed):
    n, size = 103, 10
    split = MemorySplit(torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), torch.zeros(n),
                        num_classes=1, mean=(0.0,), std=(1.0,))
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    batches = [x.flatten().long() for x, _ in split.batches(size, generator=g, drop_last=drop_last)]
    seen = torch.cat(batches)
    assert [len(b) for b in batches] == [size] * 10 + ([] if drop_last else [3])
    assert len(seen.unique()) == len(seen) == (100 if drop_last else n)
    assert torch.equal(seen, torch.arange(len(seen))) == (seed is None)


def test_augment_needs_a_generator_and_batch_size_is_checked():
    split = load_split("synthetic", None, "test")
    with pytest.raises(ConfigError, match="generator"):
        next(split.batches(8, augment=True))
    with pytest.raises(ConfigError, match="batch size must be an integer >= 1, got 0"):
        next(split.batches(0))


# names, roots, missing data

def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown dataset 'cifar11'") as error:
        load_split("cifar11", None, "train")
    assert all(name in str(error.value) for name in DATASETS.names())
    with pytest.raises(ConfigError, match="unknown split 'val'; valid splits: train, test"):
        load_split("synthetic", None, "val")


def test_resolve_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("PAI_BENCH_DATA", raising=False)
    assert resolve_data_root(None) == Path("data")
    monkeypatch.setenv("PAI_BENCH_DATA", str(tmp_path / "env"))
    assert resolve_data_root(None) == tmp_path / "env"
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.setenv("PAI_BENCH_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"


@pytest.mark.parametrize("name", [n for n, spec in DATASETS.items() if spec.needs_root])
def test_missing_data_names_the_paths(name, tmp_path, offline):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError) as error:
        load_split(name, missing, "train", cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert str(missing) in message and "--data-root" in message and "PAI_BENCH_DATA" in message
    assert "train/" in message


def test_missing_cifar_explains_the_download(tmp_path, offline):
    with pytest.raises(DataNotFoundError) as error:
        load_split("cifar10", tmp_path, "test", cache_dir=tmp_path / "cache")
    message = str(error.value)
    for part in ("test/<class>", "cifar-10-batches-py", "network disabled by the test",
                 "network access", str(tmp_path / "cifar10")):
        assert part in message


def test_cifar_falls_back_to_torchvision(tmp_path, monkeypatch):
    """Without image folders, torchvision's CIFAR class is asked (here a stand-in, no network)."""
    calls = []

    class FakeCIFAR100:
        base_folder, filename = "cifar-100-python", "cifar-100-python.tar.gz"

        def __init__(self, root, train, download):
            calls.append((root, train, download))
            self.data = np.arange(4 * 32 * 32 * 3, dtype=np.uint8).reshape(4, 32, 32, 3)
            self.targets, self.classes = [3, 0, 99, 1], [f"c{i}" for i in range(100)]

    monkeypatch.setattr("torchvision.datasets.CIFAR100", FakeCIFAR100)
    split = load_split("cifar100", tmp_path, "test", cache_dir=tmp_path / "cache")
    assert calls == [(str(tmp_path), False, True)] and split.labels.tolist() == [3, 0, 99, 1]
    expected = torch.from_numpy(FakeCIFAR100(tmp_path, False, True).data).permute(0, 3, 1, 2)
    assert torch.equal(split.images, expected) and split.num_classes == 100


def test_synthetic_is_deterministic():
    a, b = load_split("synthetic", None, "train"), load_split("synthetic", "/ignored", "train")
    test = load_split("synthetic", None, "test")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.shape == (1024, 3, 32, 32) and len(test) == 512
    assert torch.bincount(test.labels).tolist() == [52] * 2 + [51] * 8  # balanced
    assert not torch.equal(a.images[:512], test.images) and not DATASETS.get("synthetic").needs_root


# fake TinyImageNet and ImageNet folders

def make_tinyimagenet(root: Path, wnids: list[str]) -> None:
    """The original layout: train/<wnid>/images/*.JPEG, val/images/ + val_annotations.txt."""
    for i, wnid in enumerate(wnids):
        write_images(root / "train" / wnid / "images", 2, (64, 64), seed=i, ext=".JPEG")
    write_images(root / "val/images", len(wnids), (64, 64), seed=50, ext=".JPEG")
    rows = [f"{i:04d}.JPEG\t{wnid}\t0\t0\t63\t63" for i, wnid in enumerate(reversed(wnids))]
    (root / "val/val_annotations.txt").write_text("\n".join(rows) + "\n")


def test_tinyimagenet_original_layout(tmp_path):
    make_tinyimagenet(tmp_path / "tiny-imagenet-200", ["n01", "n02", "n03"])
    train = load_tinyimagenet(tmp_path, "train", tmp_path / "cache", num_classes=3)
    test = load_tinyimagenet(tmp_path, "test", tmp_path / "cache", num_classes=3)
    assert train.images.shape == (6, 3, 64, 64) and train.classes == ("n01", "n02", "n03")
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2] and test.labels.tolist() == [2, 1, 0]
    first = np.array(Image.open(tmp_path / "tiny-imagenet-200/val/images/0000.JPEG"))
    assert torch.equal(test.images[0].permute(1, 2, 0), torch.from_numpy(first))
    assert train.augment.pad == 8
    with pytest.raises(DataNotFoundError, match="has 3 classes .* but tinyimagenet has 200"):
        load_split("tinyimagenet", tmp_path, "train", cache_dir=tmp_path / "cache")


def test_imagenet_streams_seeded_batches(tmp_path):
    for split in ("train", "val"):
        for i, wnid in enumerate(["n01", "n02", "n03"]):
            write_images(tmp_path / split / wnid, 2, (48, 40), seed=i)
    train = load_imagenet(tmp_path, "train", num_classes=3, num_workers=0)
    x, y = train.get(torch.tensor([0, 5]))
    assert x.shape == (2, 3, 224, 224) and y.tolist() == [0, 2]

    def epoch(seed):
        return list(train.batches(4, generator=torch.Generator().manual_seed(seed), augment=True))

    a, b, c = epoch(0), epoch(0), epoch(1)
    assert [len(y) for _, y in a] == [4, 2]
    assert sorted(torch.cat([y for _, y in a]).tolist()) == [0, 0, 1, 1, 2, 2]
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    plain = torch.cat([x for x, _ in train.subset(torch.tensor([0, 5])).batches(2)])
    assert torch.equal(plain, x)
    test = load_imagenet(tmp_path, "test", num_classes=3, num_workers=0)
    assert len(test) == 6 and test.classes == ("n01", "n02", "n03")
    with pytest.raises(DataNotFoundError, match="has 3 classes; imagenet has 1000"):
        load_split("imagenet", tmp_path, "train")


def test_batches_equal_an_independent_per_image_computation():
    """The vectorized, device-agnostic batch path (indices moved to the images' device, draws
    from the CPU generator) against a per-image loop with the same draws."""
    from pai_bench.data.memory import MemorySplit
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (10, 3, 6, 5), generator=g, dtype=torch.uint8)
    labels = torch.arange(10) % 3
    split = MemorySplit(images, labels, num_classes=3, mean=(0.5, 0.4, 0.3),
                        std=(0.2, 0.25, 0.3), augment=CropFlip(2))
    assert split.to("cpu") is split and split.device.type == "cpu"
    got = list(split.batches(4, generator=torch.Generator().manual_seed(11), augment=True))
    ref = torch.Generator().manual_seed(11)
    order = torch.randperm(10, generator=ref)
    mean = torch.tensor((0.5, 0.4, 0.3)).view(3, 1, 1)
    std = torch.tensor((0.2, 0.25, 0.3)).view(3, 1, 1)
    for b, (x, y) in enumerate(got):
        idx = order[4 * b:4 * b + 4]
        top = torch.randint(0, 5, (len(idx),), generator=ref)
        left = torch.randint(0, 5, (len(idx),), generator=ref)
        flip = torch.randint(0, 2, (len(idx),), generator=ref)
        for k, i in enumerate(idx.tolist()):
            padded = torch.nn.functional.pad(images[i], (2, 2, 2, 2))
            crop = padded[:, top[k]:top[k] + 6, left[k]:left[k] + 5]
            if flip[k]:
                crop = crop.flip(-1)
            expected = (crop.float() / 255 - mean) / std
            assert torch.allclose(x[k], expected, atol=1e-6) and y[k] == labels[i]


def test_a_device_split_gets_each_batch_in_one_copy_and_the_same_batches():
    """On a GPU every copy from the host that is not from pinned memory makes the host wait for
    the GPU. A split on another device (``meta`` stands in for a GPU here) receives each batch's
    indices and augmentation draws in ONE host-to-device copy (pinned, non-blocking on CUDA),
    normalization constants once, and cuts the same batches as on the CPU for a seed."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from pai_bench.data.memory import MemorySplit

    class HostCopies(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
                src = args[1] if func is torch.ops.aten.copy_.default else args[0]
                if src.device.type == "cpu" and out.device.type == "meta":
                    self.count += 1
            return out

    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (40, 3, 6, 5), generator=g, dtype=torch.uint8)
    split = MemorySplit(images, torch.arange(40) % 3, num_classes=3, mean=(0.5, 0.4, 0.3),
                        std=(0.2, 0.25, 0.3), augment=CropFlip(2))
    on_meta = split.to("meta")
    assert on_meta.images.device.type == "meta" and split.to("meta") is on_meta
    next(on_meta.batches(8, generator=torch.Generator().manual_seed(0), augment=True))  # warm
    stats = on_meta._mean, on_meta._std  # made on the device once
    assert all(t.device.type == "meta" for t in stats)
    for augment in (True, False):
        with HostCopies() as copies:
            got = list(on_meta.batches(8, generator=torch.Generator().manual_seed(5),
                                       augment=augment))
        assert len(got) == 5 and copies.count == 5, copies.count
        assert all(x.device.type == "meta" and x.shape == (8, 3, 6, 5) for x, _ in got)
    assert on_meta._mean is stats[0] and on_meta._std is stats[1]  # not remade per batch
    # the draws and their order are the CPU path's: the generators end in the same state
    cpu_g, meta_g = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    list(split.batches(8, generator=cpu_g, augment=True, drop_last=True))
    list(on_meta.batches(8, generator=meta_g, augment=True, drop_last=True))
    assert torch.equal(cpu_g.get_state(), meta_g.get_state())


def test_imagenet_batches_do_not_depend_on_the_worker_processes(tmp_path):
    """Streaming batches decoded by 2 persistent worker processes equal those decoded in this
    process, epoch after epoch, with one DataLoader (and one set of workers) for every epoch:
    each example's augmentation is a function of the epoch generator alone."""
    for i, wnid in enumerate(["n01", "n02", "n03"]):
        write_images(tmp_path / "train" / wnid, 3, (40, 36), seed=i)
    inline = load_imagenet(tmp_path, "train", num_classes=3, num_workers=0, image_size=32,
                           resize=36)
    workers = load_imagenet(tmp_path, "train", num_classes=3, num_workers=2, image_size=32,
                            resize=36)
    for epoch in range(2):
        a, b = (list(s.batches(4, generator=torch.Generator().manual_seed(epoch), augment=True,
                               drop_last=True)) for s in (inline, workers))
        assert [len(y) for _, y in b] == [4, 4]
        assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
        if epoch == 0:
            loader = workers._loaders[(4, True)][0]
            first = a
    assert workers._loaders[(4, True)][0] is loader and len(workers._loaders) == 1
    assert not torch.equal(first[0][0], a[0][0])  # a new epoch, new crops
