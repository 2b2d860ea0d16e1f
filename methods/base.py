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
from typing import Any, ClassVar

import torch
from torch import nn

from pai_bench.data import balanced_indices
from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.registry import Registry

METHODS: Registry[type["Method"]] = Registry("method")


class Method:
    """What every registered method is. Subclasses with a ``name`` register themselves.

    Options are dataclass fields with defaults (``--method-arg KEY=VALUE``); ``make_method``
    fills them from strings."""

    name: ClassVar[str] = ""
    after_training: ClassVar[bool] = False  # True for baselines: masks from the trained network
    # How figures draw it, the same in every figure (None: a deterministic pick from the name).
    color: ClassVar[str | None] = None
    marker: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            METHODS.register(cls.name, cls)

    @classmethod
    def description(cls) -> str:
        """The docstring's first line (``python -m pai_bench list``)."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


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
    """Base class of every pruning-at-initialization method. Subclass it with a ``name``."""

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

    def layer_densities(self, masks: Masks, density: float) -> dict[str, float] | None:
        """Per-layer densities this method imposes at overall ``density``, or None (the default:
        the run's global or layerwise threshold decides). Scores then rank within each layer."""
        return None


def make_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """Instantiate the method ``name``; option values given as strings are converted by type."""
    cls = METHODS.get(name)
    options = dict(options or {})
    fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    unknown = set(options) - set(fields)
    if unknown:
        raise ConfigError(f"method {name!r} has no option {sorted(unknown)[0]!r}; "
                          f"its options: {', '.join(fields) or 'none'}")
    for key, value in options.items():
        options[key] = _convert(name, key, value, fields[key])
    return cls(**options)


def _convert(method: str, key: str, value: Any, field: dataclasses.Field) -> Any:
    if not isinstance(value, str):
        return value
    kind = type(field.default) if field.default is not dataclasses.MISSING else str
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        return kind(value)
    except ValueError:
        raise ConfigError(f"option {key!r} of method {method!r} takes a {kind.__name__}, "
                          f"got {value!r}") from None
