"""Cost accounting: what a result spent on training, and what its sparse network costs to run.

The fair-comparison critique of pruning after training is that it starts from a trained
network; so every result counts the dense pre-training it used, in epochs and in
multiply-accumulates (MACs) of the prunable layers (convolutions and linear layers; BatchNorm,
pooling and additions are left out, as is usual). A training step on one example costs
``TRAIN_FACTOR`` forward passes: the forward pass, and in the backward pass the gradients with
respect to the activations and to the weights, each about as costly as the forward.
Sparse MACs assume the pruned weights are skipped: ``sum(layer MACs * layer density)``.
"""

from __future__ import annotations

from pai_bench.masks import Masks

TRAIN_FACTOR = 3


def forward_macs(layer_macs: dict[str, int], masks: Masks | None = None) -> int:
    """MACs of one forward pass on one example, with ``masks`` applied if given."""
    if masks is None:
        return int(sum(layer_macs.values()))
    density = {r["name"]: r["density"] for r in masks.layer_report()}
    return int(round(sum(m * density.get(n, 1.0) for n, m in layer_macs.items())))


def phase(steps: int, batch_size: int, steps_per_epoch: int, macs_per_example: int) -> dict:
    """One stretch of training: its length in epochs and its MACs."""
    return dict(epochs=steps / steps_per_epoch,
                macs=TRAIN_FACTOR * steps * batch_size * macs_per_example)


def summarize(dense_phases: list[dict], sparse_phases: list[dict], layer_macs: dict[str, int],
              masks: Masks) -> dict:
    dense_epochs = sum(p["epochs"] for p in dense_phases)
    sparse_epochs = sum(p["epochs"] for p in sparse_phases)
    return dict(dense_train_epochs=dense_epochs, sparse_train_epochs=sparse_epochs,
                train_epochs=dense_epochs + sparse_epochs,
                train_macs=int(sum(p["macs"] for p in dense_phases + sparse_phases)),
                inference_macs=forward_macs(layer_macs, masks),
                dense_inference_macs=forward_macs(layer_macs))
