"""The pipeline of one run: init -> (dense training) -> score -> mask -> check -> train -> evaluate.

Each stage writes one artifact in the run's folder and is skipped when its artifact exists,
which is how a killed run resumes: masks are not recomputed, training continues from the last
checkpoint, and a finished run returns its stored summary without touching the data. The weights
a sparse network starts from are never stored: they are a deterministic function of the config
(the seeded initialization, or a snapshot of the shared dense run, ``pai_bench.dense``).
Everything that can be wrong with the input is checked before any folder is created.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from pai_bench import costs, paths
from pai_bench.artifacts import read_masks, read_summary, read_training_state, read_weights
from pai_bench.callbacks import LOGGERS, Checkpointer, MetricRows, Progress
from pai_bench.config import RunConfig
from pai_bench.dense import DenseRun
from pai_bench.effective import effective_masks, effective_summary
from pai_bench.errors import ConfigError, RunError
from pai_bench.io import atomic_save_torch, atomic_write_json, file_lock
from pai_bench.masks import Masks
from pai_bench.models import layer_macs, prunable_names
from pai_bench.plan import Plan, load_data, make_plan
from pai_bench.precision import resolve
from pai_bench.pruning import keep_count
from pai_bench.seeding import generator
from pai_bench.train import Diverged, evaluate, train


def stored_summary(config: RunConfig, results_dir: Path) -> dict | None:
    """The run's stored summary, if there is a valid one (``pai_bench.artifacts``)."""
    return read_summary(paths.run_dir(results_dir, config) / paths.SUMMARY, config.hash(),
                        type(config))


def execute(config: RunConfig, *, data_root: Path | None, results_dir: Path,
            device: torch.device = torch.device("cpu"), cache_dir: Path | None = None,
            progress: bool = True, log=print, callbacks: tuple = (),
            eval_every: int = 1, loggers: tuple[str, ...] = ()) -> dict:
    """Run ``config`` to completion (or return its stored summary) and return the summary.

    Another process asking for the same run waits for it (a lock beside the run's folder) and
    then returns its stored summary: a run is never trained twice at once. ``precision="auto"``
    is resolved for ``device`` first: the run is named by the precision it uses.

    ``callbacks``: ``pai_bench.train.Callback`` objects added to the sparse network's training
    loop. ``eval_every``: evaluate the test set every that many epochs into ``metrics.csv``
    (0: only the final evaluation). ``loggers``: names of ``callbacks.LOGGERS`` that also get
    the epoch rows ("tensorboard": ``<run>/tensorboard/``). None is part of the run's
    identity."""
    for name in loggers:
        if name not in LOGGERS:
            raise ConfigError(f"unknown logger {name!r}; valid loggers: {', '.join(LOGGERS)}")
    config = resolve(config, device)
    p = make_plan(config)
    done = stored_summary(config, results_dir)
    if done is not None:
        return done
    load_data(p, data_root, cache_dir)  # before anything is written: bad data writes nothing
    return run_plan(p, results_dir, device, progress, log, tuple(callbacks), eval_every,
                    tuple(loggers))


def run_plan(p: Plan, results_dir: Path, device, progress: bool = True, log=print,
             callbacks: tuple = (), eval_every: int = 1, loggers: tuple = ()) -> dict:
    """``execute`` for a plan with its data loaded: the stored summary, or the run, under the
    run's lock."""
    rdir = paths.run_dir(results_dir, p.config)
    with file_lock(paths.lock_file(rdir)):
        done = stored_summary(p.config, results_dir)  # finished while this one waited
        if done is not None:
            return done
        return _execute(p, rdir, results_dir, device, progress, log, callbacks, eval_every,
                        loggers)


def _execute(p: Plan, rdir: Path, results_dir: Path, device, progress: bool, log,
             callbacks: tuple = (), eval_every: int = 1, loggers: tuple = ()) -> dict:
    config = p.config
    dense = DenseRun(p, results_dir, device, progress, log, keep=(p.start_step(),))

    def run_parent(parent: Plan) -> dict:  # the previous level of an iterative baseline
        return run_plan(parent, results_dir, device, progress, log, (), eval_every, loggers)
    rdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(rdir / paths.CONFIG, describe(p))
    t0 = time.perf_counter()
    masks, rounds, eff = masks_stage(p, dense, rdir, results_dir, device, log, run_parent)
    model = p.build_model()
    status, error = "finished", None
    try:
        train_stage(p, model, masks, lambda: start_weights(p, dense, results_dir), rdir,
                    device, progress, callbacks, eval_every, loggers)
        metrics = evaluate(model, p.test_data, device=device, precision=config.precision)
        if not math.isfinite(metrics["loss"]):
            raise Diverged(p.total_steps, metrics["loss"], "the final evaluation")
    except Diverged as e:
        status, error, metrics = "diverged", str(e), {"accuracy": None, "loss": None}
        log(f"[pai-bench] {e}: recorded as diverged")
    summary = dict(config=config.to_dict(), hash=config.hash(), status=status, error=error,
                   test_accuracy=metrics["accuracy"], test_loss=metrics["loss"],
                   sparsity=masks.sparsity(), kept=masks.kept(), prunable=masks.total(),
                   collapsed_layers=[r["name"] for r in masks.layer_report() if r["collapsed"]],
                   **effective_summary(masks, eff),
                   train_examples=len(p.train_data), test_examples=len(p.test_data),
                   start_step=p.start_step(), total_steps=p.total_steps,
                   pruning_rounds=p.rounds,
                   seconds=round(time.perf_counter() - t0, 2),
                   dense_test_accuracy=dense_accuracy(dense, p.is_baseline),
                   cost=cost_of(p, rounds + [masks]))
    if status == "finished":  # the trained sparse network, loadable with weights_only=True
        atomic_save_torch(model.state_dict(), rdir / paths.WEIGHTS)
    atomic_write_json(rdir / paths.SUMMARY, summary)
    (rdir / paths.CHECKPOINT).unlink(missing_ok=True)
    return summary


def masks_stage(p: Plan, dense: DenseRun, rdir: Path, results_dir: Path, device, log,
                run_parent):
    """The run's final masks (after the check), the masks of the earlier levels of an iterative
    baseline, and the effective masks (``pai_bench.effective``) of the final ones."""
    path = rdir / paths.MASKS
    masks = read_run_masks(p, path)
    if masks is None:
        source = paths.method_masks_dir(results_dir, p.mask_source())
        method_masks = shared_method_masks(p, dense, source, device, log, results_dir, run_parent)
        masks = p.check.masks(method_masks, generator(p.config.seed, "shuffle"))
        eff = effective_masks(p.build_model(), masks, p.input_shape)
        masks.save(path, eff)
    else:
        eff = effective_masks(p.build_model(), masks, p.input_shape)
    return masks, level_masks(p, results_dir), eff


def read_run_masks(p: Plan, path: Path, density: float | None = None,
                   model: torch.nn.Module | None = None) -> Masks | None:
    """Stored final masks of ``p`` (or of a level of ``p``'s chain at ``density``): the model's
    prunable weights, the expected kept count. ``model``: ``p``'s network, if already built."""
    model = model if model is not None else p.build_model()
    names = prunable_names(model)
    total = sum(dict(model.named_parameters())[n].numel() for n in names)
    density = p.config.density if density is None else density
    return read_masks(path, model, names, keep_count(total, density))


def level_masks(p: Plan, results_dir: Path) -> list[Masks]:
    """The stored masks of the levels above ``p`` in its baseline's chain, top level first."""
    found, config, model = [], p.config, None
    while p.is_baseline and (config := p.method.parent(config)) is not None:
        model = model if model is not None else p.build_model()  # one for the whole chain
        masks = read_run_masks(p, paths.run_dir(results_dir, config) / paths.MASKS,
                               config.density, model)
        if masks is not None:
            found.append(masks)
    return found[::-1]


def previous_level(p: Plan, dense: DenseRun, results_dir: Path, run_parent):
    """The trained network a baseline prunes, and its survivors (None: every weight): the dense
    network, or the previous level's stored run, run first if it is not stored yet."""
    config = p.method.parent(p.config)
    if config is None:
        return p.model_at(dense, p.total_steps), None
    parent = make_plan(config)
    parent.train_data, parent.test_data = p.train_data, p.test_data  # the same data groups
    summary = run_parent(parent)
    rdir = paths.run_dir(results_dir, config)
    if summary["status"] != "finished":
        raise RunError(f"the previous level of this run, {rdir.name} (sparsity "
                       f"{config.sparsity}), {summary['status']}: it has no trained survivors "
                       f"to prune")
    model = p.build_model()
    state = read_weights(rdir / paths.WEIGHTS, model)
    masks = read_run_masks(parent, rdir / paths.MASKS, model=model)
    if state is None or masks is None:
        raise RunError(f"the previous level of this run, {rdir}, is finished but its "
                       f"{paths.WEIGHTS} or {paths.MASKS} is missing or invalid; delete that "
                       f"folder to train the level again")
    model.load_state_dict(state)
    return model, masks


def start_weights(p: Plan, dense: DenseRun, results_dir: Path) -> dict:
    """``Plan.start_state``; a level of a baseline that starts from trained weights starts from
    its previous level's (learning-rate rewinding, Renda et al. 2020: each cycle retrains the
    weights the last one trained), the first level from the dense network's."""
    parent = p.method.parent(p.config) if p.is_baseline else None
    if parent is None or p.method.start != "trained":
        return p.start_state(dense)
    return p.start_state(dense, read_weights(paths.run_dir(results_dir, parent) / paths.WEIGHTS,
                                             p.build_model()))


def shared_method_masks(p: Plan, dense: DenseRun, folder: Path, device, log, results_dir: Path,
                        run_parent) -> Masks:
    """The method's masks before the check, computed once per ``Plan.mask_source`` and kept in
    ``folder`` (``paths.method_masks_dir``): the runs of the checks that change only weights or
    positions (none, shuffle, reinit) read the same masks instead of scoring three times."""
    path = folder / paths.MASKS
    trained = survivors = None
    if p.is_baseline and read_run_masks(p, path) is None:
        # outside the lock: the previous level may take a whole training
        trained, survivors = previous_level(p, dense, results_dir, run_parent)
    with file_lock(paths.lock_file(folder)):
        if read_run_masks(p, path) is None:
            t0 = time.perf_counter()
            if p.is_baseline:
                if trained is None:  # stored a moment ago, then found invalid
                    trained, survivors = previous_level(p, dense, results_dir, run_parent)
                masks = p.method.masks(p, trained, survivors, device)
            else:
                masks = p.score_masks(p.method, p.model_at(dense, p.config.prune_at),
                                      p.config.density, p.rounds, device)
            masks.save(path)
            log(f"[pai-bench] masks from {p.config.method} in {time.perf_counter() - t0:.1f} s")
        return Masks.load(path)


def train_stage(p: Plan, model, masks: Masks, initial, rdir: Path, device, progress,
                extra: tuple = (), eval_every: int = 1, loggers: tuple = ()) -> None:
    state = read_training_state(rdir / paths.CHECKPOINT, model, p.start_step(),
                                p.total_steps - 1)
    if state is None:
        model.load_state_dict(initial())
        start, opt_state, rows = p.start_step(), None, []
    else:
        model.load_state_dict(state["model"])
        start, opt_state, rows = state["step"], state["optimizer"], state.get("rows", [])
    def test(m):
        return evaluate(m, p.test_data, device=device, precision=p.config.precision)
    metrics = MetricRows(rdir / paths.METRICS, rows, test, eval_every)
    callbacks = [Progress(p.config.method, progress), metrics,
                 *(LOGGERS[name](rdir / paths.LOGS, metrics) for name in loggers),
                 Checkpointer(rdir / paths.CHECKPOINT, metrics), *extra]
    train(model, p.train_data, p.recipe, seed=p.config.seed, masks=masks, device=device,
          start_step=start, optimizer_state=opt_state, callbacks=callbacks,
          precision=p.config.precision, compile=p.config.compile)


def dense_accuracy(dense: DenseRun, train_if_missing: bool) -> float | None:
    """The dense network's test accuracy: evaluated once for baselines (which trained it)."""
    if train_if_missing:
        return dense.summary()["test_accuracy"]
    summary = dense.stored_summary()
    return summary["test_accuracy"] if summary is not None else None


def cost_of(p: Plan, round_masks: list[Masks]) -> dict:
    macs = layer_macs(p.build_model(), p.input_shape)
    bs, spe = p.recipe.batch_size, p.spe
    dense_steps = p.total_steps if p.is_baseline else p.config.prune_at
    dense = [costs.phase(dense_steps, bs, spe, costs.forward_macs(macs))]
    sparse = [costs.phase(p.total_steps - p.start_step(), bs, spe, costs.forward_macs(macs, m))
              for m in round_masks]
    return costs.summarize(dense, sparse, macs, round_masks[-1])


def describe(p: Plan) -> dict:
    """What ``config.json`` records: the config, the resolved recipe, the software."""
    return dict(config=p.config.to_dict(), hash=p.config.hash(), recipe=asdict(p.recipe),
                pruning_rounds=p.rounds,
                versions=dict(torch=torch.__version__, python=platform.python_version()),
                non_default=p.config.non_default())
