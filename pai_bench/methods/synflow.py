"""SynFlow (Tanaka, Kunin, Yamins & Ganguli, NeurIPS 2020): iterative synaptic flow, no data."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pai_bench.methods.base import Scorer, ScoringContext
from pai_bench.methods.helpers import linearize_, weights
from pai_bench.errors import ConfigError, ScoreError

DTYPES = {"float64": torch.float64, "float32": torch.float32}
ROUNDS = 100  # the paper's schedule: 100 rounds, kept fraction d^(k/100) after round k


@dataclass
class SynFlow(Scorer):
    """Score = |θ ⊙ dR/dθ|, R = 1ᵀ f(1; |θ|): the synaptic flow through each weight.

    f(·; |θ|) is the network with every parameter and buffer replaced by its absolute value and
    BatchNorm in eval mode (``methods.helpers.linearize_``); its input is one all-ones example of
    ``input_shape`` and R sums its outputs. No data, no labels: ``needs_data = False``.

    Derivation of the conservation law that motivates it: without biases and BatchNorm, every
    path from the input to an output crosses each layer once, so R = Σ_paths Π_{θ on path} |θ|
    is homogeneous of degree 1 in the weights of any one layer, and Euler's theorem gives
    ``Σ_{θ in layer} θ dR/dθ = R``: **the scores of every layer sum to R**. A big layer's
    scores are therefore small, which is why one-shot pruning by them would empty big layers
    first; re-scoring after every small step (``default_rounds = 100`` rounds, run by
    ``pai_bench.scoring.compute_masks``) keeps every layer alive (no layer collapse).

    Precision: R grows exponentially with depth. At initialization (seed 0) it is about 1e54 on
    ResNet-56, 2e106 on ResNet-110 and 1e56 on ResNet-50, beyond float32's 3.4e38: float32 gives
    inf/NaN there (docs/protocol.md). ``dtype`` defaults to float64; a non-finite R raises ScoreError.
    The scorer linearizes ``ctx.model`` in place (its private copy), so no copy of the network is
    built per round: the model stays float64, and ``compute_masks`` restores its values (exactly:
    float32 -> float64 is exact), with the masks applied, before each round.

    On a transformer (``cifar_vit``) the score is computed as defined, on the |θ| network (the
    position embedding, LayerNorm and patch embedding made positive too), but the derivation
    does not hold: softmax attention multiplies activations (q kᵀ) and LayerNorm divides by
    them, so R is not a sum over paths of weight products, not homogeneous in a layer's
    weights, and a layer's scores need not sum to R. What is kept is the weights with the
    largest |θ ⊙ dR/dθ| of that network: a data-free saliency, with no conservation law behind
    its protection against layer collapse.
    """

    name = "synflow"
    color, marker = "tab:purple", "P"
    needs_data = False
    default_rounds = ROUNDS
    dtype: str = "float64"

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ConfigError(f"option 'dtype' of method 'synflow' must be one of "
                              f"{', '.join(DTYPES)}, got {self.dtype!r}")

    def score(self, ctx: ScoringContext) -> dict[str, Tensor]:
        dtype = DTYPES[self.dtype]
        model = linearize_(ctx.model, dtype)
        names = list(ctx.masks)
        params = weights(model, names)
        r = model(torch.ones(1, *ctx.input_shape, dtype=dtype, device=ctx.device)).sum()
        if not bool(torch.isfinite(r)):
            raise ScoreError(f"SynFlow's R (sum of the outputs of the |θ| network) is {r.item()} "
                             f"in {self.dtype}: it overflowed; use dtype=float64")
        grads = torch.autograd.grad(r, params, allow_unused=True, materialize_grads=True)
        # In place on the fresh gradients. |.| is the definition: θ ⊙ dR/dθ >= 0 already when
        # every layer's input is non-negative (ReLU nets), not if, e.g., a layer follows a BN.
        return {n: g.mul_(p.detach()).abs_() for n, g, p in zip(names, grads, params)}
