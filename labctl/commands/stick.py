"""stick list/backup/restore/wipe/verify (placeholder until labctl.stick lands)."""

from __future__ import annotations

import argparse

from labctl.errors import NotBuiltError


def _not_built(verb: str) -> int:
    raise NotBuiltError(f"'stick {verb}' is not built yet (labctl/stick.py)")


def cmd_list(args: argparse.Namespace) -> int:
    return _not_built("list")


def cmd_backup(args: argparse.Namespace) -> int:
    return _not_built("backup")


def cmd_restore(args: argparse.Namespace) -> int:
    return _not_built("restore")


def cmd_wipe(args: argparse.Namespace) -> int:
    return _not_built("wipe")


def cmd_verify(args: argparse.Namespace) -> int:
    return _not_built("verify")
