"""The dense network of a (model, data, recipe, seed), trained once and shared.

Every after-training baseline, every sparsity and every ``--prune-at`` point of the same
(model, data set, recipe, seed) reads the same dense trajectory from
``<results>/dense/dense-<hash>/``. Snapshots hold model *and* optimizer state, so any step ``k``
is reached exactly by training from the nearest earlier snapshot (training is deterministic and
resumes exactly, ``tests/test_train.py``): an early step asked for after the dense run finished
costs ``k - s`` steps, never a second dense run. A file lock makes concurrent workers wait for
one another instead of training the same network twice.
"""

from __future__ import annotations

import fcntl
import re
from contextlib import contextmanager
from pathlib import Path

import torch

from pai_bench import paths
from pai_bench.callbacks import Progress
from pai_bench.config import RunConfig
from pai_bench.io import atomic_save_torch, atomic_write_json, read_json
from pai_bench.recipes import steps_per_epoch
from pai_bench.train import evaluate, make_optimizer, train

# Early steps snapshotted on the first pass, for the pruning-early experiment (paper: a few
# hundred to a few thousand iterations) and the rewind points of LTR.
EARLY_STEPS = (100, 200, 500, 1000, 2000, 4000)


def dense_config(config: RunConfig) -> RunConfig:
    """The config of the dense run behind ``config``: its pruning fields reset to defaults."""
    keep = ("model", "dataset", "seed", "preset", "epochs", "batch_size", "lr", "subset",
            "test_subset", "width", "precision")
    return RunConfig(method="dense", sparsity=0.0, **{k: getattr(config, k) for k in keep})


class DenseRun:
    """Snapshots of one dense training run; ``state_at(step)`` trains only what is missing."""

    def __init__(self, plan, results_dir: Path, device, progress: bool = True, log=print,
                 keep: tuple[int, ...] = ()):
        """``keep``: steps the caller will ask for later, snapshotted on the way past them."""
        self.plan, self.device, self.progress, self.log = plan, device, progress, log
        self.keep = keep
        self.config = dense_config(plan.config)
        self.dir = Path(results_dir) / "dense" / f"dense-{self.config.hash()}"
        self.spe = steps_per_epoch(len(plan.train_data), plan.recipe.batch_size)
        self.total = plan.recipe.total_steps(self.spe)

    def snapshot_path(self, step: int) -> Path:
        return self.dir / f"step_{step}.pt"

    def saved_steps(self) -> list[int]:
        found = (re.fullmatch(r"step_(\d+)\.pt", p.name) for p in self.dir.glob("step_*.pt"))
        return sorted(int(m.group(1)) for m in found if m)

    def state_at(self, step: int) -> dict:
        """Model state (weights and buffers) of the dense run after ``step`` optimizer steps."""
        step = min(step, self.total)
        with self._lock():
            if not self.snapshot_path(step).exists():
                self._reach(step)
            return torch.load(self.snapshot_path(step), map_location="cpu",
                              weights_only=True)["model"]

    def summary(self) -> dict:
        """Test accuracy and loss of the fully trained dense network (trains it if needed)."""
        final = self.state_at(self.total)
        path = self.dir / paths.SUMMARY
        if not path.exists():
            from pai_bench.runner import build_model
            model = build_model(self.plan)
            model.load_state_dict(final)
            metrics = evaluate(model, self.plan.test_data, device=self.device,
                               precision=self.config.precision)
            atomic_write_json(path, dict(config=self.config.to_dict(), hash=self.config.hash(),
                                         status="finished", test_accuracy=metrics["accuracy"],
                                         test_loss=metrics["loss"], steps=self.total,
                                         epochs=self.plan.recipe.epochs))
        return read_json(path)

    def _reach(self, step: int) -> None:
        from pai_bench.runner import build_model
        model = build_model(self.plan)
        if not self.snapshot_path(0).exists():
            self._save(0, model, make_optimizer(model, self.plan.recipe))
            atomic_write_json(self.dir / paths.CONFIG, self.config.to_dict())
        start = max(s for s in self.saved_steps() if s <= step)
        state = torch.load(self.snapshot_path(start), map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        targets = sorted({step, *(s for s in (*EARLY_STEPS, *self.keep) if start < s < step)})
        opt_state = state["optimizer"]
        for target in targets:
            loop = train(model, self.plan.train_data, self.plan.recipe, seed=self.config.seed,
                         device=self.device, start_step=start, end_step=target,
                         optimizer_state=opt_state, precision=self.config.precision,
                         callbacks=[Progress(f"dense to step {step}", self.progress)])
            self._save(target, model, loop.optimizer)
            start, opt_state = target, loop.optimizer.state_dict()
        self.log(f"[pai-bench] dense network trained to step {step} in {self.dir}")

    def _save(self, step: int, model, optimizer) -> None:
        atomic_save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "step": step}, self.snapshot_path(step))

    @contextmanager
    def _lock(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


__all__ = ["DenseRun", "dense_config", "EARLY_STEPS"]
