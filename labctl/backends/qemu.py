"""The QEMU backend: one seat's VM as a supervised QEMU child process, driven over QMP.

Files of a seat (its state folder, see ``SeatFiles``): ``OVMF_VARS.fd`` (per-seat UEFI vars),
``vnc.pass`` (random 8-character VNC password, mode 0600, read by QEMU through ``-object secret``),
``qemu.json`` (pid, process start time and endpoints of the running QEMU; no secrets), ``qemu.log``
(QEMU's stderr), ``serial.log`` (the serial port itself: QEMU writes the guest's output there and the
console follows the file), unix sockets for QMP and VNC (in a short folder under the temp dir when the
state path is too long for a socket: ``labctl.backends.tmpdirs`` checks it is this user's own),
``stick-snapshots/`` (qcow2 overlays on top of the stick image, for resets). The VNC port comes from
``labctl.backends.vncports``.

Supervision: QEMU runs as a child in its own session (a Ctrl-C in the terminal reaches labctl only, which
then stops QEMU in order); ``PR_SET_PDEATHSIG`` (set by ``setpriv`` in front of the argv) ends it if labctl
itself dies, unless the seat is started ``detached`` (``up --keep``). ``QemuBackend.check()`` raises
``QemuDied`` with the tail of QEMU's stderr when QEMU died on its own. ``stop()`` is soft (ACPI power
button, with ``-no-shutdown`` QEMU stays to report it) then hard (QMP ``quit``, SIGTERM, SIGKILL);
``attach_running()`` finds a seat started by another labctl process (``labctl down``/``send``/``status``)
through ``qemu.json``. A recorded pid counts as the seat's QEMU, and is ever signalled, only while its
start time matches and its command line opens the seat's QMP socket (``is_seat_qemu``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from labctl.backends.accel import AccelVerdict, choose_accel
from labctl.backends.base import (
    Backend,
    BackendClass,
    Capabilities,
    Facts,
    PowerState,
    SeatImages,
    SerialEndpoint,
    StickView,
    StopMode,
    StopResult,
    Unsupported,
    VmDied,
    VncEndpoint,
)
from labctl.backends.children import die_with_parent
from labctl.backends.qemu_argv import (
    FDSETS,
    KEY_EVENT_GAP,
    VNC_BASE_PORT,
    SeatFiles,
    StickDrive,
    VncListen,
    build_argv,
    keyboard_traced,
    ovmf_files,
    qmp_chardev,
)
from labctl.backends.qmp import Qmp, QmpError
from labctl.backends.records import SeatRecord
from labctl.backends.tmpdirs import private_dir
from labctl.backends.vncports import reserve_vnc_port
from labctl.errors import InputError, RunFailed
from labctl.private import vnc_password, write_private
from labctl.seatimages import ensure_images, open_for_vm, seat_images
from labctl.spec import Lab, Seat

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # QEMU start to VNC answering (TCG on a loaded 2-core host takes ~1 s)
_QEMU_IMG_TIMEOUT = 120.0
# QEMU's VNC server looks for screen changes every 30 ms after a change and 50 ms later at each look that
# finds none, up to every 3 s; a client message other than the framebuffer ones brings it back to 30 ms.
# A console waiting on a still screen would see the next change up to 3 s late, so the VNC session sends
# an empty clipboard message (invisible to a guest without a clipboard agent) this often.
REFRESH_NUDGE = 0.1


class QemuDied(VmDied):
    """QEMU exited while labctl still needed it."""


# -- small process helpers ---------------------------------------------------------------------------


def _proc_starttime(pid: int) -> int | None:
    """The process start time (clock ticks since boot) or None when there is no live process ``pid``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # a zombie has exited
        return None
    return int(fields[19])


def is_seat_qemu(pid: int, qmp: Path) -> bool:
    """Proof that ``pid`` is this seat's QEMU, before labctl signals it (a pid from a record may have been
    reused by anything since): its program's file name contains "qemu" and its command line holds the
    seat's own QMP ``-chardev`` argument. The name test keeps out a program that merely mentions the
    socket (``grep``, ``pgrep -f``); a ``qemu.binary`` wrapper must therefore have "qemu" in its name
    (``qemu-kvm`` does, a script called ``kvm`` would not be recognised, and ``down`` would leave it running)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not argv or b"qemu" not in Path(os.fsdecode(argv[0])).name.encode():
        return False
    return os.fsencode(qmp_chardev(qmp)) in argv


def tail(path: Path, lines: int = 12, limit: int = 2000) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    out = "\n".join(text.strip().splitlines()[-lines:])
    return out[-limit:]


def _vnc_answers(host: str, port: int | None, sock_path: Path | None, timeout: float = 2.0) -> bool:
    """True when a VNC server greets with 'RFB xxx.yyy'."""
    family = socket.AF_UNIX if sock_path is not None else socket.AF_INET
    address: Any = str(sock_path) if sock_path is not None else (host, port)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(address)
            return s.recv(12).startswith(b"RFB ")
    except OSError:
        return False


# -- the runtime record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runtime(SeatRecord):
    """What ``qemu.json`` holds about a started QEMU (no secrets)."""

    pid: int
    starttime: int
    owner_pid: int
    detached: bool
    accel: str
    vnc_host: str
    vnc_port: int | None
    vnc_socket: str | None
    qmp: str
    serial: str
    iso: str | None
    stick: str | None
    started_at: float


    def alive(self) -> bool:
        """The recorded QEMU still runs: same pid and start time, and its command line opens this
        record's QMP socket (a reused pid is not mistaken for the seat's VM)."""
        return _proc_starttime(self.pid) == self.starttime and is_seat_qemu(self.pid, Path(self.qmp))

    def owner_alive(self) -> bool:
        """The labctl process that started QEMU is still running (an 'up' in another shell)."""
        return self.owner_pid != os.getpid() and _proc_starttime(self.owner_pid) is not None


# -- the backend -------------------------------------------------------------------------------------


class QemuBackend:
    """One seat's VM under QEMU. Implements ``labctl.backends.base.Backend``."""

    name = "qemu"
    default_key_rate = 200.0  # keys/s at most; each event also waits for room in the guest's keyboard (vnc_endpoint)

    def __init__(
        self,
        lab: Lab,
        seat: Seat,
        *,
        iso: Path | None = None,
        accel: AccelVerdict | None = None,
        vnc_unix: bool = False,
        detached: bool = False,
        accel_cache: Path | None = None,
    ) -> None:
        self.lab = lab
        self.seat = seat
        self.iso = iso if iso is not None else lab.iso_path(seat)
        self.files = SeatFiles.for_state_dir(seat.state_dir)
        self.vnc_unix = vnc_unix
        self.detached = detached
        self.accel = accel
        self.accel_cache = accel_cache
        self.start_seconds: float | None = None  # QEMU start to VNC answering, measured
        self._proc: subprocess.Popen[bytes] | None = None
        self._runtime: Runtime | None = None
        self._stopping = False
        self.soft_stopped = False  # the last stop() ended with the guest powering off by itself
        self._vnc_port_hint: int | None = None  # keep the VNC port across a power off/on
        self._lock = threading.RLock()
        has_image = seat.stick_image(lab) is not None
        self.capabilities = Capabilities(snapshots=has_image, screendump=True, attach=True, clone=has_image)

    # -- the registry's class methods (base.BackendClass) -------------------------------------------

    @classmethod
    def create(cls, lab: Lab, seat: Seat, **options: object) -> QemuBackend:
        """A backend for one seat; options: ``iso`` (Path), ``detached``, ``vnc_unix`` (bool),
        ``accel_cache`` (Path). Others are ignored."""
        iso = options.get("iso")
        cache = options.get("accel_cache")
        return cls(lab, seat, iso=iso if isinstance(iso, Path) else None,
                   vnc_unix=bool(options.get("vnc_unix", False)), detached=bool(options.get("detached", False)),
                   accel_cache=cache if isinstance(cache, Path) else None)

    @classmethod
    def usable(cls, lab: Lab) -> tuple[bool, str]:
        """QEMU is usable when its binary and OVMF's firmware files are on this host."""
        binary = shutil.which(lab.qemu.binary)
        if binary is None:
            return False, f"{lab.qemu.binary} not found (apt-get install qemu-system-x86)"
        code, vars_template = ovmf_files(lab)
        for f in (code, vars_template):
            if not f.is_file():
                return False, f"OVMF firmware {f} not found (apt-get install ovmf)"
        return True, f"{binary} and OVMF found"

    # -- attach to a QEMU started by another labctl process ---------------------------------------

    @classmethod
    def attach(cls, lab: Lab, seat: Seat) -> QemuBackend:
        """The seat's running QEMU (started by ``labctl up``); InputError when it is not running."""
        backend = cls(lab, seat)
        if not backend.attach_running():
            raise InputError(
                f"seat {seat.index} ({seat.name}) is not running; start it with 'labctl up {lab.source} --keep'"
            )
        return backend

    def attach_running(self) -> bool:
        """Bind to the seat's QEMU started by another labctl process; False when none runs."""
        rt = Runtime.load(self.files.runtime)
        if rt is None or not rt.alive():
            return False
        self._runtime = rt
        self.detached = rt.detached
        return True

    def mark_stopped_by(self, verb: str) -> None:
        """Before stopping a seat that another labctl process is running: tell that process who did it."""
        rt = self._runtime or Runtime.load(self.files.runtime)
        if rt is not None and not rt.detached and rt.owner_alive():
            (self.files.state_dir / "stopped-by-down").write_text(verb + "\n")

    def load_runtime(self) -> Runtime | None:
        """Read the seat's runtime record (bind this backend to that QEMU when it is alive)."""
        rt = Runtime.load(self.files.runtime)
        if rt is not None and rt.alive():
            self._runtime = rt
        return rt

    # -- define -----------------------------------------------------------------------------------

    def define(self) -> None:
        """State folder, per-seat UEFI vars, VNC password, stick image and local disk (when missing)."""
        f = self.files
        f.state_dir.mkdir(parents=True, exist_ok=True)
        if f.sock_dir != f.state_dir:  # a short folder in the shared temp dir: ours, 0700, not a link
            private_dir(f.sock_dir)
        _, vars_template = ovmf_files(self.lab)
        if not f.ovmf_vars.exists():
            if not vars_template.is_file():
                raise InputError(f"OVMF vars template not found: {vars_template} (apt-get install ovmf)")
            shutil.copyfile(vars_template, f.ovmf_vars)
        if not f.vnc_password.exists():
            write_private(f.vnc_password, vnc_password())
        else:
            os.chmod(f.vnc_password, 0o600)
        ensure_images(self.lab, self.seat, f.local_disk)  # checked, created and recorded: labctl.seatimages
        image = self.seat.stick_image(self.lab)
        if image is not None and not image.exists():
            assert self.seat.stick.size is not None
            self._create_sparse(image, self.seat.stick.size)
            log.info("seat %s: created the stick image %s (%d bytes, sparse)", self.seat.name, image,
                     self.seat.stick.size)
        disk = self.lab.vm.disk
        if disk is not None:
            path = self.lab.resolve(disk.image, self.seat) if disk.image else f.local_disk
            if not path.exists():
                self._create_sparse(path, disk.size)

    @staticmethod
    def _create_sparse(path: Path, size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as fh:
            fh.truncate(size)

    # -- start ------------------------------------------------------------------------------------

    def prepare(self) -> Facts:
        """Choose the accelerator (KVM when it works, else TCG; a cached verdict or a probe)."""
        verdict = self.choose_accel()
        return {"accel": verdict.accel, "accel_reason": verdict.reason, "accel_cached": verdict.cached,
                "probe_seconds": round(verdict.seconds, 2)}

    def choose_accel(self) -> AccelVerdict:
        if self.accel is None:
            code, vars_template = ovmf_files(self.lab)
            self.accel = choose_accel(self.lab.qemu.accel, self.lab.qemu.binary, code, vars_template,
                                      cache_file=self.accel_cache)
            how = "cached verdict" if self.accel.cached else f"probe took {self.accel.seconds:.1f} s"
            log.info("seat %s: accelerator %s (%s; %s)", self.seat.name, self.accel.accel.upper(),
                     self.accel.reason, how)
        return self.accel

    def stick_drive(self) -> StickDrive | None:
        """The stick file QEMU opens: the top qcow2 overlay when snapshots exist, else the raw image."""
        image = self.seat.stick_image(self.lab)
        if image is None:
            return None
        active = self._snapshot_chain().get("active")
        if active:
            return StickDrive(Path(active), "qcow2")
        return StickDrive(image, "raw")

    def argv(self, vnc: VncListen) -> list[str]:
        """QEMU's argv with every image by path (for showing; a start hands QEMU the checked files)."""
        return self._argv(vnc, self.stick_drive(), {})

    def _argv(self, vnc: VncListen, stick: StickDrive | None, image_fds: dict[str, int]) -> list[str]:
        accel = self.choose_accel()
        return build_argv(self.lab, self.seat, self.files, accel=accel.accel, iso=self.iso,
                          stick=stick, vnc=vnc, image_fds=image_fds)

    def _stderr_tail(self) -> str:
        """QEMU's last stderr lines, an inherited image named by its path, not its fd set."""
        text = tail(self.files.stderr_log)
        for img in seat_images(self.lab, self.seat, self.files.local_disk):
            text = text.replace(f"/dev/fdset/{FDSETS[img.role]}", str(img.path))
        return text

    def _open_images(self, stick: StickDrive | None) -> dict[str, int]:
        """The raw images QEMU will write, opened and checked as opened (labctl.seatimages.open_for_vm).
        In snapshot mode QEMU writes only the top overlay, labctl's own file in the seat's folder, and
        opens its backing chain read-only, by path."""
        roles = [role for role, used in (("disk", self.lab.vm.disk is not None),
                                         ("stick", stick is not None and stick.format == "raw")) if used]
        return open_for_vm(self.lab, self.seat, roles, self.files.local_disk)

    def start(self) -> Facts:
        """Start QEMU with the ISO in the CD and the stick attached; returns once VNC answers."""
        with self._lock:
            if self._proc is not None and self.alive():  # our own QEMU: power on again, or nothing to do
                if self.qemu_status() == "shutdown":
                    self.power_on_after_shutdown()
                return self._start_facts()
            rt = Runtime.load(self.files.runtime)
            if rt is not None and rt.alive():
                raise InputError(f"seat {self.seat.index} ({self.seat.name}) is already running "
                                 f"(QEMU pid {rt.pid}); 'labctl down {self.lab.source}' stops it")
            self.cleanup_stale()
            (self.files.state_dir / "stopped-by-down").unlink(missing_ok=True)
            self.define()
            if self.iso is not None and not self.iso.is_file():
                raise InputError(f"ISO not found: {self.iso}")
            if shutil.which(self.lab.qemu.binary) is None:
                raise InputError(f"qemu.binary: {self.lab.qemu.binary} not found "
                                 "(apt-get install qemu-system-x86, or set qemu.binary in the lab file)")
            self.choose_accel()
            tried: set[int] = set()
            for _attempt in range(3):
                if self.vnc_unix:
                    if self._launch(VncListen(socket=self.files.vnc_socket)):
                        return self._start_facts()
                else:
                    with reserve_vnc_port(tried, prefer=self._vnc_port_hint) as port:
                        tried.add(port)
                        if self._launch(VncListen(port=port)):
                            return self._start_facts()
            raise RunFailed(f"QEMU could not bind a VNC port (tried {sorted(tried)}): {self._stderr_tail()}")

    def _start_facts(self) -> Facts:
        return {"pid": self.pid(), "vnc": self.vnc_display(), "start_to_vnc_seconds": round(self.start_seconds or 0, 3),
                "iso": str(self.iso) if self.iso else None}

    def _launch(self, vnc: VncListen) -> bool:
        """Start QEMU and wait until QMP and VNC answer. False when only the VNC port was taken."""
        f = self.files
        stick = self.stick_drive()
        fds = self._open_images(stick)  # QEMU inherits the files checked, not paths that could change meanwhile
        try:
            argv = self._argv(vnc, stick, fds)
            log.debug("seat %s: %s", self.seat.name, " ".join(argv))
            for sock in f.sockets():
                sock.unlink(missing_ok=True)
            f.keyboard_trace.unlink(missing_ok=True)  # an old run's trace must not pass for this QEMU's
            t0 = time.monotonic()
            with open(f.stderr_log, "wb") as err:
                self._proc = subprocess.Popen(
                    argv if self.detached else die_with_parent(argv), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=err, cwd=f.state_dir, start_new_session=True,
                    pass_fds=tuple(fds.values()),
                )
        finally:
            for fd in fds.values():
                os.close(fd)
        proc = self._proc
        starttime = _proc_starttime(proc.pid) or 0
        rt = Runtime(
            pid=proc.pid, starttime=starttime, owner_pid=os.getpid(), detached=self.detached,
            accel=self.accel.accel if self.accel else "?", vnc_host="127.0.0.1", vnc_port=vnc.port,
            vnc_socket=str(vnc.socket) if vnc.socket else None, qmp=str(f.qmp), serial=str(f.serial_log),
            iso=str(self.iso) if self.iso else None,
            stick=str(stick.path) if stick else None, started_at=time.time(),
        )
        rt.save(f.runtime)
        self._runtime = rt
        self._stopping = False
        self._vnc_port_hint = vnc.port
        last_qmp = ""
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                code = proc.poll()
                if code is not None:
                    self._stopping = True
                    err_text = self._stderr_tail()
                    self._forget()
                    if vnc.port is not None and ("Address already in use" in err_text or "VNC" in err_text):
                        log.info("seat %s: VNC port %d was taken, trying another", self.seat.name, vnc.port)
                        self._runtime = None
                        return False
                    raise QemuDied(f"QEMU exited at start (exit code {code}): {err_text or 'no message'}")
                if f.qmp.exists() and _vnc_answers("127.0.0.1", vnc.port, vnc.socket):
                    try:
                        status = self._qmp("query-status", timeout=5.0)
                    except QmpError as exc:
                        # QEMU still starting, or exiting (its VNC port taken after all): the next round
                        # sees which (QMP can close the session during negotiation, 70 ms in)
                        last_qmp = str(exc)
                    else:
                        if status.get("status") not in ("running", "prelaunch"):
                            raise RunFailed(f"QEMU started but the VM is {status.get('status')!r}: "
                                            f"{self._stderr_tail()}")
                        break
                if time.monotonic() > deadline:
                    raise RunFailed(f"QEMU did not answer on QMP and VNC within {START_TIMEOUT:g} s: "
                                    f"{self._stderr_tail() or last_qmp or 'no message'}")
                time.sleep(0.05)
        except BaseException:
            self.kill()
            raise
        self.start_seconds = time.monotonic() - t0
        where = vnc.socket or f"127.0.0.1:{vnc.port}"
        log.info("seat %s: QEMU pid %d up (%s), VNC on %s after %.2f s", self.seat.name, proc.pid,
                 rt.accel.upper(), where, self.start_seconds)
        return True

    # -- QMP ----------------------------------------------------------------------------------------

    def _qmp(self, command: str, arguments: dict[str, object] | None = None, timeout: float = 10.0) -> Any:
        """One QMP command on a short-lived connection (QEMU serves one QMP client at a time, and
        other labctl processes — send, screenshot, status — must get their turn)."""
        with self._lock:
            self.check()
            path = Path(self._runtime.qmp) if self._runtime else self.files.qmp
            with Qmp(path, nickname=f"seat{self.seat.index}", timeout=timeout) as q:
                return q.execute(command, arguments, timeout=timeout)

    # -- supervision --------------------------------------------------------------------------------

    @property
    def started_here(self) -> bool:
        """This object started the QEMU (as opposed to attaching to one)."""
        return self._proc is not None

    def pid(self) -> int | None:
        return self._runtime.pid if self._runtime else None

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._runtime is not None and self._runtime.alive()

    def exit_code(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def died(self) -> bool:
        """QEMU is gone although nobody asked it to stop."""
        return self._runtime is not None and not self._stopping and not self.alive()

    def death_message(self) -> str:
        code = self.exit_code()
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exit code {code}" if code is not None else "gone")
        marker = self.files.state_dir / "stopped-by-down"
        if marker.exists():
            verb = marker.read_text().strip() or "down"
            return f"QEMU (pid {self.pid()}) was stopped by 'labctl {verb}' from another shell ({how})"
        text = self._stderr_tail()
        return f"QEMU (pid {self.pid()}) exited unexpectedly ({how}); " + (
            f"last lines of its stderr:\n{text}" if text else "it wrote nothing on stderr"
        )

    def check(self) -> None:
        """Raise ``QemuDied`` (with QEMU's stderr tail) when QEMU died on its own."""
        if self.died():
            raise QemuDied(self.death_message())

    # -- power --------------------------------------------------------------------------------------

    def stop(self, mode: StopMode = "soft", timeout: float = 60.0) -> StopResult:
        """Power off: soft = ACPI power button, hard after ``timeout``; hard = QMP quit, SIGTERM, SIGKILL.
        Removes the runtime record and sockets afterwards; never leaves QEMU running."""
        t0 = time.monotonic()
        with self._lock:
            if self._runtime is None:
                self._runtime = Runtime.load(self.files.runtime)
            pid = self.pid()
            self._stopping = True
            self.soft_stopped = False
            was_alive = self.alive()
            try:
                if self.alive() and mode == "soft":
                    self._soft_stop(timeout)
                if self.alive():
                    self._hard_stop()
            except BaseException:
                self.kill()
                raise
            finally:
                if not self.alive():
                    self._forget()
        how: Literal["soft", "hard", "not running"] = (
            "not running" if not was_alive else "soft" if self.soft_stopped else "hard")
        return StopResult(how, time.monotonic() - t0, pid if was_alive else None, process="QEMU")

    def _soft_stop(self, timeout: float) -> None:
        try:
            self._qmp("system_powerdown")
        except QmpError as exc:
            log.debug("system_powerdown: %s", exc)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            try:
                if self._qmp("query-status").get("status") == "shutdown":
                    self.soft_stopped = True
                    return
            except QmpError:
                pass
            time.sleep(0.5)
        if not self.alive():
            self.soft_stopped = True
            return
        log.info("seat %s: the guest did not power off within %g s; stopping QEMU", self.seat.name, timeout)

    def _hard_stop(self) -> None:
        path = Path(self._runtime.qmp) if self._runtime else self.files.qmp
        try:
            with Qmp(path, nickname=f"seat{self.seat.index}", timeout=3.0) as q:
                q.quit(timeout=3.0)
        except (QmpError, OSError, TimeoutError) as exc:
            log.debug("QMP quit: %s", exc)
        if self._wait_gone(5.0):
            return
        self._signal(signal.SIGTERM)
        if self._wait_gone(5.0):
            return
        self.kill()

    def _wait_gone(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return not self.alive()

    def _signal(self, sig: int) -> None:
        """Signal the seat's QEMU: our own child, or a recorded pid only once proven to be this seat's
        QEMU (the record's start time and the QMP socket on its command line)."""
        if not self.alive() or (pid := self.pid()) is None:
            return
        if self._proc is None and not is_seat_qemu(pid, Path(self._runtime.qmp) if self._runtime else self.files.qmp):
            log.warning("seat %s: pid %d is not this seat's QEMU (its command line does not name %s); "
                        "not signalling it", self.seat.name, pid, self.files.qmp)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap; used on every failure path so no QEMU is left behind."""
        self._stopping = True
        self._signal(signal.SIGKILL)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(10)
        else:
            self._wait_gone(10.0)

    def _forget(self) -> None:
        """Remove the runtime record and sockets of a QEMU that is gone."""
        self.files.runtime.unlink(missing_ok=True)
        for sock in self.files.sockets():
            sock.unlink(missing_ok=True)

    def stop_strays(self) -> list[int]:
        """SIGKILL QEMU processes of this seat that no runtime record knows (a record lost in a crash);
        only processes whose command line opens this seat's QMP socket, never a process merely named qemu."""
        found: list[int] = []
        rt = Runtime.load(self.files.runtime)
        known = rt.pid if rt is not None and rt.alive() else None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in (known, os.getpid()):
                continue
            pid = int(entry.name)
            if is_seat_qemu(pid, self.files.qmp):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    found.append(pid)
        return found

    def cleanup_stale(self) -> list[str]:
        """Remove the runtime record and sockets left by a crashed run; what it removed."""
        removed: list[str] = []
        rt = Runtime.load(self.files.runtime)
        if rt is not None and rt.alive():
            return removed
        for p in [self.files.runtime, *self.files.sockets()]:
            if p.exists() or p.is_symlink():
                p.unlink()
                removed.append(p.name)
        return removed

    def reset_definition(self) -> list[str]:
        """Fresh per-seat UEFI variables from OVMF's template (boot entries and settings forgotten)."""
        self._require_off("reset the VM definition")
        _, vars_template = ovmf_files(self.lab)
        if not vars_template.is_file():
            raise InputError(f"OVMF vars template not found: {vars_template} (apt-get install ovmf)")
        self.files.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(vars_template, self.files.ovmf_vars)
        return ["UEFI variables reset"]

    def reset(self, mode: StopMode = "hard") -> None:
        """Hard: the reset button (QMP system_reset). Soft: Ctrl+Alt+Del to the guest."""
        if mode == "hard":
            self._qmp("system_reset")
        else:
            keys = [{"type": "qcode", "data": k} for k in ("ctrl", "alt", "delete")]
            self._qmp("send-key", {"keys": keys})

    def power_on_after_shutdown(self) -> None:
        """After the guest powered off (QEMU keeps it with -no-shutdown): reset and continue."""
        self._qmp("system_reset")
        if self._qmp("query-status").get("status") != "running":
            self._qmp("cont")

    def eject_cdrom(self) -> None:
        """Take the installer ISO out (forced: the guest may hold the tray locked)."""
        self._qmp("eject", {"id": "cd0", "force": True})

    def cdrom_inserted(self) -> bool:
        for dev in self._qmp("query-block"):
            if dev.get("device") == "cdrom" or str(dev.get("qdev", "")).rstrip("/").endswith("cd0"):
                return "inserted" in dev
        return False

    def power_state(self) -> PowerState:
        if self._runtime is None:
            self._runtime = Runtime.load(self.files.runtime)
        if not self.alive():
            return PowerState.OFF
        try:
            status = self._qmp("query-status", timeout=5.0).get("status")
        except QemuDied:
            return PowerState.OFF
        except QmpError:
            return PowerState.UNKNOWN
        if status == "running":
            return PowerState.RUNNING
        if status == "shutdown":
            return PowerState.OFF
        if status in ("paused", "suspended", "prelaunch", "inmigrate", "postmigrate", "finish-migrate"):
            return PowerState.PAUSED
        return PowerState.UNKNOWN

    def qemu_status(self) -> str:
        """QEMU's own run state (running, shutdown, internal-error, ...), or 'not running'."""
        if not self.alive():
            return "not running"
        return str(self._qmp("query-status", timeout=5.0).get("status"))

    # -- endpoints ----------------------------------------------------------------------------------

    def vnc_endpoint(self) -> VncEndpoint:
        rt = self._runtime or Runtime.load(self.files.runtime)
        if rt is None:
            raise InputError(f"seat {self.seat.index} ({self.seat.name}) is not running")
        password = self.files.vnc_password.read_text().strip()
        if rt.vnc_socket:
            return VncEndpoint("127.0.0.1", 0, password, socket_path=Path(rt.vnc_socket), **self._vnc_pacing())
        assert rt.vnc_port is not None
        return VncEndpoint(rt.vnc_host, rt.vnc_port, password, **self._vnc_pacing())

    def _vnc_pacing(self) -> dict[str, Any]:
        """How QEMU's VNC server wants to be driven: nudged to keep refreshing; keys sent as the guest
        reads its PS/2 keyboard (the keyboard trace), else KEY_EVENT_GAP apart."""
        traced = keyboard_traced(self.lab, self.files)
        return {"refresh_nudge": REFRESH_NUDGE, "key_event_gap": KEY_EVENT_GAP,
                "keyboard_trace": self.files.keyboard_trace if traced else None}

    def vnc_display(self) -> str:
        """'127.0.0.1 port 59NN (display :NN)' / 'unix:PATH', without the password, for messages."""
        rt = self._runtime or Runtime.load(self.files.runtime)
        if rt is None:
            return "-"
        if rt.vnc_socket:
            return f"unix:{rt.vnc_socket}"
        return f"{rt.vnc_host} port {rt.vnc_port} (display :{(rt.vnc_port or VNC_BASE_PORT) - VNC_BASE_PORT})"

    def serial_endpoint(self) -> SerialEndpoint | None:
        rt = self._runtime or Runtime.load(self.files.runtime)
        return SerialEndpoint(Path(rt.serial)) if rt else SerialEndpoint(self.files.serial_log)

    # -- status -------------------------------------------------------------------------------------

    def images(self) -> SeatImages:
        disk = self.lab.vm.disk
        disk_path = None
        if disk is not None:
            disk_path = self.lab.resolve(disk.image, self.seat) if disk.image else self.files.local_disk
        return SeatImages(self.seat.stick_image(self.lab), disk_path)

    def status_details(self) -> Facts:
        """pid, accelerator, serial log and stick snapshots; whether a crashed run left files behind."""
        rt = Runtime.load(self.files.runtime)
        running = rt is not None and rt.alive()
        return {
            "pid": rt.pid if running and rt else None,
            "accel": rt.accel if running and rt else None,
            "serial": rt.serial if running and rt else None,
            "stick_snapshots": self.snapshots(),
            "stale_files": bool(rt is not None and not running),
        }

    # -- screen ------------------------------------------------------------------------------------

    def screendump(self, out: Path) -> Path:
        """A PNG of the screen through QMP (no VNC needed)."""
        if not self.capabilities.screendump:
            raise Unsupported("qemu: screendump is not available")
        out = out.resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._qmp("screendump", {"filename": str(out), "format": "png"})
        except QmpError as exc:
            if "format" not in str(exc):
                raise
            ppm = out.with_suffix(".ppm")  # QEMU before 7.1: PPM only
            self._qmp("screendump", {"filename": str(ppm)})
            from PIL import Image

            with Image.open(ppm) as im:
                im.save(out, "PNG")
            ppm.unlink()
        return out

    # -- stick snapshots (qcow2 overlays on the raw stick image) ----------------------------------

    def _chain_file(self) -> Path:
        return self.files.snapshots / "chain.json"

    def _snapshot_chain(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._chain_file().read_text())
            return data
        except (OSError, ValueError):
            return {"active": None, "snapshots": []}

    def _save_chain(self, chain: dict[str, Any]) -> None:
        self.files.snapshots.mkdir(parents=True, exist_ok=True)
        tmp = self._chain_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(chain, indent=1))
        tmp.replace(self._chain_file())

    def _require_off(self, what: str) -> None:
        if self._runtime is None:
            self._runtime = Runtime.load(self.files.runtime)
        if self.alive():
            raise InputError(f"{what}: seat {self.seat.index} is running; 'labctl down' it first")

    def _image(self, what: str) -> Path:
        image = self.seat.stick_image(self.lab)
        if image is None:
            raise InputError(f"{what}: seat {self.seat.index} uses a host stick; snapshots need a stick image")
        if not image.exists():
            self.define()
        return image

    def _qemu_img(self, *args: str) -> None:
        argv = ["qemu-img", *args]
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=_QEMU_IMG_TIMEOUT, check=False)
        except FileNotFoundError:
            raise InputError("qemu-img not found (apt-get install qemu-utils)") from None
        if res.returncode != 0:
            raise RunFailed(f"qemu-img {args[0]} failed: {res.stderr.strip()[-500:]}")

    def snapshots(self) -> list[str]:
        if self.seat.stick_image(self.lab) is None:
            return []
        return [s["name"] for s in self._snapshot_chain()["snapshots"]]

    def snapshot(self, name: str) -> None:
        """Freeze the stick as it is now under ``name``; later writes go to a new qcow2 overlay."""
        self._require_off("snapshot")
        image = self._image("snapshot")
        chain = self._snapshot_chain()
        if name in self.snapshots():
            raise InputError(f"snapshot {name!r} exists already (seat {self.seat.index})")
        d = self.files.snapshots
        d.mkdir(parents=True, exist_ok=True)
        if chain["active"]:
            n = len(chain["snapshots"])
            while (d / f"snap-{n}.qcow2").exists():  # a deleted snapshot may have left the numbering uneven
                n += 1
            frozen = d / f"snap-{n}.qcow2"
            Path(chain["active"]).rename(frozen)
            chain["snapshots"].append({"name": name, "file": str(frozen), "format": "qcow2"})
        else:
            chain["snapshots"].append({"name": name, "file": str(image), "format": "raw"})
        top = chain["snapshots"][-1]
        active = d / "active.qcow2"
        self._qemu_img("create", "-q", "-f", "qcow2", "-b", top["file"], "-F", top["format"], str(active))
        chain["active"] = str(active)
        self._save_chain(chain)

    def revert(self, name: str) -> None:
        """Discard every change to the stick since snapshot ``name`` (and the snapshots after it)."""
        self._require_off("revert")
        chain = self._snapshot_chain()
        names = self.snapshots()
        if name not in names:
            raise InputError(f"seat {self.seat.index} has no snapshot {name!r} (it has: {', '.join(names) or 'none'})")
        keep = names.index(name) + 1
        for dropped in chain["snapshots"][keep:]:
            Path(dropped["file"]).unlink(missing_ok=True)
        chain["snapshots"] = chain["snapshots"][:keep]
        if chain["active"]:
            Path(chain["active"]).unlink(missing_ok=True)
        top = chain["snapshots"][-1]
        active = self.files.snapshots / "active.qcow2"
        self._qemu_img("create", "-q", "-f", "qcow2", "-b", top["file"], "-F", top["format"], str(active))
        chain["active"] = str(active)
        self._save_chain(chain)

    def delete_snapshot(self, name: str) -> None:
        """Forget snapshot ``name``, keeping the stick as it is now: the overlay above the snapshot is merged
        down into it (``qemu-img commit``) and the overlay above that rebased onto the result."""
        self._require_off("delete a snapshot")
        chain = self._snapshot_chain()
        snaps: list[dict[str, Any]] = chain["snapshots"]
        names = [sn["name"] for sn in snaps]
        if name not in names:
            raise InputError(f"seat {self.seat.index} has no snapshot {name!r} (it has: {', '.join(names) or 'none'})")
        k = names.index(name)
        base = snaps[k]
        upper = snaps[k + 1]["file"] if k + 1 < len(snaps) else chain["active"]
        if upper:
            self._qemu_img("commit", "-q", "-f", "qcow2", str(upper))  # upper's changes into base's file
        if k + 1 < len(snaps):
            above = snaps[k + 2]["file"] if k + 2 < len(snaps) else chain["active"]
            if above:
                self._qemu_img("rebase", "-q", "-u", "-f", "qcow2", "-b", base["file"], "-F", base["format"],
                               str(above))
            snaps[k + 1] = {"name": snaps[k + 1]["name"], "file": base["file"], "format": base["format"]}
        else:  # the newest snapshot: base's file is the stick as it is now
            chain["active"] = base["file"] if base["format"] == "qcow2" else None
        if upper:
            Path(upper).unlink(missing_ok=True)
        del snaps[k]
        if not snaps and chain["active"] is None:
            shutil.rmtree(self.files.snapshots, ignore_errors=True)
            return
        self._save_chain(chain)

    def drop_snapshots(self) -> None:
        """Forget all snapshots and their overlays. The raw image keeps the state of the first one."""
        self._require_off("drop snapshots")
        shutil.rmtree(self.files.snapshots, ignore_errors=True)

    def clone(self, dest: Path, linked: bool = True) -> Path:
        """A copy of the stick: a qcow2 overlay on a frozen snapshot (linked) or a sparse raw copy."""
        self._require_off("clone")
        drive = self.stick_drive()
        if drive is None:
            raise InputError(f"clone: seat {self.seat.index} uses a host stick")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if linked:
            name = f"clone-{int(time.time())}"
            self.snapshot(name)
            top = self._snapshot_chain()["snapshots"][-1]
            self._qemu_img("create", "-q", "-f", "qcow2", "-b", top["file"], "-F", top["format"], str(dest))
        else:
            self._qemu_img("convert", "-f", drive.format, "-O", "raw", "-S", "4k", str(drive.path), str(dest))
        return dest

    @contextlib.contextmanager
    def stick_view(self) -> Iterator[StickView]:
        """The stick's bytes: the raw image (or a raw copy of its overlay chain); a host stick is not read."""
        if self.stick_drive() is None:
            yield StickView(None, "a host stick passed through with usb-host; read it on the host with "
                                  "'labctl layout /dev/sdX' while the seat is off")
            return
        with self.stick_raw_view() as path:
            yield StickView(path)

    @contextlib.contextmanager
    def stick_raw_view(self) -> Iterator[Path]:
        """A raw file with the stick's current contents (the image itself, or a sparse copy of the overlay chain)."""
        drive = self.stick_drive()
        if drive is None:
            raise InputError("the stick is a host stick, not an image")
        if drive.format == "raw":
            yield drive.path
            return
        with tempfile.TemporaryDirectory(dir=self.files.state_dir, prefix="stick-view-") as tmp:
            out = Path(tmp) / "stick.raw"
            self._qemu_img("convert", "-U", "-f", "qcow2", "-O", "raw", str(drive.path), str(out))
            yield out


_QEMU_IS_A_BACKEND: type[Backend] = QemuBackend  # mypy proves the class satisfies the Backend protocol
_QEMU_IS_A_BACKEND_CLASS: BackendClass = QemuBackend  # ... and what the registry needs of its class
