"""A run's plan: its validated config with every name resolved, then its data and model facts.

Made once, at the entry point, and handed down (nothing below re-plans, re-resolves or re-reads
what it was given). ``make_plan`` checks every name and option before anything is loaded or
written; ``with_data`` returns a new plan holding the examples and the ``ModelFacts`` of the
network (prunable names and shapes, counts, MACs: one network built to learn them). A plan is
immutable; the method (``plan.method``) answers every question of *how* the run goes: where its
training starts, how many rounds, how much dense training it builds on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pai_bench.config import RunConfig, resolve_recipe, resolve_subsets
from pai_bench.data import DATASETS, DatasetSpec, load_split
from pai_bench.errors import ConfigError
from pai_bench.methods import Method, make_method
from pai_bench.models import MODELS, ModelFacts, ModelSpec, create_model, model_facts
from pai_bench.pruning import keep_count
from pai_bench.recipes import Recipe, steps_per_epoch
from pai_bench.sanity_checks import CHECKS, Check
from pai_bench.seeding import derive_seed


@dataclass(frozen=True)
class Plan:
    """A validated config with everything resolved: specs, recipe, method, check; after
    ``with_data``, the data and the network's facts."""

    config: RunConfig
    model_spec: ModelSpec
    data_spec: DatasetSpec
    recipe: Recipe
    method: Method
    check: Check
    train_data: Any = None  # pai_bench.data.Split, from with_data
    test_data: Any = None
    facts: ModelFacts | None = None

    def with_data(self, train, test, facts: ModelFacts | None = None) -> "Plan":
        """This plan with its splits and the network's facts (measured on one build unless
        given: the levels of a chain share them)."""
        p = dataclasses.replace(self, train_data=train, test_data=test)
        facts = facts if facts is not None else model_facts(p.build_model(), p.input_shape)
        p = dataclasses.replace(p, facts=facts)
        for name, step in (("prune_at", p.config.prune_at), ("rewind step", p.start_step)):
            if step >= p.total_steps:
                raise ConfigError(f"{name} {step} is not before the end of training "
                                  f"({p.total_steps} steps)")
        if p.config.rounds is not None and p.config.rounds > facts.total:  # rounds of nothing
            raise ConfigError(f"--rounds {p.config.rounds} exceeds the {facts.total} prunable "
                              f"weights of {p.config.model!r}: give at most one round per weight "
                              f"(--rounds 1 to {facts.total})")
        if p.kept == 0:  # a network with no weight left trains nothing: not a result
            raise ConfigError(f"--sparsity {p.config.sparsity} keeps none of the {facts.total:,} "
                              f"prunable weights of {p.config.model!r}: give a sparsity below "
                              f"{1 - 0.5 / facts.total:.9g}")
        p.method.check_plan(p)  # what a method can only check against the network
        return p

    @property
    def spe(self) -> int:
        return steps_per_epoch(len(self.train_data), self.recipe.batch_size)

    @property
    def total_steps(self) -> int:
        return self.recipe.total_steps(self.spe)

    @property
    def start_step(self) -> int:
        """The schedule step the sparse network's training starts at (the method's choice)."""
        return self.method.start_step(self)

    @property
    def rounds(self) -> int:
        """Pruning rounds (prune-retrain levels for a baseline): the method's answer."""
        return self.method.rounds(self.config)

    @property
    def kept(self) -> int:
        """Weights the run's masks keep: exact, ``round(total * density)``."""
        return keep_count(self.facts.total, self.config.density)

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

    def level(self, config: RunConfig) -> "Plan":
        """The plan of another level of this run's chain (same data, network and facts)."""
        return make_plan(config, method=self.method).with_data(self.train_data, self.test_data,
                                                               self.facts)


def make_plan(config: RunConfig, method: Method | None = None) -> Plan:
    """Validate every name and option of ``config`` (ConfigError on the first bad one).
    ``method``: the method instance when the entry point made it (``--masks``: it holds the
    file's masks)."""
    model_spec = MODELS.get(config.model)
    data_spec = DATASETS.get(config.dataset)
    method = method if method is not None else make_method(config.method,
                                                           dict(config.method_args))
    check = CHECKS.get(config.check)
    if config.width is not None and not model_spec.has_width:
        raise ConfigError(f"model {config.model!r} takes no width option")
    method.validate(config)
    recipe = resolve_recipe(config, model_spec.recipe)
    return Plan(config, model_spec, data_spec, recipe, method, check)


def load_data(p: Plan, data_root: Path | None, cache_dir: Path | None = None) -> Plan:
    """``p`` with its training and test splits (the subsets drawn with the run's seed)."""
    train_subset, test_subset = resolve_subsets(p.config)
    seed = derive_seed(p.config.seed, "subset")
    # a preset's subset takes at most the data set; an explicit --subset must fit
    train = load_split(p.config.dataset, data_root, "train", subset=train_subset, seed=seed,
                       cache_dir=cache_dir, at_most=p.config.subset is None,
                       what="--subset" if p.config.subset is not None else None)
    test = load_split(p.config.dataset, data_root, "test", subset=test_subset, seed=seed,
                      cache_dir=cache_dir, at_most=p.config.test_subset is None,
                      what="--test-subset" if p.config.test_subset is not None else None)
    if train.classes and test.classes and tuple(train.classes) != tuple(test.classes):
        raise ConfigError(f"the training and test splits of {p.config.dataset!r} have different "
                          f"classes: {list(train.classes)[:5]} vs {list(test.classes)[:5]}")
    return p.with_data(train, test)
