"""Which disks are USB sticks, and which may be written: discovery and the safety verdict.

The decision logic is pure: :func:`assess_disks` takes parsed lsblk JSON, /proc/swaps text, the set
of disks holding the running system and a sysfs root, so tests feed fakes. :func:`probe` gathers the
real inputs. A disk is a *safe target* when it is USB (``TRAN`` is usb or ``SUBSYSTEMS`` contains usb;
``RM`` alone is unreliable), writable, has a medium, nothing of it is mounted or used as swap, it does
not hold ``/``, ``/boot`` or the running system, nothing (device-mapper, md) holds it, and it is no
larger than a stick (128 GiB; Etcher warns on "large drives" likewise: a bigger USB disk is far more
likely a backup drive than a lab stick).
Loop, RAM (zram, ram) and optical (sr) devices are never sticks.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labctl.errors import InputError, RefusedError

LSBLK_DISK_COLUMNS = "NAME,PATH,TYPE,TRAN,RM,HOTPLUG,RO,SIZE,MODEL,SERIAL,SUBSYSTEMS"
LSBLK_TREE_COLUMNS = "NAME,PATH,MOUNTPOINTS,FSTYPE"
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/usr", "/var", "/home")
STICK_MAX = 128 * 2**30  # a "128 GB" stick is 128e9 bytes; above this, --allow-large is needed


@dataclass
class BlockDisk:
    name: str
    path: str
    type: str
    tran: str | None
    removable: bool
    hotplug: bool
    ro: bool
    size: int
    model: str | None
    serial: str | None
    subsystems: str
    usb_id: str | None = None  # "vvvv:pppp" from sysfs
    mountpoints: list[str] = field(default_factory=list)  # of the disk and its partitions
    swap: list[str] = field(default_factory=list)
    holders: list[str] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)  # loop devices this disk backs
    system: bool = False
    usb: bool = False
    kind: str = "disk"  # disk | loop | ram | optical
    safe: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        bits = [self.path, human_size(self.size)]
        if self.model:
            bits.append(self.model.strip())
        if self.serial:
            bits.append(f"serial {self.serial.strip()}")
        if self.usb_id:
            bits.append(f"USB {self.usb_id}")
        return ", ".join(bits)


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _flag(v: object) -> bool:
    return v is True or v in ("1", 1, "true")


def _mounts_and_names(node: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Mount points and device paths of a lsblk tree node and all its descendants."""
    mounts = [m for m in (node.get("mountpoints") or [node.get("mountpoint")]) if m]
    paths = [str(node.get("path") or f"/dev/{node.get('name')}")]
    for child in node.get("children") or []:
        m, p = _mounts_and_names(child)
        mounts += m
        paths += p
    return mounts, paths


def parse_swaps(text: str) -> list[str]:
    """Device paths in /proc/swaps (the first column, header skipped)."""
    out = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if parts:
            out.append(parts[0].replace("\\040", " "))
    return out


def usb_id(sysfs: Path, name: str) -> str | None:
    """vendor:product of the USB device above /sys/block/NAME, walking up the device path."""
    try:
        dev = (sysfs / "block" / name / "device").resolve(strict=True)
    except OSError:
        return None
    for d in (dev, *dev.parents):
        vid, pid = d / "idVendor", d / "idProduct"
        if vid.is_file() and pid.is_file():
            return f"{vid.read_text().strip()}:{pid.read_text().strip()}"
        if d == sysfs or d == d.parent:
            break
    return None


def holders(sysfs: Path, name: str) -> list[str]:
    """Kernel names holding the disk or one of its partitions (device-mapper, md, bcache)."""
    base = sysfs / "block" / name
    out: list[str] = []
    try:
        dirs = [base, *[p for p in base.iterdir() if (p / "partition").exists()]]
    except OSError:
        return out
    for d in dirs:
        with contextlib.suppress(OSError):
            out += sorted(h.name for h in (d / "holders").iterdir())
    return out


def in_kernel_folder(path: str) -> bool:
    """/dev (but its /dev/shm), /proc and /sys: names there are the kernel's, never a new image file's
    (/dev/sdb while the stick is unplugged)."""
    real = os.path.realpath(path)
    if real == "/dev/shm" or real.startswith("/dev/shm/"):
        return False
    return any(real == top or real.startswith(top + "/") for top in ("/dev", "/proc", "/sys"))


def loop_users(path: str, sysfs: Path = Path("/sys")) -> list[str]:
    """The loop devices whose backing file is ``path`` (a disk or a regular file): writing it would
    change a disk that is in use, which neither O_EXCL nor the holders list shows."""
    real = os.path.realpath(path)
    out = []
    for f in sorted((sysfs / "block").glob("loop*/loop/backing_file")):
        with contextlib.suppress(OSError):
            if f.read_text().strip().removesuffix(" (deleted)") == real:
                out.append(f.parent.parent.name)
    return out


def assess_disks(disks_json: dict[str, Any], tree_json: dict[str, Any], swaps_text: str,
                 system_disks: Iterable[str], sysfs: Path = Path("/sys")) -> list[BlockDisk]:
    """Disks from ``lsblk -J -b -d -o LSBLK_DISK_COLUMNS`` with their verdicts."""
    trees = {str(n.get("name")): n for n in tree_json.get("blockdevices") or []}
    swaps = set(parse_swaps(swaps_text))
    system = set(system_disks)
    out = []
    for d in disks_json.get("blockdevices") or []:
        name = str(d.get("name"))
        disk = BlockDisk(
            name=name, path=str(d.get("path") or f"/dev/{name}"), type=str(d.get("type") or ""),
            tran=d.get("tran"), removable=_flag(d.get("rm")), hotplug=_flag(d.get("hotplug")),
            ro=_flag(d.get("ro")), size=int(d.get("size") or 0), model=d.get("model"),
            serial=d.get("serial"), subsystems=str(d.get("subsystems") or ""),
        )
        mounts, paths = _mounts_and_names(trees.get(name, {"name": name, "path": disk.path}))
        disk.mountpoints = mounts
        disk.swap = sorted(p for p in paths if p in swaps)
        disk.holders = holders(sysfs, name)
        disk.loops = loop_users(disk.path, sysfs)
        disk.system = name in system or any(m in SYSTEM_MOUNTS for m in mounts)
        disk.usb = disk.tran == "usb" or "usb" in disk.subsystems.split(":")
        disk.usb_id = usb_id(sysfs, name) if disk.usb else None
        disk.kind = _kind(disk)
        disk.safe, disk.reason = verdict(disk, allow_non_usb=False)
        out.append(disk)
    return out


def _kind(d: BlockDisk) -> str:
    if d.type == "loop" or d.name.startswith("loop"):
        return "loop"
    if d.type == "rom" or d.name.startswith("sr"):
        return "optical"
    if d.name.startswith(("zram", "ram")):
        return "ram"
    return "disk"


def verdict(d: BlockDisk, allow_non_usb: bool, allow_large: bool = False) -> tuple[bool, str]:
    """(may be written, why). ``allow_non_usb`` admits non-USB disks and loop devices, ``allow_large``
    disks over STICK_MAX; neither ever admits a mounted, swapping, held or system disk, a RAM disk
    or an optical drive."""
    if d.system:
        return False, "holds the running system (/, /boot or the root file system's disk)"
    if d.mountpoints:
        return False, f"mounted at {', '.join(sorted(set(d.mountpoints)))}"
    if d.swap:
        return False, f"used as swap ({', '.join(d.swap)})"
    if d.holders:
        return False, f"in use by {', '.join(d.holders)} (device-mapper / md)"
    if d.loops:
        return False, f"backs loop device {', '.join(d.loops)} ('losetup -d' frees it)"
    if d.kind in ("ram", "optical"):
        return False, f"a {'RAM disk' if d.kind == 'ram' else 'optical drive'}, never a stick"
    if d.type not in ("disk", "loop"):
        return False, f"not a whole disk (type {d.type})"
    if d.ro:
        return False, "read-only"
    if d.size == 0:
        return False, "no medium"
    if d.kind == "loop" and not allow_non_usb:
        return False, "a loop device, never a stick (--allow-non-usb admits it)"
    if not d.usb and not allow_non_usb:
        return False, f"not USB (transport {d.tran or 'unknown'}; --allow-non-usb admits it)"
    if d.size > STICK_MAX and not allow_large:
        return False, (f"{human_size(d.size)} is larger than a lab stick (over {human_size(STICK_MAX)}): "
                       "a USB hard disk? --allow-large admits it")
    return True, "USB stick, not in use" if d.usb else "not in use (admitted by --allow-non-usb)"


# ------------------------------------------------------------------------------------ real probes


def _lsblk(columns: str, device: str | None, whole_only: bool) -> dict[str, Any]:
    argv = ["lsblk", "-J", "-b", *(["-d"] if whole_only else []), "-o", columns]
    if device:
        argv.append(device)
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"lsblk failed: {exc}") from None
    if res.returncode != 0:
        raise InputError(f"lsblk: {res.stderr.strip() or 'failed'}")
    data: dict[str, Any] = json.loads(res.stdout or "{}")
    return data


def disk_of_dev(dev: int, sysfs: Path = Path("/sys")) -> set[str]:
    """Whole-disk kernel names under a device number, following device-mapper/md slaves."""
    try:
        node = (sysfs / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}").resolve(strict=True)
    except OSError:
        return set()
    return _whole_disks(node)


def _whole_disks(node: Path) -> set[str]:
    if (node / "partition").exists():
        node = node.parent
    slaves = node / "slaves"
    try:
        below = list(slaves.iterdir())
    except OSError:
        below = []
    if below:
        out: set[str] = set()
        for s in below:
            out |= _whole_disks(s.resolve())
        return out
    return {node.name}


def system_disks(sysfs: Path = Path("/sys")) -> set[str]:
    """Disks holding /, /boot and the running interpreter, from device numbers (no lsblk guess)."""
    out: set[str] = set()
    for p in ("/", "/boot", "/boot/efi", "/usr", "/var", os.path.dirname(os.path.realpath(sys.executable))):
        try:
            out |= disk_of_dev(os.stat(p).st_dev, sysfs)
        except OSError:
            continue
    return out


def probe(device: str | None = None) -> list[BlockDisk]:
    """The machine's disks (or one disk) with verdicts."""
    try:
        swaps = Path("/proc/swaps").read_text()
    except OSError:
        swaps = ""
    return assess_disks(_lsblk(LSBLK_DISK_COLUMNS, device, True), _lsblk(LSBLK_TREE_COLUMNS, device, False),
                        swaps, system_disks())


# ------------------------------------------------------------------------------------ targets


@dataclass
class Target:
    """Where an operation writes: a whole block device (with its BlockDisk record) or a regular file."""

    path: str
    is_block: bool
    size: int  # bytes; 0 for a file that does not exist yet
    exists: bool
    disk: BlockDisk | None = None
    # what was checked: ("block", st_rdev), ("file", st_dev, st_ino) or ("new", path). The writer opens
    # the path again after the confirmation and refuses unless it is still this (see imaging.Dev's expect)
    ident: tuple[object, ...] | None = None

    def describe(self) -> str:
        if self.disk:
            return self.disk.describe()
        return f"{self.path} (file, {human_size(self.size)})" if self.exists else f"{self.path} (new file)"


def resolve_target(path: str, *, allow_non_usb: bool, allow_large: bool = False,
                   disks: list[BlockDisk] | None = None, sysfs: Path = Path("/sys")) -> Target:
    """Check that ``path`` may be written; RefusedError (exit 2) saying why not."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        if path.startswith("/dev/") or in_kernel_folder(real):
            raise InputError(f"{path}: no such device") from None
        if not os.path.isdir(os.path.dirname(os.path.abspath(real))):
            raise InputError(f"{path}: its folder does not exist") from None
        return Target(real, False, 0, False, ident=("new", real))
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        if users := loop_users(real, sysfs):
            raise RefusedError(f"{path} backs loop device {', '.join(users)} ('losetup -d' frees it); refused")
        return Target(real, False, st.st_size, True, ident=("file", st.st_dev, st.st_ino))
    if not stat.S_ISBLK(st.st_mode):
        raise RefusedError(f"{path}: neither a block device nor a regular file")
    node = sysfs / "dev" / "block" / f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    if (node / "partition").exists():
        whole = node.resolve().parent.name
        raise RefusedError(f"{path} is a partition; give the whole disk (/dev/{whole})")
    name = node.resolve().name if node.exists() else os.path.basename(real)
    found = [d for d in (disks if disks is not None else probe(real)) if d.name == name]
    if not found:
        raise RefusedError(f"{path}: lsblk does not know this disk")
    disk = found[0]
    ok, why = verdict(disk, allow_non_usb, allow_large)
    if not ok:
        raise RefusedError(f"{path} ({disk.describe()}): refused: {why}")
    return Target(real, True, disk.size, True, disk, ident=("block", st.st_rdev))
