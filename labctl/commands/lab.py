"""validate / schema / render."""

from __future__ import annotations

import argparse

from labctl.errors import NotBuiltError


def cmd_validate(args: argparse.Namespace) -> int:
    raise NotBuiltError("validate: in progress")


def cmd_schema(args: argparse.Namespace) -> int:
    raise NotBuiltError("schema: in progress")


def cmd_render(args: argparse.Namespace) -> int:
    raise NotBuiltError("render: in progress")
