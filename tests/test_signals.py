"""Issue 39, causes 3-5: Ctrl-C and SIGTERM stop a run or a sweep with one line and exit 130 / 143,
leaving what the same command resumes; a scorer's sys.exit or KeyboardInterrupt fails its run,
not the process; nothing of a sweep killed with -9 outlives it."""

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "mlp", "--dataset", "synthetic", "--subset", "128", "--test-subset", "50",
        "--batch-size", "32", "--no-progress", "--threads", "1", "--checkpoint-every", "0"]
STOPPED = "pai-bench: stopped; run the same command to resume"

# Runs the CLI and sends the process ``signal`` when ``function`` of ``file`` is entered the
# ``nth`` time: a Ctrl-C or a SIGTERM at that exact point, wherever the function is imported.
DRIVER = """
import os, signal, sys
from pai_bench.cli.parser import main
file, func, nth, sig = sys.argv[1], sys.argv[2], int(sys.argv[3]), getattr(signal, sys.argv[4])
seen = 0
def hook(frame, event, arg):
    global seen
    code = frame.f_code
    if event == "call" and code.co_name == func and code.co_filename.endswith(file):
        seen += 1
        if seen == nth:
            sys.setprofile(None)
            os.kill(os.getpid(), sig)
sys.setprofile(hook)
sys.exit(main(sys.argv[5:]))
"""


def cli(*argv, driver=(), env=None, timeout=300):
    cmd = [sys.executable, *(("-c", DRIVER, *driver) if driver else ("-m", "pai_bench")), *argv]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


PHASES = {  # where the signal arrives: (file, function, nth call), the command
    "scoring": (("scoring.py", "scored", 1), ["run", "--method", "snip", "--epochs", "2"]),
    "training": (("train.py", "train_step", 6), ["run", "--method", "random", "--epochs", "3"]),
    "checkpoint write": (("callbacks.py", "save_training_state", 2),
                         ["run", "--method", "random", "--epochs", "3"]),
    "evaluation": (("train.py", "evaluate", 2), ["run", "--method", "random", "--epochs", "3"]),
    "dense pre-training": (("train.py", "train_step", 3),
                           ["run", "--method", "magnitude_after_training", "--epochs", "2"]),
    "imp level": (("train.py", "train_step", 14),
                  ["run", "--method", "imp", "--sparsity", "0.5", "--epochs", "2"]),
    "sweep": (("train.py", "train_step", 10),
              ["sweep", "--methods", "random,magnitude", "--epochs", "3"]),
}


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", PHASES)
def test_a_signal_stops_with_one_line_and_the_same_command_resumes(phase, sig, tmp_path):
    where, command = PHASES[phase]
    argv = [*command, *TINY, "--results-dir", str(tmp_path)]
    stopped = cli(*argv, driver=(*map(str, where), sig))
    assert stopped.returncode == 128 + getattr(signal, sig), stopped.stderr
    assert stopped.stderr.strip() == STOPPED, stopped.stderr
    again = cli(*argv)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    summaries = glob.glob(str(tmp_path / "runs" / "*" / "summary.json"))
    assert summaries and not glob.glob(str(tmp_path / "runs" / "*" / "checkpoint.pt"))


def _children(pid: int) -> list[int]:
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.split("/")[2]))
    return out


def _start_two_worker_sweep(results: Path) -> tuple[subprocess.Popen, list[int]]:
    """A 2-worker sweep in its own process group (a terminal's job), once a run has a
    checkpoint; its child processes (workers, manager, resource tracker) then."""
    cmd = [sys.executable, "-m", "pai_bench", "sweep", "--methods", "random,magnitude",
           "--sparsities", "0.5,0.9", "--epochs", "40", *TINY, "--workers", "2",
           "--results-dir", str(results)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.time() + 120
    while not glob.glob(str(results / "runs" / "*" / "checkpoint.pt")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1]
        time.sleep(0.05)
    return proc, _children(proc.pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc, PR_SET_PDEATHSIG")
@pytest.mark.parametrize("sig, group", [("SIGINT", True), ("SIGTERM", False),
                                        ("SIGKILL", False)])
def test_a_two_worker_sweep_stops_and_leaves_no_process(sig, group, tmp_path):
    """Ctrl-C reaches the whole group, SIGTERM and kill -9 the sweep alone: one line (none
    after -9), and no worker, manager or resource tracker is left behind."""
    proc, children = _start_two_worker_sweep(tmp_path)
    assert len(children) >= 3  # 2 workers and the manager (and the resource tracker)
    (os.killpg if group else os.kill)(proc.pid, getattr(signal, sig))
    try:  # an orphan holding the pipes would make this time out
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    if sig != "SIGKILL":
        assert proc.returncode == 128 + getattr(signal, sig)
        assert err.strip().splitlines()[-1] == STOPPED and "Traceback" not in err, err
    deadline = time.time() + 10
    while [c for c in children if os.path.exists(f"/proc/{c}")] and time.time() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if os.path.exists(f"/proc/{c}")]
    again = cli("sweep", "--methods", "random,magnitude", "--sparsities", "0.5,0.9",
                "--epochs", "40", *TINY, "--workers", "2", "--results-dir", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert len(glob.glob(str(tmp_path / "runs" / "*" / "summary.json"))) == 4


PLUGIN = """
import os, sys
from pai_bench.methods import Scorer

class Quitter(Scorer):
    name = "quitter"
    needs_data = False

    def score(self, ctx):
        if os.environ["QUIT_HOW"] == "exit":
            sys.exit(3)
        raise KeyboardInterrupt
"""


@pytest.mark.parametrize("how, what", [("exit", "SystemExit: 3"),
                                       ("interrupt", "raised KeyboardInterrupt")])
@pytest.mark.parametrize("command", ["run", "sweep 1", "sweep 2"])
def test_a_scorer_that_exits_or_interrupts_fails_its_run_only(how, what, command, tmp_path):
    (tmp_path / "quit_plugin.py").write_text(PLUGIN)
    env = {"QUIT_HOW": how, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    common = [*TINY, "--epochs", "1", "--plugin", "quit_plugin",
              "--results-dir", str(tmp_path / "r")]
    if command == "run":
        out = cli("run", "--method", "quitter", *common, env=env)
        assert out.returncode == 1, out.stderr
        assert out.stderr.strip().count("\n") == 0 and "'quitter'" in out.stderr
        assert what in out.stderr and "Traceback" not in out.stderr
        return
    out = cli("sweep", "--methods", "quitter,random", "--workers", command[-1], *common, env=env)
    assert out.returncode == 1, out.stderr
    assert "2 run(s) this time, 1 failed" in out.stdout, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert len(glob.glob(str(tmp_path / "r" / "runs" / "random-*" / "summary.json"))) == 1
    assert what in "".join(Path(p).read_text()
                           for p in glob.glob(str(tmp_path / "r" / "runs" / "quitter-*" / "*")))
