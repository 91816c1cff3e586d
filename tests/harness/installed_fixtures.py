"""Helpers and fixtures for the installed-system e2e tests: drive the DCUI and the ESXi Shell of the
simulator the way a playbook drives a real host, capture command output from the serial console, and make an
installed stick on the host (no installer run) from the ISO's own partition payloads.

Facts used (reference §4 and measured here): the DCUI and the shell console print through ConOut, so the
serial console carries their text; trailing blanks never reach it (OVMF's terminal turns them into cursor
moves), so waits match "login:" and "[root@localhost:~]" without the trailing space. Alt+F1 is Alt held +
F1: OVMF reports it as scan F1 with EFI_LEFT_ALT_PRESSED (QMP input-send-event and VNC alike).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from harness.simvm import SimVM

from labctl import layouts
from labctl.errors import InputError

PROMPT = r"\[root@localhost:~\]"
DCUI_MAIN = r"To manage this host go to:"
ROOT_PASSWORD = "VMware1!lab"  # test-only; chosen by the kickstart below
KICKSTART = f"""# labctl e2e: scripted install onto the first USB stick
vmaccepteula
rootpw {ROOT_PASSWORD}
install --firstdisk=usb --novmfsondisk
network --bootproto=dhcp --device=vmnic0
reboot
""".encode()
CUSTOMIZATION_ITEMS = [
    "Configure Password", "Configure Lockdown Mode", "Configure Management Network", "Restart Management Network",
    "Test Management Network", "Network Restore Options", "View Support Information", "View System Logs",
    "Troubleshooting Options", "Reset System Configuration", "Configure Keyboard",
]
BOOTBANK_START = 8224  # partition 5 (reference §3)


def build_installed_iso(base: Path) -> Path:
    from labctl.sim.build import build_iso

    ks = base / "ks-installed.cfg"
    ks.write_bytes(KICKSTART)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABCTL_CACHE_DIR", str(base / "labctl-cache"))
        try:
            return build_iso("fast", kickstart=ks)
        except InputError as exc:
            pytest.skip(f"cannot build the simulator here: {exc}")


# ------------------------------------------------------------------------------------------------- keys

def alt(vm: SimVM, key: str) -> None:
    """Alt held + key (f1/f2): the console switch keys."""
    vm._since = vm.mark()
    vm._event("alt", True)
    time.sleep(vm.key_delay)
    vm.tap(key)
    vm._event("alt", False)
    time.sleep(vm.key_delay)


def wait_dcui(vm: SimVM, since: int, timeout: float = 120) -> None:
    """The DCUI's main screen after a boot of the stick (the boot loader draws on the graphics console only)."""
    vm.wait(r"VMware ESXi 6\.7\.0 \(VMKernel Release Build 8169922\)[\s\S]*" + DCUI_MAIN
            + r"[\s\S]*<F2> Customize System/View Logs[\s\S]*<F12> Shut Down/Restart", timeout, since)


def dcui_login(vm: SimVM, password: str) -> None:
    """At an Authentication Required dialog: the cursor already waits in the password field."""
    vm.expect(r"Authentication Required[\s\S]*Login Name:[\s\S]*root", 15)
    vm.type(password)
    vm.key("enter")


def enable_shell(vm: SimVM, password: str) -> None:
    """DCUI: F2, log in, Troubleshooting Options, Enable ESXi Shell, Esc back to the main screen."""
    vm.key("f2")
    dcui_login(vm, password)
    vm.expect(r"System Customization", 15)
    vm.key(*["down"] * CUSTOMIZATION_ITEMS.index("Troubleshooting Options"))
    vm.expect(r"To view various troubleshooting mode\s+options", 15)
    vm.key("enter")
    vm.expect(r"Troubleshooting Mode Options[\s\S]*ESXi Shell is Disabled", 15)
    vm.key("enter")
    vm.expect(r"ESXi Shell is Enabled", 15)
    vm.key("esc")
    vm.expect(r"System Customization", 15)
    vm.key("esc")
    vm.expect(DCUI_MAIN, 15)


def shell_login(vm: SimVM, password: str) -> None:
    """Alt+F1, then log in as root at the shell console's login prompt."""
    alt(vm, "f1")
    vm.expect(r"login:", 15)
    vm.type("root")
    vm.key("enter")
    vm.expect(r"Password:", 15)
    vm.type(password)
    vm.key("enter")
    vm.expect(PROMPT, 15)


def sh(vm: SimVM, cmd: str, timeout: float = 30) -> str:
    """Run cmd at the shell prompt; its output (the echoed command removed, blank lines dropped)."""
    start = vm.mark()
    vm.type(cmd)
    vm.key("enter")
    m = vm.wait(PROMPT, timeout, start)
    captured = vm.text()[start:m.start()]
    # skip the echo: the command's characters in order (the screen may have wrapped it)
    want = re.sub(r"\s", "", cmd)
    i = j = 0
    while i < len(captured) and j < len(want):
        if captured[i] == want[j]:
            j += 1
        i += 1
    lines = [ln.rstrip() for ln in captured[i:].splitlines()]
    return "\n".join(ln for ln in lines if ln.strip())


# --------------------------------------------------------------------------------- stick made on the host

def fnv1a64(text: str) -> str:
    """The installer's root password hash (sim_pwhash in labctl/sim/src/lib/util.c)."""
    h = 0xCBF29CE484222325
    for ch in text:
        h ^= ord(ch) & 0xFF
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"fnv1a64:{h:016x}"


def _fill(data: bytes, name: str, value: str) -> bytes:
    """Overwrite an @@NAME@@ placeholder line value in place, padded with spaces (as the installer does)."""
    tok = f"@@{name}@@".encode()
    i = data.find(tok)
    if i < 0:
        return data
    end = data.index(b"\n", i)
    v = value.encode()
    assert len(v) <= end - i, name
    return data[:i] + v + b" " * (end - i - len(v)) + data[end:]


def make_installed_stick(iso: Path, image: Path, size: int, password: str, prefer_vmklinux: bool = True) -> None:
    """What the installer writes to a USB stick (GPT of reference §3 + the ISO's payloads, placeholders
    filled in), done on the host in a second: for tests of the installed system that do not need the
    installer."""
    total = size // 512
    rows = layouts.expected_layout(total, "usb")
    layouts.write_gpt(str(image), total, rows)
    start = {e.number: e.start for e in rows}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/PAYLOAD", tmp],
                       capture_output=True, timeout=60, check=True)
        fd = os.open(image, os.O_RDWR)
        try:
            for n in (1, 5, 6, 8):
                data = (Path(tmp) / f"P{n}.IMG").read_bytes()
                if n == 5:
                    for k, v in (("KERNELOPT", "preferVMklinux=TRUE" if prefer_vmklinux else ""),
                                 ("DISK", "mpx.vmhba32:C0:T0:L0"), ("MEDIA", "usb"), ("KEYBOARD", "US Default"),
                                 ("ROOTPW", fnv1a64(password)),
                                 ("PREFERVMKLINUX", "TRUE" if prefer_vmklinux else "FALSE")):
                        data = _fill(data, k, v)
                os.pwrite(fd, data, start[n] * 512)
        finally:
            os.close(fd)


def make_vmfs_disk(image: Path, size: int) -> None:
    """A local disk whose GPT holds one VMFS partition (what the installed system looks for as a datastore)."""
    total = size // 512
    layouts.write_gpt(str(image), total, [layouts.TableEntry(1, 2048, total - 34, layouts.VMFS, "vmfs", 0)])


def state_cfg(image: Path, bootbank_start: int = BOOTBANK_START) -> dict[str, str]:
    """The bootbank's state file read on the host with mtools (key -> value, padding trimmed); the
    bootbank starts at 8224 on ESXi 6.x, at 208896 on 7.0/8.0."""
    out = subprocess.run(["mtype", "-i", f"{image}@@{bootbank_start * 512}", "::/state.cfg"], capture_output=True,
                         timeout=30, check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout.decode()
    pairs = (ln.split("=", 1) for ln in out.splitlines() if "=" in ln and not ln.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}
