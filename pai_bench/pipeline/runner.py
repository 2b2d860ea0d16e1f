"""The pipeline of one run: masks -> start weights -> train -> evaluate -> summary.

Each stage writes one artifact in the run's folder and is skipped when its artifact exists,
which is how a killed run resumes: masks are not recomputed, training continues from the last
checkpoint, and a finished run returns its stored summary without touching the data. The weights
a sparse network starts from are never stored: they are a deterministic function of the config
(the seeded initialization, or a snapshot of the shared dense run, ``pai_bench.pipeline.dense``).

The pipeline never asks which kind of method it runs: the method answers (``Method.masks``,
``start_state``, ``start_step``, ``dense_steps``) through the run's ``Stage``, and the levels of
an iterative baseline are runs of their own, trained first (``pai_bench.pipeline.chain``). Everything that
can be wrong with the input is checked before any folder is created.
"""

from __future__ import annotations

import math
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pai_bench.pipeline import chain
from pai_bench import costs, paths, sparse
from pai_bench.artifacts import (read_layer_report, read_masks, read_summary,
                                 read_training_state, run_file_digests, seal, stale_run_files)
from pai_bench.training.callbacks import LOGGERS, Checkpointer, MetricRows, Progress, StepTimer
from pai_bench.config import RunConfig
from pai_bench.pipeline.dense import DenseRun
from pai_bench.device import check_resume_threads, torch_threads
from pai_bench.effective import effective_masks, effective_summary
from pai_bench.errors import RunError, StorageError
from pai_bench.filekinds import make_folder
from pai_bench.io import (atomic_save_torch, atomic_write_json, clean_temporaries, file_lock,
                          quarantine, read_json, tensor_digest, to_host)
from pai_bench.masks import Masks
from pai_bench.options import RunOptions
from pai_bench.pipeline.plan import Plan, load_data
from pai_bench.precision import machine
from pai_bench.pipeline.prepare import prepare_run
from pai_bench.scoring import compute_masks
from pai_bench.seeding import generator
from pai_bench.training.train import Diverged, evaluate, train


def stored_summary(config: RunConfig, results_dir: Path) -> dict | None:
    """The run's stored summary, if there is a valid one and the run's files still hold what
    it says (``artifacts.stale_run_files``). A file that does not is quarantined, and the run
    is recomputed: retrained if its masks, weights or metric rows were invalid (the summary is
    quarantined with them), else only its ``config.json`` and layer report rebuilt."""
    rdir = paths.run_dir(results_dir, config)
    summary = read_summary(rdir / paths.SUMMARY, config.hash(), type(config))
    if summary is None:
        return None
    need = stale_run_files(rdir, summary, type(config))
    if need == "retrain":
        quarantine(rdir / paths.SUMMARY, "a file it describes is invalid", "retraining the run")
    return summary if need is None else None


def execute(config: RunConfig, options: RunOptions, callbacks: tuple = ()) -> dict:
    """Run ``config`` to completion (or return its stored summary) and return the summary.

    ``options``: where and how (``RunOptions``; made concrete here if they are not yet).
    ``callbacks``: ``pai_bench.training.train.Callback`` objects added to the sparse network's training
    loop. ``precision="auto"`` is resolved for the device first: the run is named by the
    precision it uses. Another process asking for the same run waits for it and returns its
    stored summary: a run is never trained twice at once."""
    plan, options = prepare_run(config, options)  # the one front door (pai_bench.pipeline.prepare)
    return execute_plan(plan, options, callbacks)


def execute_plan(plan: Plan, options: RunOptions, callbacks: tuple = ()) -> dict:
    """``execute`` for a plan made at the entry point (``options`` concrete): the stored
    summary, or the data loaded, the levels above it trained, and the run."""
    done = stored_summary(plan.config, options.results_dir)
    if done is not None:
        return reused(done, "stored", options, paths.run_dir("", plan.config).name)
    plan = load_data(plan, options.data_root, options.cache_dir)  # bad data writes nothing
    for level in chain.ancestors(plan):  # an iterative baseline's levels, top level first
        run_plan(plan.level(level), options)
    return run_plan(plan, options, tuple(callbacks))


def run_plan(plan: Plan, options: RunOptions, callbacks: tuple = ()) -> dict:
    """The stored summary of ``plan`` (data loaded), or the run, under the run's lock."""
    rdir = paths.run_dir(options.results_dir, plan.config)
    with torch_threads(options.threads), file_lock(paths.lock_file(rdir)) as waited:
        clean_temporaries(rdir)  # what a killed writer of this run left: every writer holds the lock
        done = stored_summary(plan.config, options.results_dir)  # finished while we waited
        if done is not None:
            if waited:
                options.say(f"[pai-bench] waited for another process's run of {rdir.name}; "
                            f"its result:")
            return reused(done, "waited" if waited else "stored", options, rdir.name)
        return _execute(plan, options, rdir, callbacks)


def reused(summary: dict, how: str, options: RunOptions, name: str) -> dict:
    """A stored summary returned instead of training (``"reused"``: not stored; what this call
    did), with a line when it was trained on another number of CPU threads than this call
    would use: the thread count is a recorded property of a replicate, like the machine, and
    changes a CPU run's last digits (docs/running.md, "Determinism")."""
    note = threads_note(summary, options, name)
    if note:
        options.say(f"[pai-bench] {note}")
    return {**summary, "reused": how}


def threads_note(summary: dict, options: RunOptions, name: str) -> str | None:
    """What differs in the threads of the stored CPU run ``name`` and this call's, or None."""
    then = summary.get("threads")
    now = options.threads or torch.get_num_threads()
    if then is None or then == now or options.torch_device.type != "cpu":
        return None
    return (f"{name} was trained on {then} torch thread(s), not this call's {now}: on a CPU "
            f"its numbers differ from a {now}-thread run's in the last digits (its summary "
            f"records it)")


@dataclass
class Stage:
    """What the run's method may use (``pai_bench.methods.base.Stage``): the network along the
    shared dense run, scoring with the run's scope, check and seed, and the level above."""

    plan: Plan
    options: RunOptions
    dense: DenseRun

    def model_at(self, step: int) -> torch.nn.Module:
        """The network after ``step`` steps of dense training (step 0: the initialization)."""
        model = self.plan.build_model()
        if step:
            model.load_state_dict(self.dense.state_at(step))
            if not all(bool(torch.isfinite(t).all()) for t in model.parameters()):
                raise Diverged(step, float("nan"), "a weight of the dense network")
        return model

    def score(self, scorer, model, density: float, rounds: int, current: Masks | None = None):
        p = self.plan
        return compute_masks(scorer, model, density=density, rounds=rounds,
                             scope=p.config.scope, current=current, lowest=p.check.invert,
                             data=p.train_data if scorer.needs_data else None,
                             num_classes=p.num_classes, input_shape=p.input_shape,
                             generator=generator(p.config.seed, "score"),
                             device=self.options.torch_device)

    def previous_level(self):
        return chain.previous_level(self.plan, self.dense, self.options.results_dir)

    def trained_state(self) -> dict:
        return chain.trained_state(self.plan, self.dense, self.options.results_dir)


def _execute(p: Plan, options: RunOptions, rdir: Path, callbacks: tuple) -> dict:
    config, device = p.config, options.torch_device
    stage = Stage(p, options, DenseRun(p, options, keep=(p.start_step,)))
    fresh = not rdir.exists()
    make_folder(rdir, "run folder")
    atomic_write_json(rdir / paths.CONFIG, describe(p))
    t0 = time.perf_counter()
    model = p.build_model()  # the network that trains; its initial weights are "init"'s
    masks = eff = per_epoch = None
    status, error = "finished", None
    try:  # divergence is a result wherever it happens: the dense network, scoring, training
        try:
            masks, eff = masks_stage(stage, rdir, model)
        except Diverged:
            raise
        except BaseException:  # a scorer's error, an interrupt: a new run leaves no folder
            if fresh:
                shutil.rmtree(rdir, ignore_errors=True)
            raise
        kept = read_summary(rdir / paths.SUMMARY, config.hash(), type(config))
        if kept is not None:  # finished: only config.json and the layer report were rebuilt
            return store_summary(rdir, kept, masks, None)
        per_epoch = train_stage(stage, model, masks, rdir, callbacks)
        metrics = evaluate(model, p.test_data, device=device, precision=config.precision)
        if not math.isfinite(metrics["loss"]):
            raise Diverged(p.total_steps, metrics["loss"], "the final evaluation")
    except Diverged as e:
        status, error, metrics = "diverged", str(e), {"accuracy": None, "loss": None}
        options.say(f"[pai-bench] {e}: recorded as diverged")
    summary = dict(config=config.to_dict(), hash=config.hash(), status=status, error=error,
                   test_accuracy=metrics["accuracy"], test_loss=metrics["loss"],
                   **masks_summary(p, masks, eff),
                   train_examples=len(p.train_data), test_examples=len(p.test_data),
                   start_step=p.start_step, total_steps=p.total_steps, pruning_rounds=p.rounds,
                   seconds=round(time.perf_counter() - t0, 2), seconds_per_epoch=per_epoch,
                   machine=machine(device), threads=torch.get_num_threads(),
                   scoring_seconds=scoring_seconds(stage),
                   dense_test_accuracy=dense_accuracy(stage))
    if masks is not None:
        summary["cost"] = cost_of(p, [*chain.level_masks(p, options.results_dir), masks])
    check_run_folder(p, rdir, masks)
    state = None
    if status == "finished":  # the trained sparse network, loadable with weights_only=True
        state = to_host(model.state_dict())  # hashed and saved from one host copy
        atomic_save_torch(state, rdir / paths.WEIGHTS)
    summary = store_summary(rdir, summary, masks, state)
    (rdir / paths.CHECKPOINT).unlink(missing_ok=True)
    return summary


def store_summary(rdir: Path, summary: dict, masks: Masks | None, weights: dict | None) -> dict:
    """``summary`` with the digests of the run's files (``artifacts.run_file_digests``; the
    masks and weights given, those already stored kept) and its own digest, written."""
    digests = {**summary.get("digests", {}), **run_file_digests(rdir, summary, masks, weights)}
    summary = seal({**summary, "digests": digests})
    atomic_write_json(rdir / paths.SUMMARY, summary)
    return summary


def check_run_folder(p: Plan, rdir: Path, masks: Masks | None) -> None:
    """Before a run is stored: its folder still holds what it was trained from (its config and
    its own masks), else it was deleted or replaced while the run trained, and storing a
    summary in it would make a result out of what is left. StorageError, nothing stored."""
    ok = (rdir / paths.CONFIG).is_file()
    if ok and masks is not None:
        stored = read_masks(rdir / paths.MASKS, p.facts, p.kept, tensor_digest(dict(masks)))
        ok = stored is not None
    if not ok:
        raise StorageError(f"the run's folder {rdir} was deleted or changed while the run "
                           f"trained; nothing stored (run the same command again)")


def masks_summary(p: Plan, masks: Masks | None, eff: Masks | None) -> dict:
    """What a summary says of the run's masks; nominal values when the run diverged before it
    had masks (its dense network, or scoring a diverged network)."""
    if masks is None:
        return dict(sparsity=p.config.sparsity, kept=p.kept, prunable=p.facts.total,
                    collapsed_layers=[], effective_sparsity=None, ineffective_kept=None,
                    dead_layers=[])
    return dict(sparsity=masks.sparsity(), kept=masks.kept(), prunable=masks.total(),
                collapsed_layers=[r["name"] for r in masks.layer_report() if r["collapsed"]],
                **effective_summary(masks, eff))


def masks_stage(stage: Stage, rdir: Path, model) -> tuple[Masks, Masks]:
    """The run's final masks (the method's, after the check) and their effective masks
    (``pai_bench.effective``); ``model``: the run's network (only its structure is read).

    Stored masks of a resumed run are compared with what they derive from, the method's
    shared masks (when stored), and recomputed if they differ (a ``masks.pt`` of the right
    count at other positions); a missing layer report is rebuilt from them."""
    p, path = stage.plan, rdir / paths.MASKS
    masks = read_masks(path, p.facts, p.kept)
    if masks is not None:
        source = read_masks(shared_masks_path(stage), p.facts, p.kept)
        if source is not None and masks != derived(p, source):
            quarantine(path, "its masks differ from those the method's masks give",
                       "recomputing (and the training that used them)")
            (rdir / paths.CHECKPOINT).unlink(missing_ok=True)
            masks = None
    if masks is None:
        masks = check_kept(p, derived(p, shared_method_masks(stage)), "its check")
        eff = effective_masks(model, masks, p.input_shape)
        masks.save(path, eff, paths.owner(rdir))
        return masks, eff
    eff = effective_masks(model, masks, p.input_shape)
    if read_layer_report(paths.layers_file(path), "rebuilding it") is None:
        masks.save(path, eff, paths.owner(rdir))
    return masks, eff


def check_kept(p: Plan, masks: Masks, by: str) -> Masks:
    """``masks`` if they keep the run's count of weights (``Plan.kept``); a RunError naming
    the method otherwise (a scorer that changed the masks it was given, a check that lost a
    weight): a run is never stored at a sparsity its masks do not have."""
    if masks.kept() != p.kept:
        raise RunError(f"the masks of {p.config.method} ({by}) keep {masks.kept():,} of "
                       f"{masks.total():,} weights; sparsity {p.config.sparsity} keeps "
                       f"{p.kept:,}: nothing stored")
    return masks


def derived(p: Plan, method_masks: Masks) -> Masks:
    """The run's masks from the method's: the check applied (shuffle: with the run's seed)."""
    return p.check.masks(method_masks, generator(p.config.seed, "shuffle"))


def shared_masks_path(stage: Stage) -> Path:
    return paths.method_masks_dir(stage.options.results_dir, stage.plan.mask_source()) / paths.MASKS


def shared_method_masks(stage: Stage) -> Masks:
    """The method's masks before the check, computed once per ``Plan.mask_source`` and kept in
    ``paths.method_masks_dir``: the runs of the checks that change only weights or positions
    (none, shuffle, reinit) read the same masks instead of scoring three times."""
    p = stage.plan
    path = shared_masks_path(stage)
    with file_lock(paths.lock_file(path.parent)):
        clean_temporaries(path.parent)
        masks = read_masks(path, p.facts, p.kept)
        if masks is None:
            t0 = time.perf_counter()
            masks = check_kept(p, p.method.masks(stage), "the method's masks")
            seconds = time.perf_counter() - t0
            masks.save(path, owner=paths.owner(path.parent))
            # the method's cost, measured once per masks: every run reading them reports it
            atomic_write_json(path.parent / paths.SCORING, {
                "seconds": round(seconds, 3), "machine": machine(stage.options.torch_device)})
            stage.options.say(f"[pai-bench] masks from {p.config.method} in {seconds:.1f} s")
        return masks


def scoring_seconds(stage: Stage) -> float | None:
    """Seconds the method took to compute the masks this run derives from (``paths.SCORING``,
    written once by whichever run computed them: for a method that needs a trained network,
    the training it waited for is included); None where not recorded (masks stored before it
    was, a run that never reached its masks)."""
    try:
        return float(read_json(shared_masks_path(stage).parent / paths.SCORING)["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train_stage(stage: Stage, model, masks: Masks, rdir: Path, extra: tuple = ()) -> float | None:
    """Train ``model`` from the checkpoint, else from the method's start weights with the
    check applied, to the end of the schedule (its layers in the layout ``sparse_kernels``
    chooses); return the measured seconds of training per epoch."""
    p, options = stage.plan, stage.options
    device = options.torch_device
    state = read_training_state(rdir / paths.CHECKPOINT, p.facts, p.start_step, p.total_steps)
    if state is None:
        start_state = p.method.start_state(stage)
        model.load_state_dict(p.check.weights(start_state,
                                              lambda: p.build_model("reinit").state_dict()))
        start, opt_state, rows = p.start_step, None, []
    else:
        check_resume_threads(state, device, rdir / paths.CHECKPOINT)
        model.load_state_dict(state["model"])
        start, opt_state, rows = state["step"], state["optimizer"], state.get("rows", [])

    opt_state = sparse_layout(stage, model, masks, opt_state)

    def test(m):
        return evaluate(m, p.test_data, device=device, precision=p.config.precision)
    timer = StepTimer()
    metrics = MetricRows(rdir / paths.METRICS, rows, test, options.eval_every)
    callbacks = [Progress(p.config.method, options.progress), metrics,
                 *(LOGGERS.get(name)(rdir / paths.LOGS, metrics) for name in options.loggers),
                 Checkpointer(rdir / paths.CHECKPOINT, metrics, options.checkpoint_every,
                              at_end=True, running=state and state.get("running")),
                 *extra, timer]
    train(model, p.train_data, p.recipe, seed=p.config.seed, masks=masks, device=device,
          start_step=start, optimizer_state=opt_state, callbacks=callbacks,
          precision=p.config.precision, compile=p.config.compile,
          cuda_graphs=p.config.cuda_graphs)
    return timer.seconds_per_epoch(p.spe)


def sparse_layout(stage: Stage, model, masks: Masks, opt_state: dict | None) -> dict | None:
    """``--sparse-kernels auto``: the layers measured faster sparse put in the sparse layout
    (``pai_bench.sparse``; the run's log says which, and why the others stay dense); the
    optimizer state to resume from, in that layout."""
    p, options = stage.plan, stage.options
    if p.config.sparse_kernels == "off":
        return opt_state
    decisions = sparse.choose(model, masks, p.input_shape, p.recipe.batch_size,
                              cache_dir=options.cache_dir, device=options.torch_device,
                              precision=p.config.precision, compile=p.config.compile)
    options.say(sparse.describe(decisions))
    sparse.convert(model, masks, decisions)
    return sparse.optimizer_state_like(opt_state, model, masks)


def dense_accuracy(stage: Stage) -> float | None:
    """The dense network's test accuracy: evaluated once for the runs built on the fully
    trained network (which trained it), read if stored for the others."""
    p = stage.plan
    if p.method.dense_steps(p) >= p.total_steps:
        try:
            return stage.dense.summary()["test_accuracy"]
        except Diverged:
            return None
    summary = stage.dense.stored_summary()
    return summary["test_accuracy"] if summary is not None else None


def cost_of(p: Plan, round_masks: list[Masks]) -> dict:
    """Training epochs and MACs of the run, the dense training it builds on and every level of
    its chain included (``pai_bench.costs``)."""
    macs, bs, spe = p.facts.macs, p.recipe.batch_size, p.spe
    dense = [costs.phase(p.method.dense_steps(p), bs, spe, costs.forward_macs(macs))]
    sparse = [costs.phase(p.total_steps - p.start_step, bs, spe, costs.forward_macs(macs, m))
              for m in round_masks]
    return costs.summarize(dense, sparse, macs, round_masks[-1])


def describe(p: Plan) -> dict:
    """What ``config.json`` records: the config, the resolved recipe, the software."""
    return dict(config=p.config.to_dict(), hash=p.config.hash(), recipe=asdict(p.recipe),
                pruning_rounds=p.rounds,
                versions=dict(torch=torch.__version__, python=platform.python_version()),
                non_default=p.config.non_default())
