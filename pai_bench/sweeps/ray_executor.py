"""Sweeps on a Ray cluster: every run is a Ray task; its results land where a local run's do.

``sweep --executor ray --ray-address HOST:PORT`` sends each unfinished run of a sweep to a Ray
cluster (``ray start`` on every node, see docs/clusters.md) as one task that calls
:func:`pai_bench.sweeps.worker.run_one`, the function a local worker calls. What that implies:

- **Results.** A task writes its run itself into ``<results>/runs/<method>-<hash>/`` with the
  same atomic writes as a local run, so ``table`` and ``plot`` read a sweep the same wherever its
  runs ran, and a sweep can be resumed locally or on another cluster. This needs the results
  folder on a filesystem shared by every node, mounted at the same path (the driver passes the
  absolute path); a task on a node that does not see the folder fails saying so, instead of
  writing results nobody will read.
- **Dense networks** of the after-training baselines are shared through ``<results>/dense/`` and
  its lock file (``pai_bench.pipeline.dense``), as between local workers: the shared filesystem must
  support ``fcntl`` locks across nodes (a local disk, NFSv4; Lustre mounted with ``-o flock``).
- **Resources.** A task asks for ``threads`` CPUs (its torch threads) and, on CUDA, one GPU, so
  Ray runs as many at once as the nodes hold. Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPU it
  gave the task, so every CUDA device name becomes ``cuda``.
- **Failures.** A run's own exception is caught by ``run_one`` and recorded as failed; Ray does
  not retry it (``retry_exceptions=False``). A task whose worker process dies (killed, out of
  memory, node lost) is retried up to ``MAX_RETRIES`` times, and the retry resumes from the
  run's last checkpoint, or returns the stored summary if the run had finished
  (``runner.execute`` is idempotent). The run's lock file (``runner.execute``) makes a retry
  wait for an attempt that is still alive (on a node Ray declared dead that is not), so no run
  completes twice.

Ray is an optional extra (``pip install -e '.[ray]'``), imported here only, and only when asked.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from pathlib import Path

from pai_bench import paths
from pai_bench.errors import ConfigError, PaiBenchError
from pai_bench.sweeps.executors import Executor
from pai_bench.options import RunOptions
from pai_bench.sweeps.worker import run_one

MAX_RETRIES = 3                # worker deaths survived per run; each retry resumes the run
# Seconds to reach a cluster's head before ``ray.init`` (``probe``): ``ray.init`` itself retries
# an unreachable address for minutes (20 tries, each a connection timeout), with no option of
# ``ray.init`` that shortens it for a driver.
CONNECT_TIMEOUT_S = 10.0
TASK_PREFIX = "pai-bench:"     # task name and worker process title: ray::pai-bench:<run folder>
INSTALL = "pip install -e '.[ray]'"


def require_ray():
    """The ``ray`` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed; install it with "
                          f"{INSTALL}") from None
    return ray


def run_task(config, options: RunOptions) -> dict:
    """The body of a run's Ray task: ``run_one`` on the shared results folder."""
    results = Path(options.results_dir)
    if not results.is_dir():
        raise PaiBenchError(f"results folder {results} not found on node {socket.gethostname()}: "
                            "--executor ray needs it on a filesystem shared by every node")
    return run_one(config, options)


class RayExecutor(Executor):
    """One Ray task per run on the cluster at ``address`` (module docstring)."""

    name = "ray"

    def where(self) -> str:
        require_ray()
        if self.workers != 1:
            raise ConfigError("--workers applies to --executor local; on Ray, the runs at once "
                              "are the cluster's CPUs divided by --threads")
        return f"on the Ray cluster at {self.address or 'the default address'}"

    def run(self, todo, options: RunOptions, on_finish, say=print, plans=None) -> None:
        run(todo, options, address=self.address, on_finish=on_finish, say=say,
            gpus=1 / self.runs_per_gpu if self.runs_per_gpu else 1)


def run(todo: list, options: RunOptions, *, address: str | None, on_finish, say=print,
        gpus: float = 1) -> None:
    """Run every config of ``todo`` as a Ray task with ``options`` (a worker's);
    ``on_finish(config, summary, t0)`` per run, in the order they finish. ``address``:
    ``HOST:PORT`` of the head node; None means Ray's default ($RAY_ADDRESS, else a cluster
    started on this machine, else a new local one)."""
    if not todo:
        return
    ray = require_ray()
    connected_here = not ray.is_initialized()
    if connected_here:
        if address:
            probe(address)
        else:
            probe(os.environ.get("RAY_ADDRESS"), what="$RAY_ADDRESS")
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {e}") from None
    try:
        threads = options.threads or 1
        gpus = gpus if options.device.startswith("cuda") else 0  # a fraction: runs share a GPU
        say(f"[pai-bench] Ray cluster: {_describe(ray.nodes())}")
        _check_feasible(ray.nodes(), threads, gpus)
        remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=MAX_RETRIES,
                            retry_exceptions=False)(run_task)
        results = Path(options.results_dir).resolve()
        results.mkdir(parents=True, exist_ok=True)
        # Ray gives each task its GPU as CUDA_VISIBLE_DEVICES: every device name is "cuda"
        task_options = dataclasses.replace(
            options, results_dir=results, data_root=Path(options.data_root).resolve(),
            device="cuda" if gpus else options.device, threads=threads,
            cache_dir=None)  # a node's own decoded-image cache
        refs = {}
        for c in todo:
            name = TASK_PREFIX + paths.run_dir(results, c).name
            refs[remote.options(name=name).remote(c, task_options)] = (c, time.perf_counter())
        remaining = list(refs)
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=1)
            for ref in done:
                c, t0 = refs[ref]
                on_finish(c, _result(ray, ref, c), t0)
    finally:
        if connected_here:
            ray.shutdown()  # disconnects this driver; the cluster keeps running


def probe(address: str | None, timeout: float | None = None, what: str = "--ray-address") -> None:
    """ConfigError within about ``timeout`` seconds (``CONNECT_TIMEOUT_S``) unless a Ray head
    answers at ``address`` (``HOST:PORT``, given as ``what``; None, ``auto``, ``local`` and
    ``ray://`` addresses are left to Ray). First a TCP connection (a refused port, an address
    no route leads to), then the first question ``ray.init`` asks, the cluster's id from the
    head's GCS over gRPC (Ray's own dependency): an address where something that is not a Ray
    head listens, or where nothing answers, is refused in seconds instead of the minutes of
    ``ray.init``'s retries and a screen of its warnings."""
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")  # an IPv6 address: [::1]:6379
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"{what} takes HOST:PORT (the head's GCS port, 6379 unless `ray start "
                          f"--head --port` said otherwise), got {address!r}")
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    hint = (f"check {what} (the address `ray start --head` printed: HOST:PORT of the head's "
            f"GCS, port 6379 by default)")
    cannot = f"cannot reach the Ray cluster at {what} {address}"
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except socket.timeout:
        raise ConfigError(f"{cannot}: no answer within {timeout:g} s; {hint}") from None
    except OSError as e:
        raise ConfigError(f"{cannot}: {e.strerror or e}; {hint}") from None
    try:
        import grpc  # Ray's own dependency: installed with it
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:  # another Ray than this was written for: ray.init alone decides
        return
    channel = grpc.insecure_channel(address)
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ConfigError(f"{cannot}: it accepts connections but does not answer (within "
                              f"{timeout:g} s); {hint}") from None
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=timeout)
        except grpc.RpcError as e:
            code = e.code()
            if code == grpc.StatusCode.UNIMPLEMENTED:  # a server, but not a Ray head's GCS
                said = " ".join(str(e.details()).split())[:80]
                raise ConfigError(f"no Ray cluster at {what} {address}: the server there is not "
                                  f"a Ray head ({said}); {hint}") from None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ConfigError(f"{cannot}: {code.name.lower()}; {hint}") from None
            # anything else (say, a cluster that wants a token) is a Ray head: ray.init decides
    finally:
        channel.close()


def _result(ray, ref, config) -> dict:
    """The task's summary; a task that failed outside ``run_one`` (its node cannot see the
    results, its worker died more than MAX_RETRIES times) is a failed run, like a local one."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:
        cause = getattr(e, "cause", None) or e  # a task's exception, without Ray's traceback
        return {"status": "failed", "error": f"{type(cause).__name__}: {cause}".splitlines()[0],
                "config": config}


def _describe(nodes: list[dict]) -> str:
    alive = [n["Resources"] for n in nodes if n.get("Alive")]
    total = {k: sum(r.get(k, 0) for r in alive) for k in ("CPU", "GPU")}
    return f"{len(alive)} node(s), {total['CPU']:g} CPU(s), {total['GPU']:g} GPU(s)"


def _check_feasible(nodes: list[dict], cpus: int, gpus: int) -> None:
    """Ray would wait forever for a task no node can hold: say so before submitting."""
    alive = [n["Resources"] for n in nodes if n.get("Alive")]
    if not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in alive):
        raise ConfigError(f"no node of the Ray cluster has {cpus} CPU(s) and {gpus} GPU(s) for a "
                          f"run ({_describe(nodes)}); lower --threads or add nodes")


__all__ = ["RayExecutor", "run", "run_task", "require_ray", "probe", "MAX_RETRIES",
           "TASK_PREFIX", "CONNECT_TIMEOUT_S"]
