"""The verdict card's figure: the method among the others (accuracy ± std) and its per-layer
density against ERK and uniform, computed from its masks' layer shapes; every number drawn is
written beside the figure, so it is checked here against a hand computation."""

from pathlib import Path

import pandas as pd
import pytest

from pai_bench import paths
from pai_bench.analysis.card_figure import card_figure
from pai_bench.masks import report_csv

# A toy network's prunable layers: the first is so small that ERK keeps it dense.
SHAPES = {"a.weight": (2, 3), "b.weight": (50, 40), "c.weight": (10, 50)}
SPARSITY = 0.9


def stored(results: Path, method: str, run_hash: str, densities: dict[str, float]) -> None:
    """A stored run's layer report (what the runner writes beside its masks)."""
    rows = []
    for name, shape in SHAPES.items():
        total = shape[0] * shape[1]
        kept = round(densities[name] * total)
        rows.append(dict(name=name, shape="x".join(map(str, shape)), total=total, kept=kept,
                         density=kept / total, collapsed=kept == 0))
    folder = paths.stored_run_dir(results, method, run_hash)
    folder.mkdir(parents=True)
    (folder / paths.LAYERS).write_text(report_csv(rows))


def test_the_card_figure_draws_erk_and_uniform_from_the_layer_shapes(tmp_path):
    results = tmp_path / "results"
    stored(results, "mine", "h0", {"a.weight": 0.5, "b.weight": 0.05, "c.weight": 0.3})
    stored(results, "mine", "h1", {"a.weight": 1.0, "b.weight": 0.05, "c.weight": 0.3})
    runs = pd.DataFrame([
        dict(method=m, check="none", status="finished", test_accuracy=a, hash=h,
             source=str(results))
        for m, a, h in [("mine", 0.80, "h0"), ("mine", 0.84, "h1"), ("random", 0.70, "r0"),
                        ("random", 0.72, "r1"), ("magnitude_after_training", 0.90, "m0")]])
    files = card_figure("mine", runs[runs["method"] == "mine"], runs, SPARSITY, tmp_path / "card")
    names = {f.name for f in files}
    assert {"card.png", "card.pdf", "card_layers.csv", "card_accuracy.csv"} <= names
    assert all(f.stat().st_size > 0 for f in files)

    layers = pd.read_csv(tmp_path / "card" / "card_layers.csv")
    assert list(layers["layer"]) == list(SHAPES)
    # ERK by hand: fractions (rows + cols) / (rows * cols) times eps, the network keeping 10%
    # of its 2506 weights. eps = 250.6 / (5 + 90 + 60) would give layer a 1.35 > 1, so a is
    # dense and eps = (250.6 - 6) / (90 + 60) over the other two.
    eps = (250.6 - 6) / 150
    erk = [1.0, eps * 90 / 2000, eps * 60 / 500]
    assert layers["ERK"].tolist() == pytest.approx([100 * d for d in erk])
    assert 6 * erk[0] + 2000 * erk[1] + 500 * erk[2] == pytest.approx(250.6)  # 10% kept
    assert layers["uniform"].tolist() == pytest.approx([10.0, 10.0, 10.0])
    assert layers["mine"].tolist() == pytest.approx([75.0, 5.0, 30.0])  # mean of the 2 seeds

    accuracy = pd.read_csv(tmp_path / "card" / "card_accuracy.csv")
    assert accuracy["method"].tolist() == ["mine", "random", "magnitude_after_training"]
    assert accuracy["mean"].tolist() == pytest.approx([82.0, 71.0, 90.0])
    assert accuracy["std"].tolist() == pytest.approx([2 ** 0.5 * 2, 2 ** 0.5, 0.0])
    assert accuracy["seeds"].tolist() == [2, 2, 1]
