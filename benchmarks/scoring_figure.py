"""The scoring-cost figure: every method's scoring time on ResNet-20 and VGG-16, from a run of
``test_scoring_speed.py`` saved with ``--benchmark-json``::

    python -m pytest benchmarks/test_scoring_speed.py -k compute_masks --benchmark-only \\
        --benchmark-json /tmp/scoring.json
    python benchmarks/scoring_figure.py /tmp/scoring.json results/benchmarks

writes ``scoring.csv`` (one row per network and method: median seconds, rounds) and
``scoring.png`` (one panel per network, log time axis, one bar per method).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NETWORKS = {"cifar_resnet_20": "ResNet-20 (0.27M weights)", "cifar_vgg_16": "VGG-16 (14.7M weights)"}


def rows(benchmark_json: Path) -> list[dict]:
    """One row per (network, method) of ``test_compute_masks``: median seconds and rounds."""
    out = []
    for b in json.loads(Path(benchmark_json).read_text())["benchmarks"]:
        if not b["name"].startswith("test_compute_masks"):
            continue
        out.append(dict(network=b["params"]["model_name"], method=b["params"]["method"],
                        seconds=round(b["stats"]["median"], 3),
                        rounds=b.get("extra_info", {}).get("rounds", "")))
    return out


def write(found: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "scoring.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["network", "method", "seconds", "rounds"])
        writer.writeheader()
        writer.writerows(found)
    nets = [n for n in NETWORKS if any(r["network"] == n for r in found)]
    fig, axes = plt.subplots(1, len(nets), figsize=(5.5 * len(nets), 4.2), squeeze=False)
    for ax, net in zip(axes[0], nets):
        mine = sorted((r for r in found if r["network"] == net), key=lambda r: r["seconds"])
        labels = [f"{r['method']} ({r['rounds']} rd)" if r["rounds"] not in ("", 1) else r["method"]
                  for r in mine]
        ax.barh(labels, [r["seconds"] for r in mine], color="tab:blue")
        for y, r in enumerate(mine):
            ax.text(r["seconds"], y, f" {r['seconds']:.2f} s", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("scoring time, masks included (s, log scale)")
        ax.set_title(NETWORKS[net])
    fig.suptitle("Scoring cost at 99% sparsity, each method's default schedule (2-core CPU)")
    fig.tight_layout()
    fig.savefig(out / "scoring.png", dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark_json", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    write(rows(args.benchmark_json), args.out)


if __name__ == "__main__":
    main()
