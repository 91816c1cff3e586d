"""labctl layout IMAGE_OR_DEVICE [--json] [--expect esxi6|esxi8] [--media usb|hdd]."""

from __future__ import annotations

import argparse

from labctl.errors import EXIT_FAILED, EXIT_OK


def cmd_layout(args: argparse.Namespace) -> int:
    from labctl import layouts

    gpt = layouts.read_gpt(args.target)  # GptError (exit 2) when unreadable or no GPT
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
