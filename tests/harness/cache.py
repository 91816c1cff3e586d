"""One labctl cache for the whole test run, shared by pytest-xdist's workers.

The cache holds content-addressed builds (the simulator ISOs, written atomically) and the accelerator
probe, so workers can share it: the ISO is built once per run instead of once per worker.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def run_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``labctl-cache`` under the run's base folder (the parent of a worker's own base folder under xdist)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return base / "labctl-cache"
