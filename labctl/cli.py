"""Command line: argument parsing and exit codes only.

Every verb's work lives in ``labctl.commands.<area>``, imported only when that verb runs, so
``labctl --help`` stays fast (no pydantic, jinja2, numpy or Twisted at start-up).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from labctl import __version__
from labctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, LabctlError, SpecError
from labctl.interrupts import EXIT_TERMINATED, Terminated

EPILOG = """\
exit codes: 0 success, 1 the lab ran and failed, 2 bad input or refused operation, 130 interrupted

examples:
  labctl validate labs/usb-install.yaml
  labctl up labs/usb-install-sim.yaml          # simulated ESXi install on QEMU, end to end
  labctl send labs/usb-install-sim.yaml "<leftShiftOn>O<leftShiftOff>"
  labctl stick backup /dev/sdb esxi-stick.img   # GPT-aware, sparse, verified
"""


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one readable line instead of the usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"labctl: {message} (see '{self.prog} --help')\n")


def seconds(text: str) -> float:
    """A timeout: a finite number of seconds above 0 and at most a day (every wait is bounded)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:  # also false for nan
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be more than 0 and at most 86400")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 1 or more")
    return value


def _handler(target: str) -> Callable[[argparse.Namespace], int]:
    """Resolve 'module:function' lazily: the module is imported only when its verb runs."""

    def run(args: argparse.Namespace) -> int:
        module_name, func_name = target.split(":")
        func: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(f"labctl.commands.{module_name}"), func_name
        )
        return func(args)

    return run


def _lab_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("lab", metavar="LAB", help="lab file (YAML), e.g. labs/usb-install-sim.yaml")


def _seat_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seat", type=positive_int, default=1, metavar="N", help="seat number (default: 1)")


def _seats_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seats", metavar="S", help="seats to act on: '3', '1-4' or '1,3' (default: all)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="labctl",
        description="Build, install, verify and reset the ESXi-on-a-USB-stick lab, for one seat or a classroom.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, target: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=_handler(target))
        return p

    p = add("validate", "lab:cmd_validate", "check a lab file; errors as FILE:LINE:COL: field: message")
    _lab_arg(p)
    p.add_argument("--strict", action="store_true", help="also check that files it names (the ISO) exist")

    p = add("schema", "lab:cmd_schema", "print the JSON Schema of a lab file (or of a playbook file)")
    p.add_argument("--playbook", action="store_true", help="the schema of a playbook file (labs/playbooks/*.yaml)")

    p = add("render", "lab:cmd_render", "write one .vmx per seat (VMware Workstation)")
    _lab_arg(p)
    p.add_argument("-o", "--output", metavar="DIR", help="output folder (default: the seat's state folder)")

    p = add("up", "run:cmd_up", "build, boot, install, post-install, verify and report")
    _lab_arg(p)
    p.add_argument("--backend", choices=["vmware", "qemu", "auto"], help="override the lab's backend")
    _seats_arg(p)
    p.add_argument("--parallel", type=positive_int, metavar="K", help="seats run at once (default: all)")
    p.add_argument("--runs", metavar="DIR", help="where run folders go (default: runs/ beside the lab)")
    p.add_argument("--keep", action="store_true", help="leave the VM running after success")
    p.add_argument("--force", action="store_true",
                   help="install again even a seat already installed and verified (reset: after-install)")
    p.add_argument("--boot-only", action="store_true",
                   help="start the VM with the ISO and leave it running (for send/screenshot/wait); no playbooks")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout (the result per seat)")

    p = add("down", "run:cmd_down", "stop the lab's VMs and clean up after a crashed run")
    _lab_arg(p)
    _seats_arg(p)
    p.add_argument("--hard", action="store_true", help="power off at once (no ACPI power button first)")
    p.add_argument("--timeout", type=seconds, default=20.0, metavar="S",
                   help="seconds the guest gets to power off before a hard stop (default: 20)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout (the result per seat)")

    p = add("status", "run:cmd_status", "power state, VNC endpoint, stick and run folder per seat")
    _lab_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--show-password", action="store_true", help="also print each running seat's VNC password")
    p.add_argument("--backend", choices=["vmware", "qemu", "auto"], help="override the lab's backend")

    p = add("reset", "run:cmd_reset", "put seats back to their starting point")
    _lab_arg(p)
    _seats_arg(p)
    p.add_argument("--yes", action="store_true", help="also empty image files labctl did not create")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout (the result per seat)")
    p.add_argument("--check", action="store_true", help="say how far each stick is from its golden copy; write nothing")
    p.add_argument("--to", choices=["before-install", "after-install"], help="the point to reset to (default: the "
                   "lab's reset:)")

    p = add("report", "report:cmd_report", "where a run's report.html, junit.xml and animation are (LAB: last runs)")
    p.add_argument("target", metavar="LAB|RUN", help="a lab file, or a run folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("send", "console:cmd_send", "type keys on a running seat (Packer boot_command grammar)")
    _lab_arg(p)
    _seat_arg(p)
    p.add_argument("keys", metavar="KEYS", help='e.g. "<leftShiftOn>O<leftShiftOff>" or " preferVMklinux=TRUE<enter>"')

    p = add("screenshot", "console:cmd_screenshot", "save the seat's screen as PNG")
    _lab_arg(p)
    _seat_arg(p)
    p.add_argument("out", metavar="OUT.png")

    p = add("wait", "console:cmd_wait", "wait until a text shows on the seat's screen")
    _lab_arg(p)
    _seat_arg(p)
    p.add_argument("--text", required=True, metavar="REGEX", help="regular expression to find on screen")
    p.add_argument("--timeout", type=seconds, default=60.0, metavar="S", help="seconds (default: 60)")

    p = add("layout", "layout:cmd_layout", "read a stick's GPT and compare it with ESXi's layout")
    p.add_argument("target", metavar="IMAGE_OR_DEVICE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--expect", choices=["esxi6", "esxi8"], help="compare with a documented layout "
                   "(esxi6: ESXi 6.x, esxi8: ESXi 7.0/8.0)")
    p.add_argument("--media", choices=["usb", "hdd"], default="usb", help="medium for --expect (default usb)")

    stick = sub.add_parser("stick", help="USB stick imaging: list, backup, restore, wipe, verify")
    stick_sub = stick.add_subparsers(dest="stick_command", metavar="ACTION", parser_class=_Parser)
    stick.set_defaults(func=lambda a: _missing_action(stick))

    def add_stick(name: str, help_text: str) -> argparse.ArgumentParser:
        p = stick_sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=_handler(f"stick:cmd_{name}"))
        return p

    p = add_stick("list", "whole disks, and which are safe USB targets")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="show every disk, not only USB ones")
    p = add_stick("backup", "copy a stick (or stick image) to a sparse, GPT-aware image")
    p.add_argument("device", metavar="DEV")
    p.add_argument("image", metavar="IMG")
    p.add_argument("--full", action="store_true", help="copy every byte, like dd")
    p.add_argument("--compress", action="store_true", help="zstd-compress the image")
    p.add_argument("--yes", action="store_true", help="overwrite IMG without asking")
    p = add_stick("restore", "write an image back to one or more sticks, exactly and verified")
    p.add_argument("image", metavar="IMG")
    p.add_argument("devices", metavar="DEV", nargs="+")
    p.add_argument("--yes", action="store_true", help="skip the confirmation prompt")
    p.add_argument("--allow-non-usb", action="store_true", help="admit non-USB block devices (never mounted ones)")
    p.add_argument("--allow-large", action="store_true", help="admit disks over 128 GiB (sticks are smaller)")
    p.add_argument("--zero-rest", action="store_true", help="also zero space outside the partitions")
    p.add_argument("--coredump-header-only", action="store_true",
                   help="in core dump (vmkDiagnostic) partitions restore only the first MiB and the image's "
                        "data; the rest keeps the stick's old bytes (not exact there; up to 2.6 GiB less to write)")
    p = add_stick("wipe", "zero a stick (the seed's dd if=/dev/zero)")
    p.add_argument("device", metavar="DEV")
    p.add_argument("--quick", action="store_true", help="clear the GPT areas and each partition's first MiB")
    p.add_argument("--yes", action="store_true", help="skip the confirmation prompt")
    p.add_argument("--allow-non-usb", action="store_true", help="admit non-USB block devices (never mounted ones)")
    p.add_argument("--allow-large", action="store_true", help="admit disks over 128 GiB (sticks are smaller)")
    p = add_stick("verify", "compare a stick with an image, range by range")
    p.add_argument("image", metavar="IMG")
    p.add_argument("device", metavar="DEV")
    p.add_argument("--coredump-header-only", action="store_true",
                   help="check core dump partitions as a restore with the same option left them")

    sim = sub.add_parser("sim", help="the ESXi installer simulator (6.7 or 8.0)")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="ACTION", parser_class=_Parser)
    sim.set_defaults(func=lambda a: _missing_action(sim))
    p = sim_sub.add_parser("build", help="build the simulator ISO", description="build the simulator ISO")
    p.set_defaults(func=_handler("sim:cmd_build"))
    p.add_argument("-o", "--output", metavar="ISO", help="where to put the ISO (default: print the cached path)")
    p.add_argument("--speed", choices=["fast", "real"], default="fast", help="install durations (default fast)")
    p.add_argument("--esxi", choices=["6.7", "8.0"], default="6.7", help="the ESXi release to imitate (default 6.7)")
    p.add_argument("--force", action="store_true", help="rebuild even when the cache is fresh")
    p.add_argument("--kickstart", metavar="KS.CFG", help="put a kickstart file on the ISO as /KS.CFG "
                   "(boot with ks=cdrom:/KS.CFG)")

    iso = sub.add_parser("iso", help="remaster an ESXi installer ISO")
    iso_sub = iso.add_subparsers(dest="iso_command", metavar="ACTION", parser_class=_Parser)
    iso.set_defaults(func=lambda a: _missing_action(iso))
    p = iso_sub.add_parser("kickstart", help="add KS.CFG and boot it unattended (ks=cdrom:/KS.CFG)",
                           description="copy ISO with /KS.CFG added and ks=cdrom:/KS.CFG in the kernelopt of "
                           "BOOT.CFG and EFI/BOOT/BOOT.CFG; both El Torito entries and the volume label are kept")
    p.set_defaults(func=_handler("iso:cmd_kickstart"))
    p.add_argument("iso", metavar="ISO")
    p.add_argument("kickstart", metavar="KS.CFG")
    p.add_argument("-o", "--output", metavar="OUT.iso", required=True, help="the remastered ISO")
    p.add_argument("--boot-option", action="append", metavar="WORD",
                   help="also add this word to kernelopt (repeatable), e.g. preferVMklinux=TRUE")
    return parser


def _missing_action(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return EXIT_USAGE


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.WARNING  # -q: not even a lab file's warning line
    if not quiet and verbose:
        level = logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="labctl: %(message)s" if verbose < 2 else "%(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args))
    except LabctlError as exc:
        # A lab file error is already "FILE:LINE:COL: field: message" (the contract); others get a prefix.
        print(str(exc) if isinstance(exc, SpecError) else f"labctl: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (labctl.interrupts.Terminated): cleanups have run
        terminated = isinstance(exc, Terminated)
        print("labctl: terminated" if terminated else "labctl: interrupted", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except OSError as exc:  # the system said no (disk full, file too large, ...): one line, not a traceback
        if isinstance(exc, BrokenPipeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"labctl: {exc}", file=sys.stderr)
        return EXIT_FAILED
