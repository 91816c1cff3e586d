"""``labctl send / screenshot / wait`` on a running seat (screen only), through the seat's Console."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from labctl.commands.paths import output_file
from labctl.errors import InputError

if TYPE_CHECKING:
    from labctl.console import Console
    from labctl.spec import Lab


@contextmanager
def _console(args: argparse.Namespace) -> Iterator[Console]:
    """A Console on the running seat ``--seat`` of the lab (the one place these commands attach)."""
    from labctl.console import Console
    from labctl.report import RunFolder
    from labctl.runner import attach, seat_by_index
    from labctl.spec import load_lab

    lab = load_lab(args.lab)
    seat = seat_by_index(lab, args.seat)
    att = attach(lab, args.seat)
    run = RunFolder(seat.state_dir / "console", secrets=[att.vnc.password] if att.vnc.password else [])
    key_rate = lab.console.key_rate or att.backend.default_key_rate
    console = Console.open(att.vnc, None, run, key_rate=key_rate, secrets=_known_secrets(lab),
                           timeout_scale=lab.console.timeout_scale)
    console.step = args.command
    try:
        yield console
    finally:
        console.close()
        Console.end_of_process()


def _known_secrets(lab: Lab) -> list[str]:
    """The lab's root password when it can be had without asking (env, file, value), so that keys
    typed by hand are masked in logs like the playbooks' are; never a prompt for a mere send."""
    from labctl.spec import resolve_secret

    secret = lab.install.root_password
    if secret.prompt:
        return []
    try:
        return [resolve_secret(secret, lab)]
    except InputError:
        return []


def cmd_send(args: argparse.Namespace) -> int:
    from labctl.console import keys

    keys.parse(args.keys)  # a bad spec is exit 2 before connecting
    with _console(args) as c:
        c.send_keys(args.keys)
    return 0


def cmd_screenshot(args: argparse.Namespace) -> int:
    out = output_file(args.out, "OUT.png")
    if out.suffix.lower() != ".png":
        raise InputError(f"{out}: the screenshot is a PNG; name it OUT.png")
    with _console(args) as c:
        c.save_screen(out)
    print(out)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    from labctl.console.console import pattern_problem

    if not args.text:
        raise InputError("--text: empty; give a word or a regular expression to wait for")
    problem = pattern_problem(args.text)
    if problem:
        raise InputError(f"--text {args.text!r}: {problem}")
    with _console(args) as c:
        ev = c.wait_text(args.text, args.timeout)
    print(f"matched {ev.matched!r} on the {ev.source} after {ev.seconds:.2f}s", file=sys.stdout)
    return 0
