"""GPT reader and writer, partedUtil ``getptbl`` format, and the documented ESXi layouts (6.x and 7.0/8.0).

Dependency-free (stdlib only). Reads a GPT from an image file or a block device: the protective MBR,
the primary and the backup header, the partition entries, every CRC32. Numbering follows partedUtil:
a partition's number is its slot in the entry array plus one, and tables list partitions in on-disk
order (by start sector), as ``partedUtil getptbl`` does::

    gpt
    2088 255 63 33554432
    1 64 8191 C12A7328F81F11D2BA4B00A0C93EC93B systemPartition 128
    5 8224 520191 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative 0
    ...

The attribute column is partedUtil's one-byte flag: 128 when the GPT entry has the "legacy BIOS
bootable" attribute (bit 2) set, else 0. The ESXi 6.x layouts (``esxi6``) are the table of the 6.7
installer's documentation; the 7.0/8.0 layouts (``esxi8``: 1, 5, 6, 7 = OSData, maybe 8 = datastore) follow
the rule that fits every published 7.0/8.0 ``partedUtil getptbl`` output (see :func:`esxi8_layout`).
"""

from __future__ import annotations

import itertools
import json
import mmap
import os
import stat
import struct
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from labctl.errors import InputError

SECTOR = 512
GIB = 1 << 30
HEADS, SECTORS_PER_TRACK = 255, 63
ATTR_LEGACY_BOOTABLE = 1 << 2  # GPT attribute bit 2, shown by partedUtil as 128
PARTED_BOOTABLE = 128

_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")  # 92 bytes
_ENTRY = struct.Struct("<16s16sQQQ72s")  # 128 bytes
_SIGNATURE = b"EFI PART"
_REVISION = 0x00010000

ESP = "C12A7328F81F11D2BA4B00A0C93EC93B"
BASIC_DATA = "EBD0A0A2B9E5443387C068B6B72699C7"
VMK_DIAGNOSTIC = "9D27538040AD11DBBF97000C2911D1B8"
VMFS = "AA31E02A400F11DB9590000C2911D1B8"
VMFSL = "4EB2EA3978554790A79EFAE495E21F8D"  # ESXi 7.0+ OSData

TYPE_NAMES = {
    ESP: "systemPartition",
    BASIC_DATA: "linuxNative",
    VMK_DIAGNOSTIC: "vmkDiagnostic",
    VMFS: "vmfs",
    "9198EFFC31C011DB8F78000C2911D1B8": "vmkReservedMemory",
    "4EB2EA3978554790A79EFAE495E21F8D": "vmfsl",
    "0FC63DAF848347728E793D69D8477DE4": "linuxNative",
    "0657FD6DA4AB43C484E50933C84B4F4F": "linuxSwap",
    "E6D6D379F50744C2A23C238F2A3DF928": "linuxLvm",
    "A19D880F05FC4D3BA006743F0F84911E": "linuxRaid",
    "E3C9E3160B5C4DB8817DF92DF00215AE": "msReserved",
}


class GptError(InputError):
    """No usable GPT (or the input cannot be read): exit 2."""


def guid_str(raw: bytes) -> str:
    """On-disk (mixed-endian) GUID bytes -> partedUtil's form: uppercase, no dashes."""
    return uuid.UUID(bytes_le=raw).hex.upper()


def guid_bytes(text: str) -> bytes:
    """'C12A7328-F81F-11D2-...' or 'C12A7328F81F11D2...' -> on-disk bytes."""
    return uuid.UUID(hex=text.replace("-", "")).bytes_le


def type_name(type_guid: str) -> str:
    return TYPE_NAMES.get(type_guid.upper(), "unknown")


@dataclass(frozen=True)
class TableEntry:
    """One line of a partedUtil-style table: what a layout says about one partition."""

    number: int
    start: int
    end: int
    type_guid: str
    type_name: str
    attr: int

    def line(self) -> str:
        return f"{self.number} {self.start} {self.end} {self.type_guid} {self.type_name} {self.attr}"


@dataclass(frozen=True)
class Table:
    """A partedUtil ``getptbl`` table: label, geometry and the partitions in on-disk order."""

    label: str
    total_sectors: int
    entries: tuple[TableEntry, ...]
    cylinders: int = -1

    def __post_init__(self) -> None:
        if self.cylinders < 0:
            object.__setattr__(self, "cylinders", self.total_sectors // (HEADS * SECTORS_PER_TRACK))


@dataclass(frozen=True)
class Partition:
    number: int  # slot in the entry array + 1 (partedUtil numbering)
    first_lba: int
    last_lba: int
    type_guid: str
    unique_guid: str
    attributes: int
    name: str

    @property
    def sectors(self) -> int:
        return self.last_lba - self.first_lba + 1

    @property
    def type_name(self) -> str:
        return type_name(self.type_guid)

    @property
    def parted_attr(self) -> int:
        return PARTED_BOOTABLE if self.attributes & ATTR_LEGACY_BOOTABLE else 0

    def entry(self) -> TableEntry:
        return TableEntry(self.number, self.first_lba, self.last_lba, self.type_guid, self.type_name,
                          self.parted_attr)


@dataclass
class Gpt:
    """A GPT as read from a disk: the header fields that matter, the partitions, and what is wrong."""

    sector_size: int
    total_sectors: int
    disk_guid: str
    first_usable: int
    last_usable: int
    partitions: list[Partition]
    primary_entries_lba: int
    backup_header_lba: int
    backup_entries_lba: int
    entries_sectors: int
    pmbr_ok: bool
    primary_ok: bool
    backup_ok: bool
    problems: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.total_sectors * self.sector_size

    def table(self) -> Table:
        return Table("gpt", self.total_sectors, tuple(p.entry() for p in self.partitions))

    def metadata_extents(self) -> list[tuple[int, int, str]]:
        """(first_lba, last_lba, name) of the two GPT areas: MBR + primary header + entries, and
        the backup entries + backup header."""
        primary_end = max(1, self.primary_entries_lba + self.entries_sectors - 1)
        backup_start = min(self.backup_entries_lba, self.backup_header_lba)
        backup_end = max(self.backup_entries_lba + self.entries_sectors - 1, self.backup_header_lba)
        return [(0, primary_end, "gpt-primary"), (backup_start, backup_end, "gpt-backup")]

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["table"] = format_getptbl(self)
        return d


# ----------------------------------------------------------------------------------------- reading


Reader = Callable[[int, int], bytes]


def _blk_sector_size(fd: int) -> int:
    import fcntl

    buf = fcntl.ioctl(fd, 0x1268, b"\0\0\0\0")  # BLKSSZGET
    return int(struct.unpack("<i", buf)[0])


def open_reader(path: str) -> tuple[Reader, int, int | None, Callable[[], None]]:
    """A positional reader over a file or block device: (read, size, sector size or None, close).

    Block devices are read with O_DIRECT through an aligned buffer so what comes back is what the
    device holds, not a stale page cache.
    """
    try:
        st = os.stat(path)
        is_blk = stat.S_ISBLK(st.st_mode)
        if not (is_blk or stat.S_ISREG(st.st_mode)):
            raise GptError(f"{path}: not a regular file or block device")
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if is_blk else 0))
    except OSError as exc:
        raise GptError(f"{path}: {exc.strerror}") from None
    try:
        size = os.lseek(fd, 0, os.SEEK_END)  # EINVAL on files that have no end (/proc/self/mem)
        sector = _blk_sector_size(fd) if is_blk else None
    except OSError as exc:
        os.close(fd)
        raise GptError(f"{path}: {exc.strerror}") from None
    if not is_blk:
        def read(offset: int, length: int) -> bytes:
            return os.pread(fd, length, offset)
        return read, size, sector, lambda: os.close(fd)
    align = sector or SECTOR

    def read_direct(offset: int, length: int) -> bytes:
        start = offset - offset % align
        stop = -(-(offset + length) // align) * align
        stop = min(stop, size)
        buf = mmap.mmap(-1, max(stop - start, align))  # page aligned, as O_DIRECT wants
        n = os.preadv(fd, [buf], start) if stop > start else 0
        return bytes(buf[offset - start: min(offset - start + length, n)])

    return read_direct, size, sector, lambda: os.close(fd)


def read_gpt(path: str) -> Gpt:
    """Read the GPT of an image file or block device; GptError when there is none or it is unreadable."""
    read, size, sector, close = open_reader(path)
    try:
        return read_gpt_from(read, size, sector, name=path)
    except OSError as exc:
        raise GptError(f"{path}: {exc.strerror}") from None
    finally:
        close()


def _parse_header(raw: bytes, lba: int) -> tuple[tuple[int, ...], list[str]]:
    """Header fields and problems ('' problems list = valid)."""
    if len(raw) < _HEADER.size or raw[:8] != _SIGNATURE:
        return (), [f"no GPT header signature at LBA {lba}"]
    (_sig, rev, hsize, hcrc, _res, my_lba, alt_lba, first, last, dguid, ent_lba, n_ent, ent_size,
     ent_crc) = _HEADER.unpack_from(raw)
    problems = []
    if hsize < _HEADER.size or hsize > len(raw):
        return (), [f"GPT header at LBA {lba}: bad header size {hsize}"]
    check = bytearray(raw[:hsize])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(check) != hcrc:
        problems.append(f"GPT header at LBA {lba}: header CRC32 mismatch")
    if my_lba != lba:
        problems.append(f"GPT header at LBA {lba}: says it is at LBA {my_lba}")
    if ent_size < _ENTRY.size or ent_size % 8 or n_ent == 0 or n_ent * ent_size > 1 << 24:
        problems.append(f"GPT header at LBA {lba}: bad entry array ({n_ent} x {ent_size})")
    fields = (rev, my_lba, alt_lba, first, last, int.from_bytes(dguid, "little"), ent_lba, n_ent,
              ent_size, ent_crc)
    return fields, problems


def _parse_entries(raw: bytes, n: int, size: int) -> list[Partition]:
    parts = []
    for i in range(n):
        tguid, uguid, first, last, attrs, name = _ENTRY.unpack_from(raw, i * size)
        if tguid == b"\0" * 16:
            continue
        text = name.decode("utf-16-le", errors="replace").split("\0", 1)[0]
        parts.append(Partition(i + 1, first, last, guid_str(tguid), guid_str(uguid), attrs, text))
    return sorted(parts, key=lambda p: (p.first_lba, p.number))


def read_gpt_from(read: Reader, size: int, sector: int | None = None, name: str = "disk") -> Gpt:
    """Read a GPT through ``read(offset, length)`` from a disk of ``size`` bytes."""
    if sector is None:
        sector = SECTOR
        if read(SECTOR, 8) != _SIGNATURE and read(4096, 8) == _SIGNATURE:
            sector = 4096
    total = size // sector
    if total < 3:
        raise GptError(f"{name}: too small to hold a GPT ({size} bytes)")
    mbr = read(0, SECTOR)
    pmbr_ok = len(mbr) == SECTOR and mbr[510:512] == b"\x55\xaa" and any(
        mbr[446 + 16 * i + 4] == 0xEE for i in range(4))
    problems: list[str] = [] if pmbr_ok else ["no protective MBR (type 0xEE, signature 55AA) at LBA 0"]

    def load(lba: int) -> tuple[tuple[int, ...], list[Partition] | None, list[str]]:
        fields, probs = _parse_header(read(lba * sector, sector), lba)
        if not fields or probs:
            return fields, None, probs
        ent_lba, n_ent, ent_size, ent_crc = fields[6], fields[7], fields[8], fields[9]
        raw = read(ent_lba * sector, n_ent * ent_size)
        if len(raw) < n_ent * ent_size:
            return fields, None, [f"GPT entries at LBA {ent_lba}: beyond the end of the disk"]
        if zlib.crc32(raw) != ent_crc:
            return fields, None, [f"GPT entries at LBA {ent_lba}: entry array CRC32 mismatch"]
        return fields, _parse_entries(raw, n_ent, ent_size), []

    p_fields, p_parts, p_probs = load(1)
    problems += [f"primary: {p}" for p in p_probs]
    backup_lba = p_fields[2] if p_fields and 0 < p_fields[2] < total else total - 1
    b_fields, b_parts, b_probs = load(backup_lba)
    if b_probs and backup_lba != total - 1:
        backup_lba = total - 1
        b_fields, b_parts, b_probs = load(backup_lba)
    problems += [f"backup: {p}" for p in b_probs]
    if p_parts is None and b_parts is None:
        raise GptError(f"{name}: no valid GPT ({'; '.join(problems)})")
    if p_parts is not None and b_parts is not None:
        if p_parts != b_parts:
            problems.append("primary and backup partition entries differ")
        if b_fields[2] != 1:
            problems.append(f"backup header points to LBA {b_fields[2]} for the primary, not 1")
    fields = p_fields if p_parts is not None else b_fields
    parts = p_parts if p_parts is not None else b_parts
    assert parts is not None
    _rev, _my, _alt, first, last, dguid, _ent_lba, n_ent, ent_size, _crc = fields
    ent_sectors = -(-(n_ent * ent_size) // sector)
    # entry positions only from a header that checked out; a damaged one's fields are noise
    primary_entries = p_fields[6] if p_parts is not None else 2
    backup_entries = b_fields[6] if b_parts is not None else backup_lba - ent_sectors
    for p in parts:
        if p.first_lba < first or p.last_lba > last or p.last_lba < p.first_lba:
            problems.append(f"partition {p.number} ({p.first_lba}-{p.last_lba}) outside the usable "
                            f"area {first}-{last}")
    for a, b in itertools.pairwise(parts):
        if b.first_lba <= a.last_lba:
            problems.append(f"partitions {a.number} and {b.number} overlap")
    return Gpt(
        sector_size=sector, total_sectors=total,
        disk_guid=guid_str(dguid.to_bytes(16, "little")),
        first_usable=first, last_usable=last, partitions=parts,
        primary_entries_lba=primary_entries, backup_header_lba=backup_lba,
        backup_entries_lba=backup_entries, entries_sectors=ent_sectors,
        pmbr_ok=pmbr_ok, primary_ok=p_parts is not None, backup_ok=b_parts is not None,
        problems=problems,
    )


# ----------------------------------------------------------------------------------------- writing


def build_gpt(total_sectors: int, entries: Sequence[TableEntry], *, disk_guid: str | None = None,
              sector: int = SECTOR, n_entries: int = 128) -> dict[int, bytes]:
    """The bytes of a GPT for a disk of ``total_sectors``: {byte offset: data} for the protective
    MBR + primary header + entries, and the backup entries + header. Partition numbers pick the slot."""
    disk_guid = disk_guid or str(uuid.uuid4())
    ent_bytes = bytearray(n_entries * _ENTRY.size)
    for e in entries:
        if not 1 <= e.number <= n_entries:
            raise ValueError(f"partition number {e.number} out of 1..{n_entries}")
        attrs = ATTR_LEGACY_BOOTABLE if e.attr & PARTED_BOOTABLE else 0
        name = e.type_name.encode("utf-16-le")[:72]
        uniq = uuid.uuid5(uuid.NAMESPACE_OID, f"{disk_guid}:{e.number}").bytes_le
        _ENTRY.pack_into(ent_bytes, (e.number - 1) * _ENTRY.size, guid_bytes(e.type_guid), uniq,
                         e.start, e.end, attrs, name)
    ent_sectors = -(-len(ent_bytes) // sector)
    last_lba = total_sectors - 1
    first_usable = 2 + ent_sectors
    last_usable = last_lba - 1 - ent_sectors
    dguid = guid_bytes(disk_guid)
    ent_crc = zlib.crc32(ent_bytes)

    def header(my: int, alt: int, ent_lba: int) -> bytes:
        h = bytearray(_HEADER.pack(_SIGNATURE, _REVISION, _HEADER.size, 0, 0, my, alt, first_usable,
                                   last_usable, dguid, ent_lba, n_entries, _ENTRY.size, ent_crc))
        struct.pack_into("<I", h, 16, zlib.crc32(h))
        return bytes(h) + b"\0" * (sector - len(h))

    mbr = bytearray(sector)
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1,
                               min(total_sectors - 1, 0xFFFFFFFF))
    mbr[510:512] = b"\x55\xaa"
    padded = bytes(ent_bytes) + b"\0" * (ent_sectors * sector - len(ent_bytes))
    return {
        0: bytes(mbr) + header(1, last_lba, 2) + padded,
        (last_usable + 1) * sector: padded + header(last_lba, 1, last_usable + 1),
    }


def write_gpt(path: str, total_sectors: int, entries: Sequence[TableEntry], *,
              disk_guid: str | None = None) -> None:
    """Write a GPT to an image file (created or extended to the disk size) or a block device."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode) and os.fstat(fd).st_size < total_sectors * SECTOR:
            os.ftruncate(fd, total_sectors * SECTOR)
        for offset, data in build_gpt(total_sectors, entries, disk_guid=disk_guid).items():
            os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- partedUtil format


def format_getptbl(gpt: Gpt | Table) -> str:
    """``partedUtil getptbl`` output for a GPT (or a table)."""
    table = gpt.table() if isinstance(gpt, Gpt) else gpt
    lines = [table.label, f"{table.cylinders} {HEADS} {SECTORS_PER_TRACK} {table.total_sectors}"]
    lines += [e.line() for e in table.entries]
    return "\n".join(lines) + "\n"


def parse_getptbl(text: str) -> Table:
    """Parse ``partedUtil getptbl`` output (as printed by ESXi or by :func:`format_getptbl`).

    Blank lines and surrounding whitespace (a shell prompt's CRs) are ignored; anything else that
    does not fit raises InputError naming the line.
    """
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    if len(lines) < 2:
        raise InputError("getptbl: expected a label line and a geometry line")
    label = lines[0]
    geo = lines[1].split()
    if len(geo) != 4 or not all(g.isdigit() for g in geo):
        raise InputError(f"getptbl line 2: expected '<cylinders> 255 63 <total>', got {lines[1]!r}")
    entries = []
    for i, ln in enumerate(lines[2:], start=3):
        f = ln.split()
        if len(f) != 6 or not (f[0].isdigit() and f[1].isdigit() and f[2].isdigit() and f[5].isdigit()):
            raise InputError(f"getptbl line {i}: expected '<n> <start> <end> <GUID> <name> <attr>', "
                             f"got {ln!r}")
        guid = f[3].replace("-", "").upper()
        if len(guid) != 32 or any(c not in "0123456789ABCDEF" for c in guid):
            raise InputError(f"getptbl line {i}: bad type GUID {f[3]!r}")
        entries.append(TableEntry(int(f[0]), int(f[1]), int(f[2]), guid, f[4], int(f[5])))
    return Table(label, int(geo[3]), tuple(entries), cylinders=int(geo[0]))


# ------------------------------------------------------------------------------------- ESXi layouts

# reference/esxi-6.7-installer.md §3, partedUtil numbering, on-disk order. End None = last usable.
_ESXI6: dict[int, tuple[int, int | None, str, int]] = {
    1: (64, 8191, ESP, PARTED_BOOTABLE),
    5: (8224, 520191, BASIC_DATA, 0),
    6: (520224, 1032191, BASIC_DATA, 0),
    7: (1032224, 1257471, VMK_DIAGNOSTIC, 0),
    8: (1257504, 1843199, BASIC_DATA, 0),
    9: (1843200, 7086079, VMK_DIAGNOSTIC, 0),
    2: (7086080, 15472639, BASIC_DATA, 0),
    3: (15472640, None, VMFS, 0),
}
_SMALL_SCRATCH_SECTORS = 8388608  # 4 GiB: scratch on a 5.2–8.5 GiB local disk (as the simulator writes it)
Media = Literal["usb", "hdd"]
LayoutName = Literal["esxi6", "esxi8"]
MediaSize = Literal["min", "small", "default", "max"]
LAYOUTS = ("esxi6", "esxi8")
MEDIA_SIZES = ("min", "small", "default", "max")

# ESXi 7.0/8.0 (sectors of 512 bytes)
_E8_P1 = (64, 204863)  # 100 MiB system partition
_E8_P5_START = 208896  # 102 MiB
_E8_BOOTBANK = ((20971520, 1024000), (58720256, 2097152))  # (media under N sectors, bootbank sectors)
_E8_BOOTBANK_LARGE = 8386560  # 4 GiB less 1 MiB, as published, from 28 GiB
_E8_OSDATA_END = {"min": 67108863, "small": 134217727, "default": 268435455}  # systemMediaSize caps
_E8_DATASTORE_MIN = 8388608  # 4 GiB: with the default cap a datastore appears from ~142 GB, as published
_MIB = 2048
# the 8.0 installer's minimum ("disk device does not support OSDATA" below): 8-10 GB media fail, 16 GB work,
# and a stick sold as 16 GB holds 14.9-16.0 GB, so the line is 14 GB (the simulator's profile says the same)
ESXI8_MIN_MEDIA_BYTES = 14_000_000_000


def _next_start(prev_end: int) -> int:
    """A 1 MiB gap after the previous partition, then the next 1 MiB boundary."""
    s = prev_end + 1 + _MIB
    return -(-s // _MIB) * _MIB


def esxi8_bootbank_sectors(total_sectors: int) -> int:
    """Bootbank (5 and 6) size: 500 MiB under 10 GiB, 1 GiB under 28 GiB, 4 GiB less 1 MiB from there."""
    for below, sectors in _E8_BOOTBANK:
        if total_sectors < below:
            return sectors
    return _E8_BOOTBANK_LARGE


def esxi8_layout(total_sectors: int, system_media_size: MediaSize = "default") -> list[TableEntry]:
    """The partitions ESXi 7.0/8.0 writes to a disk of ``total_sectors`` (USB and local alike).

    1 at 64–204863; 5 from 208896; every later partition starts on a 1 MiB boundary after a 1 MiB gap;
    bootbanks per :func:`esxi8_bootbank_sectors`; OSData (7, VMFS-L) to the last usable sector or to the
    ``systemMediaSize`` cap (min 32 GiB, small 64 GiB, default 128 GiB; max: no cap); a datastore (8,
    VMFS) after it when at least 4 GiB are left. E.g. a 32 GiB stick: 5 208896-8595455, 6
    8597504-16984063, 7 16986112-total-34. The simulator writes the same (labctl/sim/src/lib/gpt.c).
    """
    if system_media_size not in MEDIA_SIZES:
        raise InputError(f"systemMediaSize must be one of {', '.join(MEDIA_SIZES)}, not {system_media_size!r}")
    last = total_sectors - 34
    bb = esxi8_bootbank_sectors(total_sectors)
    p6 = _next_start(_E8_P5_START + bb - 1)
    p7 = _next_start(p6 + bb - 1)
    if p7 + _MIB > last:
        raise InputError(f"a disk of {total_sectors} sectors is too small for ESXi 8.0's layout")
    p7_end = last if system_media_size == "max" else min(last, _E8_OSDATA_END[system_media_size])
    rows = [(1, *_E8_P1, ESP, PARTED_BOOTABLE), (5, _E8_P5_START, _E8_P5_START + bb - 1, BASIC_DATA, 0),
            (6, p6, p6 + bb - 1, BASIC_DATA, 0), (7, p7, p7_end, VMFSL, 0)]
    if p7_end < last:
        p8 = _next_start(p7_end)
        if last - p8 + 1 >= _E8_DATASTORE_MIN:
            rows.append((8, p8, last, VMFS, 0))
    return [TableEntry(n, start, end, guid, type_name(guid), attr) for n, start, end, guid, attr in rows]


def _tenths_gib(tenths: int) -> int:
    """A threshold in sectors, computed the way the simulator does (tenths of GiB, rounded down)."""
    return tenths * 2097152 // 10


def expected_layout(total_sectors: int, media: Media = "usb", layout: LayoutName = "esxi6",
                    system_media_size: MediaSize = "default") -> list[TableEntry]:
    """The partitions a fresh ESXi install writes to a disk of ``total_sectors`` (512 bytes).

    ``layout="esxi8"``: ESXi 7.0/8.0, the same on USB and local media (:func:`esxi8_layout`). The rest
    of this docstring is ESXi 6.x (``esxi6``).

    USB/SD under 3.4 GiB: 1,5,6,7,8; USB/SD from 3.4 GiB: 1,5,6,7,8,9 (never 2 or 3 on USB); local
    disk over 8.5 GiB: 1,5,6,7,8,9,2,3; local disk 5.2–8.5 GiB: 1,5,6,7,8,2,3 with a 4 GiB scratch
    starting at 1843200 and VMFS right after it. A local disk under 5.2 GiB is laid out like a USB
    stick. The last partition (VMFS) ends at the last usable sector, total - 34. Thresholds and the
    small-disk scratch size match the simulator (labctl/sim/src/lib/gpt.c).
    """
    if media not in ("usb", "hdd"):
        raise InputError(f"media must be 'usb' or 'hdd', not {media!r}")
    if layout == "esxi8":
        return esxi8_layout(total_sectors, system_media_size)
    if layout != "esxi6":
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    last_usable = total_sectors - 34
    rows = [(n, *_ESXI6[n]) for n in (1, 5, 6, 7, 8)]
    if media == "usb" or total_sectors < _tenths_gib(52):
        if total_sectors >= _tenths_gib(34):
            rows.append((9, *_ESXI6[9]))
    elif total_sectors <= _tenths_gib(85):
        s_end = 1843200 + _SMALL_SCRATCH_SECTORS - 1
        rows += [(2, 1843200, s_end, BASIC_DATA, 0), (3, s_end + 1, None, VMFS, 0)]
    else:
        rows += [(n, *_ESXI6[n]) for n in (9, 2, 3)]
    return [TableEntry(n, start, last_usable if end is None else end, guid, type_name(guid), attr)
            for n, start, end, guid, attr in rows]


def compare(gpt: Gpt | Table, expected: Sequence[TableEntry]) -> list[str]:
    """Differences between a GPT (or parsed table) and an expected layout, one readable line each;
    empty when they match. Order matters: partitions must appear in the expected on-disk order."""
    table = gpt.table() if isinstance(gpt, Gpt) else gpt
    diffs: list[str] = []
    if table.label != "gpt":
        diffs.append(f"label is {table.label!r}, expected 'gpt'")
    have = {e.number: e for e in table.entries}
    want = {e.number: e for e in expected}
    for e in expected:
        h = have.get(e.number)
        if h is None:
            diffs.append(f"partition {e.number} missing: expected {e.line()}")
            continue
        for what, a, b in (("start", h.start, e.start), ("end", h.end, e.end),
                           ("type", h.type_guid, e.type_guid), ("attribute", h.attr, e.attr)):
            if a != b:
                diffs.append(f"partition {e.number}: {what} is {a}, expected {b}")
        if h.end > table.total_sectors - 34:
            diffs.append(f"partition {e.number}: ends at {h.end}, beyond the last usable sector "
                         f"{table.total_sectors - 34}")
    for h in table.entries:
        if h.number not in want:
            diffs.append(f"partition {h.number} not expected: {h.line()}")
    order_have = [e.number for e in table.entries if e.number in want]
    order_want = [e.number for e in expected if e.number in have]
    if order_have != order_want:
        diffs.append(f"on-disk order is {' '.join(map(str, order_have))}, expected "
                     f"{' '.join(map(str, order_want))}")
    if isinstance(gpt, Gpt):
        diffs += [f"GPT: {p}" for p in gpt.problems]
    return diffs


def table_json(gpt: Gpt | Table, diffs: list[str] | None = None) -> str:
    """JSON form of a table (and optional diff) for ``labctl layout --json``."""
    table = gpt.table() if isinstance(gpt, Gpt) else gpt
    doc: dict[str, object] = {
        "label": table.label, "cylinders": table.cylinders, "heads": HEADS,
        "sectors_per_track": SECTORS_PER_TRACK, "total_sectors": table.total_sectors,
        "partitions": [asdict(e) for e in table.entries],
    }
    if isinstance(gpt, Gpt):
        doc.update(sector_size=gpt.sector_size, disk_guid=gpt.disk_guid, primary_ok=gpt.primary_ok,
                   backup_ok=gpt.backup_ok, pmbr_ok=gpt.pmbr_ok, problems=gpt.problems)
    if diffs is not None:
        doc["matches"] = not diffs
        doc["diff"] = diffs
    return json.dumps(doc, indent=2)
