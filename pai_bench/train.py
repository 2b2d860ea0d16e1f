"""The one training loop (docs/architecture.md), extended by callbacks.

``train`` runs SGD with the recipe's schedule from ``start_step`` to ``end_step``. It owns the two
guarantees every experiment relies on:

* pruned weights stay exactly zero: ``masks.apply_`` after every optimizer step (the suite's only
  mask-to-weight mechanism);
* determinism and resumability: the data order of epoch ``e`` comes from a generator seeded by
  (seed, e), so a run resumed from a checkpoint at step ``s`` sees exactly the batches an
  uninterrupted run would, and the same seed gives the same numbers on CPU.

No step waits for the device: the loss, the accuracy count and a "some loss was not finite"
flag accumulate in device tensors, read once per epoch (before any callback sees the epoch's
end, so no checkpoint of a diverged state is ever written) and at the end of training. A loss
that went NaN or infinite at any step is therefore reported as ``Diverged`` at the next epoch
boundary at the latest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pai_bench.masks import Masks, PreparedMasks, apply_
from pai_bench.recipes import Recipe, steps_per_epoch
from pai_bench.seeding import derive_seed


class Diverged(ArithmeticError):
    """The training loss, the weights or the final evaluation became NaN or infinite."""

    def __init__(self, step: int, loss: float, where: str = "the training loss"):
        super().__init__(f"training diverged at step {step}: {where} is {loss}")
        self.step, self.loss = step, loss


class Callback:
    """Hooks into ``train``. Each receives the ``Loop``; override what you need."""

    def on_start(self, loop: "Loop") -> None: ...
    def on_step_end(self, loop: "Loop", loss: torch.Tensor) -> None:
        """``loss``: the step's loss as a 0-d device tensor (``float(loss)`` waits for it)."""
    def on_epoch_end(self, loop: "Loop") -> None: ...
    def on_end(self, loop: "Loop") -> None: ...


@dataclass
class Loop:
    """The state callbacks see: model, optimizer, position and the epoch's running metrics."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    recipe: Recipe
    steps_per_epoch: int
    step: int
    end_step: int
    epoch_loss: float | torch.Tensor = 0.0   # sum of loss x batch size (a device tensor)
    epoch_correct: int | torch.Tensor = 0
    epoch_seen: int = 0
    nonfinite: bool | torch.Tensor = False   # some step's loss was NaN or infinite
    extra: dict = field(default_factory=dict)

    def check_finite(self, where: str = "the training loss") -> None:
        """Raise ``Diverged`` if any loss since the start was not finite (reads the device)."""
        if bool(self.nonfinite):
            raise Diverged(self.step, float("nan"), f"{where} (at a step up to this one)")

    @property
    def epoch(self) -> float:
        return self.step / self.steps_per_epoch

    @property
    def lr(self) -> float:
        return self.recipe.lr_at(self.step, self.steps_per_epoch)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay)


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def train(model: nn.Module, data, recipe: Recipe, *, seed: int, masks: Masks | None = None,
          device: torch.device = torch.device("cpu"), start_step: int = 0,
          end_step: int | None = None, optimizer_state: dict | None = None,
          callbacks: Sequence[Callback] = (), precision: str = "fp32",
          compile: bool = False) -> Loop:
    """Train ``model`` in place on ``data`` (a ``pai_bench.data.Split``) and return the loop.

    On CUDA the network and its inputs use the channels-last memory layout (faster convolutions
    with tensor cores; the same numbers up to float rounding). ``compile``: the forward pass
    goes through ``torch.compile`` (the parameters stay the model's own, so masks and
    checkpoints are unchanged)."""
    model.to(device)
    if hasattr(data, "to"):  # in-memory data lives on the training device (data/memory.py)
        data = data.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    spe = steps_per_epoch(len(data), recipe.batch_size)
    end = recipe.total_steps(spe) if end_step is None else end_step
    optimizer = make_optimizer(model, recipe)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    prepared = PreparedMasks(model, masks) if masks is not None else None
    if prepared is not None:
        apply_(model, prepared)
    loop = Loop(model, optimizer, recipe, spe, start_step, end)
    for cb in callbacks:
        cb.on_start(loop)
    while loop.step < end:
        epoch, skip = divmod(loop.step, spe)
        g = torch.Generator().manual_seed(derive_seed(seed, "data") + epoch)
        batches = data.batches(recipe.batch_size, generator=g, augment=True, drop_last=True)
        for i, (x, y) in enumerate(batches):
            if i < skip:
                continue
            train_step(loop, batch_to(x, device), y.to(device, non_blocking=True), prepared,
                       device, precision, forward)
            for cb in callbacks:
                cb.on_step_end(loop, loop.extra["last_loss"])
            if loop.step % spe == 0:
                loop.check_finite()
                for cb in callbacks:
                    cb.on_epoch_end(loop)
                loop.epoch_loss, loop.epoch_correct, loop.epoch_seen = 0.0, 0, 0
            if loop.step >= end:
                break
    loop.check_finite()
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise Diverged(loop.step, float("nan"), "a weight after the last step")
    for cb in callbacks:
        cb.on_end(loop)
    return loop


def batch_to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device``: channels-last there on CUDA (images; other inputs keep their
    layout), copied without blocking the host."""
    if device.type == "cuda":
        layout = torch.channels_last if x.dim() == 4 else torch.preserve_format
        return x.to(device, non_blocking=True, memory_format=layout)
    return x.to(device)


def train_step(loop: Loop, x, y, prepared, device, precision, forward=None) -> None:
    """One optimizer step on the batch (x, y) already on ``device``, the masks re-applied after
    it; the loss and accuracy accumulate in ``loop`` on the device (nothing is read back)."""
    model, opt = loop.model, loop.optimizer
    forward = model if forward is None else forward
    for group in opt.param_groups:
        group["lr"] = loop.lr
    model.train()
    with autocast(device, precision):
        logits = forward(x)
        loss = F.cross_entropy(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if prepared is not None:
        apply_(model, prepared)
    loop.step += 1
    value = loss.detach()
    loop.nonfinite = loop.nonfinite | ~torch.isfinite(value)
    loop.epoch_loss = loop.epoch_loss + value.double() * len(y)
    loop.epoch_correct = loop.epoch_correct + (logits.argmax(1) == y).sum()
    loop.epoch_seen += len(y)
    loop.extra["last_loss"] = value


def step_times(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, *,
               device: torch.device, precision: str = "fp32", steps: int = 3) -> list[float]:
    """Seconds of each of ``steps`` training steps (``train_step``, the loop's own) of ``model``
    on the batch (x, y), waiting for the device after each (throughput estimates: the sweep's
    time estimate, ``precision="auto"``'s measurement)."""
    model.to(device)
    x, y = batch_to(x, device), y.to(device)
    loop = Loop(model, make_optimizer(model, recipe), recipe, steps_per_epoch=max(steps, 1),
                step=0, end_step=steps)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step(loop, x, y, None, device, precision)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


@torch.no_grad()
def evaluate(model: nn.Module, data, *, batch_size: int = 500,
             device: torch.device = torch.device("cpu"), precision: str = "fp32") -> dict:
    """Top-1 accuracy and mean cross-entropy of ``model`` on every example of ``data``."""
    model.to(device).eval()
    if hasattr(data, "to"):
        data = data.to(device)
    total_loss, correct, seen = 0.0, 0, 0  # sums on the device, read once at the end
    for x, y in data.batches(batch_size):
        x, y = x.to(device), y.to(device)
        with autocast(device, precision):
            logits = model(x).float()
        total_loss = total_loss + F.cross_entropy(logits, y, reduction="sum").double()
        correct = correct + (logits.argmax(1) == y).sum()
        seen += len(y)
    return {"accuracy": int(correct) / seen, "loss": float(total_loss) / seen, "examples": seen}
