"""Shared test setup: every test gets its own labctl cache and state, never the user's."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("LAB_ROOT_PASSWORD", "VMware1!lab")
    cache = tmp_path_factory.getbasetemp() / "labctl-cache"
    monkeypatch.setenv("LABCTL_CACHE_DIR", str(cache))
