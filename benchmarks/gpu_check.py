"""The GPU check: one command, at most 7 minutes on one GPU, from a bare checkout (no install,
no network), conclusive the first time it runs.

    PYTHONPATH=. python benchmarks/gpu_check.py --data data/cifar10-jpeg.tar.gz --out results/gpu

``--data``: a tar of the CIFAR-10 image folders, best gzipped (``tar -czf
data/cifar10-jpeg.tar.gz -C ../shared/data cifar10-jpeg``; ``data/`` is git-ignored, so ship it
with the device tool's ``carry``), or the folder. Six parts, each with its own time box
(``--box PART=SECONDS`` changes one); a part cut by its box prints what it has and the check
goes on with the next:

1. setup: versions; the data extracted and decoded (a process pool) BEFORE any CUDA call (no
   fork of a process holding a CUDA context), then the GPU's name;
2. correctness on CUDA: every registered method, ``ltr`` and ``imp`` with one level, the three
   checks and ``--prune-at``, one epoch on a 2,560-image subset: one line each, ok or the first
   error line;
3. throughput with CUDA events, median of 5 windows of 50 steps after warm-up: ResNet-20 and
   VGG-16, dense and masked at 90 %, fp32 and bf16, eager, graph-captured (``--cuda-graphs``)
   and compiled (last: compiling is slow); host enqueue time beside GPU time;
4. concurrency: 1, 2, 4 and 8 training processes at once behind a start barrier, total and
   per-run images/s (what sizes ``--runs-per-gpu``);
5. the paper recipe shortened to the epochs that fit 2 minutes at the measured 4-way speed
   (milestones scale): dense, SynFlow, SNIP and random at 90 %, 4 runs at once; test accuracy,
   seconds per epoch, the projected 160-epoch time;
6. the summary table (also ``gpu_check.json`` in ``--out``), last, so it is in the output's tail.

``--smoke`` runs every part on the CPU in a few minutes (tiny models, synthetic data, short
windows; graph capture is reported as needing CUDA): that is how the check is tested. With
``PAI_BENCH_FAKE_CUDA=1`` (tests only, ``fake_cuda``) ``--smoke`` runs every part on
"CUDA" under CUDA's device rules, in this process and in every process it starts, up to the
graph-capture call. Exit
status: 0 every part complete and every run ok, 1 a run or a part failed, 2 a part was cut.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))  # fake_cuda: the tests' harness (--smoke)

from pai_bench import paths  # noqa: E402
from pai_bench.config import RunConfig  # noqa: E402
from pai_bench.data import load_split  # noqa: E402
from fake_cuda import CaptureRefused, from_environment  # noqa: E402
from pai_bench.io import atomic_write_text, read_json  # noqa: E402
from pai_bench.masks import Masks, PreparedMasks, apply_  # noqa: E402
from pai_bench.methods import baseline_names, scorer_names  # noqa: E402
from pai_bench.models import create_model, prunable_names  # noqa: E402
from pai_bench.options import RunOptions  # noqa: E402
from pai_bench.recipes import CIFAR  # noqa: E402
from pai_bench.pipeline.runner import execute  # noqa: E402
from pai_bench.sanity_checks import CHECKS  # noqa: E402
from pai_bench.training.train import GraphStep, Loop, batch_to, make_optimizer, train_step  # noqa: E402

PARTS = ("setup", "correctness", "throughput", "concurrency", "recipe", "summary")
BOXES = {"setup": 60, "correctness": 75, "throughput": 75, "concurrency": 60, "recipe": 145,
         "summary": 5}  # seconds: 420 in all
SMOKE_BOXES = {"setup": 30, "correctness": 90, "throughput": 40, "concurrency": 60,
               "recipe": 90, "summary": 5}
RECIPE_RUNS = (("random", 0.0), ("synflow", 0.9), ("snip", 0.9), ("random", 0.9))
RECIPE_TRAINING_S = 120.0  # part 5 trains this long (4 runs at once)
CIFAR_EPOCH = 50_000
CONCURRENCY = (1, 2, 4, 8)
FIRST_ROW_S = 60.0  # what part 4's first row (one run alone) may take, whatever its box
ITERATIVE_SCORERS = ("force", "iterative_snip", "ntk_sap", "synflow")
SMOKE_BATCH = 16


class Part:
    """One part's time box: ``expired()`` is asked after each row, so a cut part has printed
    every row it finished."""

    def __init__(self, name: str, box: float):
        self.name, self.box, self.t0 = name, box, time.perf_counter()
        self.cut, self.rows = False, []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.box - self.elapsed()

    def expired(self) -> bool:
        self.cut = self.cut or self.left() <= 0
        return self.cut

    def row(self, line: str, **record) -> None:
        print(line, flush=True)
        self.rows.append(record)


# --- 1. setup -----------------------------------------------------------------------------
def setup(args, work: Path, part: Part) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cuda_build": torch.version.cuda}
    part.row(f"python {info['python']}, torch {info['torch']} (CUDA build {info['cuda_build']})")
    t0 = time.perf_counter()
    if args.smoke:
        root, dataset = None, "synthetic"
        for split in ("train", "test"):
            load_split("synthetic", None, split)
    else:  # decoded here, before CUDA starts: the decoder's process pool forks
        root, dataset = data_root(args.data, work), "cifar10"
        for split in ("train", "test"):
            load_split("cifar10", root, split, cache_dir=work / "cache")
    info |= {"data": dataset, "decode_s": round(time.perf_counter() - t0, 1)}
    part.row(f"data: {dataset}, extracted and decoded in {info['decode_s']} s, before any CUDA "
             f"call")
    if args.device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        info |= {"gpu": torch.cuda.get_device_name(0),
                 "memory_gib": round(props.total_memory / 2**30, 1),
                 "cudnn": torch.backends.cudnn.version(),
                 "bf16": torch.cuda.is_bf16_supported()}
    else:
        info |= {"gpu": "none (--smoke: the CPU)"}
    part.row(f"device: {info['gpu']}" + (f", {info['memory_gib']} GiB, cuDNN {info['cudnn']}, "
                                         f"bf16 {info['bf16']}" if "cudnn" in info else ""))
    return info | {"root": str(root) if root else None}


def data_root(path: Path, work: Path) -> Path:
    """The CIFAR-10 folder: ``path`` itself, or extracted from the tar (any compression)."""
    if path.is_dir():
        return path
    if not path.is_file():
        raise SystemExit(f"--data {path}: no such file or folder (make it with: tar -czf "
                         f"data/cifar10-jpeg.tar.gz -C ../shared/data cifar10-jpeg)")
    with tarfile.open(path) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(work, filter="data")
        else:
            tar.extractall(work)
    found = [p.parent for p in work.rglob("train") if p.is_dir()]
    if not found:
        raise SystemExit(f"no train/ folder in {path}")
    return found[0]


# --- 2. correctness -----------------------------------------------------------------------
def correctness_cases(smoke: bool) -> list[tuple[str, dict]]:
    """(label, RunConfig fields): every registered method (one level of the iterative
    baselines), the three checks and --prune-at (step 10 of the 20 of an epoch on 2,560
    images; step 2 of the 4 of --smoke's)."""
    cases = [(m, {}) for m in sorted(set(scorer_names()) - {"masks"})]
    for b in sorted(baseline_names()):
        cases.append((f"{b} (one level)", {"method": b, "sparsity": 0.2} if b == "imp"
                      else {"method": b, "rounds": 1}))
    cases += [(f"snip --check {c}", {"method": "snip", "check": c})
              for c in CHECKS.names() if c != "none"]
    step = 2 if smoke else 10
    cases.append((f"snip --prune-at {step}", {"method": "snip", "prune_at": step}))
    return [(label, {"method": label, **fields}) for label, fields in cases]


def correctness(args, work: Path, part: Part, info: dict) -> dict:
    base = (dict(model="mlp", dataset="synthetic", epochs=1, batch_size=32, subset=128,
                 test_subset=50, sparsity=0.8) if args.smoke else
            dict(model="cifar_resnet_20", dataset="cifar10", epochs=1, subset=2560,
                 test_subset=1000, sparsity=0.9))
    options = RunOptions(results_dir=work / "correctness", device=str(args.device),
                         progress=False, data_root=Path(info["root"]) if info["root"] else None,
                         cache_dir=work / "cache")
    ok = 0
    quick = {"rounds": 2} if args.smoke else {}  # --smoke: 2 rounds, not 100 (synflow)
    for label, fields in correctness_cases(args.smoke):
        if fields["method"] in ITERATIVE_SCORERS and "rounds" not in fields:
            fields = {**fields, **quick}
        t0 = time.perf_counter()
        try:
            config = RunConfig(**{**base, "precision": args.precision, **fields})
            summary = execute(config, options)
            result = "ok" if summary.get("status") == "finished" else \
                f"{summary.get('status')}: {first_line(summary.get('error', ''))}"
        except Exception as e:  # one line per run: the first line of the error
            result = f"{type(e).__name__}: {first_line(str(e))}"
        ok += result == "ok"
        part.row(f"| {label} | {result} | {time.perf_counter() - t0:.1f} s |", run=label,
                 result=result)
        if part.expired():
            break
    return {"ok": ok, "runs": len(part.rows), "of": len(correctness_cases(args.smoke)),
            "failed": [r["run"] for r in part.rows if r["result"] != "ok"]}


def first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines and lines[0].startswith("Traceback") else \
        (lines[0][:200] if lines else "")


# --- 3. throughput ------------------------------------------------------------------------
def stepper(model_name: str, masked: bool, precision: str, mode: str, device: torch.device,
            smoke: bool):
    """A training step of the suite's loop (eager, graph-captured or compiled) on one random
    batch on ``device``."""
    kwargs = {"width": 4} if smoke and model_name == "cifar_resnet_20" else {}
    model = create_model(model_name, num_classes=10, input_shape=(3, 32, 32), seed=0,
                         **kwargs).to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    model.train()
    prepared = None
    if masked:
        prepared = PreparedMasks(model, Masks.random(model, prunable_names(model), 0.9, seed=0))
        apply_(model, prepared)
    loop = Loop(model, make_optimizer(model, CIFAR), CIFAR, 391, 0, 10**9)
    batch = SMOKE_BATCH if smoke else CIFAR.batch_size
    g = torch.Generator().manual_seed(1)
    x = batch_to(torch.randn(batch, 3, 32, 32, generator=g), device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    if mode == "graph":
        graph = GraphStep(loop, prepared, device, precision)
        return lambda: graph(loop, x, y)
    forward = torch.compile(model) if mode == "compiled" else model
    return lambda: train_step(loop, x, y, prepared, device, precision, forward)


def windows(step, device: torch.device, warmup: int, n: int, steps: int) -> tuple[float, float]:
    """(median GPU seconds, median host enqueue seconds) of ``n`` windows of ``steps`` steps,
    GPU time from CUDA events (the host's clock on the CPU)."""
    for _ in range(warmup):
        step()
    gpu, host = [], []
    for _ in range(n):
        if device.type == "cuda":
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        host.append(time.perf_counter() - t0)
        if device.type == "cuda":
            end.record()
            end.synchronize()
            gpu.append(start.elapsed_time(end) / 1000)
        else:
            gpu.append(host[-1])
    return statistics.median(gpu), statistics.median(host)


def throughput(args, part: Part) -> dict:
    smoke, device = args.smoke, args.device
    models = ("cifar_resnet_20", "mlp") if smoke else ("cifar_resnet_20", "cifar_vgg_16")
    warmup, n, steps = (2, 2, 2) if smoke else (GraphStep.WARMUP + 7, 5, 50)
    print("| model | masks | precision | mode | images/s | GPU ms/step | host ms/step |\n"
          "|---|---|---|---|---|---|---|", flush=True)
    rates = {}
    for mode in ("eager", "graph", "compiled"):
        for model_name in models:
            for precision in ("fp32", "bf16"):
                for masked in (False, True):
                    what = f"| {model_name} | {'90 %' if masked else 'dense'} | {precision} | {mode} |"
                    if mode == "graph" and device.type != "cuda":
                        part.row(f"{what} n/a: graph capture needs CUDA | | |")
                    elif mode == "compiled" and smoke:
                        part.row(f"{what} skipped in --smoke: compiling takes minutes on a CPU | | |")
                    else:
                        try:
                            gpu_s, host_s = windows(stepper(model_name, masked, precision, mode,
                                                            device, smoke), device, warmup, n, steps)
                            rate = (SMOKE_BATCH if smoke else 128) * steps / gpu_s
                            rates[(model_name, masked, precision, mode)] = rate
                            part.row(f"{what} {rate:,.0f} | {1000 * gpu_s / steps:.2f} | "
                                     f"{1000 * host_s / steps:.2f} |", model=model_name,
                                     masked=masked, precision=precision, mode=mode,
                                     images_per_s=round(rate), gpu_ms=1000 * gpu_s / steps,
                                     host_ms=1000 * host_s / steps)
                        except CaptureRefused:  # PAI_BENCH_FAKE_CUDA: up to the capture
                            part.row(f"{what} n/a: graph capture needs a real GPU (fake CUDA) | | |")
                        except Exception as e:
                            part.row(f"{what} failed: {type(e).__name__}: {first_line(str(e))} | | |",
                                     model=model_name, mode=mode, error=first_line(str(e)))
                    if part.expired():
                        return ratios(rates)
    return ratios(rates)


def ratios(rates: dict) -> dict:
    out = {"images_per_s": {"/".join([m, "masked" if k else "dense", p, mode]): round(r)
                            for (m, k, p, mode), r in rates.items()}}
    out["masked_over_dense_step"] = {
        "/".join([m, p, mode]): round(rates[(m, False, p, mode)] / r, 3)
        for (m, k, p, mode), r in rates.items() if k and (m, False, p, mode) in rates}
    return out


# --- 4. concurrency -----------------------------------------------------------------------
def concurrency_worker(args) -> int:
    """One of the processes of part 4: ready, wait for the start file, train for ``seconds``,
    write images/s."""
    folder, i = args.worker_dir, args.worker_index
    step = stepper("cifar_resnet_20", False, args.precision, "eager", args.device, args.smoke)
    for _ in range(3):
        step()
    sync = torch.cuda.synchronize if args.device.type == "cuda" else (lambda: None)
    sync()
    (folder / f"ready-{i}").touch()
    t_wait = time.perf_counter()
    while not (folder / "go").exists():
        if time.perf_counter() - t_wait > 120:
            return 1
        time.sleep(0.005)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.worker_seconds:
        for _ in range(10):
            step()
        steps += 10
        sync()  # once per 10 steps: the clock reads what the GPU did
    seconds = time.perf_counter() - t0
    atomic_write_text(folder / f"result-{i}.json",
                      json.dumps({"steps": steps, "seconds": seconds,
                                  "images_per_s": (SMOKE_BATCH if args.smoke else 128) * steps
                                  / seconds}))
    return 0


def concurrency(args, work: Path, part: Part) -> dict:
    seconds = 1.0 if args.smoke else 8.0
    print("| runs at once | total images/s | per run images/s | per run / alone |\n"
          "|---|---|---|---|", flush=True)
    alone, per_run = None, {}
    for n in CONCURRENCY:
        # the first row is measured whatever the box says (a cut part prints what it has: at
        # least one row); the later ones only if they fit
        deadline = time.perf_counter() + (part.left() if per_run else FIRST_ROW_S)
        folder = work / f"concurrency-{n}"
        folder.mkdir()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker-dir", str(folder),
               "--worker-seconds", str(seconds), "--precision", args.precision]
        cmd += ["--smoke"] if args.smoke else []
        procs = [subprocess.Popen(cmd + ["--worker-index", str(i)], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=open(folder / f"log-{i}", "w"),
                                  start_new_session=True) for i in range(n)]
        try:
            while len(list(folder.glob("ready-*"))) < n:
                left = deadline - time.perf_counter()
                if any(p.poll() not in (None, 0) for p in procs) or left < seconds + 5:
                    raise TimeoutError("workers not ready in time")
                time.sleep(0.05)
            (folder / "go").touch()
            for p in procs:
                p.wait(timeout=max(deadline - time.perf_counter(), 1) + seconds)
            rates = [read_json(folder / f"result-{i}.json")["images_per_s"] for i in range(n)]
        except (TimeoutError, subprocess.TimeoutExpired, OSError, ValueError) as e:
            log = (folder / "log-0").read_text().strip().splitlines()
            part.row(f"| {n} | not measured: {e}{'; ' + log[-1] if log else ''} | | |", runs=n)
            stop(procs)
            part.cut = part.cut or part.left() <= seconds + 5
            break
        stop(procs)
        per = statistics.mean(rates)
        alone = alone or per
        per_run[n] = per
        part.row(f"| {n} | {sum(rates):,.0f} | {per:,.0f} | {per / alone:.2f} |", runs=n,
                 total=round(sum(rates)), per_run=round(per))
        if part.expired():
            break
    return {"per_run_images_per_s": {n: round(r) for n, r in per_run.items()},
            "total_images_per_s": {r["runs"]: r.get("total") for r in part.rows}}


def stop(procs) -> None:
    """Stop processes (each leads its own process group) and wait for them."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- 5. the paper recipe, shortened -------------------------------------------------------
def recipe(args, work: Path, part: Part, info: dict, four_way: float | None) -> dict:
    results = work / "recipe"
    env = dict(os.environ, PAI_BENCH_CACHE=str(work / "cache"))
    if args.smoke:
        epochs = 1
        data = ["--model", "mlp", "--dataset", "synthetic", "--batch-size", "32"]
    else:
        per_epoch = CIFAR_EPOCH / four_way if four_way else None
        epochs = max(1, min(160, int(RECIPE_TRAINING_S / per_epoch))) if per_epoch else 1
        data = ["--model", "cifar_resnet_20", "--dataset", "cifar10", "--data-root", info["root"]]
    part.row(f"{epochs} epoch(s): what fits {RECIPE_TRAINING_S:.0f} s at the measured 4-way "
             f"speed ({four_way or 0:,.0f} images/s per run); milestones scale")
    procs = []
    for sparsity in sorted({s for _, s in RECIPE_RUNS}):
        methods = ",".join(m for m, s in RECIPE_RUNS if s == sparsity)
        cmd = [sys.executable, "-m", "pai_bench", "sweep", "--methods", methods,
               "--sparsities", str(sparsity), "--seeds", "0", *data, "--epochs", str(epochs),
               "--no-progress", "--eval-every", "0", "--results-dir", str(results),
               "--device", args.device.type, "--precision", args.precision]
        cmd += ["--runs-per-gpu", "4"] if args.device.type == "cuda" else ["--workers", "2"]
        log = work / f"sweep-{sparsity}.log"
        with open(log, "w") as out:
            procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True), log))
    failed = None
    try:
        while not all(p.poll() is not None for p, _ in procs):
            time.sleep(0.5 if args.smoke else 2)
            errors = sorted(results.glob(f"runs/*/{paths.ERROR}"))
            bad = [(p, log) for p, log in procs if p.poll() not in (None, 0)]
            if errors or bad:
                failed = (f"a run failed ({errors[0].parent.name}): "
                          f"{first_line(errors[0].read_text())}" if errors else
                          f"a sweep failed (exit {bad[0][0].returncode}): "
                          f"{first_line(bad[0][1].read_text())}")
                break
            if part.expired():
                break
    finally:
        stop([p for p, _ in procs])
    if failed:
        print(failed, flush=True)
    print("| method | sparsity | status | test accuracy | epochs | s/epoch | projected 160 epochs |\n"
          "|---|---|---|---|---|---|---|", flush=True)
    runs = []
    for run in sorted((results / "runs").glob("*")) if (results / "runs").exists() else []:
        st = run_state(run)
        name = "dense" if st["sparsity"] == 0 else st["method"]
        per_epoch = st["seconds"] / st["epoch"] if st["epoch"] else None
        acc = "n/a" if st["accuracy"] is None else f"{100 * st['accuracy']:.2f} %"
        part.row(f"| {name} | {st['sparsity']} | {st['status']} | {acc} | {st['epoch']:g} | "
                 f"{per_epoch or 0:.2f} | {160 * per_epoch / 60 if per_epoch else 0:.1f} min |",
                 method=name, status=st["status"], accuracy=st["accuracy"],
                 seconds_per_epoch=per_epoch, projected_160_s=160 * per_epoch if per_epoch else None)
        runs.append(part.rows[-1])
    return {"epochs": epochs, "runs": runs, "failed": failed}


def run_state(run: Path) -> dict:
    """What a run folder says of its run: its summary once finished, and how far it trained."""
    rows = []
    if (run / paths.METRICS).exists():
        with open(run / paths.METRICS, newline="") as f:
            rows = list(csv.DictReader(f))
    last = rows[-1] if rows else {}
    state = {"epoch": float(last["epoch"]) if last else 0.0,
             "seconds": float(last.get("seconds") or 0)}
    if (run / paths.SUMMARY).exists():
        s = read_json(run / paths.SUMMARY)
        return state | {"method": s["config"]["method"], "sparsity": s["config"]["sparsity"],
                        "status": s["status"], "accuracy": s.get("test_accuracy")}
    config = read_json(run / paths.CONFIG)["config"] if (run / paths.CONFIG).exists() else {}
    return state | {"method": config.get("method", run.name.rsplit("-", 1)[0]),
                    "sparsity": config.get("sparsity"), "accuracy": None,
                    "status": "failed" if (run / paths.ERROR).exists() else "training"}


# --- 6. summary ---------------------------------------------------------------------------
def summary(report: dict, out: Path | None) -> None:
    lines = ["| part | status | result |", "|---|---|---|"]
    for name in PARTS[:-1]:
        r = report.get(name, {})
        lines.append(f"| {name} | {r.get('status', 'not run')} | {headline(name, r)} |")
    print("\n".join(lines), flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "gpu_check.json", json.dumps(report, indent=1, default=str))
        print(f"(also {out / 'gpu_check.json'})")


def headline(name: str, r: dict) -> str:
    res = r.get("result") or {}
    if "error" in r:
        return r["error"]
    if name == "setup":
        return f"{res.get('gpu')}, torch {res.get('torch')}, data decoded in {res.get('decode_s')} s"
    if name == "correctness":
        failed = ", ".join(res.get("failed", [])) or "none"
        return f"{res.get('ok')} of {res.get('of')} ok ({res.get('runs')} run); failed: {failed}"
    if name == "throughput":
        ips = res.get("images_per_s", {})
        best = max(ips.items(), key=lambda kv: kv[1]) if ips else ("-", 0)
        ratio = res.get("masked_over_dense_step", {})
        worst = max(ratio.values()) if ratio else None
        return f"fastest {best[0]} {best[1]:,} images/s; masked/dense step at most {worst}"
    if name == "concurrency":
        per = res.get("per_run_images_per_s", {})
        return ", ".join(f"{n} at once: {v:,}/run" for n, v in per.items()) or "-"
    if name == "recipe":
        runs = res.get("runs", [])
        cells = []
        for x in runs:
            acc = "n/a" if x["accuracy"] is None else f"{100 * x['accuracy']:.1f} %"
            proj = x.get("projected_160_s")
            cells.append(f"{x['method']} {acc}" + (f", 160 ep {proj / 60:.1f} min" if proj else ""))
        return f"{res.get('epochs')} epoch(s): " + "; ".join(cells)
    return ""


# --- the driver ---------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "cifar10-jpeg.tar.gz",
                        help="tar (gzipped or not) of the CIFAR-10 image folders, or the folder")
    parser.add_argument("--smoke", action="store_true",
                        help="every part on the CPU in a few minutes (tiny models, synthetic data)")
    parser.add_argument("--out", type=Path, help="folder for gpu_check.json (default: none)")
    parser.add_argument("--box", action="append", default=[], metavar="PART=SECONDS",
                        help=f"one part's time box ({', '.join(PARTS)})")
    parser.add_argument("--precision", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    fake = from_environment()  # tests only: --smoke on "CUDA" under fake_cuda
    args.device = torch.device("cpu" if args.smoke and fake is None else "cuda")
    args.precision = args.precision or ("fp32" if args.smoke else "bf16")
    if args.worker_dir is not None:
        return concurrency_worker(args)
    boxes = dict(SMOKE_BOXES if args.smoke else BOXES)
    for given in args.box:
        name, _, seconds = given.partition("=")
        if name not in boxes:
            parser.error(f"--box {given}: unknown part {name!r}; parts: {', '.join(PARTS)}")
        boxes[name] = float(seconds)
    where = " (--smoke: on the CPU)" if args.smoke and fake is None else \
        " (--smoke: on fake CUDA, fake_cuda)" if args.smoke else ""
    print(f"# GPU check{where}: time boxes "
          + ", ".join(f"{k} {v:g} s" for k, v in boxes.items()), flush=True)
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        info = run_part(1, "setup", boxes, report, lambda p: setup(args, work, p))
        if info is None:
            summary(report, args.out)
            return 1
        if args.device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --smoke on a CPU")
        run_part(2, "correctness", boxes, report, lambda p: correctness(args, work, p, info))
        run_part(3, "throughput", boxes, report, lambda p: throughput(args, p))
        conc = run_part(4, "concurrency", boxes, report, lambda p: concurrency(args, work, p))
        per = (conc or {}).get("per_run_images_per_s", {})
        four_way = per.get(4) or per.get(2) or per.get(1)
        run_part(5, "recipe", boxes, report, lambda p: recipe(args, work, p, info, four_way))
        print("\n## 6. summary", flush=True)
        summary(report, args.out)
    statuses = [r["status"] for r in report.values()]
    failed = "failed" in statuses or (report.get("correctness", {}).get("result") or {}).get("failed") \
        or (report.get("recipe", {}).get("result") or {}).get("failed")
    return 1 if failed else 2 if "cut" in statuses else 0


def run_part(number: int, name: str, boxes: dict, report: dict, body):
    """Run one part in its time box; an exception is its first line, and the check goes on."""
    part = Part(name, boxes[name])
    print(f"\n## {number}. {name} (time box {part.box:g} s)", flush=True)
    try:
        result = body(part)
        status = "cut" if part.cut else "ok"
        report[name] = {"status": status, "seconds": round(part.elapsed(), 1), "result": result}
    except Exception as e:
        result = None
        print(f"part {name} failed: {type(e).__name__}: {first_line(str(e))}", flush=True)
        report[name] = {"status": "failed", "seconds": round(part.elapsed(), 1),
                        "error": f"{type(e).__name__}: {first_line(str(e))}"}
    if part.cut:
        print(f"(part {name} cut by its time box after {part.elapsed():.0f} s: the rows above are "
              f"its partial result; the check goes on)", flush=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
