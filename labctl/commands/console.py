"""send / screenshot / wait on a running seat (placeholder until the console engine lands)."""

from __future__ import annotations

import argparse

from labctl.errors import NotBuiltError


def _not_built(verb: str) -> int:
    raise NotBuiltError(f"'{verb}' needs the console engine (VNC keys and screen waits), which is not built yet")


def cmd_send(args: argparse.Namespace) -> int:
    return _not_built("send")


def cmd_screenshot(args: argparse.Namespace) -> int:
    return _not_built("screenshot")


def cmd_wait(args: argparse.Namespace) -> int:
    return _not_built("wait")
