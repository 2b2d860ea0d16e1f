"""Masks from elsewhere: ``--masks FILE`` trains and evaluates them like any method's, with
every sanity check (shuffle, reinit, invert on the given ranking) and every table.

The file maps parameter names to boolean (or 0/1) tensors, as ``torch.save`` writes it or as a
``.safetensors`` file (needs the ``safetensors`` package); the names and shapes must be those of
the run's model (``python -m pai_bench run ... `` prints them in its layer report). The file is
read once, at the entry point (``read_mask_file``: the masks and the digest of the masks
themselves: names, shapes and values, ``io.tensor_digest``); the digest is the method's one
option, so the run's identity follows the masks, not the file: the same masks saved under
another name, or as ``.safetensors`` instead of ``.pt``, are the same run (``torch.save`` writes
the file's name into its archive, so the bytes differ). The masks ride on the method instance.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pai_bench.errors import ConfigError
from pai_bench.filekinds import read_regular_file
from pai_bench.io import tensor_digest
from pai_bench.masks import Masks, unwrap
from pai_bench.methods.base import Scorer, ScoringContext


def read_mask_file(path: str | Path) -> tuple[Masks, str]:
    """The masks in ``path`` (``torch.save`` or ``.safetensors``) and their digest
    (``masks_digest``), or a ConfigError naming the file."""
    path = Path(path)
    data = read_regular_file(path, "masks file")  # a named pipe or /dev/zero: refused unread
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load  # optional: only for .safetensors files
            raw = load(data)
        else:
            with warnings.catch_warnings():  # torch's pickle warnings: the error says it all
                warnings.simplefilter("ignore")
                raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if isinstance(raw, dict) and any(isinstance(t, torch.Tensor) and t.layout != torch.strided
                                         for t in raw.values()):
            raise ValueError("it holds sparse tensors; save dense bool tensors")
        masks = Masks(unwrap(raw))  # a run's masks.pt too (``Masks.save``)
    except ImportError:
        raise ConfigError(f"{path} is a .safetensors file: pip install safetensors") from None
    except Exception as e:  # noqa: BLE001 - whatever the file holds, it is not masks
        first = " ".join(str(e).split())[:160] or type(e).__name__  # one line, never a dump
        raise ConfigError(f"cannot read masks file {path}: {first}") from None
    if masks.kept() == 0:
        raise ConfigError(f"masks file {path} keeps no weight")
    return masks, masks_digest(masks)


def masks_digest(masks: Masks) -> str:
    """sha256 (16 hex digits) of the masks' names, shapes and values (as booleans): whatever
    file carried them."""
    return tensor_digest(dict(masks))


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
    sha256: str = ""  # of the masks (``masks_digest``): the run's identity follows the masks
    # The masks themselves, from ``read_mask_file`` at the entry point (not an option).
    given: Masks | None = field(default=None, compare=False, repr=False,
                                metadata={"option": False})
    source: str = field(default="", compare=False, metadata={"option": False})  # for messages

    def validate(self, config) -> None:
        """Without a file there are no masks: ``--method masks`` alone names no run at all
        (a stored masks run has the digest of its file, ``check_plan``)."""
        super().validate(config)
        if self.given is None and not self.sha256:
            raise ConfigError("--method masks trains the masks of a file: give --masks FILE "
                              "(a {parameter name: bool tensor} file) instead of --method masks")

    def check_plan(self, plan) -> None:
        """Reached only by a run that is not stored yet (a stored one returns its summary
        before its data is loaded): its masks must be at hand, and fit the network."""
        if self.given is None:
            raise ConfigError(f"the masks of sha256 {self.sha256} are not stored with this run "
                              f"(--method masks --method-arg sha256={self.sha256}); give the "
                              f"file with --masks FILE")
        check_against(self.given, plan.facts.prunable, self.source)

    def score(self, ctx: ScoringContext) -> dict[str, torch.Tensor]:
        if self.given is None:
            raise ConfigError(f"the masks of sha256 {self.sha256} are not stored with this run; "
                              f"run it again with --masks FILE")
        return {n: self.given[n].to(torch.float64) for n in ctx.masks}
