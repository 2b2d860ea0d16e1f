"""Masks from elsewhere: ``--masks FILE`` trains and evaluates them like any method's, with
every sanity check (shuffle, reinit, invert on the given ranking) and every table.

The file maps parameter names to boolean (or 0/1) tensors, as ``torch.save`` writes it or as a
``.safetensors`` file (needs the ``safetensors`` package); the names and shapes must be those of
the run's model (``python -m pai_bench run ... `` prints them in its layer report). The file's
content hash is an option of the method, so the run's identity follows the masks, not the path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from pai_bench.errors import ConfigError
from pai_bench.masks import Masks
from pai_bench.methods.base import Scorer, ScoringContext


def load_mask_file(path: str | Path) -> Masks:
    """The masks in ``path`` (``torch.save`` or ``.safetensors``), or a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"masks file {path} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # optional: only for .safetensors files
            raw = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        return Masks(raw)
    except ImportError:
        raise ConfigError(f"{path} is a .safetensors file: pip install safetensors") from None
    except (ConfigError, OSError, RuntimeError, ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"cannot read masks file {path}: {e}") from None


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def check_against(given: Masks, names_shapes: dict[str, tuple[int, ...]], path) -> None:
    """ConfigError unless ``given`` covers exactly the model's prunable weights and shapes."""
    missing = [n for n in names_shapes if n not in given]
    extra = [n for n in given if n not in names_shapes]
    if missing or extra:
        raise ConfigError(f"masks file {path} does not fit the model: missing {missing[:3]}, "
                          f"unknown {extra[:3]}; the model's prunable weights: "
                          f"{', '.join(list(names_shapes)[:6])}, ...")
    for n, shape in names_shapes.items():
        if tuple(given[n].shape) != tuple(shape):
            raise ConfigError(f"masks file {path}: {n!r} has shape {tuple(given[n].shape)}, "
                              f"the model's is {tuple(shape)}")


@dataclass
class GivenMasks(Scorer):
    """Masks from a file (--masks FILE): kept weights score 1, pruned ones 0."""

    name = "masks"
    needs_data = False
    color, marker = "tab:cyan", "p"
    file: str = ""
    sha256: str = ""  # of the file's content, so that the run's hash follows the masks

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        given = load_mask_file(self.file)
        if self.sha256 and file_digest(self.file) != self.sha256:
            raise ConfigError(f"masks file {self.file} changed since the run was configured")
        check_against(given, {n: tuple(m.shape) for n, m in ctx.masks.items()}, self.file)
        return {n: given[n].to(torch.float64) for n in ctx.masks}
