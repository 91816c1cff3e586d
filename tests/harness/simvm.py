"""Test-only harness: boot the simulator ISO in QEMU (TCG + OVMF), send keys over QMP, read the serial console.

Everything the simulator prints goes through ConOut, which OVMF mirrors to the serial port with VT100
escapes around the text; ``text()`` strips those so tests can match plain strings. The QMP client, the
OVMF firmware paths and the US key table (which characters need Shift) are labctl's own; only the
spelling of a key as a QMP ``qcode`` lives here.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.backends.qemu_argv import KEYBOARD_TRACE, OVMF_CODE, OVMF_VARS
from labctl.backends.qmp import Qmp
from labctl.console import keys
from labctl.console.kbdflow import KeyboardFlow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>c]")

# QMP's qcode for a key, by labctl's key name (labctl.console.keys.SPECIAL) or its unshifted character
_QCODE_NAMES = {"enter": "ret", "bs": "backspace", "pageup": "pgup", "pagedown": "pgdn", "spacebar": "spc",
                "leftshift": "shift", "rightshift": "shift_r", "leftalt": "alt", "rightalt": "alt_r",
                "leftctrl": "ctrl", "rightctrl": "ctrl_r"}
_QCODE_CHARS = {" ": "spc", "=": "equal", "/": "slash", ".": "dot", "-": "minus", ",": "comma", ";": "semicolon",
                "'": "apostrophe", "\\": "backslash", "[": "bracket_left", "]": "bracket_right", "`": "grave_accent",
                "\n": "ret", "\t": "tab"}
SPECIAL = {"enter", "esc", "tab", "backspace", "up", "down", "left", "right", "f1", "f2", "f5", "f9", "f11",
           "f12", "pgdn", "pgup"}
_ALIASES = {"backspace": "bs", "pgdn": "pagedown", "pgup": "pageup"}


def _unshift_table() -> dict[str, str]:
    """Shifted character -> its key, from labctl's own US table (what Shift does to each key)."""
    table = {}
    for base in map(chr, range(0x21, 0x7F)):
        if base in keys.SHIFTED:
            continue
        presses = [a for a in keys.parse(f"<leftShiftOn>{base}<leftShiftOff>")
                   if isinstance(a, keys.KeyEvent) and a.is_press]
        shifted = keys.keysym_name(presses[0].keysym)
        if shifted != base:
            table[shifted] = base
    return table


_UNSHIFT = _unshift_table()


def qcode(event: keys.KeyEvent) -> str:
    """The QMP qcode of a labctl key event (a shifted character is sent as its unshifted key)."""
    name = keys.keysym_name(event.keysym)
    if len(name) > 1:  # a named key
        return _QCODE_NAMES.get(name, name)
    base = _UNSHIFT.get(name, name)
    return _QCODE_CHARS.get(base, base.lower())


class HarnessQmp(Qmp):
    """labctl's QMP client, also taking a command's arguments as keywords (``execute("eject", device=...)``)."""

    def execute(self, command: str, arguments: dict[str, object] | None = None, timeout: float = 10.0,
                **kwargs: object) -> Any:
        args = {**(arguments or {}), **kwargs}
        return super().execute(command, args or None, timeout)


@dataclass
class SimDisk:
    """A disk image attached to the VM: bus 'usb' (usb-storage behind qemu-xhci) or 'sata' (AHCI)."""

    path: Path
    bus: str
    size: int = 0  # bytes; create a sparse image of this size when the file does not exist


@dataclass
class SimVM:
    iso: Path
    workdir: Path
    disks: Sequence[SimDisk] = ()
    memory_mb: int = 4096
    cpus: int = 2
    cpu_model: str = "qemu64"
    key_delay: float = 0.03
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    qmp: HarnessQmp | None = field(default=None, init=False)
    started_at: float = field(default=0.0, init=False)
    flow: KeyboardFlow | None = field(default=None, init=False)

    @property
    def serial_path(self) -> Path:
        return self.workdir / "serial.log"

    @property
    def keyboard_trace(self) -> Path:
        return self.workdir / "keyboard.trace"

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
            # the PS/2 queue's bytes, so keys go only when the guest has room (as labctl types)
            "-D", str(self.keyboard_trace), *[a for event in KEYBOARD_TRACE for a in ("-trace", f"enable={event}")],
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
        self.keyboard_trace.unlink(missing_ok=True)
        self.flow = KeyboardFlow(self.keyboard_trace)
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=(self.workdir / "qemu.stderr").open("wb"))
        sock = self.workdir / "qmp.sock"
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)  # QEMU creates the socket a moment after it starts
        try:
            self.qmp = HarnessQmp(sock, nickname="simvm")
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.flow is not None:
            self.flow.close()
            self.flow = None
        if self.qmp is not None:
            self.qmp.quit()
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
    def _event(self, code: str, down: bool) -> None:
        assert self.qmp is not None
        self.qmp.execute("input-send-event",
                         events=[{"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": code}}}])

    def _send(self, events: Sequence[keys.KeyEvent]) -> None:
        """Each event when the guest's 16-byte PS/2 queue has room for it (QEMU drops what does not fit
        while the guest is stalled), then the harness's fixed gap."""
        for ev in events:
            if self.flow is not None and self.flow.live:
                self.flow.wait_room(ev.keysym, 5.0)
            self._event(qcode(ev), ev.down)
            if self.flow is not None:
                self.flow.sent_one(ev.keysym)
            time.sleep(self.key_delay)

    def tap(self, name: str) -> None:
        """One key by labctl's name (f1, enter, ...), pressed and released."""
        self._send([a for a in keys.parse(f"<{_ALIASES.get(name, name)}>") if isinstance(a, keys.KeyEvent)])

    def key(self, *names: str) -> None:
        """Special keys by name (enter, esc, f11, down, ...), each pressed and released."""
        self._since = self.mark()
        for n in names:
            if n not in SPECIAL:
                raise ValueError(f"no special key {n!r}")
            self.tap(n)

    def type(self, text: str) -> None:
        """Text as labctl types it: Shift held for capitals and shifted characters (US layout)."""
        self._since = self.mark()
        self._send(keys.text(text))

    def screendump(self, path: Path) -> Path:
        """The VGA screen as PNG (QMP screendump)."""
        assert self.qmp is not None
        self.qmp.execute("screendump", filename=str(path), format="png")
        return path

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


# --- flows shared by the tests (they drive the simulator like a playbook would) ----------------------

ESP = "C12A7328F81F11D2BA4B00A0C93EC93B"
NATIVE = "EBD0A0A2B9E5443387C068B6B72699C7"
DIAG = "9D27538040AD11DBBF97000C2911D1B8"
VMFS = "AA31E02A400F11DB9590000C2911D1B8"
# reference §3: number, start, end (None: last usable sector = total - 34), type
ESXI6_ROWS = [(1, 64, 8191, ESP), (5, 8224, 520191, NATIVE), (6, 520224, 1032191, NATIVE),
              (7, 1032224, 1257471, DIAG), (8, 1257504, 1843199, NATIVE), (9, 1843200, 7086079, DIAG),
              (2, 7086080, 15472639, NATIVE), (3, 15472640, None, VMFS)]


def expected_layout(total_sectors: int, numbers: Sequence[int]) -> list[tuple[int, int, int, str]]:
    rows = []
    for n, start, end, guid in ESXI6_ROWS:
        if n in numbers:
            rows.append((n, start, end if end is not None else total_sectors - 34, guid))
    return rows


def check_gpt(image: Path, numbers: Sequence[int], extra: Sequence[tuple[int, int, int, str]] = ()) -> None:
    """The GPT of image equals reference §3 for the partitions numbers (plus extra rows), read by sgdisk
    (not our C code)."""
    total = image.stat().st_size // 512
    got = sgdisk_layout(image)
    assert [(n, s, e, g) for n, s, e, g, _ in got] == expected_layout(total, numbers) + list(extra)
    for n, _s, _e, _g, attrs in got:
        assert attrs == ("0000000000000004" if n == 1 else "0000000000000000"), (n, attrs)
    verify = subprocess.run(["sgdisk", "-v", str(image)], capture_output=True, text=True, timeout=30, check=False)
    assert "No problems found" in verify.stdout, verify.stdout
    with image.open("rb") as f:
        mbr = f.read(1024)
        f.seek((total - 1) * 512)
        backup = f.read(512)
    assert mbr[510:512] == b"\x55\xaa" and mbr[446 + 4] == 0xEE, "protective MBR"
    assert mbr[512:520] == b"EFI PART" and backup[:8] == b"EFI PART", "primary and backup GPT headers"


def words(text: str) -> str:
    """A regex matching text even when the screen wrapped it (any whitespace between the words)."""
    return r"\s+".join(re.escape(w) for w in text.split())


def read_range(image: Path, start_sector: int, count: int) -> bytes:
    with image.open("rb") as f:
        f.seek(start_sector * 512)
        return f.read(count * 512)


def mtype(image: Path, start_sector: int, path: str) -> str:
    """A file from the FAT file system at start_sector of image (mtools, independent of the simulator)."""
    out = subprocess.run(["mtype", "-i", f"{image}@@{start_sector * 512}", f"::{path}"], capture_output=True,
                         timeout=30, check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return out.stdout.decode("latin-1")


def mdir(image: Path, start_sector: int, path: str = "/") -> str:
    out = subprocess.run(["mdir", "-i", f"{image}@@{start_sector * 512}", f"::{path}"], capture_output=True,
                         timeout=30, check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return out.stdout.decode("latin-1")


def boot_loader_on_screen(vm: SimVM, timeout: float = 90) -> None:
    """Wait until the graphics console shows the boot loader's yellow key hints (row 21 of 25).

    The default build draws the boot loader on the graphics console only, like esx-boot: no serial."""
    from PIL import Image  # test-only dependency (pillow is a labctl dependency)

    shot = vm.workdir / "bootloader.png"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vm.screendump(shot)
        with Image.open(shot) as im:
            rgb = im.convert("RGB")
            w, h = rgb.size
            top = (h - 25 * 19) // 2 + 21 * 19  # 80x25 text centred, 19-pixel character cells
            band = rgb.crop((0, max(0, top - 4), w, min(h, top + 23)))
            colors = band.getcolors(1 << 20) or []
            if sum(n for n, (r, g, b) in colors if r > 200 and g > 200 and b < 120) > 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"boot loader not on screen after {timeout:.0f}s (last: {shot})")


def boot_installer(vm: SimVM, options: str = "", since: int = 0, screen: bool = False) -> None:
    """At the boot loader: Enter, or Shift+O and append options, then wait for the installer to load.

    screen=False waits on the serial console (ISO built with serial_bootloader=True); screen=True on
    the graphics console and types blind, as a playbook must with the real esx-boot."""
    if screen:
        boot_loader_on_screen(vm)
    else:
        vm.wait(r"Automatic boot in 5 seconds\.\.\.", 60, since)
    if options:
        vm.type("O")
        if not screen:
            vm.expect(r"> runweasel cdromBoot", 15)
        vm.type(options)
        if not screen:
            vm.expect(re.escape(options[-8:]), 20)
    vm.key("enter")
    vm.expect(r"Loading ESXi installer", 30)


def to_disk_list(vm: SimVM) -> None:
    vm.expect(r"Welcome to the VMware ESXi 6\.7\.0 Installation", 30)
    vm.key("enter")
    vm.expect(r"\(ESC\) Do not Accept      \(F11\) Accept and Continue", 15)
    vm.key("f11")
    vm.expect(r"Select a Disk to Install or Upgrade[\s\S]*Remote:\s+\(none\)", 30)


def disk_rows(vm: SimVM) -> list[str]:
    """Rows of the disk list as last drawn (between Local: and Remote:)."""
    deadline = time.monotonic() + 15
    while True:  # the list may still be drawing: wait for its Remote: group
        text = vm.text()
        block = text[text.rindex("Local:"):] if "Local:" in text else ""
        if re.search(r"Remote:\s+\(none\)", block) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    block = block[: block.index("Remote:")]
    return [line.rstrip() for line in block.splitlines() if "(mpx." in line or "(none)" in line]


def select_disk(vm: SimVM, device: str) -> None:
    rows = disk_rows(vm)
    idx = next(i for i, r in enumerate(rows) if f"({device})" in r)
    for _ in rows:
        vm.key("up")
    for _ in range(idx):
        vm.key("down")
    time.sleep(0.3)
    vm.key("enter")


def finish_install(vm: SimVM, password: str = "VMware1!", timeout: float = 120) -> None:
    """From the keyboard screen to Installation Complete (accepting a hardware-virtualisation warning)."""
    vm.expect(r"Please select a keyboard layout", 20)
    vm.key("enter")
    vm.expect(r"Enter a root password", 10)
    vm.type(password)
    vm.key("tab")
    vm.type(password)
    vm.expect(r"Passwords match\.", 10)
    vm.key("enter")
    m = vm.expect(r"Error\(s\)/Warning\(s\) Found During System Scan|Confirm Install", 30)
    if m.group(0) != "Confirm Install":
        vm.expect(r"\(Esc\) Cancel    \(F9\) Back    \(Enter\) Continue", 10)
        vm.key("enter")
        vm.expect(r"Confirm Install", 10)
    vm.expect(r"\(Esc\) Cancel      \(F9\) Back      \(F11\) Install", 10)
    vm.key("f11")
    vm.expect(r"Installation Complete", timeout)
    vm.expect(r"\(Enter\) Reboot", 10)


def remaster(iso: Path, out: Path, boot_cfg: bytes, ks: bytes) -> Path:
    """A copy of iso with EFI/BOOT/BOOT.CFG replaced and /KS.CFG added (pycdlib keeps the El Torito entry)."""
    import pycdlib

    cd = pycdlib.PyCdlib()
    cd.open(str(iso))
    try:
        def names(path: str) -> dict[str, str]:  # the Rock Ridge / Joliet names the ISO also carries
            extra = {"rr_name": path.rsplit("/", 1)[1]} if cd.has_rock_ridge() else {}
            if cd.has_joliet():
                extra["joliet_path"] = path
            return extra

        cd.rm_file(iso_path="/EFI/BOOT/BOOT.CFG;1", **names("/EFI/BOOT/BOOT.CFG"))
        cd.add_fp(io.BytesIO(boot_cfg), len(boot_cfg), iso_path="/EFI/BOOT/BOOT.CFG;1", **names("/EFI/BOOT/BOOT.CFG"))
        cd.add_fp(io.BytesIO(ks), len(ks), iso_path="/KS.CFG;1", **names("/KS.CFG"))
        cd.write(str(out))
    finally:
        cd.close()
    return out
