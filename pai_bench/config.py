"""The run configuration: a frozen dataclass whose hash names its result folder.

The hash covers only the fields that differ from their defaults (open_lth's convention), so a new
field added later with a default leaves every existing hash, and every stored result, valid.
``tests/test_config.py`` pins a few hashes to keep it that way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pai_bench import recipes
from pai_bench.errors import ConfigError
from pai_bench.recipes import Recipe

PRESETS = ("paper", "smoke")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class RunConfig:
    """One pruned training run. Every field is part of the run's identity."""

    method: str
    model: str = "cifar_resnet_20"
    dataset: str = "cifar10"
    sparsity: float = 0.9          # fraction of prunable weights removed, in [0, 1)
    seed: int = 0
    preset: str = "paper"          # "paper": the model's recipe; "smoke": shrunk to ~1 minute
    epochs: int | None = None      # overrides of the preset's recipe
    batch_size: int | None = None
    lr: float | None = None
    subset: int | None = None      # class-balanced training examples (None: the preset's)
    test_subset: int | None = None
    width: int | None = None       # network width for models that take one
    scope: str = "global"          # "global" threshold over all layers, or "layerwise"
    rounds: int | None = None      # pruning rounds, exponential schedule (None: the method's)
    method_args: tuple[tuple[str, Any], ...] = field(default=())
    precision: str = "fp32"        # "bf16": bfloat16 autocast (about 1.75x faster on CPU)
    prune_at: int = 0              # scorers: optimizer steps of dense training before pruning
    rewind_iter: int | None = None  # ltr: the step rewound to (None: 2% of training)
    check: str = "none"            # a sanity check applied to the masks (sanity_checks/)

    def __post_init__(self):
        if not isinstance(self.sparsity, (int, float)) or not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in [0, 1), got {self.sparsity!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        _choice("preset", self.preset, PRESETS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("scope", self.scope, ("global", "layerwise"))
        for name in ("epochs", "batch_size", "subset", "test_subset", "width"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if not isinstance(self.prune_at, int) or self.prune_at < 0:
            raise ConfigError(f"prune_at must be a non-negative integer, got {self.prune_at!r}")
        if self.rewind_iter is not None and (not isinstance(self.rewind_iter, int)
                                             or self.rewind_iter < 0):
            raise ConfigError(f"rewind_iter must be a non-negative integer, "
                              f"got {self.rewind_iter!r}")
        if self.rounds is not None and (not isinstance(self.rounds, int) or self.rounds < 1):
            raise ConfigError(f"rounds must be >= 1, got {self.rounds!r}")
        # Option values are kept as strings so "5" and 5 name the same run; scorers convert them.
        object.__setattr__(self, "method_args",
                           tuple(sorted((str(k), str(v)) for k, v in self.method_args)))

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity

    def non_default(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                out[f.name] = value
            elif value != default:
                out[f.name] = [list(p) for p in value] if f.name == "method_args" else value
        return out

    def hash(self) -> str:
        text = json.dumps(self.non_default(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["method_args"] = [list(p) for p in self.method_args]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown config fields {sorted(unknown)}; valid: {sorted(known)}")
        d = dict(d)
        d["method_args"] = tuple(tuple(p) for p in d.get("method_args", ()))
        return cls(**d)


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {name} {value!r}; valid {name}s: {', '.join(valid)}")


def resolve_recipe(config: RunConfig, base: Recipe) -> Recipe:
    """The recipe a run trains with: the model's, shrunk by the preset, then the overrides."""
    recipe = base
    if config.preset == "smoke":
        recipe = recipe.with_epochs(recipes.SMOKE_EPOCHS)
    if config.epochs is not None:
        recipe = recipe.with_epochs(config.epochs)
    changes = {k: v for k, v in (("batch_size", config.batch_size), ("lr", config.lr))
               if v is not None}
    return dataclasses.replace(recipe, **changes)


def resolve_subsets(config: RunConfig) -> tuple[int | None, int | None]:
    """(training, test) subset sizes: explicit values, else the preset's (None = everything)."""
    smoke = config.preset == "smoke"
    train = config.subset or (recipes.SMOKE_TRAIN_SUBSET if smoke else None)
    test = config.test_subset or (recipes.SMOKE_TEST_SUBSET if smoke else None)
    return train, test
