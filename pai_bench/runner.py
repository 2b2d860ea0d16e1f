"""The pipeline of one run: init -> score -> mask -> train -> evaluate.

Each stage writes one artifact in the run's folder and is skipped when its artifact exists,
which is how a killed run resumes: masks are not recomputed, training continues from the last
checkpoint, and a finished run returns its stored summary without touching the data.
Everything that can be wrong with the input is checked before the folder is created.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import methods
from pai_bench import paths
from pai_bench.callbacks import Checkpointer, MetricRows, Progress
from pai_bench.config import RunConfig, resolve_recipe, resolve_subsets
from pai_bench.data import DATASETS, load_split
from pai_bench.io import atomic_write_json, read_json
from pai_bench.masks import Masks, apply_
from pai_bench.models import MODELS, create_model
from pai_bench.recipes import Recipe
from pai_bench.scoring import compute_masks
from pai_bench.seeding import derive_seed, generator
from pai_bench.train import Diverged, evaluate, train


@dataclass
class Plan:
    """A validated config with everything resolved: specs, recipe, scorer, data."""

    config: RunConfig
    model_spec: object
    data_spec: object
    recipe: Recipe
    scorer: methods.Scorer
    train_data: object = None
    test_data: object = None


def plan(config: RunConfig) -> Plan:
    """Validate every name and option of ``config`` (ConfigError on the first bad one)."""
    model_spec = MODELS.get(config.model)
    data_spec = DATASETS.get(config.dataset)
    scorer = methods.make_scorer(config.method, dict(config.method_args))
    if config.width is not None and not model_spec.has_width:
        from pai_bench.errors import ConfigError
        raise ConfigError(f"model {config.model!r} takes no width option")
    return Plan(config, model_spec, data_spec, resolve_recipe(config, model_spec.recipe), scorer)


def load_data(p: Plan, data_root: Path | None, cache_dir: Path | None = None) -> Plan:
    train_subset, test_subset = resolve_subsets(p.config)
    seed = derive_seed(p.config.seed, "subset")
    p.train_data = load_split(p.config.dataset, data_root, "train", subset=train_subset,
                              seed=seed, cache_dir=cache_dir)
    p.test_data = load_split(p.config.dataset, data_root, "test", subset=test_subset,
                             seed=seed, cache_dir=cache_dir)
    return p


def build_model(p: Plan) -> torch.nn.Module:
    return create_model(p.config.model, num_classes=p.data_spec.num_classes,
                        input_shape=p.data_spec.input_shape,
                        seed=derive_seed(p.config.seed, "init"), width=p.config.width)


def stored_summary(config: RunConfig, results_dir: Path) -> dict | None:
    path = paths.run_dir(results_dir, config) / paths.SUMMARY
    return read_json(path) if path.exists() else None


def execute(config: RunConfig, *, data_root: Path | None, results_dir: Path,
            device: torch.device = torch.device("cpu"), cache_dir: Path | None = None,
            progress: bool = True, log=print) -> dict:
    """Run ``config`` to completion (or return its stored summary) and return the summary."""
    p = plan(config)
    done = stored_summary(config, results_dir)
    if done is not None:
        return done
    load_data(p, data_root, cache_dir)
    model = build_model(p)
    rdir = paths.run_dir(results_dir, config)
    rdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(rdir / paths.CONFIG, describe(p))
    t0 = time.perf_counter()
    masks = masks_stage(p, model, rdir, device, log)
    status, error = "finished", None
    try:
        train_stage(p, model, masks, rdir, device, progress)
        metrics = evaluate(model, p.test_data, device=device, precision=config.precision)
    except Diverged as e:
        status, error, metrics = "diverged", str(e), {"accuracy": None, "loss": None}
        log(f"[pai-bench] {e}: recorded as diverged")
    summary = dict(config=config.to_dict(), hash=config.hash(), status=status, error=error,
                   test_accuracy=metrics["accuracy"], test_loss=metrics["loss"],
                   sparsity=masks.sparsity(), kept=masks.kept(), prunable=masks.total(),
                   collapsed_layers=[r["name"] for r in masks.layer_report() if r["collapsed"]],
                   train_examples=len(p.train_data), test_examples=len(p.test_data),
                   epochs=p.recipe.epochs, seconds=round(time.perf_counter() - t0, 2))
    atomic_write_json(rdir / paths.SUMMARY, summary)
    (rdir / paths.CHECKPOINT).unlink(missing_ok=True)
    return summary


def masks_stage(p: Plan, model, rdir: Path, device, log) -> Masks:
    path = rdir / paths.MASKS
    if path.exists():
        return Masks.load(path)
    t0 = time.perf_counter()
    masks = compute_masks(p.scorer, model, density=p.config.density, rounds=p.config.rounds,
                          scope=p.config.scope, data=p.train_data if p.scorer.needs_data else None,
                          num_classes=p.data_spec.num_classes, input_shape=p.data_spec.input_shape,
                          generator=generator(p.config.seed, "score"), device=device)
    log(f"[pai-bench] scored with {p.config.method} in {time.perf_counter() - t0:.1f} s")
    masks.save(path)
    return masks


def train_stage(p: Plan, model, masks: Masks, rdir: Path, device, progress: bool) -> None:
    state = Checkpointer.load(rdir / paths.CHECKPOINT)
    start, opt_state, rows = 0, None, []
    if state is not None:
        model.load_state_dict(state["model"])
        start, opt_state, rows = state["step"], state["optimizer"], state["rows"]
    metrics = MetricRows(rdir / paths.METRICS, rows)
    callbacks = [Progress(f"{p.config.method}", progress), metrics,
                 Checkpointer(rdir / paths.CHECKPOINT, metrics)]
    apply_(model, masks)
    train(model, p.train_data, p.recipe, seed=p.config.seed, masks=masks, device=device,
          start_step=start, optimizer_state=opt_state, callbacks=callbacks,
          precision=p.config.precision)


def describe(p: Plan) -> dict:
    """What ``config.json`` records: the config, the resolved recipe, the software."""
    from dataclasses import asdict
    return dict(config=p.config.to_dict(), hash=p.config.hash(), recipe=asdict(p.recipe),
                versions=dict(torch=torch.__version__, python=platform.python_version()),
                non_default=p.config.non_default())
