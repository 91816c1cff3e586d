"""up / down / status / reset: one seat's VM from start to verified stick, and its housekeeping."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl import seatimages
from labctl.backends.qemu import QemuBackend, Runtime
from labctl.backends.qemu_argv import ovmf_files
from labctl.commands.paths import output_folder
from labctl.errors import InputError, NotBuiltError, RunFailed
from labctl.spec import Lab, Seat, esxi_password_problem, load_lab, resolve_secret

if TYPE_CHECKING:
    from labctl.runner import UpOptions


def _qemu_lab(args: argparse.Namespace, strict: bool = False) -> tuple[Lab, list[Seat]]:
    from labctl.runner import backend_kind

    lab = load_lab(args.lab, strict=strict)
    if backend_kind(lab, getattr(args, "backend", None)) == "vmware":
        raise NotBuiltError("the VMware backend is not built yet; use backend: qemu (or --backend qemu)")
    return lab, lab.select_seats(getattr(args, "seats", None))


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, flush=True)


# -- up ------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from labctl.runner import SeatResult, UpOptions, run_seat

    lab, seats = _qemu_lab(args, strict=True)
    boot_only = bool(getattr(args, "boot_only", False))
    for seat in seats:  # refuse before anything is created: a running seat is left alone
        rt = Runtime.load(QemuBackend(lab, seat).files.runtime)
        if rt is not None and rt.alive():
            raise InputError(f"seat {seat.index} ({seat.name}) is already running (QEMU pid {rt.pid}); "
                             f"'labctl down {args.lab}' stops it")
    secrets: list[str] = []
    variables: dict[str, object] = {
        "boot_options": lab.install.boot_options,
        "keyboard": lab.install.keyboard,
        "esxi": lab.esxi,
        "media": lab.verify.media,
        "existing": lab.install.existing,
        "lab": lab.name,
    }
    if not boot_only:
        password = resolve_secret(lab.install.root_password, lab)
        problem = esxi_password_problem(password)
        if problem:
            raise InputError(f"install.root_password: the ESXi {lab.esxi} installer would refuse it: {problem}")
        secrets.append(password)
        variables["root_password"] = password
    if not boot_only:  # a missing or malformed playbook is bad input (exit 2), found before any VM starts
        from labctl.runner import check_playbooks

        check_playbooks(lab)
    options = UpOptions(
        keep=bool(args.keep) or boot_only,
        boot_only=boot_only,
        runs_dir=output_folder(args.runs, "--runs").resolve() if args.runs else None,
        backend=args.backend,
        progress=_progress if sys.stderr.isatty() and not args.quiet else None,
    )

    def one(seat: Seat) -> SeatResult:
        seat_vars = dict(variables, seat=seat.name)
        return run_seat(lab, seat, options, secrets, seat_vars)

    results: list[SeatResult] = []
    failures: list[str] = []
    parallel = max(1, args.parallel or len(seats))  # the CLI contract: all seats at once by default
    if parallel == 1 or len(seats) == 1:
        for seat in seats:
            try:
                res = one(seat)
            except RunFailed as exc:
                if len(seats) == 1:
                    raise
                failures.append(str(exc))
                print(f"labctl: {exc}", file=sys.stderr)
                continue
            results.append(res)
            _report_up(args, res)
    else:
        results, failures = _up_parallel(args, lab, seats, parallel, one, options)
    if failures:
        raise RunFailed(f"{len(failures)} of {len(seats)} seats failed (see above)")
    return 0


def _progress(line: str) -> None:
    print(f"labctl: {line} ...", file=sys.stderr, flush=True)


def _report_up(args: argparse.Namespace, res: Any) -> None:
    seat = res.seat
    line = f"seat {seat.index} ({seat.name}): {res.message} ({res.seconds:.0f} s); run folder {res.run_dir}"
    if res.backend is not None and res.backend.alive():
        line += f"; left running, VNC {res.backend.vnc_display()} ('labctl down' stops it)"
    _say(args, line)


def _up_parallel(args: argparse.Namespace, lab: Lab, seats: list[Seat], parallel: int,
                 one: Any, options: UpOptions) -> tuple[list[Any], list[str]]:
    """Seats in worker threads. Ctrl-C or SIGTERM sets the seats' cancel event (a seat that has not
    started its VM never does) and stops every seat's QEMU, so the workers fail fast, run their
    cleanups and record "interrupted"; then exit 130 or 143."""
    from labctl.runner import Terminated, sigterm_as_exception

    results: list[Any] = []
    failures: list[str] = []
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="seat")
    futures = {pool.submit(one, seat): seat for seat in seats}
    with sigterm_as_exception():
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                for fut in done:
                    try:
                        res = fut.result()
                    except RunFailed as exc:
                        failures.append(str(exc))
                        print(f"labctl: {exc}", file=sys.stderr)
                        continue
                    results.append(res)
                    _report_up(args, res)
        except BaseException as exc:
            options.cancel_signal = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
            options.cancel.set()
            for fut in futures:
                fut.cancel()
            for seat in seats:  # the workers see their QEMU die and clean up
                _kill_seat(lab, seat)
            pool.shutdown(wait=True, cancel_futures=True)
            if isinstance(exc, Terminated):
                print("labctl: terminated", file=sys.stderr)
                raise SystemExit(143) from None
            raise
    pool.shutdown(wait=True)
    return results, failures


def _kill_seat(lab: Lab, seat: Seat) -> None:
    rt = Runtime.load(QemuBackend(lab, seat).files.runtime)
    if rt is not None and rt.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(rt.pid, signal.SIGKILL)


# -- down ----------------------------------------------------------------------------------------


def _strays(backend: QemuBackend) -> list[int]:
    """QEMU processes of this seat that its runtime record does not know (a record lost in a crash)."""
    marker = f"path={backend.files.qmp},".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline and b"qemu" in cmdline.split(b"\0", 1)[0]:
            found.append(int(entry.name))
    return found


def cmd_down(args: argparse.Namespace) -> int:
    lab, seats = _qemu_lab(args)
    hard = bool(getattr(args, "hard", False))
    timeout = float(args.timeout) if getattr(args, "timeout", None) is not None else 20.0
    for seat in seats:
        b = QemuBackend(lab, seat)
        label = f"seat {seat.index} ({seat.name})"
        rt = b.load_runtime()
        if rt is not None and rt.alive():
            b.mark_stopped_by("down")  # so a running 'up' says who stopped it
            t0 = time.monotonic()
            b.stop("hard" if hard else "soft", timeout=timeout)
            how = "hard" if hard else ("soft" if b.soft_stopped else f"the guest ignored the power button for "
                                       f"{timeout:g} s, then hard")
            _say(args, f"{label}: stopped QEMU pid {rt.pid} ({how}, {time.monotonic() - t0:.1f} s)")
            continue
        strays = _strays(b)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        removed = b.cleanup_stale()
        parts = []
        if strays:
            parts.append(f"killed stray QEMU pid {', '.join(map(str, strays))}")
        if removed:
            parts.append(f"removed stale {', '.join(removed)}")
        _say(args, f"{label}: not running" + (f"; {'; '.join(parts)}" if parts else ""))
    return 0


# -- status --------------------------------------------------------------------------------------


def seat_status(lab: Lab, seat: Seat, kind: str = "qemu") -> dict[str, Any]:
    from labctl.runner import last_run_dir

    b = QemuBackend(lab, seat)
    rt = b.load_runtime()
    running = rt is not None and rt.alive()
    state = b.power_state().value if running else "off"
    vnc: dict[str, Any] | None = None
    if running and rt is not None:
        vnc = ({"socket": rt.vnc_socket} if rt.vnc_socket else {"host": rt.vnc_host, "port": rt.vnc_port})
    image = seat.stick_image(lab)
    run_dir = last_run_dir(seat)
    return {
        "seat": seat.index,
        "name": seat.name,
        "backend": kind,
        "power_state": state,
        "pid": rt.pid if running and rt else None,
        "accel": rt.accel if running and rt else None,
        "vnc": vnc,
        "serial": rt.serial if running and rt else None,
        "stick_image": str(image) if image else None,
        "stick_snapshots": b.snapshots() if image else [],
        "run_dir": str(run_dir) if run_dir else None,
        "state_dir": str(seat.state_dir),
        "stale_files": bool(not running and rt is not None),
    }


def cmd_status(args: argparse.Namespace) -> int:
    lab, seats = _qemu_lab(args)
    rows = [seat_status(lab, seat) for seat in seats]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        vnc = r["vnc"]
        where = "-" if vnc is None else (f"unix:{vnc['socket']}" if "socket" in vnc else f"{vnc['host']}:{vnc['port']}")
        line = f"seat {r['seat']} ({r['name']}): {r['backend']} {r['power_state']}"
        if r["pid"]:
            line += f", pid {r['pid']} ({r['accel']}), VNC {where}"
        if r["stale_files"]:
            line += " (stale files from a crashed run: 'labctl down' removes them)"
        line += f"\n  stick: {r['stick_image'] or 'host stick'}"
        if r["stick_snapshots"]:
            line += f" (snapshots: {', '.join(r['stick_snapshots'])})"
        line += f"\n  last run: {r['run_dir'] or '-'}"
        print(line)
    return 0


# -- reset ---------------------------------------------------------------------------------------


def _check_reset_images(lab: Lab, seats: list[Seat], yes: bool) -> None:
    """Every image reset would empty may be emptied (labctl made it, or --yes), before any seat is touched."""
    for seat in seats:
        b = QemuBackend(lab, seat)
        snapshotted = bool(b.snapshots())
        for img in seatimages.check_seat(lab, seat, b.files.local_disk):
            if not (img.role == "stick" and snapshotted):
                seatimages.check_reset(seat.state_dir, img, yes=yes)


def cmd_reset(args: argparse.Namespace) -> int:
    lab, seats = _qemu_lab(args)
    _check_reset_images(lab, seats, bool(getattr(args, "yes", False)))  # a refusal leaves every file as it was
    for seat in seats:
        b = QemuBackend(lab, seat)
        done: list[str] = []
        rt = b.load_runtime()
        if rt is not None and rt.alive():
            b.mark_stopped_by("reset")
            b.stop("hard")
            done.append(f"stopped the running VM (QEMU pid {rt.pid})")
        removed = b.cleanup_stale()
        if removed:
            done.append(f"removed stale {', '.join(removed)}")
        if seat.stick_image(lab) is None:
            done.append("host stick left as it is (wipe it with 'labctl stick wipe DEV')")
        snaps = b.snapshots()
        for img in seatimages.check_seat(lab, seat, b.files.local_disk):
            if img.role == "stick" and snaps:
                b.revert(snaps[0])
                done.append(f"stick reverted to its snapshot '{snaps[0]}' (changes since then discarded)")
            else:  # in place, and only what labctl made (or --yes)
                done.append(seatimages.recreate_blank(seat.state_dir, img, yes=bool(getattr(args, "yes", False))))
        _, vars_template = ovmf_files(lab)
        b.files.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(vars_template, b.files.ovmf_vars)
        done.append("UEFI variables reset")
        b.define()
        _say(args, f"seat {seat.index} ({seat.name}): " + "; ".join(done))
    return 0

