"""validate / schema / render."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.commands.paths import output_folder
from labctl.errors import InputError

if TYPE_CHECKING:
    from labctl.spec import Seat


def _load(path: str, strict: bool = False):  # type: ignore[no-untyped-def]
    from labctl.spec import load_lab

    return load_lab(path, strict=strict)


def cmd_validate(args: argparse.Namespace) -> int:
    lab = _load(args.lab, strict=args.strict)
    from labctl.runner import check_playbooks
    from labctl.spec import check_playbook_names

    check_playbook_names(lab)  # a missing one located in the lab file, before its contents are checked
    check_playbooks(lab)
    seats = len(lab.seats)
    print(f"ok: {lab.name} (ESXi {lab.esxi}, backend {lab.backend}, {seats} seat{'s' if seats > 1 else ''})")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from labctl.playbook import json_schema as playbook_schema
    from labctl.spec import json_schema

    json.dump(playbook_schema() if args.playbook else json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def check_vm_off(seat: Seat, path: Path) -> None:
    """VMware rewrites a running VM's .vmx at power-off: its lock files beside it mean 'not now'."""
    from labctl.backends.vmrun import lock_files

    held = lock_files(path)
    if held:
        raise InputError(f"seat {seat.index} ({seat.name}): VMware holds {path} ({', '.join(p.name for p in held)}); "
                         "the .vmx is edited only while the VM is off: 'labctl down' it first, or render with -o")


def cmd_render(args: argparse.Namespace) -> int:
    """Every seat is checked (a host stick, a .vmx path it may write) before anything is written."""
    from labctl.vmx import check_renderable, check_vmx_target, render_vmx, seat_vmx, vnc_credentials, write_vmx

    lab = _load(args.lab)
    if lab.vm.disk is not None:
        raise InputError("vm.disk: a local hard disk is supported by the qemu backend only (the seed has none)")
    if args.output:
        output_folder(args.output, "-o")
    plan = []
    for seat in lab.seat_list():
        check_renderable(seat)
        path = Path(args.output) / f"{seat.name}.vmx" if args.output else seat_vmx(seat)
        check_vmx_target(path)
        if not args.output:
            check_vm_off(seat, path)
        plan.append((seat, path))
    taken: set[int] = set()
    for seat, path in plan:
        creds = vnc_credentials(seat, taken)
        taken.add(creds.port)
        write_vmx(path, render_vmx(lab, seat, creds))
        print(path)
    return 0
