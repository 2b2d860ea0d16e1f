"""Effective sparsity (Vysogorets & Kempe 2021): kept weights that cannot affect the output.

A kept weight is *effective* when it lies on at least one path from the input to the output
through kept weights. Pruning at extreme sparsity leaves many kept weights stranded (their unit
has lost every incoming or every outgoing path), so the nominal sparsity understates the real
one, and a layer can collapse (nothing kept) or die (nothing effective).

Computation: the path-counting network. Replace every prunable weight by its 0/1 mask, every
other weight and bias by the identity's (BatchNorm: scale 1, shift 0, mean 0, variance 1; biases
0), feed an all-ones input in float64, and let ``R`` be the sum of the outputs. Then ``R`` counts
input-output paths, and ``m * dR/dm`` counts the paths through weight ``m``: it is positive
exactly for the effective weights. Counts grow like (fan-in)^depth and overflow float64 on deep
networks, so every layer's output is divided by its (detached) maximum: a positive rescaling
that changes no zero into non-zero or back.

Networks with LayerNorm (the vision transformer, ``models/vit.py``): every LayerNorm is made
the identity (a forward hook returns its input, as BatchNorm is made one above), and the input
is a fixed draw from U[1, 2] instead of all ones. With all-ones input every token is the same,
so the attention's softmax is flat whatever q and k are, and their gradients vanish: every
query and key weight would read ineffective. The network of masks is then no longer linear in
the input (softmax, GELU), so ``R`` counts nothing; but it is analytic, and at a generic
positive input a weight's gradient is non-zero exactly when the weight can change the output:
the same definition, tested at a point where nothing cancels by symmetry. (The conv nets and
the MLP, which have no LayerNorm, keep the all-ones input: their results are unchanged.)
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from pai_bench.masks import Masks
from pai_bench.models import PRUNABLE_TYPES

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
GENERIC_INPUT_SEED = 0  # the U[1, 2] input of networks with LayerNorm (module docstring)


def _path_network(model: nn.Module, masks: Masks) -> nn.Module:
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name in masks:
                p.copy_(masks[name].double())
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0)  # BatchNorm scales
        for module in net.modules():
            if isinstance(module, _NORMS):
                module.running_mean.zero_()
                module.running_var.fill_(1.0 - module.eps)  # (x - 0) / sqrt(1 - eps + eps) = x
    return net


def effective_masks(model: nn.Module, masks: Masks, input_shape: tuple[int, ...]) -> Masks:
    """The kept weights that lie on an input-output path (a subset of ``masks``)."""
    net = _path_network(model, masks)
    hooks = [m.register_forward_hook(lambda mod, inp, out: out / out.detach().abs().max()
                                      .clamp_min(torch.finfo(out.dtype).tiny))
             for m in net.modules() if isinstance(m, PRUNABLE_TYPES)]
    norms = [m for m in net.modules() if isinstance(m, nn.LayerNorm)]
    hooks += [m.register_forward_hook(lambda mod, inp, out: inp[0]) for m in norms]
    x = torch.ones(1, *input_shape, dtype=torch.float64)
    if norms:  # a generic positive input (module docstring)
        g = torch.Generator().manual_seed(GENERIC_INPUT_SEED)
        x = x + torch.rand(x.shape, generator=g, dtype=torch.float64)
    params = dict(net.named_parameters())
    for p in net.parameters():
        p.requires_grad_(p in {params[n] for n in masks})
    try:
        R = net(x).sum()
        grads = torch.autograd.grad(R, [params[n] for n in masks])
    finally:
        for h in hooks:
            h.remove()
    return Masks({n: masks[n] & (g != 0) for n, g in zip(masks, grads)})


def effective_summary(masks: Masks, eff: Masks) -> dict:
    """Effective sparsity, stranded (kept but ineffective) weights and dead layers (nothing
    effective), from the masks and their ``effective_masks``."""
    return dict(effective_sparsity=eff.sparsity(), ineffective_kept=masks.kept() - eff.kept(),
                dead_layers=[n for n in masks if int(eff[n].sum()) == 0])
