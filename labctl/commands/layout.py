"""labctl layout IMAGE_OR_DEVICE [--json] [--expect esxi6|esxi8] [--media usb|hdd]."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING

from labctl.errors import EXIT_FAILED, EXIT_OK, LabctlError

if TYPE_CHECKING:
    from labctl.layouts import Gpt


def read_target(target: str) -> Gpt:
    """The GPT of a device, a raw image, or a labctl image whose manifest says it is compressed (its
    data checked and unpacked to a temporary file, removed afterwards). GptError/InputError: exit 2."""
    from labctl import layouts
    from labctl.stick import imaging

    if os.path.isfile(imaging.manifest_path(target)):
        m = imaging.Manifest.load(target)
        if m.compression != "none":
            img = imaging.open_image(target)
            try:
                return layouts.read_gpt_from(lambda off, n: os.pread(img.fd, n, off), m.size, m.sector_size,
                                             name=target)
            finally:
                img.close()
    return layouts.read_gpt(target)


def cmd_layout(args: argparse.Namespace) -> int:
    """With --json every outcome is one JSON object on stdout, errors too ({"ok": false, "error": ...})."""
    try:
        return _layout(args)
    except LabctlError as exc:
        if not args.json:
            raise
        print(json.dumps({"ok": False, "target": args.target, "error": str(exc)}))
        return exc.exit_code


def _layout(args: argparse.Namespace) -> int:
    from labctl import layouts

    gpt = read_target(args.target)  # GptError (exit 2) when unreadable or no GPT
    diffs: list[str] | None = None
    if args.expect:
        diffs = layouts.compare(gpt, layouts.expected_layout(gpt.total_sectors, args.media, args.expect))
    release = "7.0/8.0" if args.expect == "esxi8" else "6.x"
    if args.json:
        print(layouts.table_json(gpt, diffs))
    else:
        print(layouts.format_getptbl(gpt), end="")
        if diffs is None:
            for p in gpt.problems:
                print(f"# warning: {p}")
        elif diffs:
            print(f"# does not match the ESXi {release} {args.media} layout for "
                  f"{gpt.total_sectors} sectors:")
            for d in diffs:
                print(f"- {d}")
        else:
            print(f"# matches the ESXi {release} {args.media} layout")
    return EXIT_FAILED if diffs else EXIT_OK
