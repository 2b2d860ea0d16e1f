"""Sweeps on a real Ray cluster: the same results as a local sweep, and a killed worker's run
resumes and is recorded once.

The cluster is two ``ray start`` processes on this machine, a head and a worker node with one
CPU each, standing in for two machines that share a filesystem. Their addresses are 127.0.0.2
and 127.0.0.3: loopback, but not 127.0.0.1, which Ray replaces by the machine's network address
(``ray._private.services.resolve_ip_for_localhost``); this way nothing leaves the loopback
interface. Each ``ray start`` runs in a session of its own, and teardown kills exactly the
processes of those sessions, where ``ray stop --force`` would kill every Ray process of the
user on the machine (a developer's own cluster included).

Ray is a test dependency (``pip install -e '.[test,ray]'``, as CI does): without it these tests
fail, they are not skipped.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from pai_bench.cli.parser import main
from pai_bench.analysis.table import build_tables

REPO = Path(__file__).resolve().parents[1]
HEAD, WORKER = "127.0.0.2", "127.0.0.3"
TINY = ["--model", "mlp", "--dataset", "synthetic", "--batch-size", "32", "--threads", "1",
        "--no-progress", "--checkpoint-every", "0"]  # a checkpoint every epoch (kill tests)
LIGHT = ["--num-cpus=1", "--object-store-memory=100000000"]  # 100 MB, near Ray's minimum


def session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``, from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


class Cluster:
    def __init__(self):
        self.temp = tempfile.mkdtemp(prefix="pai-ray-", dir="/tmp")  # short: Ray's unix sockets
        with socket.socket() as s:
            s.bind(("", 0))
            self.port = s.getsockname()[1]
        self.address = f"{HEAD}:{self.port}"
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        self.sessions: list[int] = []

    def ray_start(self, *args: str) -> None:
        ray = Path(sys.executable).parent / "ray"
        proc = subprocess.Popen([str(ray), "start", *args, *LIGHT], env=self.env,
                                start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        self.sessions.append(proc.pid)  # the daemons it starts keep its session id
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out

    def pids(self) -> list[int]:
        return [p for sid in self.sessions for p in session_pids(sid)]

    def task_pids(self, run_name: str) -> list[int]:
        """Ray names a worker process after its task: ray::pai-bench:<run folder>."""
        return [p for p in self.pids() if cmdline(p).startswith(f"ray::pai-bench:{run_name}")]

    def stop(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 30
        while self.pids() and time.time() < deadline:
            time.sleep(0.1)
        left = self.pids()
        shutil.rmtree(self.temp, ignore_errors=True)
        assert not left, f"Ray processes still alive: {left}"

    def sweep(self, *args: str, results: Path, **kw) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "pai_bench", "sweep", *TINY, *args, "--results-dir",
               str(results), "--executor", "ray", "--ray-address", self.address]
        return subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, **kw)


@pytest.fixture(scope="module")
def cluster():
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.fail("Ray is not installed: pip install -e '.[test,ray]'")
    c = Cluster()
    try:
        c.ray_start("--head", f"--node-ip-address={HEAD}", f"--port={c.port}",
                    "--include-dashboard=false", f"--temp-dir={c.temp}")
        c.ray_start(f"--address={c.address}", f"--node-ip-address={WORKER}")
        yield c
    finally:
        c.stop()


def finished_runs(results: Path) -> dict[str, dict]:
    """Every recorded run, after checking it is recorded once: one summary, one metrics row
    per epoch, no checkpoint left."""
    out = {}
    for path in sorted(results.glob("runs/*/summary.json")):
        summary = json.loads(path.read_text())
        assert summary["status"] == "finished", summary
        steps = [int(line.split(",")[0])
                 for line in (path.parent / "metrics.csv").read_text().splitlines()[1:]]
        assert steps == sorted(set(steps)) and len(steps) == summary["config"]["epochs"], steps
        assert not (path.parent / "checkpoint.pt").exists()
        out[path.parent.name] = summary
    return out


def timed(proc: subprocess.Popen, timeout: float = 300) -> tuple[str, float]:
    t0 = time.perf_counter()
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out, time.perf_counter() - t0


def test_a_sweep_on_ray_equals_the_local_sweep(cluster, tmp_path):
    """2 methods x 2 sparsities and ltr (whose dense network both ltr runs share)."""
    axes = ["--methods", "random,magnitude,ltr", "--sparsities", "0.5,0.9", "--epochs", "1",
            "--subset", "320", "--test-subset", "50"]
    local_cmd = [sys.executable, "-m", "pai_bench", "sweep", *axes, *TINY, "--results-dir",
                 str(tmp_path / "local")]
    _, local_s = timed(subprocess.Popen(local_cmd, cwd=REPO, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))
    out, ray_s = timed(cluster.sweep(*axes, results=tmp_path / "ray"))
    print(f"small sweep, wall time: local --workers 1 {local_s:.1f} s, Ray {ray_s:.1f} s")
    assert "2 node(s), 2 CPU(s)" in out and "6 run(s) this time, 0 failed" in out
    assert out.count(" finished ") == 6  # one line per run, as a local sweep prints
    local, remote = finished_runs(tmp_path / "local"), finished_runs(tmp_path / "ray")
    assert len(remote) == 6 and remote.keys() == local.keys()
    assert len(list((tmp_path / "ray" / "dense").glob("dense-*"))) == 1  # trained once
    for name, summary in remote.items():
        assert summary["test_accuracy"] == local[name]["test_accuracy"], name
    table = build_tables(tmp_path / "ray")["accuracy"]
    measured = ["seconds_per_epoch"]  # wall-clock time: what differs between two machines
    pd.testing.assert_frame_equal(table.drop(columns=measured),
                                  build_tables(tmp_path / "local")["accuracy"].drop(columns=measured))


def test_b_a_killed_worker_is_retried_and_its_run_resumes(cluster, tmp_path):
    results = tmp_path / "ray"
    proc = cluster.sweep("--methods", "random,magnitude", "--sparsities", "0.5,0.9",
                         "--epochs", "12", "--subset", "640", "--test-subset", "100",
                         results=results)
    deadline, killed = time.time() + 120, None
    try:  # SIGKILL the worker of a half-trained run: it has a checkpoint and no summary
        while killed is None and time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            for ckpt in results.glob("runs/*/checkpoint.pt"):
                run = ckpt.parent
                pids = cluster.task_pids(run.name)
                if pids and not (run / "summary.json").exists():
                    os.kill(pids[0], signal.SIGKILL)
                    killed = run
                    break
            time.sleep(0.05)
        assert killed is not None, "no run was caught half-trained"
        assert not (killed / "summary.json").exists()  # killed before it finished
        out, _ = timed(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "4 run(s) this time, 0 failed" in out
    runs = finished_runs(results)  # the killed run too: resumed, its metrics rows once each
    assert len(runs) == 4 and killed.name in runs


def test_c_options_are_checked_before_anything_runs(cluster, tmp_path, capsys, monkeypatch):
    tiny = ["sweep", "--methods", "random", "--epochs", "1", *TINY,
            "--results-dir", str(tmp_path)]
    assert main([*tiny, "--ray-address", cluster.address]) == 2
    assert "--ray-address applies to --executor ray" in capsys.readouterr().err
    assert main([*tiny, "--executor", "ray", "--workers", "2"]) == 2
    assert "--workers applies to --executor local" in capsys.readouterr().err
    # a run no node can hold would wait forever: refused (the nodes have 1 CPU each)
    proc = cluster.sweep("--methods", "random", "--epochs", "1", "--threads", "2",
                         results=tmp_path)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2 and "no node of the Ray cluster has 2 CPU(s)" in out, out
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main([*tiny, "--executor", "ray"]) == 2
    assert "pip install -e '.[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
