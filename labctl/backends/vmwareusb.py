"""The passed-through stick as the Linux host sees it, by vendor:product id or bus path (sysfs).

Before a VMware seat powers on, labctl says whether the stick is there at all and whether the host has
one of its partitions mounted (VMware then cannot take it from the host's driver, and the install would
only fail later, at the installer's empty disk list). After power-off the same lookup names the block
device, so the stick can be read on the host when the user may read it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from labctl.spec import UsbPassthrough

SYSFS = Path("/sys")
MOUNTS = Path("/proc/self/mounts")


@dataclass(frozen=True)
class HostStick:
    """One USB device on the host matching the lab's stick."""

    sysname: str  # e.g. 1-3.2
    block: tuple[str, ...]  # e.g. ("/dev/sdb",)
    mounted: tuple[str, ...]  # e.g. ("/dev/sdb1 on /media/usb",)


def describe(usb: UsbPassthrough) -> str:
    if usb.path is not None:
        return f"at USB path {usb.path}"
    assert usb.vendor_id is not None and usb.product_id is not None
    return f"{usb.vendor_id:04x}:{usb.product_id:04x}"


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _sysname_for_path(path: str) -> str:
    """VMware's bus path 1/3/2 (bus 1, port 3, then port 2) -> the kernel's device name 1-3.2."""
    bus, *ports = path.split("/")
    return f"{bus}-{'.'.join(ports)}"


def find(usb: UsbPassthrough, sysfs: Path = SYSFS, mounts: Path = MOUNTS) -> list[HostStick]:
    """The host USB devices matching ``usb`` with their block devices and mounted partitions."""
    devices = sysfs / "bus" / "usb" / "devices"
    try:
        entries = sorted(devices.iterdir())
    except OSError:
        return []
    wanted = _sysname_for_path(usb.path) if usb.path is not None else None
    try:
        mount_lines = mounts.read_text().splitlines()
    except OSError:
        mount_lines = []
    out = []
    for dev in entries:
        if ":" in dev.name:  # an interface, not a device
            continue
        if wanted is not None:
            if dev.name != wanted:
                continue
        else:
            vid, pid = _read(dev / "idVendor"), _read(dev / "idProduct")
            if not vid or not pid or (int(vid, 16), int(pid, 16)) != (usb.vendor_id, usb.product_id):
                continue
        real = dev.resolve()
        block = sorted({f"/dev/{b.name}" for b in real.glob("*/host*/target*/*/block/*")})
        mounted = []
        for line in mount_lines:
            parts = line.split()
            if len(parts) >= 2 and any(parts[0] == b or parts[0].startswith(b) for b in block):
                mounted.append(f"{parts[0]} on {parts[1].replace(chr(92) + '040', ' ')}")
        out.append(HostStick(dev.name, tuple(block), tuple(mounted)))
    return out


def before_start(usb: UsbPassthrough, sysfs: Path = SYSFS, mounts: Path = MOUNTS,
                 platform: str = sys.platform) -> tuple[str, str]:
    """('ok'|'missing'|'mounted'|'unknown', one line for the user) about the stick before power-on."""
    what = describe(usb)
    if not platform.startswith("linux"):
        return "unknown", f"the stick {what}: this host's USB devices are not checked before power-on"
    found = find(usb, sysfs, mounts)
    if not found:
        return "missing", (f"the stick {what} is not plugged into this host (no such device in "
                           f"{sysfs / 'bus/usb/devices'}); VMware will start the VM without it")
    mounted = [m for s in found for m in s.mounted]
    if mounted:
        return "mounted", (f"the stick {what} is mounted on the host ({'; '.join(mounted)}): unmount it, "
                           "or VMware cannot take it from the host")
    blocks = ", ".join(b for s in found for b in s.block) or "no block device yet"
    return "ok", f"the stick {what} is on this host ({found[0].sysname}, {blocks}), not mounted"


def readable_device(usb: UsbPassthrough, sysfs: Path = SYSFS, mounts: Path = MOUNTS) -> tuple[Path | None, str]:
    """The stick's block device when exactly one matches and this user may read it; else None and why."""
    found = find(usb, sysfs, mounts)
    what = describe(usb)
    blocks = [b for s in found for b in s.block]
    if not blocks:
        return None, f"the stick {what} is not on this host as a block device"
    if len(blocks) > 1:
        return None, f"several block devices match the stick {what}: {', '.join(blocks)}"
    if not os.access(blocks[0], os.R_OK):
        return None, f"no permission to read {blocks[0]} (the stick {what}); run as a user who may"
    return Path(blocks[0]), f"the stick {what} is {blocks[0]}"
