"""The training step's demands on the device (issue 26): no host synchronisation inside an
epoch, the same numbers after the op removals, and the CUDA-graph step (``--cuda-graphs``):
refused off CUDA, covered under ``fake_cuda`` up to the capture call, and its replayed
update checked against the eager step."""

import contextlib

import pytest
import torch

from pai_bench.cli.parser import main
from pai_bench.config import RunConfig
from pai_bench.data import load_split
from pai_bench.errors import ConfigError
from fake_cuda import CaptureRefused, FakeCuda
from pai_bench.masks import Masks
from pai_bench.models import create_model, prunable_names
from opcount import OpCount
from pai_bench.recipes import Recipe
from pai_bench.training.train import Callback, GraphStep, train

RECIPE = Recipe(batch_size=32, lr=0.05, epochs=3, milestones=(2,))  # lr changes at epoch 2
SPE = 4  # steps per epoch of the 128-example subset


@pytest.fixture(scope="module")
def data():
    return load_split("synthetic", None, "train", subset=128, seed=0)


def model_and_masks():
    model = create_model("cifar_resnet_20", num_classes=10, input_shape=(3, 32, 32), seed=0,
                         width=4)
    return model, Masks.random(model, prunable_names(model), 0.9, seed=1)


class SyncsAtStepEnd(Callback):
    """The sync count of ``counter`` at the end of every step."""

    def __init__(self, counter):
        self.counter, self.at = counter, {}

    def on_step_end(self, loop, loss):
        self.at[loop.step] = self.counter.syncs


def syncs_inside_epochs(at: dict) -> dict:
    """{step: syncs} of the steps that started and ended inside one epoch and synchronised."""
    return {s: at[s] - at[s - 1] for s in at
            if s - 1 in at and (s - 1) % SPE != 0 and at[s] != at[s - 1]}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_no_host_sync_inside_an_epoch_on_the_cpu(data, precision):
    """OpCount counts every read, a CPU tensor's too: the step itself reads nothing back."""
    model, masks = model_and_masks()
    with OpCount() as c:
        record = SyncsAtStepEnd(c)
        train(model, data, RECIPE, seed=0, masks=masks, precision=precision, callbacks=[record])
    assert len(record.at) == RECIPE.epochs * SPE
    assert syncs_inside_epochs(record.at) == {}, c.sync_sites
    assert 0 < c.syncs <= 2 * RECIPE.epochs + 70  # the epoch checks, the final weight check


def test_no_host_sync_inside_an_epoch_on_a_fake_gpu(data):
    model, masks = model_and_masks()
    with FakeCuda(count_ops=False) as gpu:
        record = SyncsAtStepEnd(gpu)
        train(model, data, RECIPE, seed=0, masks=masks, device=torch.device("cuda"),
              callbacks=[record])
    assert syncs_inside_epochs(record.at) == {}, gpu.sync_sites


def test_a_step_dispatches_no_per_step_bookkeeping_beyond_three_ops(data):
    """After the first step of an epoch the sums grow in place: argmax, eq, sum, two add_."""
    model, _ = model_and_masks()
    counts = {}

    class Count(Callback):
        def on_step_end(self, loop, loss):
            counts[loop.step] = sum(c.by_op.values())
    with OpCount() as c:
        train(model, data, RECIPE, seed=0, callbacks=[Count()], end_step=3)
    by_op_one_step = c.by_op
    assert counts[3] - counts[2] == counts[2] - counts[1]  # every step the same ops
    assert by_op_one_step["isfinite"] == 0 and by_op_one_step["bitwise_or"] == 0
    assert by_op_one_step["_foreach_add_"] > 0  # the optimizer's multi-tensor kernels


def test_cuda_graphs_is_refused_off_cuda_one_line_exit_2(tmp_path, capsys):
    argv = ["run", "--method", "random", "--model", "mlp", "--dataset", "synthetic", "--epochs",
            "1", "--batch-size", "32", "--subset", "128", "--test-subset", "50", "--no-progress",
            "--cuda-graphs", "--results-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pai-bench: error: --cuda-graphs needs a CUDA "
                                               "device"), err
    assert "cpu" in err[0] and not any(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="--compile"):
        with FakeCuda(count_ops=False):
            train(*model_and_masks()[:1], load_split("synthetic", None, "train", subset=32),
                  RECIPE, seed=0, device=torch.device("cuda"), compile=True, cuda_graphs=True)


def test_cuda_graphs_is_a_setting_that_leaves_existing_hashes_alone():
    base = RunConfig(method="random")
    graphs = RunConfig(method="random", cuda_graphs=True)
    assert "cuda_graphs" not in base.non_default()
    assert graphs.hash() != base.hash() and graphs.non_default()["cuda_graphs"] is True


@contextlib.contextmanager
def fake_gpu():
    """FakeCuda, with ``torch.cuda.stream(s)`` a no-op (the fake has one stream)."""
    with FakeCuda(count_ops=False) as gpu, pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
        yield gpu


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_graph_step_runs_on_a_fake_gpu_up_to_the_capture_call(data, precision):
    model, masks = model_and_masks()
    steps = []

    class Steps(Callback):
        def on_step_end(self, loop, loss):
            steps.append(loop.step)
    with fake_gpu(), pytest.raises(CaptureRefused):
        train(model, data, RECIPE, seed=0, masks=masks, device=torch.device("cuda"),
              precision=precision, cuda_graphs=True, callbacks=[Steps()])
    assert steps == list(range(1, GraphStep.WARMUP + 1))  # the eager warm-up, then the capture
    eager, _ = model_and_masks()
    with fake_gpu():
        train(eager, data, RECIPE, seed=0, masks=masks, device=torch.device("cuda"),
              precision=precision, end_step=GraphStep.WARMUP)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 eager.state_dict().values()))


def run_both(data, monkeypatch):
    """Epoch rows and final state of an eager run and of a graph-step run on a fake GPU, with
    ``record`` replaced by "replay = run the body eagerly" (what a graph would replay)."""
    monkeypatch.setattr(GraphStep, "record", staticmethod(
        lambda body: type("Replay", (), {"replay": staticmethod(body)})()))
    rows, states = {}, {}
    for graphs in (False, True):
        model, masks = model_and_masks()

        class Rows(Callback):
            def on_epoch_end(self, loop):
                rows.setdefault(graphs, []).append((float(loop.epoch_loss),
                                                    int(loop.epoch_correct), loop.epoch_seen,
                                                    loop.lr))
        with fake_gpu() as gpu:
            record = SyncsAtStepEnd(gpu)
            loop = train(model, data, RECIPE, seed=0, masks=masks, device=torch.device("cuda"),
                         cuda_graphs=graphs, callbacks=[Rows(), record])
        assert syncs_inside_epochs(record.at) == {}, gpu.sync_sites
        params = dict(model.named_parameters())
        assert all((params[n][~masks[n]] == 0).all() for n in masks)
        states[graphs] = (model.state_dict(), loop.optimizer.state_dict())
    return rows, states


def test_the_replayed_step_is_the_eager_step_but_for_the_lr_rounding(data, monkeypatch):
    """With the update's lr multiply in eager SGD's form (``alpha=-lr``), the replayed body
    (static input, SGD on the optimizer's own momentum buffers, masks, the epoch sums reset per
    epoch, the lr following the schedule) trains 3 epochs to the very same numbers."""
    monkeypatch.setattr(GraphStep, "update", lambda self, steps: torch._foreach_add_(
        self.params, steps, alpha=-self.lr_value))
    rows, states = run_both(data, monkeypatch)
    assert rows[True] == rows[False]
    assert rows[True][-1][3] == pytest.approx(RECIPE.lr * RECIPE.gamma)  # the schedule moved
    (model_a, opt_a), (model_b, opt_b) = states[False], states[True]
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    assert all(torch.equal(opt_a["state"][i]["momentum_buffer"], opt_b["state"][i]["momentum_buffer"])
               for i in opt_a["state"])  # a checkpoint of a graph run resumes as an eager one


def test_the_replayed_step_with_the_device_lr_is_the_eager_step_to_rounding(data, monkeypatch):
    rows, states = run_both(data, monkeypatch)
    assert rows[True][0] == rows[False][0]  # the first epoch: 3 eager steps, then the first replay
    for (la, _, na, lra), (lb, _, nb, lrb) in zip(rows[False], rows[True]):
        assert (na, lra) == (nb, lrb) and la == pytest.approx(lb, rel=1e-3)
