"""The model zoo: one registry of networks, one factory, and the helpers pruning needs.

Everything outside this package builds networks through :func:`create_model`, finds the weights
a pruner may touch through :func:`prunable_names`, and prices a mask through :func:`layer_macs`.

Adding a model (the extension point) is one registration in a family module::

    MODELS.register(ModelSpec(
        name="cifar_vgg_11", build=_build_vgg11, recipe=recipes.CIFAR, dataset="cifar10",
        description="VGG-11 for CIFAR (open_lth)"))

    model = create_model("cifar_vgg_11", num_classes=10, input_shape=(3, 32, 32), seed=0)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from pai_bench.errors import ConfigError
from pai_bench.models.base import INITS, MODELS, ModelSpec
from pai_bench.recipes import CIFAR, Recipe
from pai_bench.models import cifar_resnet, cifar_vgg, imagenet_resnet, mlp, vit  # noqa: F401 (registers)

# The layer types whose weights are prunable (docs/protocol.md: every conv and linear layer, the
# output layer and 1x1 shortcuts included; never biases or BatchNorm).
PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)
_BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)





def create_model(
    name: str,
    *,
    num_classes: int,
    input_shape: tuple[int, int, int],
    seed: int,
    width: int | None = None,
) -> nn.Module:
    """Build model ``name`` and initialize it from ``seed`` alone.

    Same seed, same arguments -> bit-identical ``state_dict``. Torch's global RNG is left exactly
    as it was (docs/architecture.md): layer constructors draw their default init from it, so building runs
    inside ``fork_rng``, seeded too so that any parameter :func:`initialize` might not cover is
    still a function of ``seed``.
    """
    spec = MODELS.get(name)
    if width is not None:
        if not spec.has_width:
            raise ConfigError(f"model {name!r} has no width option; got width={width}")
        if width < 1:
            raise ConfigError(f"width must be >= 1, got {width}")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ConfigError(f"input_shape must be (channels, height, width), got {input_shape}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build(num_classes, tuple(input_shape), width)
    if spec.init == "paper":
        initialize(model, torch.Generator().manual_seed(seed))
    return model


def register_model(name: str, build, *, recipe: Recipe = CIFAR, dataset: str = "cifar10",
                   init: str = "paper", description: str = "", has_width: bool = False) -> None:
    """Register a network: ``build(num_classes, input_shape, width)`` returns an ``nn.Module``
    (any: its conv and linear weights are the prunable ones).

    ``init="paper"`` re-initializes it as the paper's code does (Kaiming normal, BatchNorm
    weight U[0, 1], biases zero); ``init="keep"`` keeps the module's own initialization, drawn
    from the run's seed. ``recipe``: how ``--preset paper`` trains it. Example::

        pai_bench.register_model("tv_resnet18", lambda n, shape, width:
                                 torchvision.models.resnet18(num_classes=n), init="keep")
    """
    MODELS.register(ModelSpec(name=name, build=build, recipe=recipe, dataset=dataset,
                                    description=description or f"user model {name}",
                                    has_width=has_width, init=init))


@torch.no_grad()
def initialize(model: nn.Module, generator: torch.Generator) -> None:
    """Re-initialize ``model`` in place the way the paper's code (open_lth) does.

    Conv2d and Linear weights: ``kaiming_normal_`` with its defaults (fan_in, leaky_relu a=0,
    i.e. std sqrt(2 / fan_in)). BatchNorm: weight uniform in [0, 1] (open_lth's "uniform"
    BN init) and running statistics reset. Every bias (conv, linear, BN) zero, as docs/protocol.md
    says; open_lth itself zeroes only BN biases and leaves conv/linear biases at PyTorch's
    default, so a bias-free init is the one place we differ. All draws come from ``generator``
    (a CPU generator: the model must be on the CPU), never the global RNG.

    A network with an initialization of its own, an ``init_weights(generator)`` method (the
    vision transformer, ``models/vit.py``: Kaiming normal is for ReLU conv nets), is initialized
    by that method instead, so that create_model, the reinit check and NTK-SAP's re-draws agree.
    """
    own = getattr(model, "init_weights", None)
    if callable(own):
        own(generator)
        return
    for module in model.modules():
        if isinstance(module, PRUNABLE_TYPES):
            nn.init.kaiming_normal_(module.weight, generator=generator)
        elif isinstance(module, _BATCHNORM_TYPES):
            module.reset_running_stats()
            if module.weight is not None:
                nn.init.uniform_(module.weight, 0.0, 1.0, generator=generator)
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            nn.init.zeros_(bias)


def prunable_names(model: nn.Module) -> list[str]:
    """``"<module path>.weight"`` of every Conv2d and Linear, in ``named_modules()`` order.

    These are the keys of every score and mask dictionary. The output layer and the 1x1 shortcut
    convs are included; biases and BatchNorm parameters never are.
    """
    return [name for name, _ in _prunable_modules(model)]


def _prunable_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (f"{path}.weight" if path else "weight", module)
        for path, module in model.named_modules()
        if isinstance(module, PRUNABLE_TYPES)
    ]


def layer_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, int]:
    """Dense multiply-accumulates per example of each prunable layer, keyed by prunable name.

    Conv: ``out_h * out_w * out_channels * (in_channels / groups) * kh * kw``; linear:
    ``in * out`` (per output row). A dense weight costs the same per weight entry wherever the
    sparsity falls, so a mask costs ``sum(macs[n] * density[n])``. Measured with forward hooks on
    one zero input, on a copy in eval mode so the caller's model (BN running stats, mode, hooks)
    is untouched, and so every spatial size follows from the real forward pass.
    """
    probe = copy.deepcopy(model).eval()
    macs: dict[str, int] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs, output: torch.Tensor) -> None:
            per_output = module.weight[0].numel()  # (in / groups) * kh * kw, or in_features
            # A module called twice in one forward pass (weight sharing) costs twice.
            macs[name] = macs.get(name, 0) + (output[0].numel() * per_output)
        return record

    prunable = _prunable_modules(probe)
    for name, module in prunable:
        module.register_forward_hook(hook(name))
    first = next(probe.parameters())
    with torch.no_grad():
        probe(torch.zeros(1, *input_shape, dtype=first.dtype, device=first.device))
    # A layer the forward pass never reaches costs nothing, but it still gets a key.
    return {name: macs.get(name, 0) for name, _ in prunable}


@dataclass(frozen=True, eq=False)
class ModelFacts:
    """What a run needs to know of its network and never changes for a plan: the prunable
    weights (names in order, shapes), the shape of every state-dict entry (stored weights are
    validated against it) and the dense MACs per prunable layer (``layer_macs``)."""

    prunable: dict[str, tuple[int, ...]]
    state: dict[str, tuple[int, ...]]
    macs: dict[str, int]

    @property
    def total(self) -> int:
        """Prunable weights in all."""
        return sum(int(torch.Size(s).numel()) for s in self.prunable.values())


def model_facts(model: nn.Module, input_shape: tuple[int, int, int]) -> ModelFacts:
    """The ``ModelFacts`` of ``model`` (unchanged: ``layer_macs`` measures a copy)."""
    params = dict(model.named_parameters())
    return ModelFacts(prunable={n: tuple(params[n].shape) for n in prunable_names(model)},
                      state={k: tuple(v.shape) for k, v in model.state_dict().items()},
                      macs=layer_macs(model, input_shape))


__all__ = ["MODELS", "ModelSpec", "ModelFacts", "model_facts", "INITS", "create_model",
           "initialize", "prunable_names",
           "layer_macs", "register_model"]
