"""up / down / status / reset: parse the arguments, call labctl.classroom / the backend contract, format.

Human lines go to stdout, or to stderr with ``--json``, which prints exactly one JSON object on stdout:

    {"lab": NAME, "action": "up|down|reset|status", "ok": bool, "changed": bool, "seats": [SEAT, ...]}

SEAT is ``{"seat", "name", "ok", "changed", "step", "message", "run_dir", "report", "power_state",
"backend", "vnc", "stick_image", "disk_image"}`` (``status`` adds ``stage``, ``last_result`` and the
backend's details). Bad input (exit 2) prints ``{..., "ok": false, "changed": false, "error": LINE,
"seats": []}``. Secrets never appear in it: the VNC password only in ``status --show-password``'s
human listing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.commands.paths import output_folder
from labctl.errors import InputError, RunFailed
from labctl.interrupts import EXIT_TERMINATED
from labctl.spec import Lab, Seat, load_lab

if TYPE_CHECKING:
    from labctl.backends.base import Backend
    from labctl.runner import SeatResult


def _lab(args: argparse.Namespace, strict: bool = False) -> tuple[Lab, list[Seat]]:
    from labctl.runner import backend_kind

    lab = load_lab(args.lab, strict=strict)
    backend_kind(lab, getattr(args, "backend", None))  # an unknown or unbuilt backend is exit 2 here
    return lab, lab.select_seats(getattr(args, "seats", None))


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr if _json(args) else sys.stdout, flush=True)


class _Envelope:
    """The one JSON object of ``--json``; printed once, on success, failure (exit 1) or bad input."""

    def __init__(self, args: argparse.Namespace, action: str) -> None:
        self.args, self.action = args, action
        self.lab = Path(args.lab).stem
        self.seats: list[dict[str, Any]] = []

    def emit(self, error: str | None = None) -> None:
        if not _json(self.args):
            return
        out: dict[str, Any] = {"lab": self.lab, "action": self.action,
                               "ok": error is None and all(s["ok"] for s in self.seats),
                               "changed": any(s["changed"] for s in self.seats)}
        if error is not None:
            out["error"] = error
        out["seats"] = self.seats
        print(json.dumps(out, indent=1), flush=True)


@contextmanager
def _envelope(args: argparse.Namespace, action: str) -> Iterator[_Envelope]:
    env = _Envelope(args, action)
    try:
        yield env
    except InputError as exc:
        env.seats = []
        env.emit(error=str(exc))
        raise
    except RunFailed:
        env.emit()
        raise
    except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C or SIGTERM: the seats as the cleanups left them
        if not isinstance(exc, SystemExit) or exc.code == EXIT_TERMINATED:
            env.emit()
        raise
    env.emit()


def seat_record(lab: Lab, seat: Seat, backend: Backend, *, ok: bool, changed: bool, step: str | None,
                message: str, run_dir: Path | None) -> dict[str, Any]:
    """One seat of the JSON envelope (after the action: its power state and VNC address now)."""
    running = backend.alive() or backend.attach_running()
    images = backend.images()
    report = run_dir / "report.html" if run_dir is not None else None
    return {
        "seat": seat.index, "name": seat.name, "ok": ok, "changed": changed, "step": step, "message": message,
        "run_dir": str(run_dir) if run_dir else None,
        "report": str(report) if report is not None and report.is_file() else None,
        "power_state": backend.power_state().value if running else "off",
        "backend": backend.name,
        "vnc": backend.vnc_endpoint().url if running else None,
        "stick_image": str(images.stick) if images.stick else None,
        "disk_image": str(images.disk) if images.disk else None,
    }


# -- up ------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from labctl.classroom import run_seats, summary
    from labctl.runner import UpOptions, last_run_dir, make_backend

    with _envelope(args, "up") as env:
        lab, seats = _lab(args, strict=True)
        env.lab = lab.name
        boot_only = bool(getattr(args, "boot_only", False))
        options = UpOptions(
            keep=bool(args.keep) or boot_only,
            boot_only=boot_only,
            force=bool(getattr(args, "force", False)),
            runs_dir=output_folder(args.runs, "--runs").resolve() if args.runs else None,
            parallel=args.parallel or 0,  # the CLI contract: all seats at once by default
            backend=args.backend,
            progress=_progress if sys.stderr.isatty() and not args.quiet else None,
        )
        many = len(seats) > 1

        ended: dict[int, SeatResult] = {}
        before = {seat.index: last_run_dir(seat) for seat in seats}

        def heard(res: SeatResult) -> None:
            ended[res.seat.index] = res
            if res.ok:
                _report_up(args, res)
            elif many:  # one seat's failure is the command's own error line
                print(f"labctl: {res.detail}", file=sys.stderr, flush=True)

        try:
            results = run_seats(lab, seats, options, on_result=heard)
        except (KeyboardInterrupt, SystemExit):
            env.seats = [_interrupted_record(lab, seat, args.backend, ended.get(seat.index), before[seat.index])
                         for seat in seats]
            raise
        if many:  # a classroom: index.html and one junit.xml with a testcase per seat
            from labctl.classroom import write_report

            _say(args, f"classroom report: {write_report(lab, results, options.runs_dir)}")
        for res in results:
            b = res.backend or make_backend(lab, res.seat, args.backend)
            env.seats.append(seat_record(lab, res.seat, b, ok=res.ok, changed=res.changed, step=res.step,
                                         message=res.message, run_dir=res.run_dir))
        failed = [r for r in results if not r.ok]
        if failed:
            raise RunFailed(failed[0].detail if not many else summary(results))
    return 0


def _interrupted_record(lab: Lab, seat: Seat, backend: str | None, ended: SeatResult | None,
                        run_before: Path | None) -> dict[str, Any]:
    """A seat's envelope record after Ctrl-C or SIGTERM: how it ended, or the step it was stopped in
    (from its run folder's result.json), or that it never started."""
    from labctl.runner import last_run_dir, make_backend

    if ended is not None:
        return seat_record(lab, seat, ended.backend or make_backend(lab, seat, backend), ok=ended.ok,
                           changed=ended.changed, step=ended.step, message=ended.message, run_dir=ended.run_dir)
    run_dir = last_run_dir(seat)
    if run_dir is None or run_dir == run_before:  # no run folder of this 'up': it never started
        return seat_record(lab, seat, make_backend(lab, seat, backend), ok=False, changed=False, step=None,
                           message="interrupted before it started", run_dir=None)
    try:
        step = json.loads((run_dir / "result.json").read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError, AttributeError):
        step = None
    said = f"interrupted during step '{step}'" if isinstance(step, str) else "interrupted"
    return seat_record(lab, seat, make_backend(lab, seat, backend), ok=False, changed=True,
                       step=step if isinstance(step, str) else None, message=said, run_dir=run_dir)


def _progress(line: str) -> None:
    print(f"labctl: {line} ...", file=sys.stderr, flush=True)


def _report_up(args: argparse.Namespace, res: SeatResult) -> None:
    seat = res.seat
    line = f"seat {seat.index} ({seat.name}): {res.message} ({res.seconds:.0f} s); run folder {res.run_dir}"
    if res.backend is not None and res.backend.alive():
        line += f"; left running, VNC {res.backend.vnc_display()} ('labctl down' stops it)"
    _say(args, line)


# -- down ----------------------------------------------------------------------------------------


def cmd_down(args: argparse.Namespace) -> int:
    from labctl.classroom import down_seats
    from labctl.runner import last_run_dir

    with _envelope(args, "down") as env:
        lab, seats = _lab(args)
        env.lab = lab.name
        hard = bool(getattr(args, "hard", False))
        timeout = float(args.timeout) if getattr(args, "timeout", None) is not None else 20.0
        for d in down_seats(lab, seats, hard=hard, timeout=timeout):
            seat = d.seat
            if d.stop is not None:
                how = {"soft": "soft", "hard": "hard" if hard else f"the guest ignored the power button for "
                       f"{timeout:g} s, then hard", "not running": "it had stopped by itself"}[d.stop.how]
                said = f"stopped {d.stop.process} pid {d.stop.pid} ({how}, {d.stop.seconds:.1f} s)"
            else:
                parts = []
                if d.strays:
                    parts.append(f"killed stray {d.backend.name} process pid {', '.join(map(str, d.strays))}")
                if d.removed:
                    parts.append(f"removed stale {', '.join(d.removed)}")
                said = "not running" + (f"; {'; '.join(parts)}" if parts else "")
            _say(args, f"seat {seat.index} ({seat.name}): {said}")
            env.seats.append(seat_record(lab, seat, d.backend, ok=True, changed=d.changed, step=None, message=said,
                                         run_dir=last_run_dir(seat)))
    return 0


# -- status --------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from labctl.classroom import status_seats

    show_password = bool(getattr(args, "show_password", False))
    with _envelope(args, "status") as env:
        if show_password and _json(args):
            raise InputError("--show-password is for the listing on the terminal; the JSON never holds a secret")
        lab, seats = _lab(args)
        env.lab = lab.name
        rows = status_seats(lab, seats, getattr(args, "backend", None))
        for r in rows:
            message = f"{r.power_state.value}; {r.stage}"
            rec = seat_record(lab, r.seat, r.backend, ok=True, changed=False, step=None, message=message,
                              run_dir=r.run_dir)
            rec.update(stage=r.stage, last_result=r.last_result, backend_reason=r.choice.reason,
                       state_dir=str(r.seat.state_dir), **r.details)
            env.seats.append(rec)
            if not _json(args):
                print(_status_lines(r, rec, show_password))
    return 0


def _status_lines(r: Any, rec: dict[str, Any], show_password: bool) -> str:
    """The human listing of one seat (classroom.SeatStatus and its JSON record)."""
    line = f"seat {r.seat.index} ({r.seat.name}): {r.backend.name} {r.power_state.value}, {r.stage}"
    details = r.details
    if details.get("pid"):
        line += f", pid {details['pid']}" + (f" ({details['accel']})" if details.get("accel") else "")
    if r.vnc is not None:
        line += f"\n  VNC: {r.vnc.url}"
        if show_password and r.vnc.password:
            line += f" password {r.vnc.password}"
    if details.get("stale_files"):
        line += " (stale files from a crashed run: 'labctl down' removes them)"
    line += f"\n  backend: {r.choice.reason}"
    line += f"\n  stick: {rec['stick_image'] or 'host stick'}"
    snaps = details.get("stick_snapshots")
    if isinstance(snaps, list) and snaps:
        line += f" (snapshots: {', '.join(map(str, snaps))})"
    if rec["disk_image"]:
        line += f"\n  disk: {rec['disk_image']}"
    result = r.last_result
    if result is not None:
        said = "passed" if result.get("ok") else (
            f"interrupted at '{result.get('step')}'" if result.get("interrupted")
            else f"failed at '{result.get('step')}': {result.get('error', '')}".rstrip(": "))
        line += f"\n  last result: {said}"
    line += f"\n  last run: {r.run_dir or '-'}"
    return line


# -- reset ---------------------------------------------------------------------------------------


def cmd_reset(args: argparse.Namespace) -> int:
    with _envelope(args, "reset") as env:
        lab, seats = _lab(args)
        env.lab = lab.name
        if getattr(args, "check", False):  # how far each stick has drifted from its golden copy; writes nothing
            env.seats += [_drift_record(args, lab, seat) for seat in seats]
            return 0
        for seat in _reset_seats(args, lab, seats):
            env.seats.append(seat)
    return 0 if all(s["ok"] for s in env.seats) else 1  # a seat reset only in part is not ok


def _drift_record(args: argparse.Namespace, lab: Lab, seat: Seat) -> dict[str, Any]:
    from labctl.classroom import stick_drift
    from labctl.runner import last_run_dir, make_backend

    drift = stick_drift(lab, seat)
    said = drift.message + (f" ({drift.differing} bytes)" if drift.differing else "")
    _say(args, f"seat {seat.index} ({seat.name}): {said}")
    return seat_record(lab, seat, make_backend(lab, seat), ok=True, changed=False, step=None, message=said,
                       run_dir=last_run_dir(seat))


def _reset_seats(args: argparse.Namespace, lab: Lab, seats: list[Seat]) -> Iterator[dict[str, Any]]:
    from labctl.classroom import reset_seats
    from labctl.runner import last_run_dir

    for r in reset_seats(lab, seats, getattr(args, "to", None), bool(getattr(args, "yes", False))):
        said = "; ".join(r.done + r.skipped)
        _say(args, f"seat {r.seat.index} ({r.seat.name}): {said}")
        yield seat_record(lab, r.seat, r.backend, ok=not r.skipped, changed=True, step=None, message=said,
                          run_dir=last_run_dir(r.seat))
