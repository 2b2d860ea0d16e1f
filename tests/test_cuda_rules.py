"""CUDA's device rules on the CPU (``fake_cuda``): the harness refuses what CUDA refuses
and counts what it should, and every method, baseline, check, data set kind, ``--prune-at``,
resume and a bound ``--runs-per-gpu`` worker run through the runner with ``device="cuda"``
under it: the device-mixing bug that would crash the first GPU run crashes here (issue 26;
ProsPr's masks left on the CPU were the first)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import queue
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pai_bench.sweeps import executors
import fake_cuda
from pai_bench import paths, precision
from pai_bench.pipeline import runner
from pai_bench.training.callbacks import Checkpointer, MetricRows, StepTimer
from pai_bench.cli.parser import main
from pai_bench.config import RunConfig
from pai_bench.data import DATASETS, load_split
from pai_bench.errors import ConfigError, ScoreError
from pai_bench.sweeps.executors import LocalExecutor
from fake_cuda import CaptureRefused, FakeCuda
from pai_bench.methods import METHODS, Scorer
from pai_bench.models import create_model
from pai_bench.options import RunOptions
from pai_bench.sweeps.ray_executor import RayExecutor
from pai_bench.recipes import Recipe
from pai_bench.analysis.results import load_runs
from pai_bench.sanity_checks import CHECKS
from pai_bench.training.train import Callback, train

from helpers import StopAt, cudnn_flags_at_training


TINY = dict(model="mlp", dataset="synthetic", epochs=1, batch_size=32, subset=128,
            test_subset=50, sparsity=0.8)
FLAGS = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "32",
         "--subset", "128", "--test-subset", "50", "--sparsity", "0.8", "--no-progress",
         "--device", "cuda"]


def options(folder, **kw) -> RunOptions:
    return RunOptions(results_dir=folder, progress=False, log=None, **{"device": "cuda", **kw})


# --- the harness itself ------------------------------------------------------------------------

def _cpu_generator():
    return torch.Generator().manual_seed(0)


REFUSED = {  # what CUDA refuses, and the words of its error
    "two devices in an op": (lambda x: x + torch.ones(4), "same device"),
    "two devices in a matmul": (lambda x: torch.ones(3, 4) @ x, "same device"),
    "two devices in a cat": (lambda x: torch.cat([x, torch.ones(4)]), "same device"),
    "a CPU generator for a draw there": (
        lambda x: torch.rand(4, generator=_cpu_generator(), device="cuda"), "'cuda' device type"),
    "a CPU generator for an in-place draw": (
        lambda x: x.uniform_(generator=_cpu_generator()), "'cuda' device type"),
    "a CPU generator for a permutation there": (
        lambda x: torch.randperm(4, generator=_cpu_generator(), device="cuda"),
        "'cuda' device type"),
    "a CUDA generator on the CPU": (
        lambda x: torch.rand(4, generator=torch.Generator(device="cuda")), "'cpu' device type"),
    ".numpy() of a device tensor": (lambda x: x.numpy(), "Use Tensor.cpu()"),
    "np.asarray of a device tensor": (lambda x: np.asarray(x), "Use Tensor.cpu()"),
    "pin_memory of a device tensor": (lambda x: x.pin_memory(), "cannot pin"),
    "a second GPU": (lambda x: x.to("cuda:1"), "invalid device ordinal"),
    "a factory on a second GPU": (lambda x: torch.zeros(2, device="cuda:1"), "invalid device"),
    "set_device to a second GPU": (lambda x: torch.cuda.set_device(1), "invalid device"),
    "a device index into a CPU tensor": (
        lambda x: torch.ones(4)[torch.tensor([0, 1], device="cuda")], "indices should be"),
    "a CPU gradient for a device tensor": (
        lambda x: setattr(x.requires_grad_(), "grad", torch.ones(4)), "assign a gradient"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_cuda_refuses_is_refused(case):
    op, words = REFUSED[case]
    with FakeCuda(count_ops=False):
        x = torch.ones(4).to("cuda")
        with pytest.raises((RuntimeError, TypeError), match=words):
            op(x)


def test_what_cuda_allows_is_allowed_and_lands_on_the_right_device():
    with FakeCuda(count_ops=False) as gpu:
        x = torch.arange(4.0).cuda()
        assert x.device == torch.device("cuda", 0) and x.is_cuda and x.get_device() == 0
        assert (x * torch.tensor(2.0)).device.type == "cuda"  # a 0-d CPU scalar
        assert x[torch.tensor([0, 2])].tolist() == [0.0, 2.0]  # a CPU index
        host = torch.zeros(4)
        host.copy_(x)  # copies cross devices, both ways
        x.copy_(torch.ones(4))
        assert host.device.type == "cpu" and host.tolist() == [0.0, 1.0, 2.0, 3.0]
        assert x.cpu().device.type == "cpu" and not gpu.on_device(x.cpu())
        assert torch.zeros(2, device="cuda").device.type == "cuda"
        assert torch.zeros_like(x).device.type == "cuda" and x.new_ones(2).is_cuda
        assert torch.zeros_like(x, device="cpu").device.type == "cpu"
        g = torch.Generator(device="cuda").manual_seed(0)
        assert torch.rand(2, generator=g, device="cuda").is_cuda  # a CUDA generator there
        pinned = torch.ones(2).pin_memory()
        assert pinned.is_pinned() and pinned.to("cuda", non_blocking=True).is_cuda

        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).to("cuda")
        assert {p.device.type for p in model.state_dict().values()} == {"cuda"}
        assert all(isinstance(p, torch.nn.Parameter) for p in model.parameters())
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(torch.randn(5, 4).to("cuda")).sum().backward()
        opt.step()
        assert all(p.grad.is_cuda for p in model.parameters())
        assert all(s["momentum_buffer"].is_cuda for s in opt.state.values())
        twin = copy.deepcopy(model)
        assert all(p.is_cuda for p in twin.parameters())
        loaded = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
        loaded.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
        assert all(not p.is_cuda for p in loaded.parameters())  # it stayed where it was
        w = model[0].weight
        (grad,) = torch.autograd.grad((w * w).sum(), [w])
        assert grad.is_cuda
        with torch.autocast("cuda", dtype=torch.bfloat16):  # CUDA autocast: the bf16 path
            assert model[0](x).dtype == torch.bfloat16


def test_syncs_and_ops_are_counted_on_a_hand_made_example():
    with FakeCuda() as gpu:
        x = torch.arange(6.0).to("cuda")
        cpu = torch.arange(6.0)
        gpu.reset_counts()
        cpu.sum().item(), cpu.tolist(), bool(cpu.any()), cpu.cpu()  # the host's own: no sync
        x.to("cpu", non_blocking=True)  # an asynchronous copy: no wait
        assert gpu.syncs == 0
        float(x.sum())              # 1
        bool((x > 2).any())         # 2
        x.tolist()                  # 3
        x.cpu()                     # 4
        x[x > 2]                    # 5: the output's size depends on the data
        torch.cuda.synchronize()    # 6
        assert gpu.syncs == 6, gpu.sync_sites
        assert all("test_cuda_rules.py" in s for s in gpu.sync_sites)
        gpu.reset_counts()
        y = x * 2
        y.add_(1)
        assert gpu.ops == 2 and gpu.by_op["mul"] == 1 and gpu.by_op["add_"] == 1


def test_torch_cuda_answers_as_one_gpu_and_all_is_restored_after():
    before = (torch.cuda.is_available(), torch.Generator, torch.autocast,
              torch.backends.cudnn.benchmark)
    with FakeCuda(count_ops=False) as gpu:
        assert torch.cuda.is_available() and torch.cuda.device_count() == 1
        assert torch.cuda.current_device() == 0 and torch.cuda.is_bf16_supported()
        torch.cuda.set_device(torch.device("cuda:0"))
        assert gpu.set_device_calls == [0]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        end.record()
        assert end.elapsed_time(start) <= 0 <= start.elapsed_time(end)
        torch.backends.cudnn.benchmark = not before[3]
        with pytest.raises(CaptureRefused):
            torch.cuda.CUDAGraph()
        with pytest.raises(CaptureRefused):
            with torch.cuda.graph(None):
                pass
    after = (torch.cuda.is_available(), torch.Generator, torch.autocast,
             torch.backends.cudnn.benchmark)
    assert after == before and "_make_subclass" not in vars(torch.Tensor)
    assert torch.ones(2).device.type == "cpu"


# --- the runner under it: every method, baseline, check, data set kind ----------------------

@pytest.fixture
def trained_on(monkeypatch):
    """The device each run's network was on when its training ended."""
    devices = []
    real = runner.train

    def spy(model, *args, **kwargs):
        loop = real(model, *args, **kwargs)
        devices.append(str(next(model.parameters()).device))
        return loop
    monkeypatch.setattr(runner, "train", spy)
    return devices


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return tmp_path_factory.mktemp("cuda")  # one folder: the baselines share one dense run


def masks_file(folder: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    model = create_model("mlp", num_classes=10, input_shape=(3, 32, 32), seed=0)
    given = {n: torch.rand(p.shape, generator=g) < 0.2 for n, p in model.named_parameters()
             if n.endswith("weight")}
    path = folder / "given_masks.pt"
    torch.save(given, path)
    return path


def summaries(results: Path, method: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in results.glob(f"runs/{method}-*/summary.json")]


@pytest.mark.parametrize("method", METHODS.names())  # a new method is covered by registering it
def test_every_method_runs_on_cuda(method, shared, trained_on, capsys):
    args = ["--masks", str(masks_file(shared))] if method == "masks" else ["--method", method]
    if method == "masks":
        args += [f for f in FLAGS if f not in ("--sparsity", "0.8")]
    else:
        args += FLAGS
    with FakeCuda(count_ops=False):
        code = main(["run", *args, "--results-dir", str(shared)])
    assert code == 0, capsys.readouterr().err
    assert trained_on and set(trained_on) == {"cuda:0"}
    assert any(s["status"] == "finished" for s in summaries(shared, method))


@pytest.mark.parametrize("check", CHECKS.names())
def test_every_check_runs_on_cuda(check, tmp_path, trained_on):
    with FakeCuda(count_ops=False):
        summary = runner.execute(RunConfig(method="snip", check=check, **TINY), options(tmp_path))
    assert summary["status"] == "finished" and trained_on == ["cuda:0"]


def test_prune_at_runs_on_cuda(tmp_path, trained_on):
    config = RunConfig(method="snip", prune_at=3, **{**TINY, "epochs": 2})
    with FakeCuda(count_ops=False):
        summary = runner.execute(config, options(tmp_path))
    assert summary["status"] == "finished" and summary["start_step"] == 3
    assert trained_on == ["cuda:0"]


def image_tree(root: Path, classes: list[str], sources=None, per_class: int = 10) -> Path:
    """``root/{train,test}/<class>/<i>.{png,jpg}``: copies of ``sources[class]`` files, or
    seeded random 8x8 pixels."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                if sources is not None:
                    shutil.copy(sources[split][name][i], folder / f"{i}.jpg")
                else:
                    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                        folder / f"{i}.png")
    return root


def vouch_for(root: Path) -> None:
    """A slice of CIFAR-10 is not the data set the name stands for (``prepare.data_identity``
    refuses it); this test vouches for it, as a user with another export of CIFAR-10 can by
    registering its fingerprint."""
    spec = DATASETS.get("cifar10")
    DATASETS.unregister("cifar10")  # the registry fixture restores it
    DATASETS.register(dataclasses.replace(spec, known=(*spec.known, spec.fingerprint(root))))


@pytest.mark.parametrize("kind", ["synthetic", "cifar10", "imagefolder"])
def test_every_data_set_kind_trains_on_cuda(kind, tmp_path, cifar_root, trained_on):
    """The kinds the suite tests: generated, CIFAR-10 image folders (a copy of a few of the
    shared copy's images), any image folder."""
    root = None
    if kind == "cifar10":
        classes = sorted(p.name for p in (cifar_root / "train").iterdir())
        sources = {s: {c: sorted((cifar_root / s / c).iterdir())[:10] for c in classes}
                   for s in ("train", "test")}
        root = image_tree(tmp_path / "data", classes, sources)
        vouch_for(root)
    elif kind == "imagefolder":
        root = image_tree(tmp_path / "data", ["ant", "bee", "cow"])
    sizes = dict(subset=128, test_subset=50) if kind == "synthetic" else \
        dict(subset=None, test_subset=None)
    config = RunConfig(method="snip", **{**TINY, "dataset": kind, "batch_size": 8, **sizes})
    with FakeCuda(count_ops=False):
        summary = runner.execute(config, options(tmp_path / "r", data_root=root,
                                                 cache_dir=tmp_path / "cache"))
    assert summary["status"] == "finished" and trained_on == ["cuda:0"]


def test_a_run_resumed_from_its_checkpoint_on_cuda_ends_as_an_uninterrupted_one(tmp_path):
    class StopAfterEpoch(Callback):
        def on_epoch_end(self, loop):
            raise KeyboardInterrupt

    config = RunConfig(method="magnitude", **{**TINY, "epochs": 3})
    with FakeCuda(count_ops=False):
        whole = runner.execute(config, options(tmp_path / "whole"))
        with pytest.raises(KeyboardInterrupt):
            runner.execute(config, options(tmp_path / "cut", checkpoint_every=0),
                           callbacks=(StopAfterEpoch(),))
        rdir = paths.run_dir(tmp_path / "cut", config)
        assert torch.load(rdir / paths.CHECKPOINT, weights_only=True)["step"] == 4
        resumed = runner.execute(config, options(tmp_path / "cut"))
    for key in ("status", "test_accuracy", "test_loss", "kept"):
        assert resumed[key] == whole[key], key
    metrics = [(paths.run_dir(tmp_path / d, config) / paths.METRICS).read_text().splitlines()
               for d in ("whole", "cut")]
    assert [r.split(",")[:5] for r in metrics[0]] == [r.split(",")[:5] for r in metrics[1]]


def test_a_channels_last_strided_1x1_convolution_trains_under_the_harness():
    """CUDA's layout on the CPU: the weight gradient of a channels-last 1x1 stride-2
    convolution with 4 input channels (a width-4 ResNet's first shortcut) crashes oneDNN's AVX2
    kernel; under the harness it is computed, and equals the standard layout's."""
    torch.manual_seed(0)
    conv, x = torch.nn.Conv2d(4, 8, 1, stride=2, bias=False), torch.randn(32, 4, 32, 32)
    conv(x).square().sum().backward()
    expected, conv.weight.grad = conv.weight.grad.clone(), None
    with FakeCuda(count_ops=False):
        gpu_conv = conv.to("cuda", memory_format=torch.channels_last)
        gpu_x = x.to("cuda", memory_format=torch.channels_last)
        gpu_conv(gpu_x).square().sum().backward()
        got = gpu_conv.weight.grad.cpu()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("capability,off", [("AVX2", True), ("DEFAULT", True), ("AVX512", False)])
def test_the_harness_turns_onednn_off_below_avx512_and_restores_it(capability, off, monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert fake_cuda.onednn_crashes() is off
    before = torch.backends.mkldnn.enabled
    with FakeCuda(count_ops=False):
        assert torch.backends.mkldnn.enabled is (before and not off)
    assert torch.backends.mkldnn.enabled is before


def test_a_run_records_the_machine_it_computed_on(tmp_path):
    """Timings and bf16 numbers depend on the machine: each summary names it (the GPU on CUDA,
    the CPU otherwise), and the runs table carries it beside seconds_per_epoch."""
    config = RunConfig(method="random", **TINY)
    cpu = runner.execute(config, options(tmp_path / "cpu", device="cpu"))
    with FakeCuda(count_ops=False):
        gpu = runner.execute(config, options(tmp_path / "gpu"))
    assert cpu["machine"] == precision.cpu_name() and "(" in cpu["machine"]
    assert gpu["machine"] == fake_cuda.NAME
    assert load_runs(tmp_path / "cpu")["machine"].tolist() == [precision.cpu_name()]


def test_a_worker_bound_to_a_gpu_sets_it_and_trains_there(tmp_path, monkeypatch, trained_on):
    monkeypatch.setattr(executors, "_child_of_sweep", lambda: None)  # not the test process
    monkeypatch.setattr(executors, "_WORKER_DEVICE", None)
    slots = queue.Queue()
    slots.put("cuda:0")
    config = RunConfig(method="random", **TINY)
    with FakeCuda(count_ops=False) as gpu:
        executors._init_worker(slots, {})
        assert gpu.set_device_calls[:1] == [0]  # before the run touched anything
        summary = executors._run_in_worker(config, options(tmp_path, device="cpu").for_worker())
    assert summary["status"] == "finished" and trained_on == ["cuda:0"]


def test_a_plugin_scorer_that_mixes_devices_is_named(tmp_path):
    class Mixer(Scorer):
        """Multiplies each weight (on the run's device) by CPU noise: CUDA refuses it."""
        name = "test_mixer"
        needs_data = False

        def score(self, ctx):
            params = dict(ctx.model.named_parameters())
            return {n: params[n].detach().abs() * torch.rand(params[n].shape) for n in ctx.masks}
    assert METHODS.get("test_mixer") is Mixer  # a subclass with a name registers itself
    with FakeCuda(count_ops=False):
        with pytest.raises(ScoreError, match="scorer 'test_mixer'.*same device"):
            runner.execute(RunConfig(method="test_mixer", **TINY), options(tmp_path))
    # the same scorer on the CPU is fine: the device rules, not the scorer's arithmetic
    assert runner.execute(RunConfig(method="test_mixer", **TINY),
                          options(tmp_path, device="cpu"))["status"] == "finished"


# --- item 4's small defects --------------------------------------------------------------------

def test_cuda_and_cuda0_share_one_copy_of_the_data():
    split = load_split("synthetic", None, "train", subset=64, seed=0)
    with FakeCuda(count_ops=False):
        on = split.to("cuda")
        assert split.to("cuda:0") is on and split.to(torch.device("cuda", 0)) is on
        assert on.to("cuda") is on and on.device == torch.device("cuda", 0)
        assert len(split._copies) == 1


def test_a_cuda_run_sets_its_device_and_cudnn_flags(tmp_path, monkeypatch):
    seen = cudnn_flags_at_training(monkeypatch)
    with FakeCuda(count_ops=False) as gpu:
        runner.execute(RunConfig(method="random", **TINY), options(tmp_path))
        assert gpu.set_device_calls == [0]
    assert seen == [(True, False)]  # pai_bench.device: CUDNN_BENCHMARK, CUDNN_DETERMINISTIC


def test_the_sweep_estimate_counts_the_runs_at_once_on_cuda():
    with FakeCuda(count_ops=False):
        local = LocalExecutor(runs_per_gpu=3)
        assert local.at_once("cuda") == 3 == local.workers
        assert RayExecutor(runs_per_gpu=4).at_once("cuda") == 4  # Ray: --workers stays 1
        assert RayExecutor().at_once("cuda") == 1
    assert LocalExecutor(workers=2).at_once("cpu") == 2


# --- checkpoints every N seconds and at the end ------------------------------------------------

class Clock:
    """A host clock that advances one second per reading."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1.0
        return self.t


RECIPE = Recipe(batch_size=32, lr=0.05, epochs=3)  # 160 examples: 5 steps per epoch


def tiny_model():
    return create_model("mlp", num_classes=10, input_shape=(3, 32, 32), seed=0)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_checkpoint_inside_an_epoch_resumes_bit_identical(device, tmp_path):
    """Due every 3 s of a clock that ticks 1 s per reading: saved inside epoch 2; the resumed
    run's weights and every metric row (the interrupted epoch's too) equal an uninterrupted
    run's."""
    data = load_split("synthetic", None, "train", subset=160, seed=0)
    with FakeCuda(count_ops=False) if device == "cuda" else contextlib.nullcontext():
        whole_rows = MetricRows(tmp_path / "a.csv")
        whole = tiny_model()
        train(whole, data, RECIPE, seed=1, device=torch.device(device), callbacks=[whole_rows])
        rows = MetricRows(tmp_path / "b.csv")
        ckpt = Checkpointer(tmp_path / "ckpt.pt", rows, every_seconds=3, clock=Clock())
        with pytest.raises(KeyboardInterrupt):
            train(tiny_model(), data, RECIPE, seed=1, device=torch.device(device),
                  callbacks=[rows, ckpt, StopAt(9)])
        saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
        assert saved["step"] % 5 != 0 and saved["running"]["seen"] == 32 * (saved["step"] % 5)
        model = tiny_model()
        model.load_state_dict(saved["model"])
        rows = MetricRows(tmp_path / "b.csv", saved["rows"])
        train(model, data, RECIPE, seed=1, device=torch.device(device),
              start_step=saved["step"], optimizer_state=saved["optimizer"],
              callbacks=[rows, Checkpointer(tmp_path / "ckpt.pt", rows, running=saved["running"])])
        assert all(torch.equal(a.cpu(), b.cpu()) for a, b in
                   zip(whole.state_dict().values(), model.state_dict().values()))
    keys = ("step", "train_loss", "train_accuracy")
    assert [[r[k] for k in keys] for r in rows.rows] == [[r[k] for k in keys]
                                                         for r in whole_rows.rows]


def test_the_step_timer_waits_for_the_device_once_per_epoch_at_its_end():
    """On a GPU a step returns once queued: the timer synchronises at each epoch's last step
    (and the run's), never inside an epoch, so seconds_per_epoch holds the epoch's work."""
    data = load_split("synthetic", None, "train", subset=160, seed=0)
    timer = StepTimer()
    with FakeCuda(count_ops=False) as gpu:
        train(tiny_model(), data, RECIPE, seed=1, device=torch.device("cuda"), callbacks=[timer])
    waits = [s for s in gpu.sync_sites if s.startswith("torch.cuda.synchronize")]
    assert len(waits) == RECIPE.epochs and all("callbacks.py" in s for s in waits), waits
    assert timer.steps == 15 and timer.seconds_per_epoch(5) > 0
    cpu_timer = StepTimer()
    with FakeCuda(count_ops=False) as gpu:  # a CPU run under the harness waits for nothing
        train(tiny_model(), data, RECIPE, seed=1, callbacks=[cpu_timer])
    assert not [s for s in gpu.sync_sites if s.startswith("torch.cuda.synchronize")]


def test_no_checkpoint_before_its_seconds_have_passed(tmp_path):
    data = load_split("synthetic", None, "train", subset=160, seed=0)
    still = Checkpointer(tmp_path / "ckpt.pt", every_seconds=60, clock=lambda: 0.0)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(), data, RECIPE, seed=1, callbacks=[still, StopAt(12)])
    assert not (tmp_path / "ckpt.pt").exists()


def test_a_run_killed_while_evaluated_resumes_without_training_again(tmp_path, monkeypatch):
    config = RunConfig(method="magnitude", **{**TINY, "epochs": 2})
    whole = runner.execute(config, options(tmp_path / "whole", device="cpu", eval_every=0))
    real = runner.evaluate
    monkeypatch.setattr(runner, "evaluate", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # the final evaluation (no per-epoch one)
        runner.execute(config, options(tmp_path / "cut", device="cpu", eval_every=0))
    rdir = paths.run_dir(tmp_path / "cut", config)
    state = torch.load(rdir / paths.CHECKPOINT, weights_only=True)
    assert state["step"] == whole["total_steps"] and len(state["rows"]) == 2
    monkeypatch.setattr(runner, "evaluate", real)
    starts = []
    real_train = runner.train

    def spy(model, data, recipe, **kw):
        starts.append(kw["start_step"])
        return real_train(model, data, recipe, **kw)
    monkeypatch.setattr(runner, "train", spy)
    resumed = runner.execute(config, options(tmp_path / "cut", device="cpu", eval_every=0))
    assert starts == [whole["total_steps"]]  # nothing trained again
    for key in ("test_accuracy", "test_loss", "kept"):
        assert resumed[key] == whole[key]
    assert not (rdir / paths.CHECKPOINT).exists()


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "60", True])
def test_checkpoint_every_must_be_a_finite_non_negative_number(bad):
    with pytest.raises(ConfigError, match="--checkpoint-every"):
        RunOptions(checkpoint_every=bad)
