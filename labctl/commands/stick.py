"""labctl stick list | backup | restore | wipe | verify: checks, confirmation, progress, summaries.

The work is in labctl.stick.ops (operations), labctl.stick.imaging (I/O, image format) and labctl.stick.blockdev
(discovery and the safety verdict). Long operations run in worker threads so Ctrl-C reaches the main
thread, which cancels the jobs, waits for them to stop between blocks and says what state each
target is in (exit 130; SIGTERM is handled the same way and exits 143).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from labctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, InputError, RefusedError
from labctl.interrupts import EXIT_TERMINATED, Terminated
from labctl.interrupts import sigterm_as_exception as sigterm_like_ctrl_c
from labctl.stick import blockdev, imaging, ops
from labctl.stick.blockdev import Target, human_size

T = TypeVar("T")


# ------------------------------------------------------------------------------------- helpers


def quiet(args: argparse.Namespace) -> bool:
    """No progress bars when asked, in CI, or when stderr is not a terminal."""
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return bool(getattr(args, "quiet", False)) or ci or not sys.stderr.isatty()


def confirm(targets: Sequence[Target], *, yes: bool, action: str,
            ask: Callable[[str], str] | None = None, isatty: Callable[[], bool] | None = None) -> None:
    """Each existing target must be confirmed by typing its name; RefusedError otherwise."""
    if yes:
        return
    ask = ask or input
    isatty = isatty or sys.stdin.isatty
    for t in targets:
        if not t.exists or (not t.is_block and t.size == 0):
            continue
        if not isatty():
            raise RefusedError(f"{action} {t.path}: no terminal to confirm on; pass --yes to confirm "
                               "in a script")
        name = os.path.basename(t.path)
        print(f"{action} will overwrite {t.describe()}", file=sys.stderr)
        if t.disk and t.disk.usb_id:
            print(f"  transport {t.disk.tran or 'usb'}, removable={t.disk.removable}", file=sys.stderr)
        try:
            answer = ask(f"Type the device name ({name}) to go ahead, anything else stops: ").strip()
        except EOFError:
            answer = ""
        if answer not in (name, t.path):
            raise RefusedError(f"{action} {t.path}: not confirmed; nothing written")


STOP_WAIT = 120.0  # seconds a cancelled job gets to reach its next block boundary (an fsync may be slow)


def run_jobs(jobs: Sequence[tuple[ops.Job, Callable[[], T]]], *, quiet_mode: bool
             ) -> list[T | BaseException]:
    """Run each job's function in a thread with one progress line per job; Ctrl-C (or SIGTERM) cancels
    all of them and returns only once every worker has finished its cleanup, then re-raises.

    Each worker sets its own completion event last: after an interrupted ``Thread.join(timeout)``
    Python 3.11 may report a thread as finished while it still runs, so joins are not trusted here.
    """
    results: list[T | BaseException] = [RuntimeError("not run")] * len(jobs)
    finished = [threading.Event() for _ in jobs]

    def work(i: int, fn: Callable[[], T]) -> None:
        try:
            results[i] = fn()
        except BaseException as exc:  # handed to the main thread
            results[i] = exc
        finally:
            finished[i].set()

    threads = [threading.Thread(target=work, args=(i, fn), daemon=True) for i, (_, fn) in enumerate(jobs)]
    progress: Any = None
    try:
        for t in threads:
            t.start()
        if not quiet_mode:
            progress = _Progress(jobs)
        while not all(ev.is_set() for ev in finished):
            next(ev for ev in finished if not ev.is_set()).wait(0.1)
            if progress is not None:
                progress.update()
    except KeyboardInterrupt:
        for j, _ in jobs:
            j.cancel.set()
        _wait_stopped([ev for ev, t in zip(finished, threads, strict=True) if t.ident is not None])
        raise
    finally:
        if progress is not None:
            progress.stop()
    return results


def _wait_stopped(pending: list[threading.Event]) -> None:
    """Wait (bounded, through further Ctrl-C or SIGTERM) until every started worker has finished."""
    deadline = time.monotonic() + STOP_WAIT
    while pending and time.monotonic() < deadline:
        try:
            pending[0].wait(0.1)
        except KeyboardInterrupt:  # a second Ctrl-C: the cleanup still has to finish
            continue
        pending = [ev for ev in pending if not ev.is_set()]
    if pending:
        print(f"labctl: a job did not stop within {STOP_WAIT:g} s; its state below may be out of date",
              file=sys.stderr)


class _Progress:
    """One rich progress bar per job, redrawn from the jobs' counters."""

    def __init__(self, jobs: Sequence[tuple[ops.Job, Any]]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.jobs = [j for j, _ in jobs]
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                            TransferSpeedColumn(), TimeRemainingColumn(), transient=False,
                            console=Console(stderr=True))
        self.bar.start()
        self.tasks = [self.bar.add_task(j.label, total=max(j.total, 1)) for j in self.jobs]
        self.phases = ["" for _ in self.jobs]

    def update(self) -> None:
        for k, (task, j) in enumerate(zip(self.tasks, self.jobs, strict=True)):
            if j.phase != self.phases[k]:  # a new phase: fresh bar, speed and ETA
                self.phases[k] = j.phase
                self.bar.reset(task, total=max(j.total, 1), completed=j.done, description=f"{j.label} {j.phase}")
            self.bar.update(task, total=max(j.total, 1), completed=j.done)

    def stop(self) -> None:
        self.bar.stop()


def _terminable(cmd: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A stick command under :func:`sigterm_like_ctrl_c`; a SIGTERM outside a job is exit 143 too."""

    @functools.wraps(cmd)
    def run(args: argparse.Namespace) -> int:
        try:
            with sigterm_like_ctrl_c():
                return cmd(args)
        except Terminated:
            print("labctl: terminated", file=sys.stderr)
            return EXIT_TERMINATED

    return run


def _interrupted(jobs: Sequence[ops.Job], exc: BaseException | None = None) -> int:
    terminated = isinstance(exc, Terminated)
    print("labctl: terminated" if terminated else "labctl: interrupted", file=sys.stderr)
    for j in jobs:
        print(f"labctl: {j.label}: {j.state}", file=sys.stderr)
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def _reraise(result: object) -> None:
    if isinstance(result, ops.Cancelled):
        raise KeyboardInterrupt
    if isinstance(result, BaseException):
        raise result


def _mb(n: int) -> str:
    return f"{human_size(n)} ({n} bytes)"


# ---------------------------------------------------------------------------------------- list


def cmd_list(args: argparse.Namespace) -> int:
    disks = blockdev.probe()
    shown = disks if args.all else [d for d in disks if d.usb]
    if args.json:
        print(json.dumps([d.to_dict() for d in shown], indent=2))
        return EXIT_OK
    if not shown:
        print("no USB disks found" + ("" if args.all else " (--all shows every disk)"))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("device", "size", "tran", "rm/hp", "model", "serial", "usb id", "mounted", "safe target"):
        table.add_column(col)
    for d in shown:
        table.add_row(d.path, human_size(d.size), d.tran or "-", f"{int(d.removable)}/{int(d.hotplug)}",
                      (d.model or "-").strip(), (d.serial or "-").strip(), d.usb_id or "-",
                      ", ".join(d.mountpoints + d.swap) or "-",
                      ("yes: " if d.safe else "no: ") + d.reason)
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
    return EXIT_OK


# -------------------------------------------------------------------------------------- backup


def _source_info(path: str) -> dict[str, Any]:
    import stat

    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        return {"kind": "file"}
    if not stat.S_ISBLK(st.st_mode):
        raise InputError(f"{path}: neither a block device nor a regular file")
    node = f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    if os.path.exists(os.path.join(node, "partition")):
        whole = os.path.basename(os.path.dirname(os.path.realpath(node)))
        raise InputError(f"{path} is a partition; back up the whole disk (/dev/{whole})")
    found = [d for d in blockdev.probe(os.path.realpath(path))]
    if not found:
        return {"kind": "block"}
    d = found[0]
    return {"kind": "block", "model": d.model, "serial": d.serial, "usb_id": d.usb_id, "tran": d.tran}


@_terminable
def cmd_backup(args: argparse.Namespace) -> int:
    info = _source_info(args.device)
    ops.check_backup_paths(args.device, args.image)
    existing = [p for p in (args.image, imaging.manifest_path(args.image)) if os.path.lexists(p)]
    if existing and not args.yes:
        if not sys.stdin.isatty():
            raise RefusedError(f"{existing[0]} exists; pass --yes to overwrite it")
        if input(f"{existing[0]} exists. Overwrite it? [y/N] ").strip().lower() not in ("y", "yes"):
            raise RefusedError(f"{existing[0]} exists; not overwritten")
    job = ops.Job(os.path.basename(args.device))
    t0 = time.monotonic()
    try:
        [res] = run_jobs([(job, lambda: ops.backup(args.device, args.image, full=args.full,
                                                   compress=args.compress, job=job, source_info=info))],
                         quiet_mode=quiet(args))
        _reraise(res)
    except KeyboardInterrupt as exc:
        return _interrupted([job], exc)
    assert isinstance(res, imaging.Manifest)
    m = res
    for note in job.notes:
        print(f"note: {note}")
    alloc = os.stat(args.image).st_blocks * 512
    print(f"backup {args.device} -> {args.image} (+ .manifest.json): {m.mode} image of {_mb(m.size)}; "
          f"read {_mb(job.bytes_read)}; data {_mb(m.data_bytes)} in {len(m.ranges)} ranges; "
          f"image file uses {_mb(alloc)}; {time.monotonic() - t0:.1f} s")
    return EXIT_OK


# ------------------------------------------------------------------------------------- restore


def _check_targets(paths: Sequence[str], image: str, need: int, allow_non_usb: bool,
                   allow_large: bool) -> list[Target]:
    targets = []
    seen: set[object] = set()
    for p in paths:
        t = blockdev.resolve_target(p, allow_non_usb=allow_non_usb, allow_large=allow_large)
        who = t.ident  # hard links and symlinks agree; two aliases of one device node too
        if who in seen:
            raise InputError(f"{p} is named twice (another name, link or device node of a target given before)")
        seen.add(who)
        for own in (image, imaging.manifest_path(image)):
            if t.exists and os.path.exists(own) and os.path.samefile(t.path, own):
                raise RefusedError(f"{p} is the image itself; refused")
        if t.is_block and t.size < need:
            raise RefusedError(f"{p} ({t.describe()}) is smaller than the image "
                               f"({human_size(need)}, {need} bytes): refused")
        targets.append(t)
    return targets


@_terminable
def cmd_restore(args: argparse.Namespace) -> int:
    m = imaging.Manifest.load(args.image)
    targets = _check_targets(args.devices, args.image, m.size, args.allow_non_usb, args.allow_large)
    confirm(targets, yes=args.yes, action="restore")
    check = ops.Job("image")
    check.start_phase("checking", m.data_bytes)
    opened: list[imaging.ImageData] = []  # to close (remove an unpacked copy) even on a late Ctrl-C

    def open_it() -> imaging.ImageData:
        opened.append(imaging.open_image(args.image, check.tick))
        return opened[-1]

    try:  # the image first: a corrupt image must not even create or extend a target file
        [img] = run_jobs([(check, open_it)], quiet_mode=quiet(args))
        _reraise(img)
    except KeyboardInterrupt as exc:
        for done in opened:
            done.close()
        check.state = "image check stopped; no target written"
        return _interrupted([check], exc)
    assert isinstance(img, imaging.ImageData)
    devs: dict[str, imaging.Dev] = {}
    try:
        # block devices first (O_EXCL and the lock may still refuse), files (created or extended) last
        for t in sorted(targets, key=lambda t: not t.is_block):
            devs[t.path] = ops.open_target(t, m.size, m.sector_size)
        return _restore_all(args, img, [devs[t.path] for t in targets])
    finally:
        for d in devs.values():
            d.close()
        img.close()


def _restore_all(args: argparse.Namespace, img: imaging.ImageData, devs: list[imaging.Dev]) -> int:
    jobs = [ops.Job(os.path.basename(d.path)) for d in devs]
    if args.coredump_header_only and (left := ops.coredump_header_only(img.manifest)[1]):
        print(f"note: --coredump-header-only: {_mb(left)} of core dump partitions keep each stick's old bytes")

    def one(d: imaging.Dev, j: ops.Job) -> Callable[[], ops.RestoreResult]:
        return lambda: ops.restore(img, d, zero_rest=args.zero_rest, job=j,
                                   coredumps=not args.coredump_header_only)

    try:
        results = run_jobs([(j, one(d, j)) for d, j in zip(devs, jobs, strict=True)], quiet_mode=quiet(args))
    except KeyboardInterrupt as exc:
        return _interrupted(jobs, exc)
    rc = EXIT_OK
    errors: list[BaseException] = []
    for j, r in zip(jobs, results, strict=True):
        if isinstance(r, ops.Cancelled):
            return _interrupted(jobs)
        if isinstance(r, BaseException):
            print(f"labctl: {j.label}: failed: {r}; state: {j.state}", file=sys.stderr)
            errors.append(r)
            continue
        assert isinstance(r, ops.RestoreResult)
        verdict = "read back and verified" if not r.mismatches else "READ-BACK MISMATCH"
        print(f"restore {args.image} -> {r.target}: compared {_mb(r.compared)}, wrote {_mb(r.bytes_written)} "
              f"in {r.written_ranges} ranges, read {_mb(r.bytes_read)} from the target; {verdict}; "
              f"{r.seconds:.1f} s")
        for mm in r.mismatches[:20]:
            print(f"  {mm}")
        if r.mismatches:
            rc = EXIT_FAILED
    if errors:
        if len(errors) == len(jobs) and all(isinstance(e, InputError) for e in errors):
            raise errors[0]  # e.g. an unreadable image: one line, exit 2
        rc = EXIT_FAILED
    return rc


# ---------------------------------------------------------------------------------------- wipe


@_terminable
def cmd_wipe(args: argparse.Namespace) -> int:
    t = blockdev.resolve_target(args.device, allow_non_usb=args.allow_non_usb, allow_large=args.allow_large)
    if not t.exists:
        raise InputError(f"{args.device}: does not exist")
    confirm([t], yes=args.yes, action="wipe")
    job = ops.Job(os.path.basename(t.path))
    t0 = time.monotonic()
    with ops.open_target(t, 0) as dev:
        try:
            [res] = run_jobs([(job, lambda: ops.wipe(dev, quick=args.quick, job=job))], quiet_mode=quiet(args))
            _reraise(res)
        except KeyboardInterrupt as exc:
            return _interrupted([job], exc)
    print(f"wipe {t.path}: wrote {_mb(job.bytes_written)} of zeros"
          f"{' (GPT areas and each partition start)' if args.quick else ''}; {time.monotonic() - t0:.1f} s")
    return EXIT_OK


# -------------------------------------------------------------------------------------- verify


@_terminable
def cmd_verify(args: argparse.Namespace) -> int:
    m = imaging.Manifest.load(args.image)
    if args.coredump_header_only:
        m = ops.coredump_header_only(m)[0]
    job = ops.Job(os.path.basename(args.device))
    with imaging.Dev(args.device) as dev:
        try:
            [res] = run_jobs([(job, lambda: ops.verify(m, dev, job))], quiet_mode=quiet(args))
            _reraise(res)
        except KeyboardInterrupt as exc:
            job.state = "verification stopped (nothing written)"
            return _interrupted([job], exc)
    assert isinstance(res, list)
    if res:
        print(f"verify {args.image} vs {args.device}: DIFFERENT")
        for line in res:
            print(f"  {line}")
        return EXIT_FAILED
    print(f"verify {args.image} vs {args.device}: equal over {len(m.extents)} extents and "
          f"{len(m.ranges)} data ranges ({_mb(job.bytes_read)} read)")
    return EXIT_OK
