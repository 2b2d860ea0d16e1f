"""Shared fixtures: the real CIFAR-10 copy beside the repository, and a session cache."""

from pathlib import Path

import pytest

from pai_bench.training.callbacks import LOGGERS
from pai_bench.data import DATASETS
from pai_bench.sweeps.executors import EXECUTORS
from pai_bench.sweeps.experiments import EXPERIMENTS
from pai_bench.pipeline.export import FORMATS
from pai_bench.methods import METHODS
from pai_bench.models import MODELS
from pai_bench.sanity_checks import CHECKS

CIFAR_JPEG = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    assert (CIFAR_JPEG / "train").is_dir(), (
        f"the shared CIFAR-10 copy is missing: expected {CIFAR_JPEG} (../shared beside the repo)")
    return CIFAR_JPEG


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory, monkeypatch_session) -> Path:
    """Decoded images are cached once per test session, never in the user's home."""
    path = tmp_path_factory.mktemp("cache")
    monkeypatch_session.setenv("PAI_BENCH_CACHE", str(path))
    return path


@pytest.fixture(autouse=True)
def registry():
    """Every registry as it was before the test: what a test registers (a plugin scorer, a
    model, an experiment) is removed after it, so no test sees another's entries."""
    registries = [METHODS, MODELS, DATASETS, CHECKS, EXECUTORS, LOGGERS, EXPERIMENTS, FORMATS]
    saved = [r.snapshot() for r in registries]
    yield
    for r, entries in zip(registries, saved):
        r.restore(entries)


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
