"""The pipeline of one run: init -> (dense training) -> score -> mask -> check -> train -> evaluate.

Each stage writes one artifact in the run's folder and is skipped when its artifact exists,
which is how a killed run resumes: masks are not recomputed, training continues from the last
checkpoint, and a finished run returns its stored summary without touching the data. The weights
a sparse network starts from are never stored: they are a deterministic function of the config
(the seeded initialization, or a snapshot of the shared dense run, ``pai_bench.dense``).
Everything that can be wrong with the input is checked before any folder is created.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import methods
from baselines import BASELINES, Baseline, default_rewind_step
from pai_bench import costs, paths
from pai_bench.callbacks import Checkpointer, MetricRows, Progress
from pai_bench.config import RunConfig, resolve_recipe, resolve_subsets
from pai_bench.data import DATASETS, load_split
from pai_bench.dense import DenseRun
from pai_bench.effective import effective_masks, effective_summary
from pai_bench.errors import ConfigError
from pai_bench.io import atomic_save_torch, atomic_write_json, read_json
from pai_bench.masks import Masks
from pai_bench.models import MODELS, create_model, layer_macs
from pai_bench.recipes import Recipe, steps_per_epoch
from pai_bench.scoring import compute_masks
from pai_bench.seeding import derive_seed, generator
from pai_bench.train import Diverged, evaluate, train
from sanity_checks import CHECKS, Check


def method_names() -> list[str]:
    return sorted(set(methods.SCORERS.names()) | set(BASELINES.names()))


def lookup_method(config: RunConfig) -> "methods.Scorer | Baseline":
    if config.method in BASELINES:
        if config.method_args:
            raise ConfigError(f"baseline {config.method!r} takes no --method-arg")
        return BASELINES.get(config.method)
    if config.method not in methods.SCORERS:
        raise ConfigError(f"unknown method {config.method!r}; valid methods: "
                          f"{', '.join(method_names())}")
    return methods.make_scorer(config.method, dict(config.method_args))


@dataclass
class Plan:
    """A validated config with everything resolved: specs, recipe, method, check, data."""

    config: RunConfig
    model_spec: object
    data_spec: object
    recipe: Recipe
    method: "methods.Scorer | Baseline"
    check: Check
    train_data: object = None
    test_data: object = None

    @property
    def is_baseline(self) -> bool:
        return isinstance(self.method, Baseline)

    @property
    def spe(self) -> int:
        return steps_per_epoch(len(self.train_data), self.recipe.batch_size)

    @property
    def total_steps(self) -> int:
        return self.recipe.total_steps(self.spe)

    def start_step(self) -> int:
        """The schedule step the sparse network's training starts at."""
        if not self.is_baseline:
            return self.config.prune_at
        if self.method.restart_schedule:
            return 0
        return self.rewind_step()

    @property
    def rounds(self) -> int:
        """Pruning rounds actually used: the config's, else the method's default."""
        if self.config.rounds is not None:
            return self.config.rounds
        return 1 if self.is_baseline else self.method.default_rounds

    def rewind_step(self) -> int:
        c = self.config
        return c.rewind_iter if c.rewind_iter is not None else default_rewind_step(self.total_steps)


def plan(config: RunConfig) -> Plan:
    """Validate every name and option of ``config`` (ConfigError on the first bad one)."""
    model_spec = MODELS.get(config.model)
    data_spec = DATASETS.get(config.dataset)
    method = lookup_method(config)
    check = CHECKS.get(config.check)
    if config.width is not None and not model_spec.has_width:
        raise ConfigError(f"model {config.model!r} takes no width option")
    if config.prune_at and isinstance(method, Baseline):
        raise ConfigError(f"--prune-at applies to methods at initialization; {config.method!r} "
                          f"prunes after training")
    if config.rewind_iter is not None and config.method != "ltr":
        raise ConfigError(f"--rewind-iter applies to ltr only, not to {config.method!r}")
    recipe = resolve_recipe(config, model_spec.recipe)
    return Plan(config, model_spec, data_spec, recipe, method, check)


def load_data(p: Plan, data_root: Path | None, cache_dir: Path | None = None) -> Plan:
    train_subset, test_subset = resolve_subsets(p.config)
    seed = derive_seed(p.config.seed, "subset")
    p.train_data = load_split(p.config.dataset, data_root, "train", subset=train_subset,
                              seed=seed, cache_dir=cache_dir)
    p.test_data = load_split(p.config.dataset, data_root, "test", subset=test_subset,
                             seed=seed, cache_dir=cache_dir)
    for name, step in (("prune_at", p.config.prune_at), ("rewind step", p.start_step())):
        if step >= p.total_steps:
            raise ConfigError(f"{name} {step} is not before the end of training "
                              f"({p.total_steps} steps)")
    return p


def build_model(p: Plan, stream: str = "init") -> torch.nn.Module:
    return create_model(p.config.model, num_classes=p.data_spec.num_classes,
                        input_shape=p.data_spec.input_shape,
                        seed=derive_seed(p.config.seed, stream), width=p.config.width)


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
    dense = DenseRun(p, results_dir, device, progress, log, keep=(p.start_step(),))
    rdir = paths.run_dir(results_dir, config)
    rdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(rdir / paths.CONFIG, describe(p))
    t0 = time.perf_counter()
    masks, rounds, eff = masks_stage(p, dense, rdir, device, log)
    model = build_model(p)
    status, error = "finished", None
    try:
        train_stage(p, model, masks, lambda: start_state(p, dense), rdir, device,
                    progress)
        metrics = evaluate(model, p.test_data, device=device, precision=config.precision)
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
    atomic_write_json(rdir / paths.SUMMARY, summary)
    (rdir / paths.CHECKPOINT).unlink(missing_ok=True)
    return summary


def masks_stage(p: Plan, dense: DenseRun, rdir: Path, device, log):
    """The run's final masks (after the check), the masks of earlier rounds of iterative
    baselines, and the effective masks (``pai_bench.effective``) of the final ones."""
    path = rdir / paths.MASKS
    rounds = [Masks.load(f) for f in sorted(rdir.glob("round_*.masks.pt"))]
    if path.exists():
        masks = Masks.load(path)
        return masks, rounds, effective_masks(build_model(p), masks, p.data_spec.input_shape)
    t0 = time.perf_counter()
    if p.is_baseline:
        masks, rounds = baseline_masks(p, dense, rdir, device)
    else:
        masks = score_masks(p, p.method, model_at(p, dense, p.config.prune_at),
                            p.config.density, p.rounds, device)
    masks = p.check.masks(masks, generator(p.config.seed, "shuffle"))
    log(f"[pai-bench] masks from {p.config.method} in {time.perf_counter() - t0:.1f} s")
    eff = effective_masks(build_model(p), masks, p.data_spec.input_shape)
    masks.save(path, eff)
    return masks, rounds, eff


def score_masks(p: Plan, scorer, model, density: float, rounds: int, device,
                current: Masks | None = None) -> Masks:
    needs_data = getattr(scorer, "needs_data", True)
    return compute_masks(scorer, model, density=density, rounds=rounds,
                         scope=p.config.scope, current=current, lowest=p.check.invert,
                         data=p.train_data if needs_data else None,
                         num_classes=p.data_spec.num_classes, input_shape=p.data_spec.input_shape,
                         generator=generator(p.config.seed, "score"), device=device)


def model_at(p: Plan, dense: DenseRun, step: int) -> torch.nn.Module:
    """The network after ``step`` steps of dense training (step 0: the initialization)."""
    model = build_model(p)
    if step:
        model.load_state_dict(dense.state_at(step))
    return model


def baseline_masks(p: Plan, dense: DenseRun, rdir: Path, device) -> tuple[Masks, list[Masks]]:
    """Global magnitude of the trained weights; with K rounds, prune-rewind-retrain K times.

    Round r keeps ``density ** (r / K)``; its training (rounds before the last) is stored as
    ``round_<r>.pt`` so that a killed iterative baseline resumes at its last finished round.
    """
    from pai_bench.pruning import exponential_schedule
    trained, masks, rounds = model_at(p, dense, p.total_steps), None, []
    schedule = exponential_schedule(p.config.density, p.rounds)
    for r, d in enumerate(schedule, start=1):
        masks = score_masks(p, methods.make_scorer("magnitude"), trained, d, 1, device, masks)
        if r == len(schedule):
            return masks, rounds
        rounds.append(masks)
        path = rdir / f"round_{r}.pt"
        if not path.exists():
            model = build_model(p)
            model.load_state_dict(start_state(p, dense, with_check=False))
            train(model, p.train_data, p.recipe, seed=p.config.seed, masks=masks, device=device,
                  start_step=p.start_step(), precision=p.config.precision)
            masks.save(rdir / f"round_{r}.masks.pt")
            atomic_save_torch(model.state_dict(), path)
        trained.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    raise AssertionError("unreachable")


def start_state(p: Plan, dense: DenseRun, with_check: bool = True) -> dict:
    """The weights the sparse network starts training from (before masking)."""
    if p.is_baseline and p.method.start == "trained":
        state = dense.state_at(p.total_steps)
    else:
        state = model_at(p, dense, p.start_step()).state_dict()
    if not with_check:
        return state
    return p.check.weights(state, lambda: build_model(p, "reinit").state_dict())


def train_stage(p: Plan, model, masks: Masks, initial, rdir: Path, device, progress) -> None:
    state = Checkpointer.load(rdir / paths.CHECKPOINT)
    if state is None:
        model.load_state_dict(initial())
        start, opt_state, rows = p.start_step(), None, []
    else:
        model.load_state_dict(state["model"])
        start, opt_state, rows = state["step"], state["optimizer"], state["rows"]
    metrics = MetricRows(rdir / paths.METRICS, rows)
    callbacks = [Progress(p.config.method, progress), metrics,
                 Checkpointer(rdir / paths.CHECKPOINT, metrics)]
    train(model, p.train_data, p.recipe, seed=p.config.seed, masks=masks, device=device,
          start_step=start, optimizer_state=opt_state, callbacks=callbacks,
          precision=p.config.precision)


def dense_accuracy(dense: DenseRun, train_if_missing: bool) -> float | None:
    """The dense network's test accuracy: evaluated once for baselines (which trained it)."""
    if train_if_missing:
        return dense.summary()["test_accuracy"]
    path = dense.dir / paths.SUMMARY
    return read_json(path)["test_accuracy"] if path.exists() else None


def cost_of(p: Plan, round_masks: list[Masks]) -> dict:
    macs = layer_macs(build_model(p), p.data_spec.input_shape)
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
