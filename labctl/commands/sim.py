"""sim build (placeholder until the simulator lands)."""

from __future__ import annotations

import argparse

from labctl.errors import NotBuiltError


def cmd_build(args: argparse.Namespace) -> int:
    raise NotBuiltError("'sim build' is not built yet (labctl/sim/)")
