"""The GPU check: one command, on one GPU, from a bare checkout (no install, no network).

    PYTHONPATH=. python benchmarks/gpu_check.py --data data/cifar10-jpeg.tar

(a) training throughput (images/s) of ResNet-20 and VGG-16, dense and masked at 90%, with the
    suite's training step on random batches of the paper's batch size, and the masked/dense ratio;
(b) the paper recipe (160 epochs, full CIFAR-10 training and test sets) for ResNet-20: the dense
    network (``random`` at sparsity 0: every weight kept) and SynFlow, SNIP and random at 90%,
    seed 0, as one sweep of 4 runs at once on the GPU (``--runs-per-gpu 4``);
(c) a table of wall time and test accuracy.

``--data``: a tar of the CIFAR-10 image folders, best gzipped (``tar -czf
data/cifar10-jpeg.tar.gz -C ../shared/data cifar10-jpeg``: 20 MB, where the plain tar is 93 MB;
``data/`` is git-ignored, so ship it with the device tool's ``carry``), or a folder. The images
are decoded once, before the runs start. ``--smoke`` runs the same code on the CPU in a minute
(MLP on synthetic data, 1 epoch), which is how the script is tested where there is no GPU.

The check never outlives its budget: ``--deadline`` seconds after it starts (default 540, so
that it ends inside a 10-minute command), runs still training are stopped and the table shows
how far each got. A run that fails stops the check at once, with the end of its log. Exit
status: 0 all runs finished, 1 a run failed, 2 the deadline was reached.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pai_bench import paths  # noqa: E402
from pai_bench.data import load_split  # noqa: E402
from pai_bench.io import read_json  # noqa: E402
from pai_bench.masks import Masks, PreparedMasks  # noqa: E402
from pai_bench.models import create_model, prunable_names  # noqa: E402
from pai_bench.recipes import CIFAR  # noqa: E402
from pai_bench.train import Loop, batch_to, make_optimizer, train_step  # noqa: E402

METHODS = (("random", 0.0), ("synflow", 0.9), ("snip", 0.9), ("random", 0.9))


def training(model_name: str, device: torch.device, masked: bool) -> tuple[Loop, object]:
    """A model on ``device`` laid out as the training loop lays it out, its optimizer in a
    ``Loop``, and its masks at 90% (``masked``) or None."""
    model = create_model(model_name, num_classes=10, input_shape=(3, 32, 32), seed=0).to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    prepared = None
    if masked:
        g = torch.Generator().manual_seed(0)
        params = dict(model.named_parameters())
        prepared = PreparedMasks(model, Masks({n: torch.rand(params[n].shape, generator=g) > 0.9
                                               for n in prunable_names(model)}))
    return Loop(model, make_optimizer(model, CIFAR), CIFAR, 391, 0, 10**9), prepared


def timed(device: torch.device, run) -> float:
    """Seconds ``run()`` takes, with the GPU's queued work done before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def throughput(model_name: str, masked: bool, device: torch.device, precision: str,
               batch: int, steps: int) -> float:
    """Training images/s of one model, masked (90%) or dense, on one random batch: the suite's
    own training step, masks and all."""
    loop, prepared = training(model_name, device, masked)
    g = torch.Generator().manual_seed(1)
    x = batch_to(torch.randn(batch, 3, 32, 32, generator=g), device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)

    def steps_of(n):
        for _ in range(n):
            train_step(loop, x, y, prepared, device, precision)
    steps_of(3)  # warm-up
    return batch * steps / timed(device, lambda: steps_of(steps))


def data_path_throughput(split, device: torch.device, precision: str, resident: bool,
                         batches: int) -> float:
    """Training images/s of ResNet-20 fed from ``split``: batches cut and augmented on the CPU
    and copied per step (the path before this change), or resident on the device (now)."""
    loop, _ = training("cifar_resnet_20", device, masked=False)
    data = split.to(device) if resident else split
    stream = itertools.chain.from_iterable(  # epoch after epoch: a small split has few batches
        data.batches(128, generator=torch.Generator().manual_seed(epoch), augment=True,
                     drop_last=True) for epoch in itertools.count())

    def steps_of(n):
        for x, y in itertools.islice(stream, n):
            train_step(loop, batch_to(x, device), y.to(device, non_blocking=True), None, device,
                       precision)
    steps_of(3)  # warm-up
    return 128 * batches / timed(device, lambda: steps_of(batches))


def data_root(path: Path, work: Path) -> Path:
    """The CIFAR-10 folder: ``path`` itself, or extracted from the tar (any compression)."""
    if path.is_dir():
        return path
    if not path.is_file():
        raise SystemExit(f"--data {path}: no such file or folder (make it with: tar -czf "
                         f"data/cifar10-jpeg.tar.gz -C ../shared/data cifar10-jpeg)")
    with tarfile.open(path) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.12 (and patch releases before)
            tar.extractall(work, filter="data")
        else:
            tar.extractall(work)
    found = [p.parent for p in work.rglob("train") if p.is_dir()]
    if not found:
        raise SystemExit(f"no train/ folder in {path}")
    return found[0]


def run_state(run: Path) -> dict:
    """What a run folder says of its run: its summary once finished, and how far it trained."""
    rows = []
    if (run / paths.METRICS).exists():
        with open(run / paths.METRICS, newline="") as f:
            rows = list(csv.DictReader(f))
    last = rows[-1] if rows else {}
    state = {"epoch": float(last["epoch"]) if last else 0.0,
             "seconds": float(last.get("seconds") or 0),
             "train_accuracy": float(last["train_accuracy"]) if last else None}
    if (run / paths.SUMMARY).exists():
        s = read_json(run / paths.SUMMARY)
        return state | {"method": s["config"]["method"], "sparsity": s["config"]["sparsity"],
                        "status": s["status"], "accuracy": s["test_accuracy"],
                        "seconds": s["seconds"]}
    config = read_json(run / paths.CONFIG)["config"] if (run / paths.CONFIG).exists() else {}
    return state | {"method": config.get("method", run.name.rsplit("-", 1)[0]),
                    "sparsity": config.get("sparsity"), "accuracy": None,
                    "status": "failed" if (run / paths.ERROR).exists() else "training"}


def table(results: Path) -> str:
    lines = ["| method | sparsity | status | test accuracy | epochs | run time (s) |",
             "|---|---|---|---|---|---|"]
    for run in sorted((results / "runs").glob("*")):
        st = run_state(run)
        sparsity = st["sparsity"]
        name = "dense" if sparsity == 0 else st["method"]
        acc = st["accuracy"]
        shown = "n/a" if acc is None else f"{100 * acc:.2f} %"
        if st["status"] == "training" and st.get("train_accuracy") is not None:
            shown = f"(train {100 * st['train_accuracy']:.2f} %)"
        shown_sparsity = "?" if sparsity is None else f"{sparsity:.2f}"
        lines.append(f"| {name} | {shown_sparsity} | {st['status']} | {shown} | "
                     f"{st['epoch']:g} | {st['seconds']:.0f} |")
    return "\n".join(lines)


def stop(procs) -> None:
    """Stop the sweeps and their workers (each sweep leads its own process group)."""
    for proc, _ in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for proc, _ in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def sweeps(args, device: torch.device, precision: str, work: Path, started: float) -> int:
    """(b) and (c): the 4 runs at once, watched until done, failed or out of time."""
    results = args.results_dir or work / "results"
    env = dict(os.environ, PAI_BENCH_CACHE=str(work / "cache"))
    if args.smoke:
        data = ["--model", "mlp", "--dataset", "synthetic", "--epochs", "1",
                "--batch-size", "32"]
    else:
        root = data_root(args.data, work)
        t0 = time.perf_counter()
        for split in ("train", "test"):  # decoded once here; the runs read the cache
            load_split("cifar10", root, split, cache_dir=work / "cache")
        print(f"\ndecoded CIFAR-10 in {time.perf_counter() - t0:.0f} s", flush=True)
        data = ["--model", "cifar_resnet_20", "--dataset", "cifar10", "--preset", "paper",
                "--data-root", str(root)]
    print(f"\n## (b) {'smoke' if args.smoke else 'paper'} recipe: 4 runs at once", flush=True)
    t0 = time.perf_counter()
    procs = []
    for sparsity in sorted({s for _, s in METHODS}):
        methods = ",".join(m for m, s in METHODS if s == sparsity)
        cmd = [sys.executable, "-m", "pai_bench", "sweep", "--methods", methods,
               "--sparsities", str(sparsity), "--seeds", "0", *data, "--no-progress",
               "--eval-every", "0", "--results-dir", str(results), "--device", device.type,
               "--precision", precision]
        cmd += ["--runs-per-gpu", "4"] if device.type == "cuda" else ["--workers", "2"]
        log = work / f"sweep-{sparsity}.log"
        with open(log, "w") as out:  # both sweeps at once: 4 runs on the one GPU
            procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True),
                          log))
    shown = time.perf_counter()
    try:
        while True:
            time.sleep(1 if args.smoke else 5)
            errors = sorted(results.glob(f"runs/*/{paths.ERROR}"))
            if errors:  # a run failed: its sweep would only say so when its other runs end
                print(f"\na run failed ({errors[0].parent.name}); the end of its error:\n"
                      + "\n".join(errors[0].read_text().splitlines()[-30:]), flush=True)
                print("\n" + table(results))
                return 1
            failed = [(p, log) for p, log in procs if p.poll() not in (None, 0)]
            if failed:
                proc, log = failed[0]
                print(f"\na sweep failed (exit {proc.returncode}); the end of its log:\n"
                      + "\n".join(log.read_text().splitlines()[-30:]), flush=True)
                print("\n" + table(results))
                return 1
            if all(p.poll() == 0 for p, _ in procs):
                break
            now = time.perf_counter()
            if now - started > args.deadline:
                print(f"\n## (c) deadline: {args.deadline:.0f} s since the start; the runs "
                      f"were stopped after {now - t0:.0f} s of training\n" + table(results))
                return 2
            if now - shown >= 60:
                shown = now
                epochs = [f"{run_state(r)['epoch']:g}" for r in sorted(results.glob("runs/*"))]
                print(f"  {now - t0:.0f} s: epochs reached {', '.join(epochs)}", flush=True)
    finally:
        stop(procs)
    wall = time.perf_counter() - t0
    done = len(paths.summaries(results))
    if done < len(METHODS):
        print(f"\nthe sweeps ended with {done} of {len(METHODS)} runs stored")
        return 1
    print(f"\n## (c) results: all 4 runs done in {wall:.0f} s wall time\n" + table(results))
    return 0


def main() -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "cifar10-jpeg.tar.gz",
                        help="tar (gzipped or not) of the CIFAR-10 image folders, or the folder")
    parser.add_argument("--smoke", action="store_true",
                        help="the same code on the CPU in a minute (MLP, synthetic data)")
    parser.add_argument("--results-dir", type=Path, help="default: a temporary folder")
    parser.add_argument("--deadline", type=float, default=540.0, metavar="SECONDS",
                        help="stop the runs this long after the start and show how far they got "
                             "(default: 540)")
    args = parser.parse_args()
    device = torch.device("cpu" if args.smoke else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --smoke on a CPU")
    precision = "fp32" if args.smoke else "bf16"
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"# GPU check on {name}, torch {torch.__version__}, precision {precision}")

    print("\n## (a0) device-resident data: the same batches as on the CPU for a seed")
    split = load_split("synthetic", None, "train")
    on_device = split.to(device)
    for (xa, ya), (xb, yb) in zip(
            split.batches(128, generator=torch.Generator().manual_seed(7), augment=True),
            on_device.batches(128, generator=torch.Generator().manual_seed(7), augment=True)):
        assert xb.device.type == device.type and torch.equal(xa, xb.cpu()) and \
            torch.equal(ya, yb.cpu())
    print("identical: yes")
    print("\n| ResNet-20 fed from | images/s |\n|---|---|")
    for resident in (False, True):
        rate = data_path_throughput(split, device, precision, resident, 3 if args.smoke else 60)
        print(f"| {'device-resident split (new)' if resident else 'CPU batches copied per step (before)'}"
              f" | {rate:,.0f} |", flush=True)

    print("\n## (a) training throughput, images/s (batch 128)")
    print("| model | dense | masked 90% | masked / dense step time |\n|---|---|---|---|")
    models = ("mlp",) if args.smoke else ("cifar_resnet_20", "cifar_vgg_16")
    for m in models:
        dense = throughput(m, False, device, precision, 128, 5 if args.smoke else 200)
        masked = throughput(m, True, device, precision, 128, 5 if args.smoke else 200)
        print(f"| {m} | {dense:,.0f} | {masked:,.0f} | {dense / masked:.3f} |", flush=True)

    with tempfile.TemporaryDirectory() as work:
        return sweeps(args, device, precision, Path(work), started)


if __name__ == "__main__":
    sys.exit(main())
