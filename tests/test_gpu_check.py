"""The prepared GPU check (benchmarks/gpu_check.py), run here as --smoke on the CPU.

A GPU is lent to few sessions, for minutes: the check must work the first time there, print
every part, and a part that runs past its time box must print what it has and let the next
part run (a stopped command returns nothing).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent / "support"
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
HEADERS = ["## 1. setup", "## 2. correctness", "## 3. throughput", "## 4. concurrency",
           "## 5. recipe", "## 6. summary"]


def check(*args, timeout=900, **env_vars):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(SUPPORT)]), OMP_NUM_THREADS="1",
               **env_vars)
    return subprocess.run([sys.executable, str(SCRIPT), "--smoke", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def alive(marker: str) -> list[str]:
    """Command lines of the processes still running that mention ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and int(pid) != os.getpid():
            found.append(cmdline)
    return found


def section(out: str, header: str) -> str:
    start = out.index(header)
    nxt = [out.index(h) for h in HEADERS if h in out and out.index(h) > start]
    return out[start:min(nxt) if nxt else len(out)]


def test_smoke_prints_all_six_parts_and_a_cut_part_its_partial_result(tmp_path):
    """Correctness and concurrency cut at once (box 0): each prints the row it finished and the
    cut; the parts after them run; the summary, last, says which were cut; the JSON too."""
    done = check("--out", str(tmp_path / "out"), "--box", "correctness=0",
                 "--box", "concurrency=0")
    out = done.stdout
    assert done.returncode == 2, out + done.stderr  # 2: a part was cut
    positions = [out.index(h) for h in HEADERS]
    assert positions == sorted(positions), out
    correctness = section(out, "## 2. correctness")
    assert len(re.findall(r"^\| \S+ \| ok \|", correctness, re.M)) == 1, correctness
    assert "cut by its time box" in correctness
    throughput = section(out, "## 3. throughput")
    assert "cut by its time box" not in throughput
    assert re.search(r"^\| cifar_resnet_20 \| dense \| fp32 \| eager \| [\d,]+ \|", throughput, re.M)
    assert "n/a: graph capture needs CUDA" in throughput
    concurrency = section(out, "## 4. concurrency")
    assert re.search(r"^\| 1 \| [\d,]+ \| [\d,]+ \| 1.00 \|", concurrency, re.M), concurrency
    assert "cut by its time box" in concurrency and "| 2 |" not in concurrency
    recipe = section(out, "## 5. recipe")
    rows = re.findall(r"^\| (dense|synflow|snip|random) \| [\d.]+ \| finished \| [\d.]+ % \|",
                      recipe, re.M)
    assert sorted(rows) == ["dense", "random", "snip", "synflow"], recipe
    tail = section(out, "## 6. summary")
    assert "| correctness | cut |" in tail and "| throughput | ok |" in tail
    assert "| concurrency | cut |" in tail and "| recipe | ok |" in tail
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert [k for k in report] == ["setup", "correctness", "throughput", "concurrency", "recipe"]
    assert report["correctness"]["result"]["runs"] == 1
    assert not alive(str(SCRIPT) + " --worker-dir"), "a concurrency worker outlived the check"


def test_smoke_runs_every_part_on_fake_cuda_under_its_device_rules(tmp_path):
    """``PAI_BENCH_FAKE_CUDA=1``: the check, its concurrency workers, the recipe's sweeps and
    their --runs-per-gpu workers all run on "CUDA" (fake_cuda) in bf16, as on the
    GPU: every registered method, baseline and check ok, every part complete (no box cut:
    boxes widened for a loaded CI machine), graph capture covered up to the capture call."""
    done = check("--out", str(tmp_path / "out"), "--precision", "bf16", "--box",
                 "correctness=600", "--box", "throughput=300", "--box", "concurrency=300",
                 "--box", "recipe=300",
                 PAI_BENCH_FAKE_CUDA="1")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr  # every part complete, every run ok
    assert "on fake CUDA" in out.splitlines()[0]
    assert "device: fake CUDA" in section(out, "## 1. setup")
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    correctness = report["correctness"]["result"]
    assert correctness["ok"] == correctness["runs"] == correctness["of"] > 10, correctness
    throughput = section(out, "## 3. throughput")
    assert re.search(r"^\| mlp \| 90 % \| bf16 \| eager \| [\d,]+ \|", throughput, re.M)
    assert "n/a: graph capture needs a real GPU (fake CUDA)" in throughput
    assert "failed" not in throughput, throughput
    per_run = report["concurrency"]["result"]["per_run_images_per_s"]
    assert len(per_run) == 4 and all(v > 0 for v in per_run.values()), per_run
    runs = report["recipe"]["result"]["runs"]
    assert sorted(r["method"] for r in runs) == ["dense", "random", "snip", "synflow"]
    assert all(r["status"] == "finished" for r in runs), runs
    assert not alive(str(SCRIPT) + " --worker-dir"), "a concurrency worker outlived the check"
