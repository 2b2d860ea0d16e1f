"""The one training loop (docs/architecture.md), extended by callbacks.

``train`` runs SGD with the recipe's schedule from ``start_step`` to ``end_step``. It owns the two
guarantees every experiment relies on:

* pruned weights stay exactly zero: ``masks.apply_`` after every optimizer step (the suite's only
  mask-to-weight mechanism);
* determinism and resumability: the data order of epoch ``e`` comes from a generator seeded by
  (seed, e), so a run resumed from a checkpoint at step ``s`` sees exactly the batches an
  uninterrupted run would, and the same seed gives the same numbers on CPU.

No step waits for the device: the loss sum and the accuracy count accumulate in place in
device tensors, read once per epoch (before any callback sees the epoch's end, so no checkpoint
of a diverged state is ever written) and at the end of training. A loss that went NaN or
infinite at any step makes the epoch's float64 loss sum NaN or infinite (finite float32 losses
never do), so it is reported as ``Diverged`` at the next epoch boundary at the latest.

A step dispatches what it must and nothing else (``benchmarks/test_ops_per_step.py`` counts
them): the model is put in training mode once, not per step; the optimizer uses its
multi-tensor kernels on every device; the bookkeeping is three in-place ops. ``cuda_graphs``
replays the whole step (forward, backward, optimizer, masks, bookkeeping) as one captured CUDA
graph (``GraphStep``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pai_bench.errors import ConfigError, Diverged  # noqa: F401  (Diverged: its old home)
from pai_bench.masks import Masks, PreparedMasks, apply_
from pai_bench.recipes import Recipe, steps_per_epoch
from pai_bench.seeding import derive_seed


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
    extra: dict = field(default_factory=dict)

    def check_finite(self, where: str = "the training loss") -> None:
        """Raise ``Diverged`` if a loss of this epoch was not finite (reads the device: the
        epoch's loss sum, not finite iff a loss of the epoch was not)."""
        if not math.isfinite(float(self.epoch_loss)):
            raise Diverged(self.step, float("nan"), f"{where} (at a step up to this one)")

    @property
    def epoch(self) -> float:
        return self.step / self.steps_per_epoch

    @property
    def lr(self) -> float:
        return self.recipe.lr_at(self.step, self.steps_per_epoch)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.SGD:
    """SGD with the recipe's momentum and weight decay, through its multi-tensor (foreach)
    kernels on every device: CUDA's default, and on the CPU the same arithmetic in the same
    order as the per-parameter loop (the same numbers) in 4 ops instead of 4 per parameter."""
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay, foreach=True)


def autocast(device: torch.device, precision: str, cache: bool = True):
    """bf16 autocast (``precision == "bf16"``) or nothing. ``cache=False`` inside a CUDA-graph
    capture (autocast's weight-cast cache must not outlive the captured step)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16",
                          cache_enabled=cache)


def train(model: nn.Module, data, recipe: Recipe, *, seed: int, masks: Masks | None = None,
          device: torch.device = torch.device("cpu"), start_step: int = 0,
          end_step: int | None = None, optimizer_state: dict | None = None,
          callbacks: Sequence[Callback] = (), precision: str = "fp32",
          compile: bool = False, cuda_graphs: bool = False) -> Loop:
    """Train ``model`` in place on ``data`` (a ``pai_bench.data.Split``) and return the loop.

    On CUDA the network and its inputs use the channels-last memory layout (faster convolutions
    with tensor cores; the same numbers up to float rounding). ``compile``: the forward pass
    goes through ``torch.compile`` (the parameters stay the model's own, so masks and
    checkpoints are unchanged). ``cuda_graphs``: each step is a replay of one captured CUDA
    graph (``GraphStep``; CUDA only, not with ``compile``)."""
    check_cuda_graphs(cuda_graphs, device, compile)
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
        for group in optimizer.param_groups:  # a state saved before foreach was the default
            group["foreach"] = True
    prepared = PreparedMasks(model, masks) if masks is not None else None
    if prepared is not None:
        apply_(model, prepared)
    loop = Loop(model, optimizer, recipe, spe, start_step, end)
    step = GraphStep(loop, prepared, device, precision, forward) if cuda_graphs else None
    for cb in callbacks:
        cb.on_start(loop)
    while loop.step < end:
        epoch, skip = divmod(loop.step, spe)
        g = torch.Generator().manual_seed(derive_seed(seed, "data") + epoch)
        batches = data.batches(recipe.batch_size, generator=g, augment=True, drop_last=True)
        for i, (x, y) in enumerate(batches):
            if i < skip:
                continue
            if not model.training:  # once, and after a callback evaluated (not per step)
                model.train()
            x, y = batch_to(x, device), y.to(device, non_blocking=True)
            if step is None:
                train_step(loop, x, y, prepared, device, precision, forward)
            else:
                step(loop, x, y)
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
    it; the loss and accuracy accumulate in ``loop`` on the device (nothing is read back). The
    model is in the mode its caller put it in (``train`` puts it in training mode)."""
    model, opt = loop.model, loop.optimizer
    forward = model if forward is None else forward
    for group in opt.param_groups:
        group["lr"] = loop.lr
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
    accumulate(loop, value, logits, y)
    loop.extra["last_loss"] = value


@torch.no_grad()
def accumulate(loop: Loop, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
    """Add a step's loss x batch size (float64: exact) and correct count to the epoch's sums in
    place: three ops a step, after the first of an epoch."""
    hits = (logits.argmax(1) == y).sum()
    if isinstance(loop.epoch_loss, torch.Tensor):
        loop.epoch_loss.add_(loss, alpha=len(y))
        loop.epoch_correct.add_(hits)
    else:  # the first step of an epoch (the sums were reset to 0)
        loop.epoch_loss = loop.epoch_loss + loss.double() * len(y)
        loop.epoch_correct = loop.epoch_correct + hits
    loop.epoch_seen += len(y)


def step_times(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, *,
               device: torch.device, precision: str = "fp32", steps: int = 3) -> list[float]:
    """Seconds of each of ``steps`` training steps (``train_step``, the loop's own) of ``model``
    on the batch (x, y), waiting for the device after each (throughput estimates: the sweep's
    time estimate, ``precision="auto"``'s measurement)."""
    model.to(device).train()
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


def check_cuda_graphs(cuda_graphs: bool, device: torch.device, compile: bool = False) -> None:
    """Refuse ``cuda_graphs`` where it cannot run: off CUDA, or with ``compile``."""
    if cuda_graphs and torch.device(device).type != "cuda":
        raise ConfigError(f"--cuda-graphs needs a CUDA device, and this run's device is "
                          f"{torch.device(device).type}: drop --cuda-graphs or use --device cuda")
    if cuda_graphs and compile:
        raise ConfigError("--cuda-graphs and --compile are two ways to cut the step's launches: "
                          "choose one")


class GraphStep:
    """The training step as one captured CUDA graph, replayed each step: forward and loss (in
    autocast for bf16), backward, the SGD update, the mask multiply and the epoch sums, so one
    launch instead of hundreds (plus the batch's copy into the graph's input and, when the
    schedule changes it, the learning rate's).

    The first ``WARMUP`` steps are the eager ``train_step`` on a side stream (CUDA's rule before
    a capture; they also create SGD's momentum buffers), the next is captured, then replayed.
    The learning rate lives in a device tensor the graph reads, so a schedule never recaptures.
    The update is SGD's multi-tensor arithmetic (weight decay, momentum, no dampening or
    Nesterov) on the optimizer's own momentum buffers, so checkpoints and resume are those of
    an eager run; the numbers match an eager run up to float rounding (the lr is multiplied
    separately, not fused in the add), which is why ``cuda_graphs`` is a setting of the run.
    """

    WARMUP = 3

    def __init__(self, loop: Loop, prepared: PreparedMasks | None, device: torch.device,
                 precision: str, forward=None):
        opt = loop.optimizer
        self.prepared, self.device, self.precision = prepared, device, precision
        self.forward = loop.model if forward is None else forward
        self.params = [p for group in opt.param_groups for p in group["params"]]
        (group,) = opt.param_groups  # make_optimizer's one group
        if group["dampening"] or group["nesterov"] or group["maximize"]:
            raise ConfigError("--cuda-graphs captures plain SGD with momentum and weight decay")
        self.momentum, self.weight_decay = group["momentum"], group["weight_decay"]
        self.neg_lr = torch.zeros((), device=device)  # the graph's update reads it
        self.lr_value = None
        self.warm, self.graph, self.stream = 0, None, None

    def __call__(self, loop: Loop, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.graph is None and self.warm < self.WARMUP:
            self.warmup(loop, x, y)
            return
        if self.graph is None:
            self.capture(loop, x, y)
        self.static_x.copy_(x, non_blocking=True)
        self.static_y.copy_(y, non_blocking=True)
        if loop.lr != self.lr_value:  # a schedule's milestone or warm-up: no recapture
            self.lr_value = loop.lr
            self.neg_lr.fill_(-loop.lr)
            for group in loop.optimizer.param_groups:
                group["lr"] = loop.lr
        if loop.epoch_loss is not self.loss_sum:  # a new epoch (sums reset) or the first replay
            for mine, theirs in ((self.loss_sum, loop.epoch_loss),
                                 (self.correct, loop.epoch_correct)):
                if isinstance(theirs, torch.Tensor):  # eager warm-up steps of this epoch
                    mine.copy_(theirs)
                else:
                    mine.fill_(theirs)
            loop.epoch_loss, loop.epoch_correct = self.loss_sum, self.correct
        self.graph.replay()
        loop.step += 1
        loop.epoch_seen += len(y)
        loop.extra["last_loss"] = self.loss

    def warmup(self, loop: Loop, x: torch.Tensor, y: torch.Tensor) -> None:
        """An eager step on a side stream (the stream is waited for both ways)."""
        if self.stream is None:
            self.stream = torch.cuda.Stream(self.device)
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            train_step(loop, x, y, self.prepared, self.device, self.precision, self.forward)
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        self.warm += 1

    def capture(self, loop: Loop, x: torch.Tensor, y: torch.Tensor) -> None:
        """Capture one step on static inputs (the batch's shape: ``train`` drops the last,
        smaller batch); nothing runs until the replay."""
        opt = loop.optimizer
        self.static_x, self.static_y = x.clone(), y.clone()
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.correct = torch.zeros((), dtype=torch.int64, device=self.device)
        self.bufs = [opt.state[p]["momentum_buffer"] for p in self.params] if self.momentum \
            else []
        self.graph = self.record(lambda: self.body(loop))  # torch.cuda.graph synchronizes once

    @staticmethod
    def record(body):
        """``body`` captured as a CUDA graph (run by its ``replay()``)."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            body()
        return graph

    def body(self, loop: Loop) -> None:
        """The captured step, on the static input, loss and sums."""
        loop.optimizer.zero_grad(set_to_none=True)  # the backward allocates the grads it reuses
        with autocast(self.device, self.precision, cache=False):
            logits = self.forward(self.static_x)
            loss = F.cross_entropy(logits.float(), self.static_y)
        loss.backward()
        self.sgd()
        if self.prepared is not None:
            apply_(loop.model, self.prepared)
        self.loss = loss.detach()
        with torch.no_grad():
            self.loss_sum.add_(self.loss, alpha=len(self.static_y))
            self.correct.add_((logits.argmax(1) == self.static_y).sum())

    @torch.no_grad()
    def sgd(self) -> None:
        """``torch.optim.SGD``'s multi-tensor update with the learning rate a device tensor."""
        grads = [p.grad for p in self.params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        if self.momentum:
            torch._foreach_mul_(self.bufs, self.momentum)
            torch._foreach_add_(self.bufs, grads)
            grads = self.bufs
        self.update(grads)

    def update(self, steps: list[torch.Tensor]) -> None:
        """params += (-lr) x steps, the learning rate read from the device: two rounding steps
        where eager SGD's ``add_(alpha=-lr)`` has one (the one difference from an eager run)."""
        torch._foreach_add_(self.params, torch._foreach_mul(steps, self.neg_lr))
