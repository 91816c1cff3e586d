"""Session-scoped fixtures (the plugin's installed_seat) are set up before function-scoped ones: they see the
test environment too (the lab's root password, the run's own labctl cache), or installed_seat would skip."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def session_environment() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in ("LAB_ROOT_PASSWORD", "LABCTL_CACHE_DIR")}


def test_a_session_fixture_sees_the_password_and_the_cache(session_environment: dict[str, str | None]) -> None:
    assert session_environment["LAB_ROOT_PASSWORD"] == "VMware1!lab"
    cache = session_environment["LABCTL_CACHE_DIR"]
    assert cache is not None and cache == os.environ["LABCTL_CACHE_DIR"]  # the same cache as every test's
