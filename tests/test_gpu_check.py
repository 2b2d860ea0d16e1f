"""The prepared GPU check (benchmarks/gpu_check.py), run here as --smoke on the CPU.

A GPU is lent to few sessions, for minutes: the check must work the first time there, stop
at once when a run fails, and never outlive its deadline (a stopped command returns nothing).
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def check(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
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


def table_rows(out: str) -> list[list[str]]:
    section = out[out.index("## (c)"):]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| method")]


def test_smoke_runs_every_part_and_tables_the_four_runs(tmp_path):
    done = check("--results-dir", str(tmp_path / "r"))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "identical: yes" in out
    assert "| mlp |" in out and "all 4 runs done" in out
    rows = table_rows(out)
    assert sorted((r[0], r[1]) for r in rows) == [("dense", "0.00"), ("random", "0.90"),
                                                  ("snip", "0.90"), ("synflow", "0.90")]
    assert all(r[2] == "finished" and r[3].endswith("%") and r[4] == "1" for r in rows), rows
    assert not alive(str(tmp_path))


def test_the_deadline_stops_the_runs_and_shows_how_far_they_got(tmp_path):
    done = check("--results-dir", str(tmp_path / "r"), "--deadline", "0")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "## (c) deadline" in done.stdout
    assert "all 4 runs done" not in done.stdout
    assert not alive(str(tmp_path)), "the sweeps outlived the check"


def test_a_failing_sweep_stops_the_check_at_once_with_its_log(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the results folder should be")
    done = check("--results-dir", str(blocker), "--deadline", "200", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "a sweep failed" in done.stdout and "the end of its log" in done.stdout
    assert not alive(str(blocker))


def test_a_failed_run_stops_the_check_before_its_sweep_ends(tmp_path, capsys):
    """A sweep reports a failed run only when its other runs end (minutes on a GPU): the check
    reads the run's error.txt as soon as it is written, shows it and stops every sweep."""
    import argparse
    import importlib.util
    import time

    import torch

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    results = tmp_path / "r"
    crashed = results / "runs" / "snip-0123456789ab"
    crashed.mkdir(parents=True)
    (crashed / "error.txt").write_text("Traceback (most recent call last):\nRuntimeError: boom\n")
    args = argparse.Namespace(smoke=True, results_dir=results, deadline=200.0, data=None)
    work = tmp_path / "work"
    work.mkdir()
    code = gpu_check.sweeps(args, torch.device("cpu"), "fp32", work, time.perf_counter())
    out = capsys.readouterr().out
    assert code == 1, out
    assert "a run failed (snip-0123456789ab)" in out and "RuntimeError: boom" in out
    assert "| snip | ? | failed |" in out
    assert not alive(str(results)), "the sweeps outlived the check"
