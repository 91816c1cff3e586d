"""sim build: build (or reuse from the cache) the ESXi 6.7 installer simulator ISO."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from labctl.sim.build import build_iso


def cmd_build(args: argparse.Namespace) -> int:
    tty = sys.stderr.isatty()
    started = time.monotonic()

    def progress(msg: str) -> None:
        if tty:
            print(f"sim build: {msg} ({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)

    output = Path(args.output) if getattr(args, "output", None) else None
    kickstart = Path(args.kickstart) if getattr(args, "kickstart", None) else None
    iso = build_iso(speed=args.speed, output=output, force=bool(args.force), kickstart=kickstart, progress=progress)
    print(iso)
    return 0
