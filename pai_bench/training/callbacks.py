"""Training-loop callbacks: progress with an ETA, checkpoints, metric rows."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pai_bench import paths
from pai_bench.errors import ConfigError
from pai_bench.io import atomic_save_torch, atomic_write_text, tensor_digest, to_host
from pai_bench.registry import Registry
from pai_bench.training.train import Callback, Loop

# Loggers of the epoch rows (``--logger NAME``): a Callback class with a ``name``, built with
# the run's log folder and its ``MetricRows``.
LOGGERS: Registry[type[Callback]] = Registry("logger")


class Progress(Callback):
    """A tqdm bar over optimizer steps: rate, ETA, current loss and learning rate."""

    SHOW_LOSS_EVERY = 2.0  # seconds: reading the loss makes the host wait for a GPU

    def __init__(self, desc: str = "train", enabled: bool = True):
        self.desc, self.enabled, self.bar = desc, enabled, None
        self.shown = 0.0

    def on_start(self, loop: Loop) -> None:
        self.bar = tqdm(total=loop.end_step, initial=loop.step, desc=self.desc, unit="step",
                        disable=not self.enabled, dynamic_ncols=True)

    def on_step_end(self, loop: Loop, loss) -> None:
        self.bar.update(1)
        if self.enabled and time.monotonic() - self.shown >= self.SHOW_LOSS_EVERY:
            self.shown = time.monotonic()
            self.bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{loop.lr:.3g}", refresh=False)

    def on_end(self, loop: Loop) -> None:
        self.bar.close()


class MetricRows(Callback):
    """One row per finished epoch: step, epoch, lr, train loss and accuracy, test loss and
    accuracy (every ``eval_every`` epochs; empty otherwise), seconds.

    ``evaluate(model)`` returns ``{"accuracy", "loss"}`` on the test split; it costs one pass
    over the test set per evaluated epoch and changes nothing of the training (no randomness,
    BatchNorm statistics untouched in eval mode). Rows accumulate in ``rows`` (restored from a
    checkpoint on resume) and are rewritten to ``path`` atomically at each epoch, so a crash
    loses at most the current epoch's row.
    """

    HEADER = ("step", "epoch", "lr", "train_loss", "train_accuracy", "test_loss",
              "test_accuracy", "seconds")

    def __init__(self, path: Path, rows: list[dict] | None = None, evaluate=None,
                 eval_every: int = 1):
        self.path, self.rows, self.t0 = Path(path), list(rows or []), time.perf_counter()
        self.evaluate, self.eval_every = evaluate, eval_every

    def on_epoch_end(self, loop: Loop) -> None:
        seen = max(loop.epoch_seen, 1)
        test = {}
        if self.evaluate is not None and self.eval_every and \
                round(loop.epoch) % self.eval_every == 0:
            test = self.evaluate(loop.model)
        self.rows.append(dict(step=loop.step, epoch=round(loop.epoch, 4),
                              lr=loop.recipe.lr_at(loop.step - 1, loop.steps_per_epoch),
                              train_loss=float(loop.epoch_loss) / seen,
                              train_accuracy=int(loop.epoch_correct) / seen,
                              test_loss=test.get("loss", ""), test_accuracy=test.get("accuracy", ""),
                              seconds=round(time.perf_counter() - self.t0, 3)))
        lines = [",".join(self.HEADER)]
        lines += [",".join(str(r.get(h, "")) for h in self.HEADER) for r in self.rows]
        atomic_write_text(self.path, "\n".join(lines) + "\n")


class TensorBoard(Callback):
    """The epoch rows of ``MetricRows`` (train and test loss and accuracy, learning rate) as
    TensorBoard scalars in ``folder``, one event file per run (``--logger tensorboard``; needs
    the ``tensorboard`` package: ``pip install -e '.[tensorboard]'``). A logger in the training
    loop's callback interface: another one (W&B, MLflow) is a class like this one."""

    name = "tensorboard"

    def __init__(self, folder: Path, metrics: MetricRows):
        self.folder, self.metrics, self.writer = Path(folder), metrics, None

    def on_start(self, loop: Loop) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency
        except ImportError:
            raise ConfigError("--logger tensorboard needs the tensorboard package: "
                              "pip install -e '.[tensorboard]'") from None
        self.writer = SummaryWriter(str(self.folder))

    def on_epoch_end(self, loop: Loop) -> None:
        row = self.metrics.rows[-1]
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"):
            if row.get(key, "") != "":
                self.writer.add_scalar(key.replace("_", "/", 1), float(row[key]), loop.step)
        self.writer.flush()

    def on_end(self, loop: Loop) -> None:
        if self.writer is not None:
            self.writer.close()


LOGGERS.register(TensorBoard)


def save_training_state(path: Path, model, optimizer, step: int, rows: list | None = None,
                        running: dict | None = None) -> None:
    """The one format of a training state (a checkpoint, a dense snapshot): model, optimizer,
    step, its owner (``paths.owner`` of its folder: the run or dense network it belongs to)
    and, for a sparse run, its metric rows; ``running``: the epoch's running sums when the
    state is inside an epoch (``Checkpointer``). Written atomically, with a digest of all of it
    (owner and step included). Reading one back is ``artifacts.read_training_state``'s job: it
    validates it too."""
    state = to_host({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "step": step, "owner": paths.owner(Path(path).parent)})  # one host copy
    state["threads"] = torch.get_num_threads()  # a resume on another count is refused (device)
    if rows is not None:
        state["rows"] = rows
    if running is not None:
        state["running"] = running
    state["digest"] = tensor_digest(state)  # checked when read: a changed byte is caught
    atomic_save_torch(state, path)


class Checkpointer(Callback):
    """The rolling checkpoint of a dense or sparse run, rewritten atomically at the first step
    boundary after every ``every_seconds`` seconds of training (``--checkpoint-every``: 60 s by
    default, so a VGG-16 epoch of 2 s on a GPU does not write 118 MB each time; 0: at the end of
    every epoch), and, with ``at_end``, once more when training ends (a run killed while it is
    evaluated then resumes without training again). Time is read on the host only: no step
    waits for the device unless a checkpoint is due.

    A checkpoint inside an epoch holds the epoch's running sums too (loss, correct, seen:
    ``running``), and ``running`` given back on resume puts them into the loop at its start, so
    the resumed epoch's metric row is the uninterrupted run's, bit for bit; the data order is
    the loop's own (it skips the epoch's batches already trained, ``train.train``). Before a
    checkpoint inside an epoch the loss is checked finite, so no diverged state is ever saved.
    ``metrics``: the run's ``MetricRows``, saved with it (None: a dense run, whose rows are not
    kept)."""

    def __init__(self, path: Path, metrics: MetricRows | None = None,
                 every_seconds: float = 0.0, at_end: bool = False,
                 running: dict | None = None, clock=time.monotonic):
        self.path, self.metrics, self.every = Path(path), metrics, every_seconds
        self.at_end, self.running, self.clock = at_end, running, clock
        self.last, self.saved_step = 0.0, None

    def on_start(self, loop: Loop) -> None:
        self.last, self.saved_step = self.clock(), loop.step  # the state it started from
        if self.running is not None:  # resumed inside an epoch: its sums so far, on the device
            device = next(loop.model.parameters()).device
            loop.epoch_loss = torch.tensor(self.running["loss"], dtype=torch.float64,
                                           device=device)
            loop.epoch_correct = torch.tensor(self.running["correct"], dtype=torch.int64,
                                              device=device)
            loop.epoch_seen = self.running["seen"]

    def due(self) -> bool:
        return self.every > 0 and self.clock() - self.last >= self.every

    def on_step_end(self, loop: Loop, loss) -> None:
        inside = loop.step % loop.steps_per_epoch != 0  # an epoch's end saves after its row
        if inside and loop.step < loop.end_step and self.due():
            loop.check_finite()
            self.save(loop, dict(loss=float(loop.epoch_loss), correct=int(loop.epoch_correct),
                                 seen=loop.epoch_seen))

    def on_epoch_end(self, loop: Loop) -> None:
        if loop.step < loop.end_step and (self.every == 0 or self.due()):
            self.save(loop)

    def on_end(self, loop: Loop) -> None:
        if self.at_end and loop.step != self.saved_step:
            self.save(loop)

    def save(self, loop: Loop, running: dict | None = None) -> None:
        save_training_state(self.path, loop.model, loop.optimizer, loop.step,
                            self.metrics.rows if self.metrics is not None else None, running)
        self.last, self.saved_step = self.clock(), loop.step


class StepTimer(Callback):
    """Wall-clock seconds of training per epoch (``seconds_per_epoch``): the time from each
    step's start to its end, callbacks of the step included, the epoch-end work (evaluation,
    checkpoint) not. Put it last, so that its epoch end follows the others'. On a GPU, where a
    step returns once its kernels are queued, the epoch's last step waits for the device before
    the clock is read (one synchronisation per epoch, at its end), so the epoch's queued work
    is counted in it and not in the evaluation after it."""

    def __init__(self):
        self.seconds, self.steps, self.last, self.cuda = 0.0, 0, None, None

    def on_start(self, loop: Loop) -> None:
        first = next(loop.model.parameters(), None)
        self.cuda = first.device if first is not None and first.device.type == "cuda" else None
        self.last = time.perf_counter()

    def on_step_end(self, loop: Loop, loss) -> None:
        if self.cuda is not None and (loop.step % loop.steps_per_epoch == 0
                                      or loop.step == loop.end_step):
            torch.cuda.synchronize(self.cuda)
        now = time.perf_counter()
        self.seconds, self.steps, self.last = self.seconds + now - self.last, self.steps + 1, now

    def on_epoch_end(self, loop: Loop) -> None:
        self.last = time.perf_counter()

    def seconds_per_epoch(self, steps_per_epoch: int) -> float | None:
        """None when no step was trained here (a run resumed at its end)."""
        return round(self.seconds * steps_per_epoch / self.steps, 3) if self.steps else None
