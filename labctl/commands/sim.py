"""sim build: build (or reuse from the cache) the ESXi installer simulator ISO (6.7 or 8.0)."""

from __future__ import annotations

import argparse
import sys
import time

from labctl.commands.paths import input_file, output_file
from labctl.sim.build import build_iso


def cmd_build(args: argparse.Namespace) -> int:
    tty = sys.stderr.isatty()
    started = time.monotonic()

    def progress(msg: str) -> None:
        if tty:
            print(f"sim build: {msg} ({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)

    output = output_file(args.output, "-o") if getattr(args, "output", None) else None
    kickstart = input_file(args.kickstart, "--kickstart") if getattr(args, "kickstart", None) else None
    iso = build_iso(speed=args.speed, output=output, force=bool(args.force), kickstart=kickstart, progress=progress,
                    esxi=getattr(args, "esxi", "6.7"))
    print(iso)
    return 0
