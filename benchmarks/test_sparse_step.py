"""Wall-clock time of the sparse path (``--sparse-kernels auto``, ``pai_bench.sparse``) against
the dense masked path, in one process, alternating step by step: VGG-16 and ResNet-20 (width
16), 90/95/98/99 % sparsity (random masks, each layer at the sparsity), batch 128 and 32, 1 and
2 threads; per training step, per inference pass, and per layer (forward + backward, the
measurement ``auto`` chooses by; it goes to the same cache, so the step benchmark reuses it).

Writes ``results/benchmarks/sparse_step.md`` (tables) and ``sparse_step.png`` (measured
speed-up against sparsity per network) at the end of the session, from what it ran.

Run (the full table; a quiet machine: nothing else running)::

    pytest benchmarks/test_sparse_step.py --benchmark-only -s

The smallest setting (one network, sparsity, batch and thread count)::

    pytest benchmarks/test_sparse_step.py --benchmark-only -s -k "resnet20 and 98 and b32 and t1"
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pai_bench import sparse
from pai_bench.data import default_cache_dir
from pai_bench.io import atomic_write_text
from pai_bench.masks import Masks, PreparedMasks, apply_, owner
from pai_bench.models import create_model, layer_macs, prunable_names
from pai_bench.recipes import CIFAR
from pai_bench.training.train import make_optimizer

NETS = {"vgg16": ("cifar_vgg_16", None), "resnet20": ("cifar_resnet_20", 16)}
SPARSITIES = [0.9, 0.95, 0.98, 0.99]
BATCHES = [128, 32]
THREADS = [1, 2]
ROUNDS = int(os.environ.get("SPARSE_BENCH_ROUNDS", "10"))
OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks"
INPUT = (3, 32, 32)
STEPS: list[dict] = []
LAYERS: list[dict] = []

if sparse.kernels() is None:
    pytest.skip("sparseprop is not installed (docs/sparse_kernels.md)", allow_module_level=True)


def network(net: str, sparsity: float):
    name, width = NETS[net]
    model = create_model(name, num_classes=10, input_shape=INPUT, seed=0, width=width)
    return model, Masks.random(model, prunable_names(model), sparsity, seed=0)


def prepared(net, sparsity, batch, layout):
    """A step and an inference pass of the network in ``layout`` (dense masked, or auto)."""
    model, masks = network(net, sparsity)
    chosen = []
    if layout == "auto":
        decisions = sparse.choose(model, masks, INPUT, batch, cache_dir=Path(default_cache_dir()))
        chosen = sparse.convert(model, masks, decisions)
    masked = PreparedMasks(model, masks)
    apply_(model, masked)
    opt = make_optimizer(model, CIFAR)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch, *INPUT, generator=g), torch.randint(0, 10, (batch,), generator=g)

    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        apply_(model, masked)

    @torch.no_grad()
    def infer():
        model.eval()
        model(x)
    return step, infer, len(chosen), len(masks)


def ids(values, prefix):
    return [f"{prefix}{v}" for v in values]


GRID = pytest.mark.parametrize("threads", THREADS, ids=ids(THREADS, "t"))
GRID_B = pytest.mark.parametrize("batch", BATCHES, ids=ids(BATCHES, "b"))
GRID_S = pytest.mark.parametrize("sparsity", SPARSITIES,
                                 ids=[f"{round(100 * s)}" for s in SPARSITIES])
GRID_N = pytest.mark.parametrize("net", list(NETS))


@GRID
@GRID_B
@GRID_S
@GRID_N
@pytest.mark.parametrize("mode", ["train", "infer"])
def test_sparse_step(benchmark, net, sparsity, batch, threads, mode):
    torch.set_num_threads(threads)
    dense_step, dense_infer, _, total = prepared(net, sparsity, batch, "dense")
    sparse_step, sparse_infer, n_sparse, _ = prepared(net, sparsity, batch, "auto")
    run = {"train": (dense_step, sparse_step), "infer": (dense_infer, sparse_infer)}[mode]
    times = {"dense": [], "sparse": []}

    def pair():  # one of each, alternating: drift and contention hit both alike
        for name, fn in zip(times, run):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    pair()  # warm-up
    times = {"dense": [], "sparse": []}
    benchmark.pedantic(pair, rounds=ROUNDS, iterations=1)
    dense, ours = (statistics.median(times[k]) for k in ("dense", "sparse"))
    row = dict(net=net, sparsity=sparsity, batch=batch, threads=threads, mode=mode,
               dense_ms=1e3 * dense, sparse_ms=1e3 * ours, speedup=dense / ours,
               sparse_layers=f"{n_sparse}/{total}")
    benchmark.extra_info.update(row)
    STEPS.append(row)
    print(f"\n{row}")


@GRID
@GRID_B
@GRID_S
@GRID_N
def test_sparse_layers(benchmark, net, sparsity, batch, threads):
    """Per layer: forward + backward dense and sparse (the best variant), and its MACs."""
    torch.set_num_threads(threads)
    benchmark.pedantic(measure_layers, args=(net, sparsity, batch, threads), rounds=1,
                       iterations=1)


def measure_layers(net, sparsity, batch, threads):
    model, masks = network(net, sparsity)
    shapes = sparse.input_shapes(model, list(masks), INPUT)
    macs = layer_macs(model, INPUT)
    for name in masks:
        layer = owner(model, name)
        if sparse.unsupported(layer):
            continue
        in_shape, grad_in = shapes[name]
        times = sparse.measured(layer, masks[name], (batch, *in_shape), grad_in,
                                Path(default_cache_dir()))
        d = sparse.decide(name, times)
        LAYERS.append(dict(net=net, sparsity=sparsity, batch=batch, threads=threads, layer=name,
                           macs=macs[name], density=float(masks[name].float().mean()),
                           dense_ms=1e3 * d.dense_s, sparse_ms=1e3 * d.sparse_s,
                           speedup=d.dense_s / d.sparse_s, auto=d.layout))


STEP_KEY = ("net", "sparsity", "batch", "threads", "mode")
LAYER_KEY = ("net", "sparsity", "batch", "threads", "layer")


@pytest.fixture(scope="module", autouse=True)
def report():
    """The rows of this session replace the stored rows of the same setting
    (``sparse_step_steps.csv``, ``sparse_step_layers.csv``); the table and the figure are
    written from all of them, so the grid can be measured a part at a time."""
    yield
    if STEPS or LAYERS:
        OUT.mkdir(parents=True, exist_ok=True)
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        steps = merged(OUT / "sparse_step_steps.csv", STEPS, STEP_KEY, when)
        layers = merged(OUT / "sparse_step_layers.csv", LAYERS, LAYER_KEY, when)
        atomic_write_text(OUT / "sparse_step.md", markdown(steps, layers))
        figure(steps, OUT / "sparse_step.png")


def merged(path: Path, new: list[dict], key: tuple[str, ...], when: str) -> list[dict]:
    """The stored rows of ``path`` with ``new`` (stamped ``when``, UTC) in place of the rows of
    the same ``key``, written back atomically; sorted by the grid's order."""
    import pandas as pd
    old = pd.read_csv(path).to_dict("records") if path.exists() else []
    rows = {tuple(r[k] for k in key): r for r in old}
    rows.update({tuple(r[k] for k in key): {**r, "measured": when} for r in new})
    order = {"net": list(NETS), "sparsity": SPARSITIES, "batch": BATCHES, "threads": THREADS,
             "mode": ["train", "infer"]}

    out = sorted(rows.values(),  # stable: a setting's layers stay in the network's order
                 key=lambda r: tuple(order[k].index(r[k]) for k in key if k in order))
    atomic_write_text(path, pd.DataFrame(out).to_csv(index=False))
    return out


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    fmt = {float: lambda v: f"{v:.3g}"}
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt.get(type(r[c]), str)(r[c]) for c in columns) + " |"
              for r in rows]
    return lines


def markdown(steps: list[dict], layers: list[dict]) -> str:
    cpu = sparse.cpu_name()
    lines = [f"# Sparse path vs dense masked path, measured ({cpu}, torch {torch.__version__}, "
             f"sparseprop {sparse.library_version()})", "",
             "Medians of alternating rounds in one process (`benchmarks/test_sparse_step.py`, "
             f"{ROUNDS} rounds); speed-up = dense masked time / sparse time. `sparse layers`: "
             "the layers `auto` made sparse (the others stay dense). `measured`: when (UTC) "
             "the row was measured; the file keeps the latest row of each setting.", "",
             "## Steps", ""]
    lines += _table(steps, ["net", "sparsity", "batch", "threads", "mode", "dense_ms",
                            "sparse_ms", "speedup", "sparse_layers", "measured"])
    lines += ["", "## Layers (forward + backward)", ""]
    lines += _table(layers, ["net", "sparsity", "batch", "threads", "layer", "macs", "density",
                             "dense_ms", "sparse_ms", "speedup", "auto", "measured"])
    return "\n".join(lines) + "\n"


def figure(steps: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    nets = [n for n in NETS if any(r["net"] == n for r in steps)]
    if not nets:
        return
    fig, axes = plt.subplots(1, len(nets), figsize=(5.5 * len(nets), 3.8), squeeze=False)
    colours = {(b, t): f"C{i}" for i, (b, t) in
               enumerate((b, t) for b in BATCHES for t in THREADS)}
    for ax, net in zip(axes[0], nets):
        for (batch, threads), colour in colours.items():
            for mode, style in (("train", "-"), ("infer", "--")):
                pts = sorted((r["sparsity"], r["speedup"]) for r in steps
                             if (r["net"], r["batch"], r["threads"], r["mode"])
                             == (net, batch, threads, mode))
                if pts:
                    ax.plot([100 * p[0] for p in pts], [p[1] for p in pts], style, marker="o",
                            color=colour, label=f"{mode}, batch {batch}, {threads} "
                                                f"thread{'s' * (threads > 1)}")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set(title=f"{net}: sparse path against dense masked ({sparse.cpu_name()})",
               xlabel="sparsity (%)", ylabel="speed-up (dense ms / sparse ms)")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
