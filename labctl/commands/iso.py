"""labctl iso kickstart ISO KS.CFG -o OUT.iso: an ESXi installer ISO that installs unattended."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labctl.commands.paths import input_file, output_file
from labctl.errors import EXIT_OK, InputError


def cmd_kickstart(args: argparse.Namespace) -> int:
    from labctl import iso

    source = Path(args.iso)
    if not source.is_file():
        raise InputError(f"{args.iso}: no such ISO file")
    ks = input_file(args.kickstart, "KS.CFG", max_bytes=iso.MAX_KICKSTART)
    out = output_file(args.output, "-o")
    extra = args.boot_option or []
    facts = iso.remaster_kickstart(source, iso.read_kickstart(ks), out, extra)
    entries = ", ".join(e.kind for e in facts.boot_entries) or "none"
    print(f"iso kickstart: {out} (volume {facts.volume_label}, El Torito: {entries})", file=sys.stderr)
    for cfg, opts in facts.kernelopts.items():
        print(f"iso kickstart: {cfg.lstrip('/')}: kernelopt={opts}", file=sys.stderr)
    print(out)
    return EXIT_OK
