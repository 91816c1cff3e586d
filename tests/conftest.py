"""Shared test setup: every test gets its own labctl cache and state, never the user's."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:  # tests import shared helpers as harness.* (tests/harness/)
    sys.path.insert(0, str(REPO / "tests"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("LAB_ROOT_PASSWORD", "VMware1!lab")
    from harness.cache import run_cache_dir

    monkeypatch.setenv("LABCTL_CACHE_DIR", str(run_cache_dir(tmp_path_factory)))


@pytest.fixture(scope="session", autouse=True)
def _isolated_session_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same environment for session-scoped fixtures (the plugin's installed_seat), which are set up before
    any function-scoped one: the lab's root password and the run's own labctl cache."""
    from harness.cache import run_cache_dir

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_ROOT_PASSWORD", "VMware1!lab")
        mp.setenv("LABCTL_CACHE_DIR", str(run_cache_dir(tmp_path_factory)))
        yield
