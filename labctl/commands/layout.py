"""layout (placeholder until labctl.layouts lands)."""

from __future__ import annotations

import argparse

from labctl.errors import NotBuiltError


def cmd_layout(args: argparse.Namespace) -> int:
    raise NotBuiltError("'layout' needs the GPT reader (labctl/layouts.py), which is not built yet")
