"""The run configuration, defined once: typed settings in groups, and everything derived from them.

Every setting of a run is one field of ``RunConfig``, declared with the group it belongs to and
its help text (open_lth's hparams, flattened so that ``config.sparsity`` reads naturally):

========== ======================================================= ============================
group      fields                                                  what it decides
========== ======================================================= ============================
pruning    method, sparsity, scope, rounds, method_args, prune_at,  which weights survive
           rewind_iter, check, budget                               (and how long they train)
model      model, width                                             the network
data       dataset, subset, test_subset, data_digest                the examples
training   preset, epochs, batch_size, lr, precision, compile,      how it is trained
           cuda_graphs, sparse_kernels
seed       seed                                                     the replicate
========== ======================================================= ============================

From this one definition come, with no list written anywhere else:

* the command-line flags and their help (``pai_bench.cli.parser``), and the TOML keys of a sweep file
  (``pai_bench.sweeps.sweep``): a field with an ``axis`` is a sweep axis (``sparsities = [...]``), the
  others are shared settings under ``[run]``;
* the result-folder hash (``RunConfig.hash``): the fields that differ from their defaults, so a
  field added later with a default leaves every stored hash valid (``tests/test_config.py`` pins
  some);
* the dense-run key (``dense_config``): the data, model, training and seed groups, i.e. every
  run that trains the same dense network shares it;
* the setting key (``setting_fields``): every field but the seed (and the check where a table
  compares checks); ``pai_bench.analysis.results`` and ``pai_bench.analysis.table`` group runs by it.

Values are canonical before they are hashed: a sparsity is a float whether it came from TOML
(``0``), the CLI (``0.0``) or Python; counts and seeds are real integers (``True`` is refused).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from pai_bench import recipes
from pai_bench.errors import ConfigError
from pai_bench.fields import field
from pai_bench.pruning import SCOPES
from pai_bench.recipes import Recipe

GROUPS = ("pruning", "model", "data", "training", "seed")
DENSE_GROUPS = ("model", "data", "training", "seed")  # what the dense network depends on
PRESETS = ("paper", "smoke")
PRECISIONS = ("auto", "fp32", "bf16")
# ``budget``: "equal", the recipe's epochs of sparse training (every comparison of the paper);
# "matched", the total epochs of one-shot magnitude pruning after training (the dense
# training, then as long a retraining: ``MATCHED_FACTOR`` x the recipe's), for a method at
# initialization, whose schedule is stretched to it (``resolve_recipe``).
BUDGETS = ("equal", "matched")
SPARSE_KERNELS = ("off", "auto")  # pai_bench.sparse: off until measured faster per layer
MATCHED_FACTOR = 2
# Seeds derive their streams as ``seed * 1_000_003 + crc32(stream)`` modulo 2**63 - 1
# (``pai_bench.seeding``): below this bound no two seeds (and no two epochs' data orders) share
# a stream, so two replicates are never the same run under two names.
MAX_SEED = 2**32 - 1
# The optimizer multiplies float32 gradients by the learning rate: a larger one cannot be
# represented (torch: "value cannot be converted to type float without overflow").
MAX_LR = 3.4028234663852886e38
# The most pruning rounds a run may ask for (``--rounds``): far above every paper's schedule
# (SynFlow's 100; a baseline's rounds are prune-retrain levels, each a full training run), and
# low enough that a mistyped count is refused at once instead of scoring for days (one list of
# 10**8 densities alone is gigabytes). A run also takes at most one round per prunable weight
# (``plan.Plan.with_data``).
MAX_ROUNDS = 10_000
# The most epochs a run may ask for (``--epochs``): 50x the longest paper recipe (ImageNet's
# 90, CIFAR's 160-200), so a mistyped count is refused at once instead of training for years.
MAX_EPOCHS = 10_000


def setting(default: Any, group: str, help: str, kind: Callable = str, **meta):
    """A configuration field: ``fields.field`` with ``identity=True`` (part of the run's name)
    in ``group``. ``kind``: str, int, float or bool (how CLI, TOML and Python values are made
    canonical); the rest as ``fields.field`` says (``axis``, ``minimum``/``positive``: None is
    always allowed when it is the default, ``maximum``, ``flag``, ``cli_default``,
    ``sparse_only``: not part of the dense-run key, ``derived``: set by the entry point)."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; valid groups: {', '.join(GROUPS)}")
    return field(default, help, identity=True, group=group, kind=kind, **meta)


@dataclass(frozen=True)
class RunConfig:
    """One pruned training run. Every field is part of the run's identity."""

    # pruning: which weights survive
    method: str = setting(dataclasses.MISSING, "pruning", axis="methods",
                          help="a method at initialization or a baseline after training "
                               "(see `list`)")
    model: str = setting("cifar_resnet_20", "model", help="network (see `list`)")
    dataset: str = setting("cifar10", "data", help="data set (see `list`)")
    sparsity: float = setting(0.9, "pruning", kind=float, axis="sparsities",
                              help="fraction of prunable weights removed, in [0, 1)")
    seed: int = setting(0, "seed", kind=int, axis="seeds", minimum=0, maximum=MAX_SEED,
                        help="replicate: initialization, data order, scoring sample")
    preset: str = setting("paper", "training", choices=PRESETS,
                          help="training recipe: paper (the model's) or smoke (~1 minute)")
    epochs: int | None = setting(None, "training", kind=int, positive=True, minimum=1,
                                 maximum=MAX_EPOCHS,
                                 help="override the preset's epochs (milestones scale with it)")
    batch_size: int | None = setting(None, "training", kind=int, positive=True,
                                     help="override the preset's batch size")
    lr: float | None = setting(None, "training", kind=float, positive=True, maximum=MAX_LR,
                               help="override the preset's learning rate")
    subset: int | None = setting(None, "data", kind=int, positive=True,
                                 help="class-balanced training examples (default: the preset's)")
    test_subset: int | None = setting(None, "data", kind=int, positive=True,
                                      help="class-balanced test examples (default: the preset's)")
    width: int | None = setting(None, "model", kind=int, positive=True,
                                help="network width, for models that take one (CIFAR ResNets)")
    scope: str = setting("global", "pruning", choices=tuple(SCOPES),
                         help="one threshold over all layers (global) or one per layer")
    rounds: int | None = setting(None, "pruning", kind=int, positive=True, minimum=1,
                                 maximum=MAX_ROUNDS,
                                 help="pruning rounds, exponential schedule (default: the "
                                      "method's: 100 synflow, 60 iterative_snip and force, "
                                      "20 ntk_sap, else 1); for ltr, lottery_ticket and "
                                      "magnitude_after_training: prune-retrain levels, each "
                                      "a stored run (imp: levels follow from --sparsity)")
    method_args: tuple[tuple[str, Any], ...] = setting(
        (), "pruning", flag="--method-arg",
        help="an option of the method as KEY=VALUE, e.g. samples_per_class=5 (repeatable)")
    precision: str = setting("fp32", "training", choices=PRECISIONS, cli_default="auto",
                             help="auto: bf16 autocast where the device computes bfloat16 "
                                  "natively, else fp32 (resolved before the run is named); or "
                                  "fp32, bf16")
    prune_at: int = setting(0, "pruning", kind=int, axis="prune_at", minimum=0,
                            help="prune after this many steps of dense training instead of at "
                                 "step 0 (methods at initialization)")
    compile: bool = setting(False, "training", kind=bool,
                            help="train through torch.compile (a GPU option: compiling costs "
                                 "minutes, repaid over long runs)")
    cuda_graphs: bool = setting(False, "training", kind=bool,
                                help="each training step one replayed CUDA graph (forward, "
                                     "backward, SGD, masks): CUDA only, not with --compile")
    rewind_iter: int | None = setting(None, "pruning", kind=int, minimum=0,
                                      help="ltr and imp: the step rewound to (default: 2% of training)")
    check: str = setting("none", "pruning", axis="checks",
                         help="sanity check applied to the masks: none, shuffle, reinit, invert "
                              "(see `list`)")
    budget: str = setting("equal", "pruning", choices=BUDGETS,
                          help="training budget of a method at initialization: equal (the "
                               "recipe's epochs) or matched (the epochs one-shot magnitude "
                               "after training spends, its dense training included: "
                               f"{MATCHED_FACTOR} x the recipe's)")
    sparse_kernels: str = setting("off", "training", choices=SPARSE_KERNELS, sparse_only=True,
                                  help="auto: the pruned layers measured faster with sparse "
                                       "kernels (CPU, fp32; docs/sparse_kernels.md) "
                                       "train with them, the others dense; off: all dense")
    data_digest: str | None = setting(None, "data", derived=True,
                                      help="the fingerprint of the data set's files where its "
                                           "name does not fix them (imagefolder, a registered "
                                           "data set): set by the entry point (prepare.py)")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _canonical(f, getattr(self, f.name)))
        if not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(f"sparsity must be in [0, 1), got {self.sparsity!r}")

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity

    def non_default(self) -> dict[str, Any]:
        """The identity fields (``fields.field``) whose values differ from their defaults:
        what names the run (``hash``)."""
        out = {}
        for f in dataclasses.fields(self):
            if not f.metadata.get("identity", True):
                continue
            value = getattr(self, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
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
        return cls(**d)


def _canonical(f: dataclasses.Field, value: Any) -> Any:
    """``value`` of field ``f`` in its one canonical form, or a ConfigError naming it."""
    meta = f.metadata
    if f.name == "method_args":  # option values as strings: "5" and 5 name the same run
        return method_args(value)
    if value is None and f.default is None:
        return None
    value = convert(value, meta["kind"], f.name)
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"unknown {f.name} {value!r}; valid {f.name}s: "
                          f"{', '.join(meta['choices'])}")
    if meta["positive"] and not value > 0:
        what = "a positive integer" if meta["kind"] is int else "> 0"
        raise ConfigError(f"{f.name} must be {what}, got {value!r}")
    low, high = meta["minimum"], meta["maximum"]
    if meta["kind"] is float and high is not None and value > high:
        raise ConfigError(f"{f.name} must be at most {high:.4g}, got {value!r}")
    if meta["kind"] is int and high is not None and not low <= value <= high:
        raise ConfigError(f"{f.name} must be an integer in [{low}, {high}], got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{f.name} must be a non-negative integer, got {value!r}")
    return value


def method_args(value: Any) -> tuple[tuple[str, str], ...]:
    """KEY=VALUE pairs (a mapping, as TOML's ``{k = v}``, too), sorted, values as canonical
    strings (``option_text``); a key given twice is refused (which value would the method
    take?)."""
    items = value.items() if isinstance(value, Mapping) else value
    try:
        if isinstance(items, str) or any(isinstance(p, str) or len(p) != 2 for p in items):
            raise TypeError  # "ab" would unpack into the pair ("a", "b")
        pairs = tuple(sorted((str(k), option_text(v)) for k, v in items))
    except (TypeError, ValueError):
        raise ConfigError(f"method_args must be KEY=VALUE pairs, got {value!r}") from None
    keys = [k for k, _ in pairs]
    for key in dict.fromkeys(keys):
        if keys.count(key) > 1:
            given = [v for k, v in pairs if k == key]
            raise ConfigError(f"--method-arg {key} is given {len(given)} times "
                              f"({', '.join(given)}); give it once")
    return pairs


def option_text(value: Any) -> str:
    """A method option's value as the one text that names it: a finite number in its shortest
    form (``2``, ``2.0`` and ``2e0`` are one run: ``2``; ``0.50`` is ``0.5``), anything else
    as ``str`` gives it. The method converts it back by its option's type
    (``convert(parse_text=True)``), which reads an integral text as a float or an int alike."""
    if isinstance(value, bool):
        return str(value)
    text = str(value).strip()
    if "_" in text:  # Python's digit separators are no number on a command line
        return str(value)
    try:
        return str(int(text))
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return str(value)
    if not math.isfinite(number):
        return str(value)
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


BOOL_TEXT = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def convert(value: Any, kind: Callable, what: str, parse_text: bool = False) -> Any:
    """``value`` as a ``kind`` (str, int, float or bool), canonical: a float is a float even
    if written ``0``, an integral float is an int, ``True`` is no number, and no number is NaN
    or infinite. ``parse_text``: a string is parsed first (a method option from the command
    line, ``"5"``); otherwise a string where a number belongs is refused. The one converter of
    settings and method options; ConfigError names ``what``."""
    if parse_text and isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        try:
            value = BOOL_TEXT[text] if kind is bool else kind(float(text) if kind is int
                                                               and "." in text else text)
        except (KeyError, ValueError, OverflowError):
            raise ConfigError(f"{what} takes a {kind.__name__}, got {value!r}") from None
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{what} must be true or false, got {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{what} must be {'an integer' if kind is int else 'a number'}, "
                              f"got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{what} must be a finite number, got {value!r}")
        if kind is float:
            return float(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise ConfigError(f"{what} must be an integer, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string, got {value!r}")
    return value


def entry_defaults(cls: type = RunConfig) -> dict[str, Any]:
    """Defaults of the entry points (CLI, Python API, sweeps) that differ from the stored
    configuration's (``precision="auto"``, resolved per device before a run is named; the
    dataclass default stays ``fp32`` so that stored hashes never change)."""
    return {f.name: f.metadata["cli_default"] for f in dataclasses.fields(cls)
            if f.metadata.get("cli_default") is not None}


def fields_of(cls: type = RunConfig, groups: tuple[str, ...] = GROUPS) -> list[dataclasses.Field]:
    """The fields of ``cls`` in ``groups``, in declaration order."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("group") in groups]


def setting_fields(cls: type = RunConfig, exclude: tuple[str, ...] = ("seed",)) -> list[str]:
    """The fields that identify a setting: runs equal on these are replicates of one setting.

    Every field but the seed; tables that compare checks also exclude ``"check"``."""
    return [f.name for f in dataclasses.fields(cls) if f.name not in exclude]


def dense_fields(cls: type = RunConfig) -> list[str]:
    """The fields the dense network depends on: the data, model, training and seed groups
    (but the settings of the pruned network's training only, ``sparse_only``)."""
    return [f.name for f in fields_of(cls, DENSE_GROUPS) if not f.metadata.get("sparse_only")]


def dense_config(config: RunConfig) -> RunConfig:
    """The config naming the dense run behind ``config`` (pruning fields at their defaults)."""
    return type(config)(method="dense", sparsity=0.0,
                        **{k: getattr(config, k) for k in dense_fields(type(config))})


def resolve_recipe(config: RunConfig, base: Recipe) -> Recipe:
    """The recipe a run trains with: the model's, shrunk by the preset, then the overrides,
    then stretched to the ``budget`` (matched: ``MATCHED_FACTOR`` x the epochs)."""
    recipe = base
    if config.preset == "smoke":
        recipe = recipe.with_epochs(recipes.SMOKE_EPOCHS)
    if config.epochs is not None:
        recipe = recipe.with_epochs(config.epochs)
    if config.budget == "matched":  # the schedule stretched, milestones and warmup with it
        recipe = recipe.with_epochs(MATCHED_FACTOR * recipe.epochs)
    changes = {k: v for k, v in (("batch_size", config.batch_size), ("lr", config.lr))
               if v is not None}
    return dataclasses.replace(recipe, **changes)


def resolve_subsets(config: RunConfig) -> tuple[int | None, int | None]:
    """(training, test) subset sizes: explicit values, else the preset's (None = everything)."""
    smoke = config.preset == "smoke"
    train = config.subset or (recipes.SMOKE_TRAIN_SUBSET if smoke else None)
    test = config.test_subset or (recipes.SMOKE_TEST_SUBSET if smoke else None)
    return train, test
