"""A vision transformer sized for CIFAR-10 (Dosovitskiy et al. 2021), the zoo's transformer.

Patches of 4x4 pixels (64 tokens for a 32x32 image), a learned position embedding, ``DEPTH`` = 6
pre-norm blocks ``x + attn(LN(x))``, ``x + mlp(LN(x))`` of width w (``--width``, default
``DEFAULT_WIDTH`` = 128) with ``HEADS`` = 4 heads, an MLP of ``MLP_RATIO`` = 2 (w -> 2w -> w,
GELU: as many weights as the four attention projections), a final LayerNorm, the mean over the
tokens (no class token) and one linear head. ``--width`` scales the embedding as it scales the
channels of the CIFAR ResNets (it must be a multiple of the 4 heads).

**Prunable weights** (the keys of every score and mask): the suite's rule, every ``nn.Linear``
and ``nn.Conv2d`` weight, which here is exactly, per block ``blocks.<i>``,
``attn.q``, ``attn.k``, ``attn.v``, ``attn.out`` (four separate w x w projections, not
``nn.MultiheadAttention``'s fused ``in_proj``, so that each is one mask the usual way),
``mlp.fc1`` (2w x w) and ``mlp.fc2`` (w x 2w); and the ``head``: 6 * 6 + 1 = 37 weights.
Never prunable: the patch embedding (a parameter applied by ``F.conv2d``, not a ``Conv2d``
module, so the rule leaves it out: with 48 inputs per token it is the network's input layer and
tiny), the position embedding, LayerNorm and every bias. The MACs of a mask
(``models.layer_macs``) are those of these 37 layers; the attention's two matrix products
(q kᵀ and the weighted sum of v: 2 * 65 * 64 * w per block, weight-free) and the patch
embedding are not counted, as BatchNorm and pooling are not for the conv nets.

**Initialization** (``VisionTransformer.init_weights``; the suite's ``models.initialize`` calls
it, so create_model, the reinit check and NTK-SAP's re-draws all use it): every linear weight
truncated normal with std 0.02 (timm's ViT default), the patch embedding LeCun normal
(std 1 / sqrt(48)), the position embedding truncated normal std 0.02, LayerNorm weight 1, every
bias 0. Kaiming normal (the paper's init for its ReLU conv nets) would give the 128-wide
projections std 0.125, six times timm's.

The attention is written out (``softmax(q kᵀ / sqrt(d)) v``) rather than through
``F.scaled_dot_product_attention``: GraSP needs a second derivative through it, which every
backend supports only for the plain operations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pai_bench.errors import ConfigError
from pai_bench.models.base import MODELS, ModelSpec
from pai_bench.recipes import Recipe

PATCH = 4
DEPTH = 6
HEADS = 4
MLP_RATIO = 2
DEFAULT_WIDTH = 128
LINEAR_STD = 0.02  # timm's trunc_normal_(std=.02) of every linear weight and the position embedding
# How ``--preset paper`` trains it (not a recipe of the paper, which has no transformer): the
# suite's SGD with momentum, as every other network, with the 5-epoch linear warmup a transformer
# needs, CIFAR's 160 epochs and decays at 50% and 75%.
RECIPE = Recipe(batch_size=128, lr=0.05, epochs=160, milestones=(80, 120), warmup_epochs=5)


class PatchEmbedding(nn.Module):
    """Non-overlapping PATCH x PATCH patches -> width-dim tokens: (N, C, H, W) -> (N, T, w).

    Its kernel is a plain parameter, not a ``Conv2d`` module: the patch embedding is not
    prunable (module docstring)."""

    def __init__(self, in_channels: int, width: int, patch: int):
        super().__init__()
        self.patch = patch
        self.weight = nn.Parameter(torch.empty(width, in_channels, patch, patch))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.patch).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with four separate projections (q, k, v, out)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(width, width) for _ in range(3))
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:  # (N, T, w) -> (N, T, w)
        n, t, w = x.shape

        def split(y: Tensor) -> Tensor:  # (N, T, w) -> (N, heads, T, w / heads)
            return y.view(n, t, self.heads, w // self.heads).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(w // self.heads), dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(n, t, w))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, then ``x + mlp(LN(x))``."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio * width)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, int, int],
                 width: int = DEFAULT_WIDTH, depth: int = DEPTH, heads: int = HEADS,
                 patch: int = PATCH, mlp_ratio: int = MLP_RATIO):
        super().__init__()
        channels, height, wide = input_shape
        if width % heads:
            raise ConfigError(f"the width of a vision transformer must be a multiple of its "
                              f"{heads} heads, got width {width}")
        if height % patch or wide % patch:
            raise ConfigError(f"a vision transformer with {patch}x{patch} patches needs an "
                              f"image size divisible by {patch}, got {height}x{wide}")
        tokens = (height // patch) * (wide // patch)
        self.patch_embed = PatchEmbedding(channels, width, patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, width))
        self.blocks = nn.Sequential(*(Block(width, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, classes)
        tokens = self.blocks(self.patch_embed(x) + self.pos_embed)
        return self.head(self.norm(tokens).mean(dim=1))

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator) -> None:
        """The initialization of the module docstring, every draw from ``generator``."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                _trunc_normal_(module.weight, LINEAR_STD, generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        fan_in = self.patch_embed.weight[0].numel()
        _trunc_normal_(self.patch_embed.weight, 1 / math.sqrt(fan_in), generator)
        nn.init.zeros_(self.patch_embed.bias)
        _trunc_normal_(self.pos_embed, LINEAR_STD, generator)


def _trunc_normal_(tensor: Tensor, std: float, generator: torch.Generator) -> None:
    """Normal(0, std²) truncated at ±2 std (timm's ``trunc_normal_(std=...)`` truncates at ±2
    absolute, which for std 0.02 is no truncation; at ±2 std it matters equally everywhere)."""
    nn.init.trunc_normal_(tensor, 0.0, std, -2 * std, 2 * std, generator=generator)


def build_vit(num_classes: int, input_shape: tuple[int, int, int],
              width: int | None) -> VisionTransformer:
    return VisionTransformer(num_classes, tuple(input_shape), width or DEFAULT_WIDTH)


MODELS.register(ModelSpec(
    name="cifar_vit",
    build=build_vit,
    recipe=RECIPE,
    dataset="cifar10",
    description=f"vision transformer for CIFAR: {PATCH}x{PATCH} patches, depth {DEPTH}, "
                f"width {DEFAULT_WIDTH}, {HEADS} heads, prunable: q/k/v/out, MLP, head",
    has_width=True,
))
