"""``labctl up`` for one seat, as Packer-style steps, and ``attach`` for commands on a running seat.

The flow (each an ``UpStep`` with ``run`` and ``cleanup``; cleanups run in reverse order, always):

    prepare       the backend's definition: state folder, VNC password, stick image (sparse, made on first use)
    build ISO     the simulator ISO (``labctl.sim.build.build_iso``), only for ``iso: sim``
    start VM      ``backend.prepare()`` (QEMU: the accelerator) and   cleanup: stop the VM (not after
                  ``backend.start()``, returns once VNC answers      a successful ``--keep`` run)
    open console  VNC (+ serial) session for the playbooks           cleanup: close it
    install       the install playbook (lab.install.playbook)
    post-install  each of lab.post_install
    verify        the stick's GPT against lab.verify (labctl.layouts)
    result        result.json in the run folder

A failing step raises ``SeatFailed("seat N: step 'S' failed: ...; last screenshot: PNG")`` (a RunFailed,
exit 1) after the cleanups ran; Ctrl-C runs the cleanups and ends with exit 130; SIGTERM does the same
(exit 143). While a step runs, a supervisor thread notices the VM dying on its own and makes the console
give up at once, so the step fails with the backend's account of the death (exit status, log tail)
instead of a console timeout. No signal handler is involved, so the same holds in worker threads.

The runner knows backends only through ``labctl.backends.base.Backend`` and the registry
(``labctl.backends``): which hypervisor runs a seat is the lab's ``backend:`` or ``--backend``.

Attaching to a running seat (for ``labctl send/screenshot/wait`` in another process)::

    from labctl.runner import attach
    backend, vnc, serial = attach(lab, seat_index)   # InputError (exit 2) when the seat is not running

``backend`` is a ``Backend`` bound to the running VM (``screendump``, ``eject_cdrom``, ``power_state``
...), ``vnc`` a ``VncEndpoint`` (with the password: never log it), ``serial`` a ``SerialEndpoint`` or None.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from labctl.backends import Registry, choose, default_registry
from labctl.backends.base import Backend, SerialEndpoint, VmDied, VncEndpoint
from labctl.errors import InputError, NotBuiltError, RunFailed
from labctl.interrupts import EXIT_TERMINATED, Terminated, sigterm_as_exception
from labctl.spec import Lab, Seat

log = logging.getLogger(__name__)

# -- backend selection -------------------------------------------------------------------------------


def backend_kind(lab: Lab, override: str | None = None, registry: Registry | None = None) -> str:
    """The backend's name for the lab (``auto``: the first usable one, see ``labctl.backends``)."""
    choice = choose(lab, override, registry)
    log.info("backend %s: %s", choice.name, choice.reason)
    return choice.name


def make_backend(lab: Lab, seat: Seat, override: str | None = None, registry: Registry | None = None,
                 **options: object) -> Backend:
    """One seat's backend object (nothing started)."""
    registry = registry or default_registry()
    return registry.create(lab, seat, registry.choose(lab, override).name, **options)


def playbook_variables(lab: Lab, seat: Seat, root_password: str | None) -> dict[str, object]:
    """The variables every playbook of a seat sees (``{boot_options}`` ...). The one place they are
    built; ``root_password`` is None for a boot-only run."""
    variables: dict[str, object] = {
        "boot_options": lab.install.boot_options,
        "keyboard": lab.install.keyboard,
        "esxi": lab.esxi,
        "media": lab.verify.media,
        "existing": lab.install.existing,
        "lab": lab.name,
        "seat": seat.name,
    }
    if root_password is not None:
        variables["root_password"] = root_password
    return variables


# -- attach ------------------------------------------------------------------------------------------


class Attachment(NamedTuple):
    backend: Backend
    vnc: VncEndpoint
    serial: SerialEndpoint | None


def seat_by_index(lab: Lab, seat_index: int) -> Seat:
    seats = lab.seat_list()
    if not 1 <= seat_index <= len(seats):
        raise InputError(f"--seat {seat_index}: lab {lab.name} has seats 1-{len(seats)}")
    return seats[seat_index - 1]


def attach(lab: Lab, seat_index: int = 1, registry: Registry | None = None) -> Attachment:
    """The running seat's backend and endpoints; InputError when it is not running."""
    seat = seat_by_index(lab, seat_index)
    backend = make_backend(lab, seat, registry=registry)
    if not backend.attach_running():
        raise InputError(
            f"seat {seat.index} ({seat.name}) is not running; start it with 'labctl up {lab.source} --keep'")
    return Attachment(backend, backend.vnc_endpoint(), backend.serial_endpoint())


def last_run_file(seat: Seat) -> Path:
    return seat.state_dir / "last-run"


def last_run_dir(seat: Seat) -> Path | None:
    try:
        text = last_run_file(seat).read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


# -- steps ---------------------------------------------------------------------------------------


@dataclass
class UpOptions:
    keep: bool = False
    boot_only: bool = False  # start the VM and leave it running: no console, no playbooks
    force: bool = False  # install even a seat already installed and verified (reset: after-install)
    runs_dir: Path | None = None
    parallel: int = 0  # seats at once for labctl.classroom.run_seats (0: all)
    backend: str | None = None
    registry: Registry | None = None  # where backends are found (tests register a fake one)
    vnc_unix: bool = False
    accel_cache: Path | None = None
    progress: Callable[[str], None] | None = None  # one line per step start (a terminal, not CI)
    build_lock: threading.Lock = field(default_factory=threading.Lock)  # seats in parallel build the ISO once
    # set by the main thread on Ctrl-C / SIGTERM while seats run in worker threads: each seat stops
    # at its next step boundary (or its VNC connect), runs its cleanups and records "interrupted"
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_signal: int = signal.SIGINT

    def cancel_exception(self) -> BaseException:
        """What a cancelled seat raises: Terminated for SIGTERM, KeyboardInterrupt for Ctrl-C."""
        return Terminated() if self.cancel_signal == signal.SIGTERM else KeyboardInterrupt()

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise self.cancel_exception()


@dataclass
class Context:
    """What the steps share for one seat's run."""

    lab: Lab
    seat: Seat
    options: UpOptions
    run: Any  # labctl.report.RunFolder
    secrets: list[str]
    variables: dict[str, object]
    iso: Path | None = None
    backend: Backend | None = None
    console: Any = None  # labctl.console.Console
    succeeded: bool = False
    result: dict[str, object] = field(default_factory=dict)


class UpStep:
    """Packer's step: ``run`` does the work, ``cleanup`` undoes it (runs after success and failure)."""

    name = "step"

    def run(self, ctx: Context) -> None:
        raise NotImplementedError

    def cleanup(self, ctx: Context) -> None:
        return None


class Prepare(UpStep):
    name = "prepare"

    def run(self, ctx: Context) -> None:
        ctx.backend = make_backend(ctx.lab, ctx.seat, ctx.options.backend, ctx.options.registry,
                                   detached=ctx.options.keep, vnc_unix=ctx.options.vnc_unix,
                                   accel_cache=ctx.options.accel_cache)
        removed = ctx.backend.cleanup_stale()
        if removed:
            ctx.run.event(self.name, removed_stale=removed)
        ctx.backend.define()
        image = ctx.seat.stick_image(ctx.lab)
        ctx.run.event(self.name, state_dir=str(ctx.seat.state_dir), stick_image=str(image) if image else None)


class BuildSimulator(UpStep):
    name = "build simulator"

    def run(self, ctx: Context) -> None:
        try:
            from labctl.sim.build import build_iso
        except ImportError:
            raise NotBuiltError("the simulator builder (labctl.sim.build) is not built yet") from None
        t0 = time.monotonic()
        with ctx.options.build_lock:
            ctx.iso = Path(build_iso(ctx.lab.sim_speed, esxi="8.0" if ctx.lab.esxi == "8.0" else "6.7"))
        assert ctx.backend is not None
        ctx.backend.iso = ctx.iso
        ctx.run.event(self.name, iso=str(ctx.iso), speed=ctx.lab.sim_speed, seconds=round(time.monotonic() - t0, 2))


class KickstartIso(UpStep):
    """install.kickstart: the ISO remastered with it (labctl.iso; cached by content hash)."""

    name = "kickstart ISO"

    def run(self, ctx: Context) -> None:
        from labctl.iso import lab_kickstart_iso

        assert ctx.backend is not None and ctx.lab.install.kickstart is not None
        source = ctx.iso or ctx.lab.iso_path(ctx.seat)
        assert source is not None
        with ctx.options.build_lock:
            ctx.iso = lab_kickstart_iso(ctx.lab.resolve(ctx.lab.install.kickstart), source,
                                        ctx.lab.install.boot_options)
        ctx.backend.iso = ctx.iso
        ctx.run.event(self.name, iso=str(ctx.iso), source=str(source))


class StartVm(UpStep):
    name = "start VM"

    def run(self, ctx: Context) -> None:
        b = ctx.backend
        assert b is not None
        ctx.run.event(self.name, **b.prepare())  # host-specific choices (QEMU: the accelerator)
        ctx.run.event(self.name, **b.start())

    def cleanup(self, ctx: Context) -> None:
        b = ctx.backend
        if b is None or not b.started_here:  # never stop a VM this run did not start
            return
        if ctx.succeeded and (ctx.options.keep or ctx.options.boot_only):
            ctx.run.event(self.name, left_running=True, vnc=b.vnc_display())
            return
        was_alive = b.alive()
        res = b.stop("hard")  # QEMU: QMP quit, it flushes the stick image and exits; always forgets the VM
        if was_alive:
            ctx.run.event("stop VM", mode="hard", how=res.how, seconds=round(res.seconds, 2))


class OpenConsole(UpStep):
    name = "open console"

    def run(self, ctx: Context) -> None:
        from labctl.console import Console

        b = ctx.backend
        assert b is not None
        serial = b.serial_endpoint() if ctx.lab.console.serial else None
        key_rate = ctx.lab.console.key_rate or b.default_key_rate
        cancel = ctx.options.cancel
        ctx.console = Console.open(b.vnc_endpoint(), serial, ctx.run, key_rate=key_rate, secrets=ctx.secrets,
                                   timeout_scale=ctx.lab.console.timeout_scale,
                                   alive=lambda: b.alive() and not cancel.is_set())
        ctx.run.event(self.name, vnc=b.vnc_display(), serial=bool(serial), key_rate=key_rate)

    def cleanup(self, ctx: Context) -> None:
        if ctx.console is not None:
            ctx.console.close()
            ctx.console = None


class Playbook(UpStep):
    def __init__(self, playbook: str, role: str) -> None:
        self.playbook = playbook
        self.name = f"{role} playbook {playbook}"

    def run(self, ctx: Context) -> None:
        from labctl.playbook import run_playbook

        assert ctx.backend is not None
        ref = playbook_ref(ctx.lab, self.playbook)
        ctx.run.event(self.name, playbook=ref)
        run_playbook(ref, ctx.console, ctx.backend, ctx.variables, ctx.run, ctx.secrets)


def check_playbooks(lab: Lab) -> None:
    """Load the lab's install and post-install playbooks: a bad one is exit 2 before any VM starts
    (``up`` and ``validate``)."""
    from labctl.playbook import LAB_VARIABLES, load

    for name in [lab.install.playbook, *lab.post_install]:
        load(playbook_ref(lab, name), known_vars=set(LAB_VARIABLES))


def playbook_ref(lab: Lab, name: str) -> str:
    """A playbook named in a lab: 'x.yaml' is a file beside the lab; 'x' is the lab folder's
    playbooks/x.yaml when that exists, else labctl's own labs/playbooks/x.yaml."""
    if name.endswith((".yaml", ".yml")):
        return str(lab.resolve(name))
    local = lab.base_dir / "playbooks" / f"{name}.yaml"
    return str(local) if local.is_file() else name


class VerifyLayout(UpStep):
    name = "verify layout"

    def run(self, ctx: Context) -> None:
        lab = ctx.lab
        if lab.verify.layout == "none":
            ctx.run.event(self.name, skipped="verify.layout is none")
            return
        b = ctx.backend
        assert b is not None
        from labctl import layouts

        with b.stick_view() as view:
            if view.path is None:
                ctx.run.event(self.name, skipped=view.reason)
                ctx.result["layout"] = f"not checked ({view.reason})"
                return
            gpt = layouts.read_gpt(str(view.path))
        diffs = layouts.compare(gpt, layouts.expected_layout(gpt.total_sectors, lab.verify.media, lab.verify.layout))
        (ctx.run.path / "stick-layout.txt").write_text(layouts.format_getptbl(gpt) + "\n")
        ctx.result["layout"] = diffs if diffs else "ok"
        ctx.run.event(self.name, layout=lab.verify.layout, media=lab.verify.media, differences=diffs,
                      partitions=len(gpt.partitions))
        if diffs:
            raise RunFailed(f"the stick's GPT is not ESXi's {lab.verify.layout} layout for {lab.verify.media}: "
                            + "; ".join(diffs[:8]))


def build_steps(lab: Lab, options: UpOptions) -> list[UpStep]:
    steps: list[UpStep] = [Prepare()]
    if lab.uses_simulator:
        steps.append(BuildSimulator())
    if lab.install.kickstart is not None:
        steps.append(KickstartIso())
    steps.append(StartVm())
    if options.boot_only:
        return steps
    steps.append(OpenConsole())
    steps.append(Playbook(lab.install.playbook, "install"))
    steps += [Playbook(p, "post-install") for p in lab.post_install]
    steps.append(VerifyLayout())
    return steps


# -- supervision ---------------------------------------------------------------------------------


class SeatFailed(RunFailed):
    """A seat's run failed at a step (after its cleanups ran). ``str()`` is the full message
    (step, reason, last screenshot, run folder); the parts are attributes for summaries and JSON."""

    def __init__(self, message: str, *, seat: Seat, step: str, reason: str, run_dir: Path,
                 screenshot: Path | None = None) -> None:
        super().__init__(message)
        self.seat, self.step, self.reason, self.run_dir, self.screenshot = seat, step, reason, run_dir, screenshot


def _console_give_up(ctx: Context) -> None:
    """The VM is gone: a console must not spend its reconnect budget on a VM that no longer exists
    (a playbook's cleanup screenshot would otherwise wait out the VNC reconnect timeout)."""
    console = ctx.console
    if console is None:
        return
    abort = getattr(console, "abort", None)
    if callable(abort):
        abort("the VM exited")
        return
    vnc = getattr(console, "vnc", None)
    if vnc is not None and hasattr(vnc, "reconnect_timeout"):
        vnc.reconnect_timeout = 0.0


@contextmanager
def supervise(backend: Backend | None, on_death: Callable[[], None], poll: float = 0.2) -> Iterator[None]:
    """While a step runs: a thread polls ``backend.died()`` and calls ``on_death`` once when the VM died
    on its own (the console then gives up, and the step fails at its next console call). The one
    mechanism for every thread: no signal, no handler to restore."""
    if backend is None:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(poll):
            if backend.died():
                on_death()
                return

    thread = threading.Thread(target=watch, name="vm-supervisor", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(2.0)


def _scrub(text: str, secrets: Sequence[str]) -> str:
    from labctl.secrets import scrub

    return scrub(text, secrets)


def _newest_png(folder: Path) -> Path | None:
    pngs = [p for p in folder.rglob("*.png") if p.is_file()]
    return max(pngs, key=lambda p: p.stat().st_mtime) if pngs else None


def new_run_dir(lab: Lab, seat: Seat, runs_dir: Path | None) -> Path:
    base = runs_dir or lab.resolve(lab.runs_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"{stamp}-{seat.name}"
    n = 1
    while True:  # created here, atomically: two runs in the same second never share a folder
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = base / f"{stamp}-{seat.name}-{n}"


@dataclass
class SeatResult:
    seat: Seat
    run_dir: Path
    ok: bool
    seconds: float
    message: str
    backend: Backend | None = None
    step: str | None = None  # the failed step (None when ok)
    detail: str = ""  # a failure's full message: step, reason, last screenshot, run folder
    changed: bool = True  # False: the seat was already installed and verified, nothing was done


def run_seat(
    lab: Lab,
    seat: Seat,
    options: UpOptions,
    secrets: list[str],
    variables: dict[str, object],
    steps: list[UpStep] | None = None,
    run_folder: Callable[[Path], Any] | None = None,
) -> SeatResult:
    """One seat's ``up``. Raises RunFailed naming the failed step (after the cleanups ran)."""
    with seat_lock(seat):
        return _run_seat(lab, seat, options, secrets, variables, steps, run_folder)


@contextmanager
def seat_lock(seat: Seat) -> Iterator[None]:
    """One ``up`` per seat at a time. Two at once both passed the "already running" check, and the
    second then removed the first one's sockets and runtime record. flock: released by the kernel
    when labctl ends in any way, so it is never stale."""
    import fcntl
    import os

    seat.state_dir.mkdir(parents=True, exist_ok=True)
    path = seat.state_dir / "up.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise InputError(f"seat {seat.index} ({seat.name}) is being set up by another 'labctl up' "
                             f"(pid {holder}); wait for it or 'labctl down' the lab") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _run_seat(lab: Lab, seat: Seat, options: UpOptions, secrets: list[str], variables: dict[str, object],
              steps: list[UpStep] | None, run_folder: Callable[[Path], Any] | None) -> SeatResult:
    if run_folder is None:
        from labctl.report import RunFolder

        run_folder = RunFolder
    run_dir = new_run_dir(lab, seat, options.runs_dir)
    run = run_folder(run_dir)
    if hasattr(run, "add_secrets"):
        run.add_secrets(secrets)
    seat.state_dir.mkdir(parents=True, exist_ok=True)
    last_run_file(seat).write_text(str(run.path) + "\n")
    ctx = Context(lab=lab, seat=seat, options=options, run=run, secrets=list(secrets), variables=variables)
    steps = steps if steps is not None else build_steps(lab, options)
    done: list[UpStep] = []
    t0 = time.monotonic()
    failure: BaseException | None = None
    failed_step = ""
    started = time.monotonic()
    with sigterm_as_exception():
        try:
            for step in steps:
                failed_step = step.name
                started = time.monotonic()
                run.event(step.name, phase="start")
                if options.progress is not None:
                    options.progress(f"seat {seat.index} ({seat.name}): {step.name}")
                options.check_cancel()
                done.append(step)
                with supervise(ctx.backend, on_death=lambda: _console_give_up(ctx)):
                    step.run(ctx)
                    if ctx.backend is not None:
                        ctx.backend.check()
                options.check_cancel()
                run.event(step.name, phase="end", result="ok", duration=round(time.monotonic() - started, 3))
            ctx.succeeded = True
        except BaseException as exc:
            failure = exc
            # judged before the cleanups stop the VM (and forget its pid): the step learns of the VM's
            # death as a console error; only the backend can say why
            b = ctx.backend
            if options.cancel.is_set() and not isinstance(exc, KeyboardInterrupt | Terminated):
                # the main thread was interrupted and killed this seat's VM: that is the story
                failure = options.cancel_exception()
            elif b is not None and isinstance(exc, Exception) and not isinstance(exc, VmDied) and b.died():
                failure = VmDied(b.death_message())
        finally:
            cleanup_errors = _cleanup(done, ctx)
    seconds = time.monotonic() - t0
    if failure is None:
        result = {"ok": True, "seconds": round(seconds, 1), **ctx.result}
        if options.boot_only:
            result["boot_only"] = True
        if cleanup_errors:
            result["cleanup_errors"] = cleanup_errors
        _write_result(run.path, result)
        run.event("result", ok=True, seconds=round(seconds, 1))
        _finish(run, "passed", f"{seat.name}: all steps passed in {seconds:.0f} s")
        summary = "ok" if ctx.result.get("layout") != "ok" else (
            f"ok, the stick has ESXi's {lab.verify.layout} {lab.verify.media} layout")
        return SeatResult(seat, run.path, True, seconds, summary, ctx.backend)
    if isinstance(failure, KeyboardInterrupt | Terminated):
        run.event("result", ok=False, interrupted=True, failed_step=failed_step)
        _write_result(run.path, {"ok": False, "interrupted": True, "step": failed_step})
        _finish(run, "interrupted", f"interrupted during step '{failed_step}'")
        if isinstance(failure, Terminated):
            raise SystemExit(EXIT_TERMINATED)
        raise KeyboardInterrupt
    def scrub(text: str) -> str:  # every secret the run folder knows (the VNC password too)
        text = _scrub(text, secrets)
        return str(run.scrub(text)) if hasattr(run, "scrub") else text

    if isinstance(failure, InputError):
        said = scrub(str(failure))
        run.event(failed_step, phase="end", result="failed", error=said)
        _write_result(run.path, {"ok": False, "step": failed_step, "error": said})
        if said != str(failure):
            raise InputError(said) from None
        raise failure  # bad input or a refused operation stays exit 2, after the cleanups
    message = str(failure) or type(failure).__name__
    shot = getattr(failure, "screenshot", None)  # a console wait's own screenshot
    png = Path(shot) if isinstance(shot, str | Path) and Path(shot).is_file() else _newest_png(run.path)
    full = f"seat {seat.index} ({seat.name}): step '{failed_step}' failed: {message}"
    if png is not None:
        full += f"\nlast screenshot: {png}"
    full += f"\nrun folder: {run.path}"
    full = scrub(full)
    run.event(failed_step, phase="end", result="failed", error=scrub(message),
              duration=round(time.monotonic() - started, 3), screenshot=str(png) if png else None)
    run.event("result", ok=False, failed_step=failed_step)
    _finish(run, "failed", full)
    _write_result(run.path, {"ok": False, "step": failed_step, "error": scrub(message),
                             "screenshot": str(png) if png else None, "seconds": round(seconds, 1)})
    raise SeatFailed(full, seat=seat, step=failed_step, reason=scrub(message), run_dir=run.path,
                     screenshot=png) from failure


def _cleanup(done: list[UpStep], ctx: Context) -> list[str]:
    """Run the cleanups in reverse order; one failing (or a second Ctrl-C) does not skip the others."""
    errors: list[str] = []
    b = ctx.backend
    if not ctx.succeeded and b is not None and b.capabilities.screendump and b.alive():
        try:  # the screen at the moment of failure, when no step left one
            b.screendump(ctx.run.path / "failure.png")
        except BaseException as exc:
            log.debug("failure screenshot: %s", exc)
    for step in reversed(done):
        try:
            step.cleanup(ctx)
        except BaseException as exc:
            errors.append(f"{step.name}: {exc}")
            log.warning("cleanup of step '%s' failed: %s", step.name, exc)
    left_running = ctx.succeeded and (ctx.options.keep or ctx.options.boot_only)
    if not left_running and ctx.backend is not None and ctx.backend.alive():
        ctx.backend.kill()  # last line of defence: never leave a VM behind
    return errors


def _finish(run: Any, result: str, message: str) -> None:
    if hasattr(run, "finish"):
        try:
            run.finish(result, message)
        except Exception as exc:
            log.warning("cannot write the run report: %s", exc)


def _write_result(path: Path, result: dict[str, object]) -> None:
    try:
        (path / "result.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    except OSError as exc:
        log.warning("cannot write result.json: %s", exc)
