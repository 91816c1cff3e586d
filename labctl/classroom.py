"""Seats of a lab together: ``up`` for many seats (in parallel, one failure never stopping the others,
Ctrl-C/SIGTERM stopping all of them cleanly), ``down`` and ``status``, as results a command formats.

    from labctl.classroom import run_seats
    results = run_seats(lab, lab.select_seats("1-3"), UpOptions(parallel=2))   # list[SeatResult]
    print(summary(results))

Each seat's own run (steps, cleanups, run folder) is ``labctl.runner.run_seat``; this module only
decides which seats run, when, with which variables and secrets, and what a cancelled classroom does.
Backends come from the registry (``labctl.backends``): nothing here knows a hypervisor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl import seatimages
from labctl.backends import Choice, choose
from labctl.backends.base import Backend, PowerState, SeatImages, StopResult, VncEndpoint
from labctl.errors import InputError, LabctlError
from labctl.interrupts import Terminated, sigterm_as_exception
from labctl.runner import (
    SeatFailed,
    SeatResult,
    UpOptions,
    check_playbooks,
    last_run_dir,
    make_backend,
    playbook_variables,
    run_seat,
)
from labctl.spec import Lab, Seat, esxi_password_problem, resolve_secret

if TYPE_CHECKING:
    from labctl.backends import Registry

log = logging.getLogger(__name__)


# -- up ------------------------------------------------------------------------------------------


def run_seats(lab: Lab, seats: list[Seat], options: UpOptions,
              on_result: Callable[[SeatResult], None] | None = None) -> list[SeatResult]:
    """``up`` for ``seats``: at most ``options.parallel`` at once (0: all). Bad input (a running seat,
    a password the installer refuses, a broken playbook) is InputError before any VM starts. A seat that
    fails is a SeatResult with ``ok=False``; ``on_result`` hears of each seat as it ends. Ctrl-C or
    SIGTERM cancels every seat (each runs its cleanups and records 'interrupted'), then
    KeyboardInterrupt / SystemExit(143) propagates."""
    for seat in seats:  # refuse before anything is created: a running seat is left alone
        b = make_backend(lab, seat, options.backend, options.registry)
        if b.attach_running():
            raise InputError(f"seat {seat.index} ({seat.name}) is already running ({b.vnc_display()}); "
                             f"'labctl down {lab.source}' stops it")
    password: str | None = None
    secrets: list[str] = []
    if not options.boot_only:
        password = resolve_secret(lab.install.root_password, lab)
        problem = esxi_password_problem(password)
        if problem:
            raise InputError(f"install.root_password: the ESXi {lab.esxi} installer would refuse it: {problem}")
        secrets.append(password)
        check_playbooks(lab)  # a missing or malformed playbook is bad input, found before any VM starts

    def one(seat: Seat) -> SeatResult:
        done = already_installed(lab, seat, options)
        if done is not None:
            if on_result is not None:
                on_result(done)
            return done
        try:
            res = run_seat(lab, seat, options, secrets, playbook_variables(lab, seat, password))
        except SeatFailed as exc:
            res = SeatResult(seat, exc.run_dir, False, 0.0, exc.reason.splitlines()[0] if exc.reason else "failed",
                             step=exc.step, detail=str(exc))
        if res.ok and not options.boot_only and lab.reset == "after-install":
            kept = keep_golden(lab, seat, options)
            if kept:
                res.message += f"; {kept}"
        if on_result is not None:
            on_result(res)
        return res

    parallel = max(1, options.parallel or len(seats))
    if parallel == 1 or len(seats) == 1:
        return [one(seat) for seat in seats]
    if options.progress is None:
        return _in_parallel(lab, seats, parallel, one, options)
    # a terminal: one live table instead of every seat's progress lines interleaved
    quiet = dataclasses.replace(options, progress=None)
    with LiveTable(lab, seats):
        return _in_parallel(lab, seats, parallel, one, quiet)


ALREADY_INSTALLED = "already installed and verified (stick equals its golden copy)"


def already_installed(lab: Lab, seat: Seat, options: UpOptions) -> SeatResult | None:
    """With ``reset: after-install``, ``up`` of a seat whose last run installed and verified it and whose stick
    still equals its golden copy byte for byte is not a change: its result (ok, not changed), with nothing
    started. None when the seat must be installed: ``--force``, a boot-only up, another reset point, a last run
    that failed or only booted, no golden copy, or a stick that drifted from it."""
    if options.force or options.boot_only or lab.reset != "after-install":
        return None
    run_dir = last_run_dir(seat)
    result = _read_result(run_dir)
    if run_dir is None or result is None or result.get("ok") is not True or result.get("boot_only"):
        return None
    try:
        drift = stick_drift(lab, seat, options.backend, options.registry)
    except LabctlError as exc:  # the stick cannot be compared: install it
        log.info("seat %s: installing (its stick cannot be compared with its golden copy: %s)", seat.name, exc)
        return None
    if not drift.golden or drift.differing != 0:
        return None
    return SeatResult(seat, run_dir, True, 0.0, ALREADY_INSTALLED,
                      backend=make_backend(lab, seat, options.backend, options.registry), changed=False)


class LiveTable:
    """On a terminal, while seats run: seat, stage, elapsed time and the last text seen on its screen, redrawn
    every second from each seat's run folder (rich). Not used in CI, where each seat's result is a line."""

    def __init__(self, lab: Lab, seats: list[Seat], refresh: float = 1.0) -> None:
        self.lab, self.seats, self.refresh = lab, seats, refresh
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._before = {seat.index: last_run_dir(seat) for seat in seats}  # the runs of earlier ups

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(seat, stage, elapsed, last screen text) per seat, from what its run folder holds now."""
        from labctl.report import read_events

        out = []
        for seat in self.seats:
            run = last_run_dir(seat)
            if run is None or run == self._before[seat.index]:
                out.append((f"{seat.index} {seat.name}", "waiting", "-", ""))
                continue
            events = read_events(run)
            stage, seen = "starting", ""
            for ev in events:
                if ev.get("phase") == "start":
                    stage = str(ev["step"])
                elif ev.get("step") == "result":
                    stage = "passed" if ev.get("ok") else f"failed at {ev.get('failed_step')}"
                elif "action" in ev and "result" in ev and ev["step"] != "playbook":
                    stage_step = str(ev["step"])
                    seen = str(ev.get("matched") or seen)
                    if not stage.startswith(("passed", "failed")):
                        stage = f"{stage.split(': ')[0]}: {stage_step}"
            elapsed = float(events[-1].get("t", 0.0)) if events else 0.0
            if events and not stage.startswith(("passed", "failed")):  # still running: counted up to now
                with contextlib.suppress(KeyError, ValueError):
                    began = datetime.fromisoformat(str(events[0]["time"])).timestamp() - float(events[0].get("t", 0))
                    elapsed = time.time() - began
            out.append((f"{seat.index} {seat.name}", stage, f"{elapsed:.0f} s", seen[-60:]))
        return out

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=f"{self.lab.name}: {time.monotonic() - self._started:.0f} s", expand=False)
        for col in ("seat", "stage", "elapsed", "last screen text"):
            table.add_column(col)
        for row in self.rows():
            table.add_row(*row)
        return table

    def _run(self) -> None:
        from rich.console import Console as RichConsole
        from rich.live import Live

        with Live(self._table(), console=RichConsole(stderr=True), refresh_per_second=2, transient=False) as live:
            while not self._stop.wait(self.refresh):
                live.update(self._table())
            live.update(self._table())

    def __enter__(self) -> LiveTable:
        self._thread = threading.Thread(target=self._run, name="live-table", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)


def write_report(lab: Lab, results: list[SeatResult], runs_dir: Path | None = None) -> Path:
    """A classroom's index.html (every seat, failures first, links to each seat's report) and one junit.xml
    with a testcase per seat, in ``runs/<stamp>-classroom/``. Returns index.html's path."""
    from datetime import UTC

    from labctl.report import SeatRun, write_classroom

    base = runs_dir or lab.resolve(lab.runs_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = base / f"{stamp}-classroom"
    n = 1
    while out.exists():
        n += 1
        out = base / f"{stamp}-classroom-{n}"
    seats = [SeatRun(r.seat.index, r.seat.name, r.ok, r.seconds, r.message, r.run_dir, r.step) for r in results]
    index, _ = write_classroom(out, lab.name, seats)
    return index


def _in_parallel(lab: Lab, seats: list[Seat], parallel: int, one: Callable[[Seat], SeatResult],
                 options: UpOptions) -> list[SeatResult]:
    """Seats in worker threads. Ctrl-C or SIGTERM sets the seats' cancel event (a seat that has not
    started its VM never does) and kills every seat's VM, so the workers fail fast, run their cleanups
    and record "interrupted"; then KeyboardInterrupt or SystemExit(143)."""
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="seat")
    futures: dict[Future[SeatResult], Seat] = {pool.submit(one, seat): seat for seat in seats}
    with sigterm_as_exception():
        try:
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            results = [fut.result() for fut in futures]  # in seat order; bad input of one seat propagates
        except BaseException as exc:
            options.cancel_signal = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
            options.cancel.set()
            for fut in futures:
                fut.cancel()
            for seat in seats:  # the workers see their VM die and clean up
                kill_seat(lab, seat, options)
            pool.shutdown(wait=True, cancel_futures=True)
            if isinstance(exc, Terminated):
                raise SystemExit(143) from None
            raise
    pool.shutdown(wait=True)
    return results


# -- the golden point of reset: after-install -----------------------------------------------------------

GOLDEN = "after-install"  # the stick snapshot the first successful up keeps when the lab says reset: after-install


def keep_golden(lab: Lab, seat: Seat, options: UpOptions) -> str | None:
    """After a seat's successful ``up``: keep its installed stick as the golden copy ``labctl reset`` returns
    to (a backend snapshot: on QEMU the stick image is frozen and later writes go to a qcow2 overlay, so a reset
    only drops the overlay). Once per seat: an existing golden copy is kept. Returns what it did, or None."""
    b = make_backend(lab, seat, options.backend, options.registry)
    if b.attach_running():
        return "no golden copy kept: the VM was left running (--keep); 'labctl down' and run up again"
    if seat.stick_image(lab) is None and seat.stick.usb is not None:
        try:  # a VM snapshot does not hold a passed-through stick: its golden copy is an image of the stick
            return keep_host_golden(lab, seat, wait=STICK_BACK)
        except LabctlError as failed:
            log.warning("seat %s: no golden copy of the stick: %s", seat.name, failed)
            return f"no golden copy kept ({failed})"
    if GOLDEN in b.snapshots():
        return None
    try:
        b.snapshot(GOLDEN)
    except InputError as exc:
        log.warning("seat %s: no golden copy of the stick: %s", seat.name, exc)
        return f"no golden copy kept ({exc})"
    return "golden copy of the stick kept (labctl reset returns to it)"


def prepare_reset(lab: Lab, seat: Seat, b: Backend, to: str | None = None) -> list[str]:
    """Before ``reset`` writes anything: the stick's point. after-install keeps the golden copy (an image stick's
    reset reverts to it; a seat without a stick image, such as VMware's passed-through stick, reverts its VM
    snapshot here); before-install forgets it, so that the stick is emptied and the next successful up keeps a
    new one."""
    point = to or lab.reset
    snaps = b.snapshots()
    if point == "after-install":
        if GOLDEN not in snaps:
            if seat.stick_image(lab) is None:
                return []  # a host stick: reset_host_stick said what became of it
            return ["no golden copy yet (no successful up since the last before-install reset): the stick is "
                    "emptied"]
        if seat.stick_image(lab) is None:
            b.revert(GOLDEN)
            return [f"VM reverted to its snapshot '{GOLDEN}'"]
        return []
    if not snaps:
        return []
    drop = getattr(b, "drop_snapshots", None)
    delete = getattr(b, "delete_snapshot", None)
    if callable(drop):
        drop()
    elif callable(delete) and GOLDEN in snaps:
        delete(GOLDEN)
    else:
        raise InputError(f"seat {seat.index} ({seat.name}): the {b.name} backend cannot forget its snapshots")
    return ["golden copy forgotten (reset: before-install)"]


@dataclass
class SeatReset:
    """What ``reset`` did to one seat, as short phrases."""

    seat: Seat
    backend: Backend
    done: list[str]
    skipped: list[str] = field(default_factory=list)  # what reset could not do, and why (the seat is not ok)


def check_reset_images(lab: Lab, seats: list[Seat], yes: bool, registry: Registry | None = None) -> None:
    """Every image reset would empty may be emptied (labctl made it, or --yes), before any seat is touched."""
    for seat in seats:
        b = make_backend(lab, seat, registry=registry)
        snapshotted = bool(b.snapshots())
        for img in seatimages.check_seat(lab, seat, b.images().disk):
            if not (img.role == "stick" and snapshotted):
                seatimages.check_reset(seat.state_dir, img, yes=yes)


def reset_seats(lab: Lab, seats: list[Seat], to: str | None = None, yes: bool = False,
                registry: Registry | None = None) -> Iterator[SeatReset]:
    """Put each seat back to its point (``to``, else the lab's ``reset:``): the VM stopped, the stick at its
    golden copy or blank, the images labctl made emptied in place (others only with ``yes``), the VM
    definition as rendered. One seat at a time, each reported as it is done."""
    check_reset_images(lab, seats, yes, registry)  # a refusal leaves every file as it was
    for seat in seats:
        b = make_backend(lab, seat, registry=registry)
        done: list[str] = []
        skipped: list[str] = []
        wait = 0.0
        if b.attach_running():
            b.mark_stopped_by("reset")
            stopped = b.stop("hard")
            done.append(f"stopped the running VM ({stopped.process} pid {stopped.pid})")
            wait = STICK_BACK  # a passed-through stick comes back to the host a moment after the VM stops
        removed = b.cleanup_stale()
        if removed:
            done.append(f"removed stale {', '.join(removed)}")
        if seat.stick_image(lab) is None:  # its golden stick image restored, or a quick wipe (stick safety rules)
            try:
                done.append(reset_host_stick(lab, seat, to, yes, wait=wait))
            except HostStickNotFound as exc:  # nothing written: no disk is proven to be the seat's stick
                skipped.append(f"host stick not reset: {exc}")
        done += prepare_reset(lab, seat, b, to)  # after-install keeps the golden copy
        snaps = b.snapshots()
        for img in seatimages.check_seat(lab, seat, b.images().disk):
            if img.role == "stick" and snaps:
                b.revert(snaps[0])
                done.append(f"stick reverted to its snapshot '{snaps[0]}' (changes since then discarded)")
            else:  # in place, and only what labctl made (or --yes)
                done.append(seatimages.recreate_blank(seat.state_dir, img, yes=yes))
        done += b.reset_definition()
        b.define()
        yield SeatReset(seat, b, done, skipped)


# -- host sticks: the golden copy is a stick image, restored with 'labctl stick restore' -----------------------

GOLDEN_IMAGE = "golden-stick.img"  # in the seat's state folder


STICK_BACK = 10.0  # s: how long a host stick may take to show up as a disk again after its VM powered off


class HostStickNotFound(InputError):
    """No single disk on this host is the seat's stick (none or several with its vendor:product id)."""


def host_stick_device(lab: Lab, seat: Seat, wait: float = 0.0) -> str:
    """The block device of the seat's host stick, found by its vendor:product id (exactly one such disk),
    looked for up to ``wait`` seconds (a stick a VM just released is enumerated again by the host)."""
    from labctl.stick import blockdev

    usb = seat.stick.usb
    if usb is None or usb.vendor_id is None or usb.product_id is None:
        raise HostStickNotFound(f"seat {seat.index} ({seat.name}): a host stick given by bus path cannot be found as a "
                         "disk; give stick.usb vendor_id and product_id for its golden copy")
    want = f"{usb.vendor_id:04x}:{usb.product_id:04x}"
    deadline = time.monotonic() + wait
    while len(found := [d for d in blockdev.probe() if d.usb_id == want]) != 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    if len(found) != 1:
        raise HostStickNotFound(f"seat {seat.index} ({seat.name}): {len(found)} disks are USB {want} "
                         f"({', '.join(d.path for d in found) or 'none plugged in'}); exactly one is needed")
    return found[0].path


def _stick_verb(verb: str, **fields: object) -> None:
    """Run a ``labctl stick`` verb (its safety rules, its confirmation unless ``yes``), its lines on stderr
    (stdout may be a JSON envelope)."""
    import argparse
    import contextlib
    import sys

    from labctl.commands import stick

    defaults: dict[str, object] = {"quiet": True, "allow_non_usb": False, "allow_large": False, "full": False,
                                   "compress": False, "zero_rest": False, "coredump_header_only": False}
    args = argparse.Namespace(**{**defaults, **fields})
    with contextlib.redirect_stdout(sys.stderr):
        code = getattr(stick, f"cmd_{verb}")(args)
    if code != 0:
        raise InputError(f"labctl stick {verb} ended with exit {code}")


def keep_host_golden(lab: Lab, seat: Seat, device: str | None = None, wait: float = 0.0) -> str:
    """The installed host stick backed up (GPT-aware, sparse, verified) as the seat's golden copy."""
    if (seat.state_dir / GOLDEN_IMAGE).exists():
        return "golden copy of the host stick kept earlier"
    dev = device or host_stick_device(lab, seat, wait)
    _stick_verb("backup", device=dev, image=str(seat.state_dir / GOLDEN_IMAGE), yes=True)
    return f"golden copy of the host stick {dev} kept (labctl reset restores it)"


def reset_host_stick(lab: Lab, seat: Seat, to: str | None, yes: bool, device: str | None = None,
                     wait: float = 0.0) -> str:
    """after-install: the golden image restored onto the stick (differential: only what differs is written, then
    read back); before-install: a quick wipe, and the golden copy forgotten. Both need the stick's own
    confirmation (or ``yes``)."""
    golden = seat.state_dir / GOLDEN_IMAGE
    if (to or lab.reset) == "after-install":
        if not golden.exists():
            return "host stick left as it is (no golden copy yet; 'labctl stick wipe DEV' empties it)"
        dev = device or host_stick_device(lab, seat, wait)
        _stick_verb("restore", image=str(golden), devices=[dev], yes=yes)
        return f"host stick {dev} restored from its golden copy (only what differed written, then verified)"
    dev = device or host_stick_device(lab, seat, wait)
    _stick_verb("wipe", device=dev, quick=True, yes=yes)
    for path in (golden, golden.with_name(golden.name + ".manifest.json")):
        path.unlink(missing_ok=True)
    return f"host stick {dev} wiped (quick); golden copy forgotten"


@dataclass
class Drift:
    """How far a seat's stick is from its golden copy (``labctl reset --check``)."""

    seat: Seat
    golden: bool
    differing: int | None  # bytes that differ; None when it cannot be told
    size: int
    message: str


def stick_drift(lab: Lab, seat: Seat, override: str | None = None, registry: Registry | None = None) -> Drift:
    """Compare the stick as the VM sees it now with the golden copy, byte by byte, writing nothing."""
    b = make_backend(lab, seat, override, registry)
    image = seat.stick_image(lab)
    if image is None:
        return Drift(seat, False, None, 0, "a host stick: compare it with 'labctl stick verify IMG DEV'")
    if GOLDEN not in b.snapshots():
        return Drift(seat, False, None, image.stat().st_size if image.exists() else 0,
                     "no golden copy yet (a successful up with reset: after-install keeps one)")
    with b.stick_view() as view:
        if view.path is None:
            return Drift(seat, True, None, 0, view.reason)
        differing = differing_bytes(image, view.path)
        size = view.path.stat().st_size
    if differing == 0:
        return Drift(seat, True, 0, size, "equals its golden copy")
    return Drift(seat, True, differing, size, f"{_human(differing)} differ from its golden copy")


def _human(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def _extents(fd: int, size: int) -> list[tuple[int, int]]:
    """The data extents of a (sparse) file; holes read as zeros."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        out.append((start, end))
        pos = end
    return out


def differing_bytes(a: Path, b: Path, chunk: int = 1 << 20) -> int:
    """How many bytes differ between two files (a shorter one counts as zeros); reads only where either has
    data, so two 64 GB sparse sticks with a few hundred MB written compare in a moment."""
    import numpy as np

    with a.open("rb") as fa, b.open("rb") as fb:
        sa, sb = os.fstat(fa.fileno()).st_size, os.fstat(fb.fileno()).st_size
        size = max(sa, sb)
        ranges = sorted(_extents(fa.fileno(), sa) + _extents(fb.fileno(), sb))
        merged: list[list[int]] = []
        for lo, hi in ranges:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        differing = 0
        for lo, hi in merged:
            pos = lo
            while pos < min(hi, size):
                n = min(chunk, hi - pos)
                da = np.frombuffer(os.pread(fa.fileno(), n, pos).ljust(n, b"\0"), dtype=np.uint8)
                db = np.frombuffer(os.pread(fb.fileno(), n, pos).ljust(n, b"\0"), dtype=np.uint8)
                differing += int(np.count_nonzero(da != db))
                pos += n
    return differing


def kill_seat(lab: Lab, seat: Seat, options: UpOptions | None = None) -> None:
    """End a seat's running VM at once (the backend proves the process is the seat's before signalling)."""
    b = make_backend(lab, seat, options.backend if options else None, options.registry if options else None)
    if b.attach_running():
        b.kill()


def summary(results: list[SeatResult]) -> str:
    """One line: all passed, or which seats failed at which step and why."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return f"{len(results)} of {len(results)} seats passed"
    parts = [f"seat {r.seat.index} ({r.seat.name}) at step '{r.step}': {r.message}" for r in failed]
    return f"{len(failed)} of {len(results)} seats failed: " + "; ".join(parts)


# -- down ----------------------------------------------------------------------------------------


@dataclass
class SeatDown:
    """What ``down`` did to one seat."""

    seat: Seat
    backend: Backend
    stop: StopResult | None = None  # None: it was not running
    strays: list[int] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.stop is not None or self.strays or self.removed)


def down_seats(lab: Lab, seats: list[Seat], hard: bool = False, timeout: float = 20.0,
               registry: Registry | None = None) -> list[SeatDown]:
    """Stop each running seat (soft first unless ``hard``), kill strays of this seat that no record
    knows, remove what crashed runs left."""
    out: list[SeatDown] = []
    for seat in seats:
        b = make_backend(lab, seat, registry=registry)
        done = SeatDown(seat, b)
        if b.attach_running():
            b.mark_stopped_by("down")  # so a running 'up' says who stopped it
            done.stop = b.stop("hard" if hard else "soft", timeout=timeout)
        else:
            done.strays = b.stop_strays()
            done.removed = b.cleanup_stale()
        out.append(done)
    return out


# -- status --------------------------------------------------------------------------------------


@dataclass
class SeatStatus:
    """One seat as ``labctl status`` shows it. ``vnc`` holds the password: print it only when asked."""

    seat: Seat
    backend: Backend
    choice: Choice
    power_state: PowerState
    stage: str
    vnc: VncEndpoint | None
    last_result: dict[str, object] | None
    images: SeatImages
    run_dir: Path | None
    details: dict[str, object]


def seat_status(lab: Lab, seat: Seat, choice: Choice, registry: Registry | None = None) -> SeatStatus:
    b = make_backend(lab, seat, choice.name, registry)
    running = b.attach_running()
    state = b.power_state() if running else PowerState.OFF
    vnc = b.vnc_endpoint() if running else None
    run_dir = last_run_dir(seat)
    result = _read_result(run_dir)
    return SeatStatus(seat, b, choice, state, _stage(seat, run_dir, result, running), vnc, result, b.images(),
                      run_dir, b.status_details())


def status_seats(lab: Lab, seats: list[Seat], override: str | None = None,
                 registry: Registry | None = None) -> list[SeatStatus]:
    choice = choose(lab, override, registry)
    return [seat_status(lab, seat, choice, registry) for seat in seats]


def _read_result(run_dir: Path | None) -> dict[str, object] | None:
    if run_dir is None:
        return None
    try:
        data = json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def up_in_progress(seat: Seat) -> int | None:
    """The pid of a ``labctl up`` holding the seat's lock right now, else None (never takes the lock
    for longer than the probe)."""
    path = seat.state_dir / "up.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _stage(seat: Seat, run_dir: Path | None, result: dict[str, object] | None, running: bool) -> str:
    """Where the seat is: an ``up`` at step X, or what its last run ended with."""
    if up_in_progress(seat) is not None:
        step = _current_step(run_dir)
        return f"up: {step}" if step else "up: starting"
    if run_dir is None:
        return "running (no run recorded)" if running else "not run yet"
    if result is None:  # the run folder has no result: that labctl ended without its cleanups
        step = _current_step(run_dir)
        return f"the last up ended without a result during step '{step or 'prepare'}' (labctl was killed)"
    if result.get("ok"):
        done = "booted (boot-only run)" if result.get("boot_only") else "installed and verified"
        return done + ("; left running" if running else "")
    if result.get("interrupted"):
        return f"interrupted at step '{result.get('step')}'"
    return f"failed at step '{result.get('step')}'"


def _current_step(run_dir: Path | None) -> str | None:
    if run_dir is None:
        return None
    from labctl.report import read_events

    started = [ev["step"] for ev in read_events(run_dir) if ev.get("phase") == "start"]
    return str(started[-1]) if started else None
