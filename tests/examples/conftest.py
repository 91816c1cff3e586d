"""The example runs against labctl's simulator lab unless ``--lab`` names the trainer's own lab file."""

from __future__ import annotations

from pathlib import Path

import pytest

DEFAULT_LAB = "labs/usb-install-sim.yaml"  # relative to the rootdir, as a marker's path is
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--lab"):
        return
    for item in items:
        if item.path.resolve().is_relative_to(HERE) and item.get_closest_marker("lab") is None:
            item.add_marker(pytest.mark.lab(DEFAULT_LAB))
