"""The dense network of a (model, data, recipe, seed), trained once and shared.

Every after-training baseline, every sparsity and every ``--prune-at`` point of the same
(model, data set, recipe, seed) reads the same dense trajectory from
``<results>/dense/dense-<hash>/`` (the hash of ``config.dense_config``: the data, model, training
and seed groups of the configuration). Snapshots hold model *and* optimizer state, so any step ``k``
is reached exactly by training from the nearest earlier snapshot (training is deterministic and
resumes exactly, ``tests/test_train.py``): an early step asked for after the dense run finished
costs ``k - s`` steps, never a second dense run. A file lock makes concurrent workers wait for
one another instead of training the same network twice.

Between snapshots the run also keeps a rolling ``checkpoint.pt`` (model and optimizer, written
atomically at every epoch), so a dense run killed two epochs in resumes from epoch two, to the
same numbers as an uninterrupted run. Every stored state is validated when read
(``pai_bench.artifacts``); an invalid one is moved aside and recomputed.
"""

from __future__ import annotations

from pathlib import Path

import math

from pai_bench import paths
from pai_bench.artifacts import check_sealed, read_training_state, read_valid, seal, strict_json
from pai_bench.training.callbacks import Checkpointer, Progress, save_training_state
from pai_bench.config import dense_config
from pai_bench.device import check_resume_threads
from pai_bench.io import atomic_write_json, clean_temporaries, file_lock
from pai_bench.options import RunOptions
from pai_bench.pipeline.plan import Plan
from pai_bench.recipes import PRUNE_EARLY_STEPS
from pai_bench.training.train import Diverged, evaluate, make_optimizer, train


class DenseRun:
    """Snapshots of one dense training run; ``state_at(step)`` trains only what is missing."""

    def __init__(self, plan: Plan, options: RunOptions, keep: tuple[int, ...] = ()):
        """``plan``: any run on this dense network, with its data loaded. ``keep``: steps the
        caller will ask for later, snapshotted on the way past them (as are the early steps
        of the pruning-early experiment, ``recipes.PRUNE_EARLY_STEPS``)."""
        self.plan, self.options, self.keep = plan, options, keep
        self.device = options.torch_device
        self.config = dense_config(plan.config)
        self.dir = paths.dense_dir(options.results_dir, self.config)
        self.total = plan.total_steps

    def snapshot_path(self, step: int) -> Path:
        return paths.snapshot(self.dir, step)

    def state_at(self, step: int) -> dict:
        """Model state (weights and buffers) of the dense run after ``step`` optimizer steps."""
        step = min(step, self.total)
        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(paths.lock_file(self.dir)):
            clean_temporaries(self.dir)  # a killed writer's: every writer holds this lock
            state = self._snapshot(step)
            if state is None:
                self._raise_if_diverged()
                try:
                    self._reach(step)
                except Diverged as e:  # stored once: no later run trains it again
                    atomic_write_json(self.dir / paths.SUMMARY, seal(dict(
                        config=self.config.to_dict(), hash=self.config.hash(),
                        status="diverged", error=str(e), step=e.step, test_accuracy=None,
                        test_loss=None, steps=self.total, epochs=self.plan.recipe.epochs)))
                    raise
                state = self._snapshot(step)
            return state["model"]

    def _raise_if_diverged(self) -> None:
        stored = self.stored_summary()
        if stored is not None and stored["status"] == "diverged":
            raise Diverged(stored["step"], float("nan"),
                           f"the shared dense network ({self.dir.name}, {stored['error']})")

    def _snapshot(self, step: int) -> dict | None:
        return read_training_state(self.snapshot_path(step), self.plan.facts, step, step)

    def stored_summary(self) -> dict | None:
        """The dense network's stored test metrics, if valid."""
        def check(s):
            check_sealed(s)  # an edited accuracy or status
            acc = s["test_accuracy"]
            if s["status"] == "diverged":
                ok = isinstance(s["step"], int) and isinstance(s["error"], str)
            else:
                ok = s["status"] == "finished" and isinstance(acc, float) and 0.0 <= acc <= 1.0
            if not (ok and s["hash"] == self.config.hash()):
                raise ValueError(f"status {s['status']!r}, test accuracy {acc!r} or hash "
                                 f"{s['hash']!r}")
        return read_valid(self.dir / paths.SUMMARY, strict_json, check)

    def summary(self) -> dict:
        """Test accuracy and loss of the fully trained dense network (trains it if needed)."""
        final = self.state_at(self.total)  # Diverged if the dense network did
        with file_lock(paths.lock_file(self.dir)):  # every writer of the folder holds it
            stored = self.stored_summary()
            if stored is not None and stored["status"] == "finished":
                return stored
            model = self.plan.build_model()
            model.load_state_dict(final)
            metrics = evaluate(model, self.plan.test_data, device=self.device,
                               precision=self.config.precision)
            loss = metrics["loss"] if math.isfinite(metrics["loss"]) else None
            summary = seal(dict(config=self.config.to_dict(), hash=self.config.hash(),
                                status="finished", test_accuracy=metrics["accuracy"],
                                test_loss=loss, steps=self.total, epochs=self.plan.recipe.epochs))
            atomic_write_json(self.dir / paths.SUMMARY, summary)
            return summary

    def _start(self, step: int) -> dict:
        """The latest valid stored state at or before ``step``: a snapshot or the rolling
        checkpoint (the initialization, step 0, is written first if nothing is stored)."""
        if self._snapshot(0) is None:
            model = self.plan.build_model()
            save_training_state(self.snapshot_path(0), model,
                                make_optimizer(model, self.plan.recipe), 0)
            atomic_write_json(self.dir / paths.CONFIG, self.config.to_dict())
        candidates = [s for s in paths.snapshot_steps(self.dir) if s <= step]
        for s in sorted(candidates, reverse=True):
            state = self._snapshot(s)
            if state is not None:
                break
        checkpoint = read_training_state(self.dir / paths.CHECKPOINT, self.plan.facts, 0,
                                         self.total)
        if checkpoint is not None and state["step"] < checkpoint["step"] <= step:
            check_resume_threads(checkpoint, self.device, self.dir / paths.CHECKPOINT)
            self.options.say(f"[pai-bench] dense network resumes from step {checkpoint['step']}")
            return checkpoint
        return state

    def _reach(self, step: int) -> None:
        model = self.plan.build_model()
        state = self._start(step)
        start = state["step"]
        model.load_state_dict(state["model"])
        targets = sorted({step, *(s for s in (*PRUNE_EARLY_STEPS, *self.keep) if start < s < step)})
        opt_state = state["optimizer"]
        for target in targets:
            loop = train(model, self.plan.train_data, self.plan.recipe, seed=self.config.seed,
                         device=self.device, start_step=start, end_step=target,
                         optimizer_state=opt_state, precision=self.config.precision,
                         compile=self.config.compile, cuda_graphs=self.config.cuda_graphs,
                         callbacks=[Progress(f"dense to step {step}", self.options.progress),
                                    Checkpointer(self.dir / paths.CHECKPOINT,
                                                 every_seconds=self.options.checkpoint_every)])
            save_training_state(self.snapshot_path(target), model, loop.optimizer, target)
            start, opt_state = target, loop.optimizer.state_dict()
        if step == self.total:  # the final snapshot supersedes the rolling checkpoint
            (self.dir / paths.CHECKPOINT).unlink(missing_ok=True)
        self.options.say(f"[pai-bench] dense network trained to step {step} in {self.dir}")


__all__ = ["DenseRun"]
