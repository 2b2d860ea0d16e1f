"""Arithmetic shared by the scorers (docs/architecture.md): loss gradients on a batch, the |θ| network.

Nothing here reads or writes ``.grad``: every gradient comes from ``torch.autograd.grad``, which
returns fresh tensors, so a stale ``.grad`` left on a model by earlier training can never leak
into a score (the reference code leaks it into GraSP and SynFlow, docs/protocol.md). Gradients are
taken with ``allow_unused=True, materialize_grads=True``: a weight that the output does not
depend on gets a zero gradient, hence a zero score, rather than an error.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pai_bench.errors import ConfigError
from pai_bench.models import prunable_names


def check_positive(method: str, **options: float) -> None:
    """ConfigError naming the first option of ``method`` that is not a finite number > 0.

    ``not value > 0`` alone lets inf through: GraSP at temperature inf divides every logit to 0,
    so every score is equal, layers collapse, and the run still "finishes" (issue 25, #11)."""
    for key, value in options.items():
        if not _is_number(value) or not math.isfinite(value) or not value > 0:
            raise ConfigError(f"option {key!r} of method {method!r} must be a finite number "
                              f"> 0, got {value!r}")


def check_count(method: str, minimum: int = 1, **options: int) -> None:
    """ConfigError naming the first option of ``method`` that is not an integer >= ``minimum``
    (a count: examples, samples, steps; 2.5 examples per class, or inf steps, mean nothing)."""
    for key, value in options.items():
        if not (_is_number(value) and isinstance(value, int)) or value < minimum:
            raise ConfigError(f"option {key!r} of method {method!r} must be an integer "
                              f">= {minimum}, got {value!r}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def weights(model: nn.Module, names: Sequence[str]) -> list[Tensor]:
    """The parameters ``names`` of ``model``, in that order, set to require gradients."""
    params = dict(model.named_parameters())
    return [params[n].requires_grad_(True) for n in names]


def chunks(x: Tensor, y: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor, float]]:
    """Consecutive slices ``(x_c, y_c, n_c / N)`` of at most ``batch_size`` examples.

    The weight ``n_c / N`` turns per-chunk means into the mean over all N examples.
    """
    n = len(x)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield x[start:stop], y[start:stop], (stop - start) / n


def mean_over_chunks(x: Tensor, y: Tensor, batch_size: int | None,
                     per_chunk: Callable[[Tensor, Tensor], Sequence[Tensor]]) -> list[Tensor]:
    """``sum_c (n_c / N) * per_chunk(x_c, y_c)`` over chunks of at most ``batch_size`` examples.

    When ``per_chunk`` returns a derivative of a chunk's *mean* loss, this is the derivative of
    the mean loss over all N examples (exact when examples do not interact; see ``gradients``).
    The one chunked-accumulation loop of the scorers (gradients, GraSP's Hessian-gradient
    product); the first chunk's fresh tensors become the accumulators.
    """
    total: list[Tensor] = []
    for xc, yc, share in chunks(x, y, batch_size or len(x)):
        parts = per_chunk(xc, yc)
        if not total:
            total = [g.mul_(share) for g in parts]
        else:
            for acc, g in zip(total, parts):
                acc.add_(g, alpha=share)
    return total


def cross_entropy(model: nn.Module, x: Tensor, y: Tensor, temperature: float = 1.0) -> Tensor:
    """Mean cross-entropy of the logits divided by ``temperature`` (GraSP's T; 1 for SNIP)."""
    return F.cross_entropy(model(x) / temperature, y)


def gradients(model: nn.Module, x: Tensor, y: Tensor, names: Sequence[str] | None = None, *,
              batch_size: int | None = None, temperature: float = 1.0) -> dict[str, Tensor]:
    """``{name: dL/dw}`` for the prunable weights ``names`` (default: all of ``model``'s).

    L is the mean cross-entropy over the N examples of ``(x, y)``. With ``batch_size`` < N the
    forward passes run on chunks and the gradients are averaged with weights n_c / N:
    ``sum_c (n_c / N) * grad(mean_{i in c} l_i) = grad(mean_i l_i)``. That identity is exact when
    examples do not interact; BatchNorm in train mode normalizes each chunk with its own batch
    statistics, so there a chunked gradient is close to, not equal to, the one-batch gradient.
    The model's mode is left as it is (the caller picks train or eval).
    """
    names = list(names) if names is not None else prunable_names(model)
    params = weights(model, names)

    def grad(xc: Tensor, yc: Tensor) -> Sequence[Tensor]:
        return torch.autograd.grad(cross_entropy(model, xc, yc, temperature), params,
                                   allow_unused=True, materialize_grads=True)
    return dict(zip(names, mean_over_chunks(x, y, batch_size, grad)))


@torch.no_grad()
def linearize_(model: nn.Module, dtype: torch.dtype = torch.float64) -> nn.Module:
    """SynFlow's network, in place: every floating parameter and buffer -> |value| in ``dtype``.

    BatchNorm goes to eval mode, so it is the fixed affine map
    ``|γ| (x - |μ|) / sqrt(|σ²| + eps) + |β|`` of its running statistics. Taking |.| of the
    buffers too follows Tanaka et al.'s code, which applies ``abs_`` to the whole
    ``state_dict``; at initialization μ = 0 and σ² = 1, so it changes nothing there. Integer
    buffers (``num_batches_tracked``) are left alone. Returns ``model``.
    """
    model.to(dtype).eval()
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            tensor.abs_()
    return model


def linearized_copy(model: nn.Module, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A linearized (see ``linearize_``) deep copy of ``model``; ``model`` is untouched."""
    return linearize_(copy.deepcopy(model), dtype)
