"""up / down / status / reset (placeholder until the backends land)."""

from __future__ import annotations

import argparse

from labctl.errors import NotBuiltError


def _not_built(verb: str) -> int:
    raise NotBuiltError(f"'{verb}' needs the QEMU backend and the console engine, which are not built yet")


def cmd_up(args: argparse.Namespace) -> int:
    return _not_built("up")


def cmd_down(args: argparse.Namespace) -> int:
    return _not_built("down")


def cmd_status(args: argparse.Namespace) -> int:
    return _not_built("status")


def cmd_reset(args: argparse.Namespace) -> int:
    return _not_built("reset")
