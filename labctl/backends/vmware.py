"""The VMware backend: one seat's VM as a .vmx run by VMware Workstation (or Player, or Fusion) via vmrun.

Files of a seat (its state folder): ``vm/<seat>.vmx`` (rendered from ``vmx_templates/esxi-usb.vmx.j2``,
merged into the existing file so a trainer's own keys survive; 0600, it holds the VNC password),
``vm/<seat>.nvram``, ``vm/vmware.log`` (VMware's own), ``vnc.json`` (VNC port and password, 0600),
``vmware.json`` (the running VM: .vmx, product, VNC port, serial pipe, owner; no secrets).

Rules it follows (vmrun's quirks, see ``labctl.backends.vmrun``):

- The .vmx is edited only while the VM is off: VMware rewrites it at power-off.
- Power-on is ``vmrun start VMX nogui`` (``vmware.gui`` for a window) under a VNC port reservation;
  ``RemoteDisplay.vnc.*`` binds 127.0.0.1 with an 8-character password. Before it, on Linux, the host's
  sysfs says whether the stick is there and unmounted; after it, ``vmware.log`` is watched and a
  ``[msg.usb.connectFailed]`` line fails the run at once, in VMware's words.
- ``stop`` soft asks the guest with a timeout, then hard; "not powered on" means stopped; after a stop
  labctl waits for VMware's ``*.lck`` files to go.
- Player has no snapshots and no clones: ``capabilities`` says so, and a reset re-renders the VM
  (``reset_definition``).
- The ISO is pulled with ``disconnectNamedDevice VMX sata0:1``; when that fails the VM is powered off, the
  .vmx gets ``sata0:1.startConnected = "FALSE"`` and the VM is powered on again.
- A stick passed through to a running VM cannot be read by the host: ``stick_view`` says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.backends import vmrun as vr
from labctl.backends import vmwarelog, vmwareusb
from labctl.backends.base import (
    Backend,
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
from labctl.backends.records import SeatRecord
from labctl.backends.tmpdirs import private_dir
from labctl.backends.vncports import reserve_vnc_port
from labctl.errors import InputError, RunFailed
from labctl.private import write_private
from labctl.spec import Lab, Seat
from labctl.vmx import VmxFile, render_vmx, seat_vmx, serial_pipe, vnc_credentials, write_vmx
from labctl.vmx import VncCredentials as _Creds

log = logging.getLogger(__name__)

VNC_TIMEOUT = 60.0  # vmrun start returned -> VNC answers
USB_SETTLE = 5.0  # after power-on: how long start() waits for vmware.log to say whether the stick connected
NEW_LOG_WAIT = 5.0  # after vmrun start: how long to wait for VMware to begin this power-on's vmware.log
LIST_EVERY = 10.0  # alive()/died(): at most one 'vmrun list' per this many seconds
UNLOCK_TIMEOUT = 120.0  # Packer waits as long for the *.lck files after a stop
CD_DEVICE = "sata0:1"


class UsbConnectFailed(VmDied):
    """VMware could not connect the stick (vmware.log's ``msg.usb.connectFailed``)."""


@dataclass(frozen=True)
class VmRecord(SeatRecord):
    """``vmware.json``: the seat's powered-on VM (no secrets)."""

    vmx: str
    product: str
    vnc_port: int
    serial: str
    owner_pid: int
    detached: bool
    started_at: float



def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return bool(kernel32.GetLastError() == 5)  # ERROR_ACCESS_DENIED: it exists
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _pid_alive(pid: int, platform: str = sys.platform) -> bool:
    """Whether a process exists. Not ``os.kill(pid, 0)`` on Windows: there it terminates the process."""
    if platform.startswith("win"):
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _vnc_answers(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(12).startswith(b"RFB ")
    except OSError:
        return False


class VmwareBackend:
    """One seat's VM under VMware via vmrun. Implements ``labctl.backends.base.Backend``."""

    name = "vmware"
    default_key_rate = 10.0  # keys/s: ESXi's boot loader loses faster keys on Workstation's VNC server

    def __init__(self, lab: Lab, seat: Seat, *, iso: Path | None = None, detached: bool = False,
                 host: vr.Host | None = None) -> None:
        self.lab = lab
        self.seat = seat
        self.iso = iso if iso is not None else lab.iso_path(seat)
        self.detached = detached
        self.host = host or vr.Host()
        self.state_dir = seat.state_dir.resolve()
        self.vmx = seat_vmx(seat).resolve()
        self.vm_dir = self.vmx.parent
        self.log_path = self.vm_dir / "vmware.log"
        self.record_path = self.state_dir / "vmware.json"
        self.product: vr.Product | None = lab.vmware.product if "product" in lab.vmware.model_fields_set else None
        self._vmrun: vr.Vmrun | None = None
        self._probe_said: list[str] | None = None
        self._record: VmRecord | None = None
        self._started_here = False
        self._stopping = False
        self._ejected = False
        self._watch: vmwarelog.LogWatcher | None = None
        self._listed_at = 0.0
        self._listed_running = False
        self._lock = threading.RLock()
        self.start_seconds: float | None = None
        self._capabilities: Capabilities | None = None

    # -- the registry's class methods -------------------------------------------------------------

    @classmethod
    def create(cls, lab: Lab, seat: Seat, **options: object) -> VmwareBackend:
        """Options: ``iso`` (Path), ``detached`` (bool); others are ignored."""
        iso = options.get("iso")
        return cls(lab, seat, iso=iso if isinstance(iso, Path) else None, detached=bool(options.get("detached")))

    @classmethod
    def usable(cls, lab: Lab) -> tuple[bool, str]:
        """Usable when vmrun is found (not run: cheap)."""
        try:
            exe = vr.find_vmrun(lab.vmware.vmrun)
        except InputError as exc:
            return False, str(exc)
        return True, f"vmrun at {exe}"

    # -- helpers ------------------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Player has no snapshots and no clones; an unnamed product is probed first (one to three
        'vmrun -T X list' calls, once per object)."""
        if self.product is None:
            with contextlib.suppress(InputError, RunFailed):
                self.vmrun()
        if self._capabilities is not None:
            return self._capabilities
        player = self.product == "player"
        return Capabilities(snapshots=not player, screendump=False, attach=True, clone=not player)

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self._capabilities = value  # a caller (a test) may narrow what the seat may do

    @property
    def case_insensitive(self) -> bool:
        return self.host.windows or self.host.macos

    def vmrun(self) -> vr.Vmrun:
        """The driver; the product is probed on first use when the lab does not name it."""
        if self._vmrun is None:
            exe = vr.find_vmrun(self.lab.vmware.vmrun, self.host)
            self._vmrun = vr.Vmrun(exe, self.product or "ws")
            if self.product is None:
                product, said = vr.probe_product(exe, self._vmrun.runner)
                self._vmrun.calls += len(said) + 1
                self._probe_said = said
                self.product = product
                log.info("seat %s: VMware product %s (probed with vmrun -T X list)", self.seat.name, product)
        if self.product is not None:
            self._vmrun.product = self.product
        return self._vmrun

    def _call(self, command: str, *args: str, timeout: float | None = None) -> list[str]:
        return self.vmrun().call(command, *args, timeout=timeout, log=self.log_path)

    def serial_path(self) -> str:
        """serial0's pipe: a unix socket on Linux/macOS (short enough for sun_path), a named pipe on Windows."""
        if self.host.windows:
            return serial_pipe(self.lab, self.seat, windows=True)
        path = Path(serial_pipe(self.lab, self.seat, windows=False))
        if path.parent != self.state_dir:  # too long for a socket: the short folder is private to this user
            private_dir(path.parent)
        return str(path)

    def _listed(self) -> bool:
        """Our .vmx is among vmrun list's running VMs (paths compared normalised)."""
        paths = self.vmrun().running()
        running = any(vr.same_vmx(p, str(self.vmx), self.case_insensitive) for p in paths)
        self._listed_at, self._listed_running = time.monotonic(), running
        return running

    def _running(self, max_age: float = 0.0) -> bool:
        if max_age and time.monotonic() - self._listed_at < max_age:
            return self._listed_running
        return self._listed()

    # -- lifecycle ----------------------------------------------------------------------------------

    def prepare(self) -> Facts:
        """vmrun and the product: the lab's ``vmware.product``, or the first of ws, player, fusion whose
        ``vmrun -T X list`` works."""
        v = self.vmrun()
        facts: Facts = {"vmrun": v.exe, "product": self.product}
        if self._probe_said is not None:
            facts["product_probe"] = self._probe_said
        return facts

    def _credentials(self, port: int) -> _Creds:
        creds = vnc_credentials(self.seat)
        if creds.port != port:
            creds = _Creds(port, creds.password)
            write_private(self.state_dir / "vnc.json", json.dumps({"port": port, "password": creds.password}))
        return creds

    def _render(self, port: int) -> None:
        """Write the .vmx (VM off): rendered keys win, the user's other keys stay."""
        if self.vmx.is_file() and self._running():
            raise InputError(f"seat {self.seat.index} ({self.seat.name}) is running; the .vmx is edited only "
                             "while the VM is off ('labctl down' it first)")
        creds = self._credentials(port)
        vmx = VmxFile.parse(render_vmx(self.lab, self.seat, creds))
        vmx.set("sata0:1.fileName", str(self.iso) if self.iso else "")
        vmx.set("sata0:1.startConnected", "FALSE" if self._ejected or self.iso is None else "TRUE")
        vmx.set("serial0.fileName", self.serial_path())
        self.vm_dir.mkdir(parents=True, exist_ok=True)
        write_vmx(self.vmx, vmx.text())

    def define(self) -> None:
        """The seat's folders and .vmx (rendered now when missing; re-rendered at each power-on)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.vm_dir.mkdir(parents=True, exist_ok=True)
        if self.seat.stick.usb is None:
            raise InputError(f"seat {self.seat.name}: VMware passes a host stick through; set stick.usb "
                             "(vendor_id/product_id or path) - image sticks are for the qemu backend")
        if not self.vmx.is_file():
            self._render(vnc_credentials(self.seat).port)

    def cleanup_stale(self) -> list[str]:
        """When vmrun does not list the VM: the old record, serial socket and VMware lock files."""
        if not self.vmx.is_file() or self._running():
            return []
        removed = []
        if self.record_path.exists():
            self.record_path.unlink()
            removed.append(self.record_path.name)
        pipe = Path(self.serial_path())
        if not self.host.windows and (pipe.is_socket() or pipe.exists()):
            pipe.unlink()
            removed.append(pipe.name)
        for lock in vr.lock_files(self.vmx):
            if lock.is_dir():
                for f in lock.iterdir():
                    f.unlink()
                lock.rmdir()
            else:
                lock.unlink()
            removed.append(lock.name)
        return removed

    def _usb_check(self) -> Facts:
        usb = self.seat.stick.usb
        assert usb is not None
        verdict, line = vmwareusb.before_start(usb, platform=self.host.platform)
        if verdict in ("missing", "mounted"):
            log.warning("seat %s: %s", self.seat.name, line)
        else:
            log.info("seat %s: %s", self.seat.name, line)
        return {"host_stick": verdict, "host_stick_says": line}

    def start(self) -> Facts:
        """Power on (``vmrun start VMX nogui``) with the ISO in the CD and the stick's autoconnect rule;
        returns once VNC answers and vmware.log said whether the stick connected."""
        with self._lock:
            self.vmrun()
            if self._record is not None and self._running():
                return self._start_facts()
            if self._running():
                raise InputError(f"seat {self.seat.index} ({self.seat.name}) is running already (vmrun list "
                                 f"shows {self.vmx}); 'labctl down' it first")
            facts = self._usb_check()
            t0 = time.monotonic()
            previous = VmRecord.load(self.record_path)
            prefer = previous.vnc_port if previous else vnc_credentials(self.seat).port
            self._stopping = False
            with reserve_vnc_port(prefer=prefer) as port:
                self._render(port)
                old_log = self.log_path.stat().st_ino if self.log_path.exists() else None
                self._watch = vmwarelog.LogWatcher.from_now(self.log_path)  # not an earlier power-on's log
                mode = "gui" if self.lab.vmware.gui else "nogui"
                log.info("seat %s: vmrun -T %s start %s %s", self.seat.name, self.product, self.vmx, mode)
                try:
                    self._call("start", str(self.vmx), mode)
                except vr.VmrunTimeout:
                    self.kill()
                    raise
                self._started_here = True
                self._listed_at, self._listed_running = time.monotonic(), True
                self._record = VmRecord(str(self.vmx), str(self.product), port, self.serial_path(), os.getpid(),
                                        self.detached, time.time())
                self._record.save(self.record_path)
            if old_log is not None:
                self._wait_new_log(old_log)
            self._wait_vnc(port)
            self._wait_usb()
            self.start_seconds = time.monotonic() - t0
            log.info("seat %s: VMware VM up, VNC on 127.0.0.1:%d after %.2f s", self.seat.name, port,
                     self.start_seconds)
            return {**facts, **self._start_facts()}

    def _start_facts(self) -> Facts:
        return {"product": self.product, "vmx": str(self.vmx), "vnc": self.vnc_display(),
                "start_to_vnc_seconds": round(self.start_seconds or 0.0, 3), "iso": str(self.iso) if self.iso else None}

    def _wait_new_log(self, old_inode: int) -> None:
        deadline = time.monotonic() + NEW_LOG_WAIT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if self.log_path.stat().st_ino != old_inode:
                    return
            time.sleep(0.05)

    def _wait_vnc(self, port: int) -> None:
        deadline = time.monotonic() + VNC_TIMEOUT
        while not _vnc_answers(port, 1.0):
            self._check_log()
            if time.monotonic() > deadline:
                self.kill()
                raise RunFailed(f"the VM started but its VNC server did not answer on 127.0.0.1:{port} within "
                                f"{VNC_TIMEOUT:g} s; last lines of {self.log_path}:\n{vmwarelog.tail(self.log_path)}")
            time.sleep(0.1)

    def _wait_usb(self) -> None:
        """Up to USB_SETTLE s for vmware.log to say the stick connected (or failed: raise at once)."""
        deadline = time.monotonic() + USB_SETTLE
        while time.monotonic() < deadline:
            assert self._watch is not None
            lines = self._watch.poll()
            self._check_log()
            if any("USB: Connecting device" in line or "USB: Connected device" in line for line in lines):
                return
            time.sleep(0.1)

    def _check_log(self) -> None:
        if self._watch is None:
            return
        self._watch.poll()
        if self._watch.usb_failures:
            words = self._watch.usb_failures[0]
            self.kill()
            raise UsbConnectFailed(self._usb_message(words))

    def _usb_message(self, words: str) -> str:
        usb = self.seat.stick.usb
        what = vmwareusb.describe(usb) if usb is not None else "?"
        return (f"VMware could not pass the stick {what} through to the VM; {self.log_path} says: {words}")

    def stop(self, mode: StopMode = "soft", timeout: float = 60.0) -> StopResult:
        """Soft: ``vmrun stop soft`` bounded by ``timeout``, then hard. 'not powered on' is stopped."""
        with self._lock:
            self._stopping = True
            t0 = time.monotonic()
            if self._vmrun is None:
                self.vmrun()
            if not self.vmx.is_file() or not self._running():
                self._forget()
                return StopResult("not running", time.monotonic() - t0, process="VMware VM")
            pid = self.vmx_pid()
            how: Any = "hard"
            if mode == "soft":
                try:
                    self._call("stop", str(self.vmx), "soft", timeout=timeout)
                    how = "soft"
                except vr.VmrunFailed as exc:
                    if "not powered on" in exc.words:
                        how = "soft"
                    else:
                        log.info("seat %s: soft stop: %s; stopping hard", self.seat.name, exc.words)
            if how == "hard" or self._running():
                try:
                    self._call("stop", str(self.vmx), "hard")
                    how = "hard"
                except vr.VmrunFailed:
                    if self._running():  # whatever vmrun said, a VM that is not listed is stopped
                        raise
            left = vr.wait_unlocked(self.vmx, UNLOCK_TIMEOUT)
            if left:
                log.warning("seat %s: VMware still holds %s after %g s", self.seat.name,
                            ", ".join(p.name for p in left), UNLOCK_TIMEOUT)
            self._forget()
            return StopResult(how, time.monotonic() - t0, pid=pid, process="vmware-vmx")

    def vmx_pid(self) -> int | None:
        """The running VM's vmware-vmx pid, as its vmware.log's first line gives it."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                head = f.read(4096)
        except OSError:
            return None
        return vmwarelog.vmx_pid(head)

    def _forget(self) -> None:
        self.record_path.unlink(missing_ok=True)
        self._record = None
        self._listed_at = 0.0

    def kill(self) -> None:
        self._stopping = True
        with contextlib.suppress(RunFailed, InputError):
            self._call("stop", str(self.vmx), "hard", timeout=30.0)
        self._forget()

    def reset(self, mode: StopMode = "hard") -> None:
        self._call("reset", str(self.vmx), mode)

    def eject_cdrom(self) -> None:
        """``vmrun disconnectNamedDevice VMX sata0:1``; when that fails: power off, startConnected FALSE, on."""
        try:
            self._call("disconnectNamedDevice", str(self.vmx), CD_DEVICE)
            self._ejected = True
            return
        except vr.VmrunFailed as exc:
            log.warning("seat %s: %s; powering off to take the ISO out", self.seat.name, exc)
        self.stop("hard")
        self._ejected = True
        vmx = VmxFile.load(self.vmx)
        vmx.set(f"{CD_DEVICE}.startConnected", "FALSE")
        write_vmx(self.vmx, vmx.text())
        self.start()

    def reset_definition(self) -> list[str]:
        """The .vmx re-rendered (user keys kept) and the nvram dropped; the VM must be off."""
        if self._running():
            raise InputError(f"seat {self.seat.index} ({self.seat.name}) is running; 'labctl down' it first")
        done = []
        nvram = self.vm_dir / f"{self.seat.name}.nvram"
        if nvram.exists():
            nvram.unlink()
            done.append("UEFI variables (nvram) removed")
        self._ejected = False
        self._render(vnc_credentials(self.seat).port)
        done.append(f"{self.vmx.name} re-rendered")
        return done

    # -- state --------------------------------------------------------------------------------------

    def power_state(self) -> PowerState:
        if not self.vmx.is_file():
            return PowerState.OFF
        try:
            return PowerState.RUNNING if self._running() else PowerState.OFF
        except RunFailed:
            return PowerState.UNKNOWN

    def alive(self) -> bool:
        """Running as far as vmware.log and a recent (at most LIST_EVERY s old) vmrun list know."""
        if self._record is None and VmRecord.load(self.record_path) is None:
            return False
        if self._watch is not None:
            self._watch.poll()
            if self._watch.off:
                return False
        try:
            return self._running(LIST_EVERY)
        except RunFailed:
            return True  # vmrun itself failed: no evidence the VM is gone

    def died(self) -> bool:
        if not self._started_here or self._stopping:
            return False
        if self._watch is not None:
            self._watch.poll()
            if self._watch.usb_failures:
                return True
        return not self.alive()

    def death_message(self) -> str:
        if self._watch is not None and self._watch.usb_failures:
            return self._usb_message(self._watch.usb_failures[0])
        marker = self.state_dir / "stopped-by-down"
        if marker.exists():
            verb = marker.read_text().strip() or "down"
            return f"the VMware VM was stopped by 'labctl {verb}' from another shell"
        text = vmwarelog.tail(self.log_path)
        return "the VMware VM powered off unexpectedly; " + (
            f"last lines of {self.log_path}:\n{text}" if text else f"{self.log_path} is empty")

    def check(self) -> None:
        if self.died():
            if self._watch is not None and self._watch.usb_failures:
                raise UsbConnectFailed(self.death_message())
            raise VmDied(self.death_message())

    @property
    def started_here(self) -> bool:
        return self._started_here

    def attach_running(self) -> bool:
        rec = VmRecord.load(self.record_path)
        if not self.vmx.is_file():
            return False
        if not self._running():
            return False
        if rec is None:  # running but started outside labctl: attach with the .vmx's own port
            port = int(VmxFile.load(self.vmx).get("RemoteDisplay.vnc.port") or 0)
            rec = VmRecord(str(self.vmx), str(self.product or "ws"), port, self.serial_path(), 0, True, 0.0)
        self._record = rec
        self.detached = rec.detached
        if rec.product in vr.PRODUCTS:
            self.product = rec.product  # type: ignore[assignment]
        self._watch = vmwarelog.LogWatcher(self.log_path)
        return True

    def mark_stopped_by(self, verb: str) -> None:
        rec = self._record or VmRecord.load(self.record_path)
        if rec is not None and not rec.detached and rec.owner_pid != os.getpid() and _pid_alive(rec.owner_pid):
            (self.state_dir / "stopped-by-down").write_text(verb + "\n")

    def stop_strays(self) -> list[int]:
        """A VM of this .vmx that vmrun lists but no record knows is stopped (VMware gives no pid: [])."""
        if VmRecord.load(self.record_path) is None and self.vmx.is_file() and self._running():
            log.info("seat %s: stopping %s, which runs without a labctl record", self.seat.name, self.vmx)
            self.stop("hard")
        return []

    def status_details(self) -> Facts:
        caps = self.capabilities  # probes the product when the lab names none
        running = self.power_state() is PowerState.RUNNING
        facts: Facts = {"vmx": str(self.vmx), "product": self.product or "ws"}
        if running and (pid := self.vmx_pid()):
            facts["pid"] = pid
        if self._vmrun is not None:
            facts["vmrun"] = self._vmrun.exe
        if caps.snapshots and self.vmx.is_file():
            with contextlib.suppress(RunFailed, InputError):
                facts["snapshots"] = self.snapshots()
        return facts

    def images(self) -> SeatImages:
        return SeatImages(stick=None, disk=None)

    # -- endpoints ----------------------------------------------------------------------------------

    def _rec(self) -> VmRecord:
        rec = self._record or VmRecord.load(self.record_path)
        if rec is None:
            raise InputError(f"seat {self.seat.index} ({self.seat.name}) is not running")
        return rec

    def vnc_endpoint(self) -> VncEndpoint:
        rec = self._rec()
        # the .vmx the VM runs with is the truth (a VM started outside labctl has its own password)
        password = VmxFile.load(self.vmx).get("RemoteDisplay.vnc.password") if self.vmx.is_file() else None
        return VncEndpoint("127.0.0.1", rec.vnc_port, password or vnc_credentials(self.seat).password)

    def vnc_display(self) -> str:
        rec = self._record or VmRecord.load(self.record_path)
        if rec is None:
            return "-"
        return f"127.0.0.1 port {rec.vnc_port} (display :{rec.vnc_port - 5900})"

    def serial_endpoint(self) -> SerialEndpoint | None:
        rec = self._record or VmRecord.load(self.record_path)
        return SerialEndpoint(Path(rec.serial if rec else self.serial_path()))

    def screendump(self, out: Path) -> Path:
        raise Unsupported("the vmware backend has no screendump (vmrun captureScreen needs VMware Tools, "
                          "which ESXi lacks); screens come from VNC")

    # -- stick --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def stick_view(self) -> Iterator[StickView]:
        usb = self.seat.stick.usb
        assert usb is not None
        if self._record is not None or self.power_state() is not PowerState.OFF:
            yield StickView(None, "the stick is passed through to the running VMware VM; the host cannot read it "
                                  "until the VM is off (the layout is proven in the guest)")
            return
        if not sys.platform.startswith("linux"):
            yield StickView(None, "reading the stick on the host is supported on Linux only")
            return
        dev, why = vmwareusb.readable_device(usb)
        yield StickView(dev, "" if dev is not None else why)

    # -- snapshots ----------------------------------------------------------------------------------

    def _need(self, what: str, flag: bool) -> None:
        if not flag:
            raise Unsupported(f"{what}: VMware {self.product} has no {what}s (vmrun -T {self.product}); "
                              "a reset re-renders the VM instead")

    def snapshots(self) -> list[str]:
        if not self.vmx.is_file() or not self.capabilities.snapshots:  # no VM yet has no snapshots
            return []
        return vr.parse_snapshots(self._call("listSnapshots", str(self.vmx)))

    def snapshot(self, name: str) -> None:
        self._need("snapshot", self.capabilities.snapshots)
        self._call("snapshot", str(self.vmx), name)

    def revert(self, name: str) -> None:
        self._need("snapshot", self.capabilities.snapshots)
        self._call("revertToSnapshot", str(self.vmx), name)

    def delete_snapshot(self, name: str) -> None:
        self._need("snapshot", self.capabilities.snapshots)
        self._call("deleteSnapshot", str(self.vmx), name)

    def clone(self, dest: Path, linked: bool = True) -> Path:
        """A clone for another seat: linked to a snapshot ``labctl-clone`` (made when missing) or full.
        The clone gets ``uuid.action = "create"`` and ``msg.autoanswer = "TRUE"`` (no dialog when headless)."""
        self._need("clone", self.capabilities.clone)
        if self._running():
            raise InputError(f"clone: seat {self.seat.index} is running; 'labctl down' it first")
        args = [str(self.vmx), str(dest), "linked" if linked else "full"]
        if linked:
            base = "labctl-clone"
            if base not in self.snapshots():
                self.snapshot(base)
            args.append(f"-snapshot={base}")
        args.append(f"-cloneName={dest.stem}")
        self._call("clone", *args)
        vmx = VmxFile.load(dest)
        vmx.set("uuid.action", "create")
        vmx.set("msg.autoanswer", "TRUE")
        write_private(dest, vmx.text())
        return dest


_VMWARE_IS_A_BACKEND: type[Backend] = VmwareBackend  # mypy proves the class satisfies the Backend protocol
