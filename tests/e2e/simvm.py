"""Test-only harness: boot the simulator ISO in QEMU (TCG + OVMF), send keys over QMP, read the serial console.

Everything the simulator prints goes through ConOut, which OVMF mirrors to the serial port with VT100
escapes around the text; ``text()`` strips those so tests can match plain strings.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = OVMF_DIR / "OVMF_CODE_4M.fd"
OVMF_VARS = OVMF_DIR / "OVMF_VARS_4M.fd"

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>c]")

# character -> (qcode, shifted)
_PLAIN = {" ": "spc", "=": "equal", "/": "slash", ".": "dot", "-": "minus", ",": "comma", ";": "semicolon",
          "'": "apostrophe", "\\": "backslash", "[": "bracket_left", "]": "bracket_right", "`": "grave_accent"}
_SHIFTED = {":": "semicolon", "_": "minus", "!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6",
            "&": "7", "*": "8", "(": "9", ")": "0", '"': "apostrophe", "|": "backslash", "+": "equal",
            "?": "slash", "<": "comma", ">": "dot", "{": "bracket_left", "}": "bracket_right", "~": "grave_accent"}
SPECIAL = {"enter": "ret", "esc": "esc", "tab": "tab", "backspace": "backspace", "up": "up", "down": "down",
           "left": "left", "right": "right", "f1": "f1", "f2": "f2", "f5": "f5", "f9": "f9", "f11": "f11",
           "f12": "f12", "pgdn": "pgdn", "pgup": "pgup"}


def char_key(ch: str) -> tuple[str, bool]:
    if ch.isascii() and ch.isalpha():
        return ch.lower(), ch.isupper()
    if ch.isascii() and ch.isdigit():
        return ch, False
    if ch in _PLAIN:
        return _PLAIN[ch], False
    if ch in _SHIFTED:
        return _SHIFTED[ch], True
    raise ValueError(f"no key for {ch!r}")


@dataclass
class Disk:
    """A disk image attached to the VM: bus 'usb' (usb-storage behind qemu-xhci) or 'sata' (AHCI)."""

    path: Path
    bus: str
    size: int = 0  # bytes; create a sparse image of this size when the file does not exist


class QMP:
    """Minimal synchronous QMP client over a unix socket (events are skipped)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.buf = b""
        self._recv()  # greeting
        self.execute("qmp_capabilities")

    def _recv(self) -> dict[str, object]:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg: dict[str, object] = json.loads(line)
        return msg

    def execute(self, cmd: str, **args: object) -> object:
        req: dict[str, object] = {"execute": cmd}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self._recv()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"QMP {cmd}: {msg['error']}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class SimVM:
    iso: Path
    workdir: Path
    disks: Sequence[Disk] = ()
    memory_mb: int = 4096
    cpus: int = 2
    cpu_model: str = "qemu64"
    key_delay: float = 0.03
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    qmp: QMP | None = field(default=None, init=False)
    started_at: float = field(default=0.0, init=False)

    @property
    def serial_path(self) -> Path:
        return self.workdir / "serial.log"

    def argv(self) -> list[str]:
        vars_fd = self.workdir / "OVMF_VARS.fd"
        if not vars_fd.exists():
            shutil.copyfile(OVMF_VARS, vars_fd)
        argv = [
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", self.cpu_model,
            "-smp", str(self.cpus), "-m", str(self.memory_mb), "-nodefaults", "-no-user-config",
            "-vga", "std", "-display", "none",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}",
            "-drive", f"if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={self.iso}",
            "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=0",
            "-device", "qemu-xhci,id=xhci",
            "-qmp", f"unix:{self.workdir / 'qmp.sock'},server=on,wait=off",
            "-vnc", f"unix:{self.workdir / 'vnc.sock'}",
            "-serial", f"file:{self.serial_path}",
        ]
        sata = 1
        for i, d in enumerate(self.disks):
            if not d.path.exists():
                with d.path.open("wb") as f:
                    f.truncate(d.size)
            argv += ["-drive", f"if=none,id=d{i},format=raw,file={d.path}"]
            if d.bus == "usb":
                argv += ["-device", f"usb-storage,bus=xhci.0,drive=d{i},bootindex={10 + i}"]
            else:
                argv += ["-device", f"ide-hd,drive=d{i},bus=ide.{sata},bootindex={10 + i}"]
                sata += 1
        return argv

    def start(self) -> SimVM:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.serial_path.write_bytes(b"")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=(self.workdir / "qemu.stderr").open("wb"))
        try:
            self.qmp = QMP(self.workdir / "qmp.sock")
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                self.qmp.execute("quit")
            self.qmp.close()
            self.qmp = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def __enter__(self) -> SimVM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- serial console -------------------------------------------------------------------------------
    def raw(self) -> str:
        return self.serial_path.read_bytes().decode("latin-1")

    def text(self) -> str:
        return ANSI.sub("\n", self.raw())

    def mark(self) -> int:
        """A position in text(); waits after it ignore older output."""
        return len(self.text())

    def wait(self, pattern: str, timeout: float = 30.0, since: int = 0) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text(), since)
            if m:
                return m
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"QEMU exited ({self.proc.returncode}) waiting for {pattern!r}")
            if time.monotonic() > deadline:
                tail = self.text()[-1500:]
                raise AssertionError(f"timeout {timeout:.0f}s waiting for {pattern!r}; serial tail:\n{tail}")
            time.sleep(0.1)

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """wait() after the last mark set by send()/type()."""
        return self.wait(pattern, timeout, self._since)

    _since: int = 0

    # --- keys ---------------------------------------------------------------------------------------
    def _event(self, qcode: str, down: bool) -> None:
        assert self.qmp is not None
        self.qmp.execute("input-send-event",
                         events=[{"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": qcode}}}])

    def tap(self, qcode: str, shift: bool = False) -> None:
        if shift:
            self._event("shift", True)
            time.sleep(self.key_delay)
        self._event(qcode, True)
        time.sleep(self.key_delay)
        self._event(qcode, False)
        if shift:
            time.sleep(self.key_delay)
            self._event("shift", False)
        time.sleep(self.key_delay)

    def key(self, *names: str) -> None:
        """Special keys by name (enter, esc, f11, down, ...), each pressed and released."""
        self._since = self.mark()
        for n in names:
            self.tap(SPECIAL[n])

    def type(self, text: str) -> None:
        self._since = self.mark()
        for ch in text:
            q, shift = char_key(ch)
            self.tap(q, shift)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at


def qemu_available() -> bool:
    return shutil.which("qemu-system-x86_64") is not None and OVMF_CODE.exists() and OVMF_VARS.exists()


@contextlib.contextmanager
def running(vm: SimVM) -> Iterator[SimVM]:
    vm.start()
    try:
        yield vm
    finally:
        vm.stop()


def sgdisk_layout(image: Path) -> list[tuple[int, int, int, str, str]]:
    """(number, start, end, type GUID upper without dashes, attribute flags hex) via sgdisk, an independent reader."""
    out = subprocess.run(["sgdisk", "-p", str(image)], capture_output=True, text=True, timeout=30, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s+(\d+)\s+(\d+)\s+(\d+)\s", line)
        if not m:
            continue
        n = int(m.group(1))
        info = subprocess.run(["sgdisk", "-i", str(n), str(image)], capture_output=True, text=True, timeout=30,
                              check=True).stdout
        guid = re.search(r"Partition GUID code: ([0-9A-F-]+)", info)
        attrs = re.search(r"Attribute flags: ([0-9A-F]+)", info)
        rows.append((n, int(m.group(2)), int(m.group(3)), guid.group(1).replace("-", "") if guid else "",
                     attrs.group(1) if attrs else ""))
    rows.sort(key=lambda r: r[1])
    return rows


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
