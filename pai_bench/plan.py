"""A run's plan: its validated config with every name resolved, its data, and its weights.

Below both the runner and the shared dense run (``pai_bench.dense``), which read the same plan:
``make_plan`` checks every name and option before anything is loaded or written; ``load_data``
adds the examples; the methods of ``Plan`` build the network at any point of its life (seeded
initialization, a step of dense training, the start of sparse training).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pai_bench.baselines import default_rewind_step
from pai_bench.config import RunConfig, resolve_recipe, resolve_subsets
from pai_bench.data import DATASETS, DatasetSpec, load_split
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.methods import METHODS, Method, make_method
from pai_bench.models import MODELS, ModelSpec, create_model
from pai_bench.recipes import Recipe, steps_per_epoch
from pai_bench.sanity_checks import CHECKS, Check
from pai_bench.scoring import compute_masks
from pai_bench.seeding import derive_seed, generator


@dataclass
class Plan:
    """A validated config with everything resolved: specs, recipe, method, check, data."""

    config: RunConfig
    model_spec: ModelSpec
    data_spec: DatasetSpec
    recipe: Recipe
    method: Method
    check: Check
    train_data: Any = None  # pai_bench.data.Split, set by load_data
    test_data: Any = None

    @property
    def is_baseline(self) -> bool:
        return self.method.after_training

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
        if self.is_baseline:  # prune-retrain levels (baselines.Baseline.levels)
            return self.method.levels(self.config)
        if self.config.rounds is not None:
            return self.config.rounds
        return self.method.default_rounds

    def rewind_step(self) -> int:
        c = self.config
        return c.rewind_iter if c.rewind_iter is not None else default_rewind_step(self.total_steps)

    @property
    def num_classes(self) -> int:
        """The data set's classes (counted in the data when the spec cannot know: imagefolder)."""
        return self.train_data.num_classes if self.train_data is not None \
            else self.data_spec.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of a network input: the spec's, or the data's where only the files know
        it (imagefolder)."""
        if self.train_data is None or min(self.data_spec.input_shape) > 0:
            return self.data_spec.input_shape
        return tuple(self.train_data.get(torch.tensor([0]))[0].shape[1:])

    def mask_source(self) -> RunConfig:
        """The run whose method masks this run's masks derive from: itself with no check,
        unless the check changes the scoring itself (invert). Checks that change only weights or
        positions (shuffle, reinit) share the masks of the unmodified run."""
        return self.config if self.check.invert else dataclasses.replace(self.config, check="none")

    def build_model(self, stream: str = "init") -> torch.nn.Module:
        """The network, initialized from the run's seeded ``stream``."""
        return create_model(self.config.model, num_classes=self.num_classes,
                            input_shape=self.input_shape,
                            seed=derive_seed(self.config.seed, stream), width=self.config.width)

    def model_at(self, dense, step: int) -> torch.nn.Module:
        """The network after ``step`` steps of dense training (step 0: the initialization);
        ``dense``: the run's ``pai_bench.dense.DenseRun``."""
        model = self.build_model()
        if step:
            model.load_state_dict(dense.state_at(step))
        return model

    def start_state(self, dense, trained: dict | None = None) -> dict:
        """The weights the sparse network starts training from (before masking), with the check
        applied. ``trained``: what a baseline that starts from trained weights starts from (the
        previous level's, ``runner.start_weights``); default the dense network's final ones."""
        if self.is_baseline and self.method.start == "trained":
            state = trained if trained is not None else dense.state_at(self.total_steps)
        else:
            state = self.model_at(dense, self.start_step()).state_dict()
        return self.check.weights(state, lambda: self.build_model("reinit").state_dict())

    def score_masks(self, scorer, model: torch.nn.Module, density: float, rounds: int, device,
                    current: Masks | None = None) -> Masks:
        """``scorer``'s masks of ``model`` at ``density``, with the run's scope, check and
        seeded "score" stream."""
        return compute_masks(scorer, model, density=density, rounds=rounds,
                             scope=self.config.scope, current=current, lowest=self.check.invert,
                             data=self.train_data if scorer.needs_data else None,
                             num_classes=self.num_classes, input_shape=self.input_shape,
                             generator=generator(self.config.seed, "score"), device=device)


def make_plan(config: RunConfig) -> Plan:
    """Validate every name and option of ``config`` (ConfigError on the first bad one)."""
    model_spec = MODELS.get(config.model)
    data_spec = DATASETS.get(config.dataset)
    method = make_method(config.method, dict(config.method_args))
    check = CHECKS.get(config.check)
    if config.width is not None and not model_spec.has_width:
        raise ConfigError(f"model {config.model!r} takes no width option")
    if config.prune_at and method.after_training:
        raise ConfigError(f"--prune-at applies to methods at initialization; {config.method!r} "
                          f"prunes after training")
    if config.rewind_iter is not None and getattr(method, "start", None) != "rewind":
        rewinding = [n for n, cls in METHODS.items() if getattr(cls, "start", None) == "rewind"]
        raise ConfigError(f"--rewind-iter applies to the methods that rewind "
                          f"({', '.join(rewinding)}), not to {config.method!r}")
    if method.after_training:
        method.levels(config)  # ConfigError on rounds a baseline does not take
    recipe = resolve_recipe(config, model_spec.recipe)
    return Plan(config, model_spec, data_spec, recipe, method, check)


def load_data(p: Plan, data_root: Path | None, cache_dir: Path | None = None) -> Plan:
    """``p`` with its training and test splits (the subsets drawn with the run's seed)."""
    train_subset, test_subset = resolve_subsets(p.config)
    seed = derive_seed(p.config.seed, "subset")
    # a preset's subset takes at most the data set; an explicit --subset must fit
    p.train_data = load_split(p.config.dataset, data_root, "train", subset=train_subset,
                              seed=seed, cache_dir=cache_dir, at_most=p.config.subset is None)
    p.test_data = load_split(p.config.dataset, data_root, "test", subset=test_subset,
                             seed=seed, cache_dir=cache_dir,
                             at_most=p.config.test_subset is None)
    if p.train_data.classes and p.test_data.classes and \
            tuple(p.train_data.classes) != tuple(p.test_data.classes):
        raise ConfigError(f"the training and test splits of {p.config.dataset!r} have different "
                          f"classes: {list(p.train_data.classes)[:5]} vs "
                          f"{list(p.test_data.classes)[:5]}")
    for name, step in (("prune_at", p.config.prune_at), ("rewind step", p.start_step())):
        if step >= p.total_steps:
            raise ConfigError(f"{name} {step} is not before the end of training "
                              f"({p.total_steps} steps)")
    return p
