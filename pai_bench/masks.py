"""The one mask type, and the one way masks reach weights.

``Masks`` maps a prunable parameter name to a boolean tensor of that parameter's shape (True =
kept). It is a value: functions that compute masks return new ``Masks`` and never mutate one.

``apply_`` is the only place in the suite where weights are multiplied by masks. The training loop
calls it once before training and after every optimizer step, which keeps pruned weights at
exactly zero whatever the optimizer does (momentum and weight decay included: SGD's update is
elementwise, so the kept weights' trajectory does not depend on what happens to pruned ones).
This in-place zeroing was chosen by measurement (``benchmarks/test_masked_step.py``): it costs one
elementwise op per prunable tensor per step, while multiplying in forward or
``torch.nn.utils.prune`` keeps a second copy of every weight and adds work to the backward pass.

A layer in the sparse layout (``pai_bench.sparse``: ``--sparse-kernels auto``) holds only its
kept weights as parameters: its pruned positions do not exist, so ``apply_`` has nothing to zero
there. Its values come from ``kept_values`` and go back to a dense weight through
``dense_weight``, both here: this module stays the only place where a mask meets a weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch import nn

from pai_bench import paths
from pai_bench.errors import ConfigError
from pai_bench.io import atomic_save_torch, atomic_write_text, tensor_digest


class Masks(Mapping[str, torch.Tensor]):
    """Boolean keep-masks keyed by parameter name. Immutable by convention (tensors are cloned)."""

    def __init__(self, masks: Mapping[str, torch.Tensor]):
        checked = {}
        for name, m in masks.items():
            m = torch.as_tensor(m).detach().cpu()
            if m.dtype != torch.bool:
                if not bool(((m == 0) | (m == 1)).all()):
                    raise ConfigError(f"mask {name!r} holds values other than 0 and 1")
                m = m.bool()
            checked[name] = m.clone()
        self._masks = checked

    @classmethod
    def ones_like(cls, model: nn.Module, names: list[str]) -> "Masks":
        params = dict(model.named_parameters())
        return cls({n: torch.ones(params[n].shape, dtype=torch.bool) for n in names})

    @classmethod
    def random(cls, model: nn.Module, names: list[str], sparsity: float, seed: int) -> "Masks":
        """Each weight of ``names`` pruned independently with probability ``sparsity``: a draw
        of ``torch.rand`` per tensor, in the order of ``names``, from a CPU generator seeded
        with ``seed`` (the same masks on any device and thread count). For tests and
        benchmarks; the ``random`` method is the scorer that prunes a layer's exact share."""
        g = torch.Generator().manual_seed(seed)
        params = dict(model.named_parameters())
        return cls({n: torch.rand(params[n].shape, generator=g) > sparsity for n in names})

    # Mapping protocol
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Masks) or list(self) != list(other):
            return False
        return all(torch.equal(self[n], other[n]) for n in self)

    # Counts
    def kept(self) -> int:
        return sum(int(m.sum()) for m in self._masks.values())

    def total(self) -> int:
        return sum(m.numel() for m in self._masks.values())

    def density(self) -> float:
        return self.kept() / self.total()

    def sparsity(self) -> float:
        return 1.0 - self.density()

    def layer_report(self, effective: "Masks | None" = None) -> list[dict]:
        """Per-layer rows: name, shape, total, kept, density, collapsed (nothing kept); with
        ``effective`` masks (``pai_bench.effective``) also effective_kept and effective_density."""
        rows = []
        for name, m in self._masks.items():
            kept, total = int(m.sum()), m.numel()
            row = dict(name=name, shape="x".join(map(str, m.shape)), total=total,
                       kept=kept, density=kept / total, collapsed=kept == 0)
            if effective is not None:
                eff = int(effective[name].sum())
                row.update(effective_kept=eff, effective_density=eff / total)
            rows.append(row)
        return rows

    def check_model(self, model: nn.Module) -> None:
        """Raise ConfigError unless every mask names a parameter of the model's shape (of a
        layer in the sparse layout: a layer whose own mask is this one)."""
        params = dict(model.named_parameters())
        for name, m in self._masks.items():
            layer = sparse_layer(model, name)
            if layer is not None:
                if not torch.equal(layer.keep.cpu(), m):
                    raise ConfigError(f"mask {name!r} differs from the kept positions of its "
                                      f"layer in the sparse layout")
                continue
            if name not in params:
                raise ConfigError(f"mask {name!r} names no parameter of the model")
            if tuple(params[name].shape) != tuple(m.shape):
                raise ConfigError(f"mask {name!r} has shape {tuple(m.shape)}, "
                                  f"parameter has {tuple(params[name].shape)}")

    # Persistence
    def save(self, path: Path, effective: "Masks | None" = None, owner: str | None = None) -> None:
        """Save the masks with ``owner`` (``paths.owner``: whose masks they are) and a digest
        of both (``stored``), and, beside them, the per-layer density report as CSV."""
        atomic_save_torch(stored(dict(self._masks), owner), path)
        atomic_write_text(paths.layers_file(path), report_csv(self.layer_report(effective)))

    @classmethod
    def load(cls, path: Path) -> "Masks":
        """The masks of a file ``save`` wrote, or of a plain ``{name: mask}`` file, unchecked
        (``artifacts.read_masks`` checks a results folder's)."""
        return cls(unwrap(torch.load(path, map_location="cpu", weights_only=True)))


STORED_KEYS = {"masks", "owner", "digest"}  # what ``Masks.save`` writes


def stored(masks: dict, owner: str | None) -> dict:
    """What ``Masks.save`` writes: the masks, their owner, and the digest of both (the owner
    inside what the digest covers, so neither is changed alone)."""
    body = {"masks": masks, "owner": owner}
    return {**body, "digest": tensor_digest(body)}


def unwrap(raw):
    """The ``{name: mask}`` of what ``Masks.save`` wrote, or ``raw`` itself (a plain dict of
    masks, a user's ``--masks`` file)."""
    if isinstance(raw, dict) and set(raw) == STORED_KEYS and isinstance(raw["masks"], dict):
        return raw["masks"]
    return raw


def report_csv(rows: list[dict]) -> str:
    header = list(rows[0]) if rows else []
    lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in rows]
    return "\n".join(lines) + "\n"


@torch.no_grad()
def apply_(model: nn.Module, masks: "Masks | PreparedMasks") -> None:
    """Zero the pruned weights of ``model`` in place. The suite's only mask-to-weight mechanism."""
    prepared = masks if isinstance(masks, PreparedMasks) else PreparedMasks(model, masks)
    if prepared.params:
        # one multi-tensor kernel for all layers on a GPU (a launch per layer otherwise, which
        # is most of a masked step's extra cost on a small network); a loop on the CPU
        torch._foreach_mul_(prepared.params, prepared.keeps)


class PreparedMasks:
    """Masks bound to a model's parameters, as tensors of the parameter's dtype, device and
    memory layout (strides: channels-last on a GPU), so that one multi-tensor kernel applies them.

    Built once per training run, after the model moved, so that the per-step ``apply_`` does no
    conversion. Layers in the sparse layout are left out: they have no pruned weights to zero.
    """

    def __init__(self, model: nn.Module, masks: Masks):
        masks.check_model(model)
        params = dict(model.named_parameters())
        dense = [n for n in masks if sparse_layer(model, n) is None]
        self.params = [params[n] for n in dense]
        self.keeps = [torch.empty_like(params[n]).copy_(masks[n]) for n in dense]


def owner(model: nn.Module, name: str) -> nn.Module:
    """The module holding parameter ``name`` (``"layers.3.conv.weight"``: ``layers.3.conv``);
    AttributeError if there is none."""
    return model.get_submodule(name.rpartition(".")[0]) if "." in name else model


def sparse_layer(model: nn.Module, name: str) -> nn.Module | None:
    """The layer owning parameter ``name`` if it is in the sparse layout (it keeps its mask as
    ``keep`` and its kept weights as ``values``; ``pai_bench.sparse``), else None."""
    try:
        layer = owner(model, name)
    except AttributeError:  # no such layer: check_model names the mask
        return None
    return layer if getattr(layer, "sparse_layout", False) else None


def kept_values(weight: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The kept weights of ``weight`` in row-major order: the parameters of a layer in the
    sparse layout (the pruned ones are not copied, so they do not exist there)."""
    return weight.detach()[keep.to(weight.device)].clone()


def dense_weight(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The dense weight of a layer in the sparse layout: ``values`` at the kept positions
    (row-major, as ``kept_values`` took them), exactly zero elsewhere."""
    out = torch.zeros(keep.shape, dtype=values.dtype, device=values.device)
    return out.masked_scatter_(keep.to(values.device), values.detach())
