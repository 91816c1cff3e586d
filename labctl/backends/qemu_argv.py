"""The QEMU command line for one seat, as a pure function of the lab (unit-tested without QEMU).

The VM is the seed's VM in QEMU terms: q35, UEFI (OVMF code read-only + a per-seat copy of the vars),
cpus/memory from the lab, the stick on ``usb-storage`` behind ``qemu-xhci`` (or a host stick through
``usb-host``), the installer ISO on an AHCI CD, optional local disk on AHCI, boot order CD then stick,
a NIC (user-mode networking, no host forwarding) or none, VNC on 127.0.0.1 (or a unix socket) with a
password read from a 0600 file through ``-object secret`` (never in argv), QMP and the serial port on
unix sockets in the seat's state folder, no window. Secrets never appear in the argv.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from labctl.spec import Lab, Seat

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = OVMF_DIR / "OVMF_CODE_4M.fd"
OVMF_VARS = OVMF_DIR / "OVMF_VARS_4M.fd"
OVMF_CODE_SECBOOT = OVMF_DIR / "OVMF_CODE_4M.secboot.fd"
OVMF_VARS_SECBOOT = OVMF_DIR / "OVMF_VARS_4M.ms.fd"
# QEMU's VNC server queues the key events it receives and hands them to the guest's keyboard one per
# key-delay-ms (default 10 ms). The PS/2 keyboard behind it holds 16 bytes (one per event, translated scan
# codes) and drops the rest, and a guest can leave it unread for tens of milliseconds: firmware drawing a
# line, or writing its serial port on a host busy with disk writes. So QEMU traces the keyboard to a file
# (KEYBOARD_TRACE, labctl.console.kbdflow) and labctl sends each key event only when it fits; 3 ms is then
# just QEMU's pace. Without the trace, events keep KEY_EVENT_GAP apart (16 events: 160 ms of stall).
# Measured on the simulator's boot-loader editor, 70 characters a try, under fsync'd disk writes and two
# busy loops, with QEMU's pace alone: 1 ms lost keys in 9 of 30 tries, 2 ms in 1 of 30, 3 ms in 1 of 64
# (benchmarks/keys_under_load.py). The trace costs about 90 bytes of file per key event.
KEY_DELAY_MS = 3
KEY_EVENT_GAP = 0.010
KEYBOARD_TRACE = ("ps2_put_keycode", "ps2_read_data", "ps2_reset_keyboard", "ps2_write_keyboard",
                  "ps2_kbd_reset", "ps2_keyboard_set_translation")


def keyboard_traced(lab: Lab, files: SeatFiles) -> bool:
    """Whether QEMU traces the keyboard to the seat's file: not when the lab's own QEMU arguments ask for
    log items (-d: QEMU keeps one log, and theirs stays in qemu.log), nor for a state path QEMU would read
    as a pattern (%)."""
    return not {"-D", "-d"} & set(lab.qemu.extra_args) and "%" not in str(files.keyboard_trace)
VNC_BASE_PORT = 5900
_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes; keep a margin

Accel = Literal["kvm", "tcg"]


@dataclass(frozen=True)
class SeatFiles:
    """Where a seat keeps its files. Unix sockets go to a short folder when the state path is too long."""

    state_dir: Path
    sock_dir: Path

    @classmethod
    def for_state_dir(cls, state_dir: Path) -> SeatFiles:
        state_dir = state_dir.resolve()
        sock_dir = state_dir
        if len(str(state_dir / "serial.sock")) > _SUN_PATH_MAX:
            digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
            sock_dir = Path(tempfile.gettempdir()) / f"labctl-{os.getuid()}" / digest
        return cls(state_dir, sock_dir)

    @property
    def ovmf_vars(self) -> Path:
        return self.state_dir / "OVMF_VARS.fd"

    @property
    def qmp(self) -> Path:
        return self.sock_dir / "qmp.sock"

    @property
    def serial(self) -> Path:
        return self.sock_dir / "serial.sock"

    @property
    def serial_log(self) -> Path:
        return self.state_dir / "serial.log"

    @property
    def vnc_socket(self) -> Path:
        return self.sock_dir / "vnc.sock"

    @property
    def vnc_password(self) -> Path:
        return self.state_dir / "vnc.pass"

    @property
    def runtime(self) -> Path:
        """pid, start time and endpoints of the running QEMU (no secrets)."""
        return self.state_dir / "qemu.json"

    @property
    def stderr_log(self) -> Path:
        return self.state_dir / "qemu.log"

    @property
    def keyboard_trace(self) -> Path:
        """QEMU's trace of its PS/2 keyboard (``labctl.console.kbdflow``): what typing paces itself by."""
        return self.state_dir / "keyboard.trace"

    @property
    def snapshots(self) -> Path:
        return self.state_dir / "stick-snapshots"

    @property
    def local_disk(self) -> Path:
        return self.state_dir / "disk.img"

    def sockets(self) -> list[Path]:
        return [self.qmp, self.serial, self.vnc_socket]


@dataclass(frozen=True)
class StickDrive:
    """The stick as QEMU sees it: an image file (raw, or the qcow2 overlay on top of it)."""

    path: Path
    format: Literal["raw", "qcow2"] = "raw"


@dataclass(frozen=True)
class VncListen:
    """TCP display number on 127.0.0.1, or a unix socket."""

    port: int | None = None
    socket: Path | None = None

    def arg(self) -> str:
        if self.socket is not None:
            return f"unix:{_opt(str(self.socket))}"
        assert self.port is not None and self.port >= VNC_BASE_PORT
        return f"127.0.0.1:{self.port - VNC_BASE_PORT}"


def qmp_chardev(qmp: Path) -> str:
    """The QMP socket's ``-chardev`` value; also how a seat's QEMU is recognised in /proc/PID/cmdline."""
    return f"socket,id=qmp,path={_opt(str(qmp))},server=on,wait=off"


def _opt(value: str) -> str:
    """Escape a value for QEMU's key=value option syntax (a comma is written twice)."""
    return value.replace(",", ",,")


def ovmf_files(lab: Lab) -> tuple[Path, Path]:
    """(code, vars template) for the lab: its own paths, or Debian's 4M builds (secure boot: ms vars)."""
    if lab.vm.secure_boot:
        code, tmpl = OVMF_CODE_SECBOOT, OVMF_VARS_SECBOOT
    else:
        code, tmpl = OVMF_CODE, OVMF_VARS
    return (
        Path(lab.qemu.ovmf_code) if lab.qemu.ovmf_code else code,
        Path(lab.qemu.ovmf_vars) if lab.qemu.ovmf_vars else tmpl,
    )


FDSETS = {"disk": 1, "stick": 2}  # the fd set (/dev/fdset/N) each inherited image is in


def _raw_drive(node: str, path: Path, fd: int | None, fdset: int) -> list[str]:
    """A raw image as the block node ``node``: by path, or through the inherited descriptor ``fd`` (an
    fd set; -blockdev opens it read-write at once, where -drive would first ask for a read-only one)."""
    if fd is None:
        return ["-drive", f"if=none,id={node},format=raw,file={_opt(str(path))}"]
    return ["-add-fd", f"fd={fd},set={fdset},opaque={_opt(node)}",
            "-blockdev", f"driver=file,filename=/dev/fdset/{fdset},node-name={node}-file",
            "-blockdev", f"driver=raw,file={node}-file,node-name={node}"]


def build_argv(
    lab: Lab,
    seat: Seat,
    files: SeatFiles,
    *,
    accel: Accel,
    iso: Path | None,
    stick: StickDrive | None,
    vnc: VncListen,
    image_fds: Mapping[str, int] | None = None,
) -> list[str]:
    """QEMU's argv for the seat. ``iso`` None = an empty CD drive; ``stick`` None = the lab's host stick.

    ``image_fds`` ("stick", "disk": a descriptor QEMU inherits) hands QEMU a raw image labctl opened and
    checked, instead of its path: whatever the path names after the check, QEMU writes the file checked.
    """
    fds = dict(image_fds or {})
    code, _ = ovmf_files(lab)
    vm = lab.vm
    machine = "q35,smm=on" if vm.secure_boot else "q35"
    argv = [
        lab.qemu.binary,
        "-name", f"labctl-{seat.name},process=labctl-{seat.name}",
        "-nodefaults", "-no-user-config",
        "-machine", machine,
        "-accel", accel,
    ]
    if accel == "kvm":
        argv += ["-cpu", "host"]
    argv += [
        "-smp", str(vm.cpus),
        "-m", str(vm.memory_mb),
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_opt(str(code))}",
        "-drive", f"if=pflash,format=raw,unit=1,file={_opt(str(files.ovmf_vars))}",
    ]
    if vm.secure_boot:
        argv += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
    argv += ["-device", "VGA", "-display", "none", "-no-shutdown"]

    # The installer ISO on the q35 AHCI controller, first in the boot order.
    if iso is not None:
        argv += [
            "-drive", f"if=none,id=cdrom,media=cdrom,readonly=on,format=raw,file={_opt(str(iso))}",
            "-device", "ide-cd,bus=ide.0,drive=cdrom,id=cd0,bootindex=0",
        ]
    else:
        argv += ["-device", "ide-cd,bus=ide.0,id=cd0,bootindex=0"]

    # Optional local disk (the seed has none).
    if vm.disk is not None:
        disk = lab.resolve(vm.disk.image, seat) if vm.disk.image else files.local_disk
        argv += [
            *_raw_drive("disk0", disk, fds.get("disk"), FDSETS["disk"]),
            "-device", "ide-hd,bus=ide.1,drive=disk0,id=hd0,bootindex=2",
        ]

    # The USB stick, second in the boot order.
    if vm.usb == "xhci":
        argv += ["-device", "qemu-xhci,id=usb"]
    else:
        argv += ["-device", "ich9-usb-ehci1,id=usb"]
    if stick is not None:
        drive = (_raw_drive("stick", stick.path, fds.get("stick"), FDSETS["stick"]) if stick.format == "raw" else
                 ["-drive", f"if=none,id=stick,format={stick.format},file={_opt(str(stick.path))}"])
        argv += [
            *drive,
            "-device", "usb-storage,bus=usb.0,drive=stick,id=stick0,removable=on,bootindex=1",
        ]
    elif not seat.stick.none:  # stick: none installs onto vm.disk
        usb = seat.stick.usb
        assert usb is not None, "a seat without a stick image has a host stick"
        if usb.path is not None:
            bus, *ports = usb.path.split("/")
            argv += ["-device", f"usb-host,bus=usb.0,id=stick0,hostbus={bus},hostport={'.'.join(ports)},bootindex=1"]
        else:
            assert usb.vendor_id is not None and usb.product_id is not None
            argv += [
                "-device",
                f"usb-host,bus=usb.0,id=stick0,vendorid={usb.vendor_id:#06x},productid={usb.product_id:#06x},"
                "bootindex=1",
            ]

    # Network: user-mode, no host forwarding; no option ROM (no PXE detour in the boot order).
    if vm.network == "none":
        argv += ["-nic", "none"]
    else:
        rom = "" if vm.nic == "vmxnet3" else ",romfile="
        argv += ["-netdev", "user,id=net0", "-device", f"{vm.nic},netdev=net0,id=nic0{rom}"]

    # Screen, monitor, serial: VNC password from a 0600 file, never in argv.
    argv += [
        "-object", f"secret,id=vncpass,format=raw,file={_opt(str(files.vnc_password))}",
        "-vnc", f"{vnc.arg()},password-secret=vncpass,key-delay-ms={KEY_DELAY_MS}",
        "-chardev", qmp_chardev(files.qmp),
        "-mon", "chardev=qmp,mode=control",
        # The serial port goes to a file, not a socket: QEMU writes the UART one byte per write(), a unix
        # socket is "full" after a few hundred of those, and then the 16550's FIFO overflows and bytes are
        # lost in the guest (measured: ESC[r;cH sequences cut short). A file never pushes back, and any
        # number of readers (labctl up, labctl wait from another shell) can follow it.
        "-chardev", f"file,id=serial0,path={_opt(str(files.serial_log))}",
        "-serial", "chardev:serial0",
    ]
    if keyboard_traced(lab, files):
        # The PS/2 keyboard's bytes queued and read, traced to a file: typing sends a key only when the
        # guest has room for it (labctl.console.kbdflow).
        argv += ["-D", str(files.keyboard_trace),
                 *[arg for event in KEYBOARD_TRACE for arg in ("-trace", f"enable={event}")]]
    argv += list(lab.qemu.extra_args)
    return argv
