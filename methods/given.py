"""Masks from elsewhere: ``--masks FILE`` trains and evaluates them like any method's, with
every sanity check (shuffle, reinit, invert on the given ranking) and every table.

The file maps parameter names to boolean (or 0/1) tensors, as ``torch.save`` writes it or as a
``.safetensors`` file (needs the ``safetensors`` package); the names and shapes must be those of
the run's model (``python -m pai_bench run ... `` prints them in its layer report). The file is
read once, at the entry point (``read_mask_file``: the masks and the sha256 of the same bytes);
the digest is the method's one option, so the run's identity follows the masks, not the path: a
moved or copied file is the same run. The masks themselves ride on the method instance.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pai_bench.errors import ConfigError
from pai_bench.masks import Masks, unwrap
from pai_bench.methods.base import Scorer, ScoringContext


def read_mask_file(path: str | Path) -> tuple[Masks, str]:
    """The masks in ``path`` (``torch.save`` or ``.safetensors``) and the sha256 of the bytes
    they were read from (16 hex digits), or a ConfigError naming the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"masks file {path} is a folder; give the file")
    if not path.is_file():
        raise ConfigError(f"masks file {path} not found")
    try:
        data = path.read_bytes()
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
    return masks, hashlib.sha256(data).hexdigest()[:16]


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
    sha256: str = ""  # of the file's content: the run's identity follows the masks
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
