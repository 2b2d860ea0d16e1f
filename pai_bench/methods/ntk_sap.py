"""NTK-SAP (Wang, Li & Sun, ICLR 2023): NTK-spectrum-aware pruning, no data, many weight draws."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from pai_bench.methods.base import Scorer, ScoringContext
from pai_bench.methods.helpers import check_count, check_positive, weights
from pai_bench.masks import apply_
from pai_bench.models import initialize

ROUNDS = 20  # the authors' script (scripts/run.sh): --prune-epochs 20, exponential schedule
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class NTKSAP(Scorer):
    """NTK-SAP: |dR/dc|, R = Σ_x ||f(x; θ⊙c) - f(x; (θ+Δθ)⊙c)||², the NTK trace; no data.

    R is a finite-difference estimate of the trace of the fixed-weight NTK (up to ε²), on
    Gaussian random inputs x ~ N(0, 1) of ``input_shape`` (no data: ``needs_data = False``) and a
    Gaussian perturbation Δθ ~ N(0, ε²) of the prunable weights (biases and BatchNorm are not
    perturbed). The derivative is taken at the mask c (1 for survivors), through *both* networks:
    ``dR/dc = θ ⊙ ∂R/∂w₁ + (θ+Δθ) ⊙ ∂R/∂w₂`` with w₁ = θ⊙c, w₂ = (θ+Δθ)⊙c, as the authors'
    code does (``weight_mask.grad`` of a model and its perturbed copy sharing the masks).

    Multi-sampling: before every batch of inputs the weights θ are re-drawn by the suite's
    initializer (``initialize(model, ctx.generator)``, masks re-applied), so the score is
    weight-agnostic; ``dR/dc`` is summed over the draws and |.| taken last, as the code does.
    ``resample=False`` keeps ``ctx.model``'s weights (one fixed draw; for checks).
    Draw order per batch (tests rely on it): re-initialization, then x, then Δθ layer by layer.

    BatchNorm, as in the authors' code: running statistics reset, one train-mode pass of θ⊙c
    on x with momentum 1 (running stats := this batch's statistics, no gradient), then *eval*
    mode for both networks, so the perturbed one uses the unperturbed one's statistics.

    Defaults and where they come from (github.com/YiteWang/NTK-SAP, read in the stored copy):
    ε = 0.01 (``--ntksap_epsilon`` default); ``samples`` R = 5 weight draws per round
    (``--ntksap_R 5`` in scripts/run.sh; the argparse default is 1); ``default_rounds`` = 20
    (``--prune-epochs 20`` in run.sh); inputs: ``torch.randn_like`` of the pruning loader's
    batches, i.e. 10 per class (``--prune-dataset-ratio 10``) in batches of 256
    (``--prune-batch-size``), a fresh draw of θ per batch: one batch of 100 for CIFAR-10.
    Not verified against the paper's text (only its abstract was readable here): whether the
    paper states these same values; the run.sh values are for ResNet-20 on CIFAR-10.
    Our choices: x and Δθ come from ``ctx.generator`` (the code uses the global RNG); the
    initializer is the suite's (Kaiming normal, BN weight U[0, 1]), except for a network with its
    own (``models.initialize``: the vision transformer's truncated normal, std 0.02).

    On a transformer (``cifar_vit``): computed as defined, the NTK trace estimate of the network
    as it is (LayerNorm, softmax attention; there is no BatchNorm to fix); the re-draws are the
    ViT's own initialization, and Δθ ~ N(0, ε²) with ε = 0.01 is half the std of its weights
    (on the conv nets, with Kaiming's std sqrt(2 / fan_in), a far smaller fraction).
    """

    name = "ntk_sap"
    color, marker = "tab:brown", "v"
    needs_data = False
    default_rounds = ROUNDS
    epsilon: float = 0.01
    samples: int = 5
    inputs_per_class: int = 10
    batch_size: int = 256
    resample: bool = True

    def __post_init__(self):
        check_positive(self.name, epsilon=self.epsilon)
        check_count(self.name, samples=self.samples, inputs_per_class=self.inputs_per_class,
                    batch_size=self.batch_size)

    def score(self, ctx: ScoringContext) -> dict[str, Tensor]:
        names = list(ctx.masks)
        total = self.inputs_per_class * ctx.num_classes
        scores: list[Tensor] = []
        for _ in range(self.samples):
            for start in range(0, total, self.batch_size):
                if self.resample:
                    _redraw_(ctx)
                size = min(self.batch_size, total - start)
                grads = self._mask_gradient(ctx, names, size)
                scores = grads if not scores else [s.add_(g) for s, g in zip(scores, grads)]
        return {n: s.abs_() for n, s in zip(names, scores)}

    def _mask_gradient(self, ctx: ScoringContext, names: list[str], size: int) -> list[Tensor]:
        """dR/dc for one batch of ``size`` random inputs at the model's current weights."""
        model, g = ctx.model, ctx.generator
        theta = [p.detach() for p in weights(model, names)]  # θ⊙c: pruned weights are zero
        dtype = theta[0].dtype
        x = torch.randn(size, *ctx.input_shape, generator=g, dtype=dtype).to(ctx.device)
        keep = [ctx.masks[n].to(ctx.device, dtype) for n in names]
        # Δθ is drawn for every weight (pruned ones too, so the stream does not depend on the
        # mask), then masked: the perturbed network is (θ+Δθ)⊙c.
        w2 = [(t + torch.randn(t.shape, generator=g, dtype=dtype).to(ctx.device)
               .mul_(self.epsilon)).mul_(k).requires_grad_() for t, k in zip(theta, keep)]
        w1 = [t.clone().requires_grad_() for t in theta]
        _batch_statistics_(model, x)
        out1 = functional_call(model, dict(zip(names, w1)), (x,))
        out2 = functional_call(model, dict(zip(names, w2)), (x,))
        r = (out1 - out2).pow(2).sum()
        grads = torch.autograd.grad(r, w1 + w2, allow_unused=True, materialize_grads=True)
        g1, g2 = grads[:len(names)], grads[len(names):]
        # Chain rule through w₁ = θ⊙c and w₂ = (θ+Δθ)⊙c; pruned weights (c = 0) score 0.
        return [(a.mul_(t).add_(b.mul_(w.detach()))).mul_(k)
                for a, b, t, w, k in zip(g1, g2, theta, w2, keep)]


@torch.no_grad()
def _batch_statistics_(model: nn.Module, x: Tensor) -> None:
    """BatchNorm running stats := the statistics of ``x``'s batch, then eval mode (the code's
    ``reset_BN``, momentum 1, one train-mode forward pass, ``model.eval()``)."""
    norms = [m for m in model.modules() if isinstance(m, _BATCHNORM)]
    if norms:
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = 1.0
        model.train()
        model(x)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    model.eval()


def _redraw_(ctx: ScoringContext) -> None:
    """A fresh, independent initialization of ``ctx.model`` from ``ctx.generator``, masked.

    ``initialize`` draws with a CPU generator, so a model on another device is drawn on a CPU
    copy and loaded back (same values wherever the model lives)."""
    model = ctx.model
    if ctx.device.type == "cpu":
        initialize(model, ctx.generator)
    else:
        cpu = copy.deepcopy(model).cpu()
        initialize(cpu, ctx.generator)
        model.load_state_dict(cpu.state_dict())
    apply_(model, ctx.masks)
