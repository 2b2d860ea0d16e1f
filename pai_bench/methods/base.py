"""The method extension point: one registry, ``METHODS``, of scorers and baselines.

A method is either a ``Scorer`` (it prunes at initialization, or at ``prune_at``) or a
``Baseline`` (``pai_bench.baselines``: its masks come after training). Both register by
subclassing with a ``name``, into the same registry, so a name can never mean two things: a
plugin scorer named ``ltr`` is refused.

A scorer *only scores*: given a model and the current masks it returns one tensor per prunable
weight, higher = more worth keeping. Turning scores into masks (global or layerwise threshold,
iterative rounds, inversion) is done once for every method by ``pai_bench.pruning``.

Adding a method is a subclass with a ``name`` (subclassing registers it)::

    from dataclasses import dataclass
    from pai_bench.methods import Scorer, ScoringContext

    @dataclass
    class GradNorm(Scorer):
        name = "grad_norm"
        samples_per_class: int = 10      # an option: --method-arg samples_per_class=5

        def score(self, ctx: ScoringContext):
            x, y = ctx.examples(self.samples_per_class)
            grads = gradients(ctx.model, x, y)   # methods.helpers
            return {n: g.abs() for n, g in grads.items()}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from pai_bench.config import RunConfig, convert
from pai_bench.data import balanced_indices
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.registry import Registry

METHODS: Registry[type["Method"]] = Registry("method")


class Stage(Protocol):
    """What the pipeline of one run offers its method (``pai_bench.pipeline.runner.Stage``): the plan,
    the network at any step of the shared dense run, scoring with the run's scope, check and
    seed, and the trained network of the level above (the dense run, or an iterative
    baseline's previous level, ``pai_bench.pipeline.chain``)."""

    plan: Any  # pai_bench.pipeline.plan.Plan

    def model_at(self, step: int) -> nn.Module: ...
    def score(self, scorer: "Scorer", model: nn.Module, density: float, rounds: int,
              current: Masks | None = None) -> Masks: ...
    def previous_level(self) -> tuple[nn.Module, Masks | None]: ...
    def trained_state(self) -> dict: ...


class Method:
    """What every registered method is. Subclasses with a ``name`` register themselves.

    Options are dataclass fields with defaults (``--method-arg KEY=VALUE``); ``make_method``
    fills them from strings. A method decides its own pipeline: the runner asks it, never
    which kind of method it is, for the masks (``masks``), the weights training starts from
    (``start_state``), the step it starts at (``start_step``), the dense training it builds on
    (``dense_steps``), its rounds and its previous level (``parent``)."""

    name: ClassVar[str] = ""
    after_training: ClassVar[bool] = False  # True for baselines: masks from the trained network
    family: ClassVar[str] = "methods at initialization"  # its section of `list`
    takes_prune_at: ClassVar[bool] = True  # a sweep's prune-at points apply to it
    rewinds: ClassVar[bool] = False  # --rewind-iter applies to it
    # Sanity checks whose runs are this method again, in distribution (random pruning shuffled
    # is random pruning): their comparisons answer no question and join no verdict family.
    unchanged_by: ClassVar[tuple[str, ...]] = ()
    # How figures draw it, the same in every figure (None: a deterministic pick from the name).
    color: ClassVar[str | None] = None
    marker: ClassVar[str | None] = None
    linestyle: ClassVar[str] = "-"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            METHODS.register(cls)

    @classmethod
    def description(cls) -> str:
        """The docstring's first line (``python -m pai_bench list``)."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def validate(self, config: RunConfig) -> None:
        """ConfigError for settings this method does not take (before anything is loaded)."""
        if config.rewind_iter is not None and not self.rewinds:
            rewinding = [n for n, cls in METHODS.items() if cls.rewinds]
            raise ConfigError(f"--rewind-iter applies to the methods that rewind "
                              f"({', '.join(rewinding)}), not to {config.method!r}")
        if config.budget != "equal" and (self.after_training or config.prune_at):
            # A baseline's budget is what "matched" matches; a run pruned at k > 0 trains on
            # the shared dense run of the recipe's length, which a stretched schedule is not.
            what = "prunes after training" if self.after_training else \
                f"is pruned at step {config.prune_at}"
            raise ConfigError(f"--budget {config.budget} applies to methods at initialization "
                              f"pruned at step 0; {config.method!r} {what} (valid for it: "
                              f"--budget equal)")

    def check_plan(self, plan) -> None:
        """ConfigError for what only the network and data can show (``Plan.with_data``)."""

    def rounds(self, config: RunConfig) -> int:
        raise NotImplementedError

    def start_step(self, plan) -> int:
        """The schedule step the sparse network's training starts at."""
        raise NotImplementedError

    def dense_steps(self, plan) -> int:
        """Steps of the shared dense run this run builds on (0: none; the run's cost counts
        them, and a run built on the fully trained network reports its accuracy)."""
        raise NotImplementedError

    def needs_dense(self, config: RunConfig) -> bool:
        """Whether the run builds on the shared dense run (known before the data is: what a
        sweep's time estimate counts); ``dense_steps`` says how much of it, once it is."""
        return config.prune_at > 0

    def parent(self, config: RunConfig) -> RunConfig | None:
        """The run whose trained survivors this run prunes (iterative baselines); None."""
        return None

    def masks(self, stage: Stage) -> Masks:
        """The method's masks of the run, before any sanity check."""
        raise NotImplementedError

    def start_state(self, stage: Stage) -> dict:
        """The weights the sparse network starts training from (before the check and masks):
        the network at ``start_step``."""
        return stage.model_at(self.start_step(stage.plan)).state_dict()


@dataclass
class ScoringContext:
    """What a scorer may look at. ``model`` is a private copy: the scorer may change it freely.

    ``model`` has the current masks applied (pruned weights are zero), its gradients cleared, and
    is on ``device``. ``data`` is the training split (``None`` for data-free runs); examples come
    without augmentation. ``generator`` is the run's seeded "score" stream. ``density`` is the
    fraction of all prunable weights this round will keep (a method that builds its network to a
    budget, such as PHEW, reads it). ``original``: for a scorer that ``revives`` weights, the
    values of the prunable weights before the first round (pruned ones included); else None.
    """

    model: nn.Module
    masks: Masks
    data: Any  # pai_bench.data.Split | None
    num_classes: int
    input_shape: tuple[int, int, int]
    generator: torch.Generator
    device: torch.device
    density: float = 1.0
    original: dict[str, torch.Tensor] | None = None

    def examples(self, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``per_class`` examples of every class, drawn from the training split, on ``device``."""
        if self.data is None:
            raise ConfigError("this method needs training data, but the run has none")
        idx = balanced_indices(self.data.labels, per_class * self.num_classes,
                               self.num_classes, self.generator)
        x, y = self.data.get(idx)
        return x.to(self.device), y.to(self.device)


class Scorer(Method):
    """Base class of every pruning-at-initialization method. Subclass it with a ``name``.

    On the vision transformer (``models/vit.py``) the gradient-based scores (SNIP, iterative
    SNIP, FORCE, GraSP, |GraSP|, ProsPr) are computed exactly as defined: their derivations
    gate or perturb weights of a differentiable loss and assume neither ReLU nor convolution.
    SynFlow, NTK-SAP, PHEW and magnitude say in their docstrings what they compute there.
    """

    needs_data: ClassVar[bool] = True
    # Pruning rounds when the run does not choose (``compute_masks(rounds=None)``): 1 is one-shot;
    # SynFlow's paper schedule is 100. A property of the method, not an option of the scorer.
    default_rounds: ClassVar[int] = 1
    # False (every method but FORCE): a weight pruned in one round stays pruned, and each round
    # ranks the survivors only. True: every round ranks all the weights the scoring started with,
    # so a weight pruned earlier may come back; ``ScoringContext.original`` holds their values.
    revives: ClassVar[bool] = False

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        """Return ``{parameter name: score tensor}`` for every name in ``ctx.masks``."""
        raise NotImplementedError

    # The pipeline of a method at initialization: score the network at ``prune_at`` (step 0:
    # the initialization), train from there.
    def rounds(self, config: RunConfig) -> int:
        return config.rounds if config.rounds is not None else self.default_rounds

    def start_step(self, plan) -> int:
        return plan.config.prune_at

    def dense_steps(self, plan) -> int:
        return plan.config.prune_at

    def masks(self, stage: Stage) -> Masks:
        config = stage.plan.config
        return stage.score(self, stage.model_at(config.prune_at), config.density,
                           self.rounds(config))

    def layer_densities(self, masks: Masks, density: float) -> dict[str, float] | None:
        """Per-layer densities this method imposes at overall ``density``, or None (the default:
        the run's global or layerwise threshold decides). Scores then rank within each layer."""
        return None


def make_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """Instantiate the method ``name``; option values given as strings are converted by type
    (``pai_bench.config.convert``, the converter of every setting)."""
    cls = METHODS.get(name)
    options = dict(options or {})
    fields = {f.name: f for f in option_fields(cls)}
    unknown = set(options) - set(fields)
    if unknown:
        raise ConfigError(f"method {name!r} has no option {sorted(unknown)[0]!r}; "
                          f"its options: {', '.join(fields) or 'none'}")
    for key, value in options.items():
        default = fields[key].default
        kind = type(default) if default is not dataclasses.MISSING and default is not None \
            else str
        options[key] = convert(value, kind, f"option {key!r} of method {name!r}",
                               parse_text=True)
    return cls(**options)


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The options of method class ``cls``: its dataclass fields, but those marked
    ``metadata={"option": False}`` (state an entry point gives, such as a masks file's masks)."""
    if not dataclasses.is_dataclass(cls):
        return []
    return [f for f in dataclasses.fields(cls) if f.metadata.get("option", True)]
