"""One SGD step, dense vs masked at 90% sparsity: the cost of keeping pruned weights at zero.

``masked_inplace`` is the suite's mechanism (``masks.apply_`` after the optimizer step).
``masked_forward`` (``torch.nn.utils.parametrize``: weight * mask recomputed in every forward, as
``torch.nn.utils.prune`` does) is measured beside it as the rejected alternative.
Run: ``pytest benchmarks/test_masked_step.py --benchmark-only``; the ratios print at the end.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from pai_bench.masks import Masks, PreparedMasks, apply_
from pai_bench.models import create_model, prunable_names
from pai_bench.recipes import CIFAR
from pai_bench.training.train import make_optimizer

BATCH = CIFAR.batch_size


class KeepMask(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w):
        return w * self.mask


def setup(model_name, variant):
    model = create_model(model_name, num_classes=10, input_shape=(3, 32, 32), seed=0)
    masks = Masks.random(model, prunable_names(model), 0.9, seed=0)
    prepared = None
    if variant == "masked_inplace":
        prepared = PreparedMasks(model, masks)
        apply_(model, prepared)
    elif variant == "masked_forward":
        modules = dict(model.named_modules())
        for n in masks:
            parametrize.register_parametrization(modules[n.rsplit(".", 1)[0]], "weight",
                                                 KeepMask(masks[n].float()))
    opt = make_optimizer(model, CIFAR)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (BATCH,), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if prepared is not None:
            apply_(model, prepared)
    model.train()
    return step


@pytest.mark.parametrize("variant", ["dense", "masked_inplace", "masked_forward"])
@pytest.mark.parametrize("model_name", ["cifar_resnet_20", "cifar_vgg_16"])
def test_training_step(benchmark, model_name, variant):
    step = setup(model_name, variant)
    step()  # warm-up
    if variant != "dense":
        benchmark.extra_info["ratio_to"] = f"test_training_step[{model_name}-dense]"
    benchmark.pedantic(step, rounds=20, iterations=1, warmup_rounds=2)
