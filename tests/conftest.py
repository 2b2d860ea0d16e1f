"""Shared fixtures: the real CIFAR-10 copy beside the repository, and a session cache."""

from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
