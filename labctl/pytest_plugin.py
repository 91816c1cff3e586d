"""pytest plugin (entry point ``pytest11``): run a lab as an end-to-end regression.

    pytest --lab labs/usb-install-sim.yaml tests/e2e

gives tests the ``lab`` fixture (the validated Lab model). Nothing here runs unless a test asks
for the fixture, so installing labctl does not slow other projects' test runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from labctl.spec import Lab


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labctl")
    group.addoption("--lab", metavar="LAB", default=None, help="lab file for the 'lab' fixture")


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Lab:
    """The lab named by --lab, validated; a test is skipped with a reason when none was given."""
    from labctl.errors import SpecError
    from labctl.spec import load_lab

    path = request.config.getoption("--lab")
    if not path:
        pytest.skip("no --lab LAB given")
    try:
        return load_lab(path)
    except SpecError as exc:
        pytest.fail(str(exc), pytrace=False)
