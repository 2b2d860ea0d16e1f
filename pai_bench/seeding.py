"""Explicit randomness (docs/architecture.md): every random draw uses a local generator from a named stream.

Streams keep the draws of one stage independent of the others: adding a draw to the scorer does
not change the initial weights or the data order of the same seed.
"""

from __future__ import annotations

import zlib

import torch

STREAMS = ("init", "data", "score", "subset", "reinit", "shuffle")


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for ``stream``, a pure function of (seed, stream)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; valid streams: {', '.join(STREAMS)}")
    return (seed * 1_000_003 + zlib.crc32(stream.encode())) % (2**63 - 1)


def generator(seed: int, stream: str, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(seed, stream))
