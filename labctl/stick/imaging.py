"""Building blocks of stick imaging: aligned device I/O, extents, the image manifest and image data.

An image is ``IMG`` plus ``IMG.manifest.json``. ``IMG`` is either a sparse raw file as large as the
stick (holes where the stick is zero; QEMU and ``labctl layout`` read it directly) or, with
compression, one zstd stream of the data ranges concatenated in manifest order. The manifest lists
the *extents* a restore makes exact (both GPT areas and every partition, or the whole disk for a
full image) and the *ranges* inside them that hold data, each with its sha256; everything else inside
an extent is zero.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import hashlib
import json
import mmap
import os
import stat
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labctl.errors import InputError, RefusedError, RunFailed

BLOCK = 1 << 20  # unit of reading, comparing and progress
ZERO_GRAIN = 64 << 10  # backup: zero detection granularity
PAGE = 4 << 10  # restore: write granularity inside a block
MAX_RANGE = 32 << 20  # a data range is split at this length (finer verify reports)
FORMAT = "labctl-stick-image"
MAX_SIZE = 1 << 50  # 1 PiB: more than any stick; beyond it ftruncate overflows
BLKFLSBUF = 0x1261
BLKSSZGET = 0x1268
BLKRRPART = 0x125F
ZEROS = bytes(BLOCK)


def manifest_path(image: str) -> str:
    return image + ".manifest.json"


# ------------------------------------------------------------------------------ temporary files
# A temporary file's name carries its maker's pid and process start time ("tag"), so that a later
# run can tell the leftovers of a killed one (SIGKILL, a power cut) from a run still going, and
# remove them: backups write ".IMG.partial-TAG" beside IMG, restores unpack into the temp folder.

UNPACK_PREFIX = "labctl-unpack-"


def _starttime(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return int(text[text.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def temp_tag(pid: int | None = None) -> str:
    """The tag for temporary file names of this process (or ``pid``): pid and start time."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{_starttime(pid)}"


def _tag_alive(tag: str) -> bool:
    pid, _, start = tag.partition(".")
    if not pid.isdigit():
        return True  # not one of ours: leave it
    return start == "" or str(_starttime(int(pid))) == start


def remove_stale(folder: str, prefix: str) -> list[str]:
    """Remove this user's regular files ``PREFIX<tag>...`` in ``folder`` whose process is gone."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        if not name.startswith(prefix):
            continue
        tag = name[len(prefix):].split("-", 1)[0]
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or _tag_alive(tag):
            continue
        with contextlib.suppress(OSError):
            os.unlink(path)
            removed.append(path)
    return removed


def unpack_folder() -> str:
    """Where a compressed image is unpacked: $LABCTL_TMP, else the temp folder. Names there are made
    with O_EXCL (mkstemp) and stale ones are removed only when they are this user's regular files
    (in a sticky /tmp nobody else can swap them)."""
    return os.environ.get("LABCTL_TMP") or tempfile.gettempdir()


# --------------------------------------------------------------------------------- device I/O


class Dev:
    """A block device (O_DIRECT, optionally O_EXCL) or a regular file, read and written by offset.

    Reads of a block device bypass the page cache, so they see what the device holds. Buffers come
    from mmap (page aligned), as O_DIRECT wants.
    """

    def __init__(self, path: str, *, write: bool = False, exclusive: bool = False,
                 create_size: int | None = None, expect: tuple[object, ...] | None = None) -> None:
        """``expect`` is a checked target's identity (:attr:`labctl.stick.blockdev.Target.ident`): the
        path is opened as that kind and refused, before anything is written, when it is no longer the
        device or file that was checked (another disk at /dev/sdX after a replug, a link or another
        file put there while the user confirmed)."""
        self.path = path
        try:
            if expect is None:
                st = os.stat(path) if os.path.exists(path) else None
                if st is not None and not (stat.S_ISBLK(st.st_mode) or stat.S_ISREG(st.st_mode)):
                    raise InputError(f"{path}: neither a block device nor a regular file")
                self.is_block = bool(st and stat.S_ISBLK(st.st_mode))
            else:
                self.is_block = expect[0] == "block"
            flags = os.O_RDWR if write else os.O_RDONLY
            if self.is_block:
                flags |= os.O_DIRECT | (os.O_EXCL if exclusive else 0)
            elif expect is not None:  # the checked path is resolved: a link there now is not what was checked
                flags |= os.O_NOFOLLOW | os.O_NONBLOCK | (os.O_CREAT | os.O_EXCL if expect[0] == "new" else 0)
            elif write:
                flags |= os.O_CREAT
            self.fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.EBUSY:  # from O_EXCL
                raise RefusedError(f"{path} is in use (mounted or opened by another program); "
                                   "refused") from None
            if expect is not None and exc.errno in (errno.EEXIST, errno.ELOOP):
                raise RefusedError(f"{path} changed after it was checked (a file or link appeared there); "
                                   "nothing written") from None
            raise InputError(f"{path}: {exc.strerror}") from None
        if expect is not None:
            self._same_as(expect)
        try:
            if write:
                self._lock()
            if create_size is not None and not self.is_block and os.fstat(self.fd).st_size < create_size:
                os.ftruncate(self.fd, create_size)
            self.size = os.lseek(self.fd, 0, os.SEEK_END)
            self.sector: int | None = None  # logical sector size of a block device (O_DIRECT alignment)
            if self.is_block:
                self.sector = struct.unpack("<i", fcntl.ioctl(self.fd, BLKSSZGET, b"\0\0\0\0"))[0]
        except OSError as exc:
            self.close()
            raise InputError(f"{path}: {exc.strerror}") from None
        except BaseException:
            self.close()
            raise

    def _same_as(self, expect: tuple[object, ...]) -> None:
        st = os.fstat(self.fd)
        if stat.S_ISBLK(st.st_mode):
            now: tuple[object, ...] = ("block", st.st_rdev)
        elif stat.S_ISREG(st.st_mode):
            now = ("file", st.st_dev, st.st_ino) if expect[0] != "new" else expect
        else:
            now = ("other",)
        if now != expect:
            self.close()
            raise RefusedError(f"{self.path} is no longer what was checked (replaced while waiting for the "
                               "confirmation?); nothing written")

    def _lock(self) -> None:
        """Take a whole-file write lock, or refuse: QEMU locks the disks and images it runs on, and
        a second labctl writing the same target holds this lock (a file or a loop device over one)."""
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RefusedError(f"{self.path} is locked by another program (a running VM, or another "
                                   "labctl writing it); refused") from None
            raise

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def __enter__(self) -> Dev:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_into(self, buf: memoryview, offset: int) -> memoryview:
        """Fill ``buf`` from ``offset``; returns the filled view (short only at the end of the device)."""
        done = 0
        while done < len(buf):
            n = os.preadv(self.fd, [buf[done:]], offset + done)
            if n <= 0:
                break
            done += n
        return buf[:done]

    def read(self, offset: int, length: int) -> bytes:
        """Convenience reader (aligned internally) for small metadata reads."""
        align = self.sector or 512
        start = offset - offset % align
        stop = min(self.size, -(-(offset + length) // align) * align)
        if stop <= start:
            return b""
        got = self.read_into(aligned_buffer(stop - start), start)  # the mmap goes with its views
        return bytes(got[offset - start: offset - start + length])

    def write(self, data: memoryview, offset: int) -> None:
        done = 0
        while done < len(data):
            done += os.pwritev(self.fd, [data[done:]], offset + done)

    def zero(self, offset: int, length: int, buf: memoryview) -> None:
        """Make [offset, offset+length) read as zeros: written on a device, a hole punched in a file
        (a wiped image stays sparse; zeros are written where the file system cannot punch)."""
        if not self.is_block and _punch_hole(self.fd, offset, length):
            return
        pos = offset
        while pos < offset + length:
            n = min(len(buf), offset + length - pos)
            self.write(buf[:n], pos)
            pos += n

    def sync_and_drop(self) -> None:
        """fsync, then make sure later reads come from the device, not a cache."""
        os.fsync(self.fd)
        if self.is_block:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.fd, BLKFLSBUF, 0)
        else:
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def rescan_partitions(self) -> None:
        """Best effort: make the kernel re-read the partition table we just wrote (BLKRRPART)."""
        if self.is_block:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.fd, BLKRRPART, 0)

    def data_segments(self, start: int, end: int) -> list[tuple[int, int]]:
        """Parts of [start, end) that may hold data: SEEK_DATA/SEEK_HOLE on files, all of it on devices."""
        if self.is_block:
            return [(start, end)]
        out = []
        pos = start
        while pos < end:
            try:
                d = os.lseek(self.fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after pos
                break
            if d >= end:
                break
            h = min(os.lseek(self.fd, d, os.SEEK_HOLE), end)
            out.append((d - d % 512, h))
            pos = h
        return out


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def _punch_hole(fd: int, offset: int, length: int) -> bool:
    """fallocate(PUNCH_HOLE | KEEP_SIZE); False when the file system (or libc) cannot."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fallocate = libc.fallocate
    except (OSError, AttributeError):
        return False
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return int(fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length)) == 0


QEMU_WRITE_PERM_BYTE = 101  # QEMU's image locking: a lock on byte 100 + n means "I hold permission n"; n=1 is write


def held_for_writing(path: str, locks: str | None = None) -> bool:
    """Whether a program holds ``path`` with QEMU's "I may write" lock (a VM running on it): a copy
    taken now would be torn. Read from /proc/locks (``locks`` for tests)."""
    try:
        st = os.stat(path)
        text = locks if locks is not None else Path("/proc/locks").read_text(encoding="ascii")
    except OSError:
        return False
    me = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in text.splitlines():
        f = line.split()
        if "->" in f:  # a waiter, not a holder
            continue
        if me in f:
            i = f.index(me)
            start, end = f[i + 1], f[i + 2]
            if int(start) <= QEMU_WRITE_PERM_BYTE and (end == "EOF" or int(end) >= QEMU_WRITE_PERM_BYTE):
                return True
    return False


def aligned_buffer(size: int = BLOCK) -> memoryview:
    return memoryview(mmap.mmap(-1, size))


# ------------------------------------------------------------------------------------ manifest


@dataclass
class Extent:
    offset: int
    length: int
    name: str  # gpt-primary, gpt-backup, p<N>, disk, unallocated

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass
class DataRange:
    offset: int
    length: int
    sha256: str
    extent: str

    @property
    def end(self) -> int:
        return self.offset + self.length

    def label(self) -> str:
        return f"{self.extent} bytes {self.offset}-{self.end - 1} ({self.length} bytes)"


@dataclass
class Manifest:
    size: int
    sector_size: int
    mode: str  # "gpt" | "full"
    compression: str  # "none" | "zstd"
    extents: list[Extent]
    ranges: list[DataRange]
    source: dict[str, Any] = field(default_factory=dict)
    table: str | None = None
    block_size: int = BLOCK
    created: str = ""
    note: str = ""
    format: str = FORMAT
    version: int = 1

    @property
    def data_bytes(self) -> int:
        return sum(r.length for r in self.ranges)

    def to_json(self) -> str:
        d = asdict(self)
        d["data_bytes"] = self.data_bytes
        return json.dumps(d, indent=1)

    @classmethod
    def load(cls, image: str) -> Manifest:
        path = manifest_path(image)
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise InputError(f"{path} not found: {image} is not a complete labctl image "
                             "(made by 'labctl stick backup')") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: unreadable manifest ({exc})") from None
        except RecursionError:
            raise InputError(f"{path}: malformed manifest (nested too deeply)") from None
        if not isinstance(d, dict):
            raise InputError(f"{path}: malformed manifest (not a JSON object)")
        if d.get("format") != FORMAT or d.get("version") != 1:
            raise InputError(f"{path}: not a {FORMAT} v1 manifest")
        try:
            d.pop("data_bytes", None)
            d["extents"] = [Extent(**e) for e in d["extents"]]
            d["ranges"] = [DataRange(**r) for r in d["ranges"]]
            m = cls(**d)
            m.check()
        except (TypeError, KeyError, AttributeError, ValueError) as exc:
            raise InputError(f"{path}: malformed manifest ({exc})") from None
        return m

    def check(self) -> None:
        """Ranges sorted, inside extents, extents inside the disk: a manifest we can trust to write."""
        texts = [self.mode, self.compression, self.created, self.note, *(e.name for e in self.extents),
                 *(r.sha256 for r in self.ranges), *(r.extent for r in self.ranges)]
        if not all(isinstance(t, str) for t in texts) or not isinstance(self.source, dict) \
                or not (self.table is None or isinstance(self.table, str)):
            raise InputError("manifest: a field has the wrong type (texts, a source object, a table text)")
        if self.mode not in ("gpt", "full"):
            raise InputError(f"manifest: unknown mode {self.mode!r}")
        numbers = [self.size, self.sector_size, self.block_size]
        numbers += [v for e in self.extents for v in (e.offset, e.length)]
        numbers += [v for r in self.ranges for v in (r.offset, r.length)]
        if not all(type(v) is int and v >= 0 for v in numbers):
            raise InputError("manifest: sizes and offsets must be whole numbers")
        if self.sector_size not in (512, 1024, 2048, 4096) or not 3 * self.sector_size <= self.size <= MAX_SIZE:
            raise InputError(f"manifest: bad size {self.size} or sector size {self.sector_size}")
        prev = 0
        for e in sorted(self.extents, key=lambda e: e.offset):
            if e.offset < prev or e.end > self.size or e.length <= 0 or e.offset % 512 or e.length % 512:
                raise InputError(f"manifest: bad extent {e.name} at {e.offset}+{e.length}")
            prev = e.end
        last = 0
        for r in self.ranges:
            if r.offset < last or not any(e.offset <= r.offset and r.end <= e.end for e in self.extents):
                raise InputError(f"manifest: bad data range {r.label()}")
            last = r.end


# ------------------------------------------------------------------------------------ image data


class ImageData:
    """The expected bytes of a stick, from a sparse raw image and its manifest (ranges only)."""

    def __init__(self, manifest: Manifest, raw_path: str, cleanup: str | None = None) -> None:
        self.manifest = manifest
        self.fd = os.open(raw_path, os.O_RDONLY | os.O_CLOEXEC)
        self.cleanup = cleanup
        self.starts = [r.offset for r in manifest.ranges]

    def close(self) -> None:
        os.close(self.fd)
        if self.cleanup:
            with contextlib.suppress(OSError):
                os.unlink(self.cleanup)

    def ranges_in(self, start: int, end: int) -> Iterator[DataRange]:
        i = max(0, bisect.bisect_right(self.starts, start) - 1)
        for r in self.manifest.ranges[i:]:
            if r.offset >= end:
                break
            if r.end > start:
                yield r

    def fill(self, buf: memoryview, offset: int) -> bool:
        """Put the expected bytes of [offset, offset+len(buf)) into buf; False when they are all zero."""
        end = offset + len(buf)
        any_data = False
        pos = offset
        for r in self.ranges_in(offset, end):
            a, b = max(r.offset, offset), min(r.end, end)
            if a > pos:
                buf[pos - offset: a - offset] = ZEROS[: a - pos]
            got = os.preadv(self.fd, [buf[a - offset: b - offset]], a)
            if got != b - a:
                raise RunFailed(f"image: short read at byte {a}")
            any_data = True
            pos = b
        if pos < end:
            buf[pos - offset:] = ZEROS[: end - pos]  # len(buf) <= BLOCK
        return any_data


def open_image(image: str, progress: Any = None) -> ImageData:
    """Load IMG + manifest, check every range's sha256 (a corrupt image writes nothing), and return
    the data. A compressed image is unpacked into a temporary sparse file first."""
    m = Manifest.load(image)
    if m.compression == "zstd":
        return _unpack_zstd(image, m, progress)
    if m.compression != "none":
        raise InputError(f"{image}: unknown compression {m.compression!r}")
    try:
        size = os.path.getsize(image)
    except OSError as exc:
        raise InputError(f"{image}: {exc.strerror}") from None
    if size != m.size:
        raise InputError(f"{image}: {size} bytes, the manifest says {m.size}: not the image it describes")
    with open(image, "rb", buffering=0) as f:
        for r in m.ranges:
            h = hashlib.sha256()
            pos = r.offset
            while pos < r.end:
                chunk = os.pread(f.fileno(), min(BLOCK, r.end - pos), pos)
                if not chunk:
                    raise InputError(f"{image}: truncated at byte {pos}")
                h.update(chunk)
                pos += len(chunk)
            if h.hexdigest() != r.sha256:
                raise InputError(f"{image}: corrupt: range {r.label()} does not match its sha256")
            if progress:
                progress(r.length)
    return ImageData(m, image)


def _unpack_zstd(image: str, m: Manifest, progress: Any) -> ImageData:
    import zstandard

    folder = unpack_folder()
    remove_stale(folder, UNPACK_PREFIX)
    fd, tmp = tempfile.mkstemp(prefix=f"{UNPACK_PREFIX}{temp_tag()}-", suffix=".raw", dir=folder)
    try:
        os.ftruncate(fd, m.size)
        with open(image, "rb") as src, zstandard.ZstdDecompressor().stream_reader(src) as z:
            for r in m.ranges:
                h = hashlib.sha256()
                pos = r.offset
                while pos < r.end:
                    chunk = z.read(min(BLOCK, r.end - pos))
                    if not chunk:
                        raise InputError(f"{image}: compressed stream ends early (range {r.label()})")
                    h.update(chunk)
                    os.pwrite(fd, chunk, pos)
                    pos += len(chunk)
                if h.hexdigest() != r.sha256:
                    raise InputError(f"{image}: corrupt: range {r.label()} does not match its sha256")
                if progress:
                    progress(r.length)
    except zstandard.ZstdError as exc:
        os.close(fd)
        os.unlink(tmp)
        raise InputError(f"{image}: bad zstd data ({exc})") from None
    except OSError as exc:
        os.close(fd)
        os.unlink(tmp)
        raise InputError(f"{image}: {exc.strerror}") from None
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return ImageData(m, tmp, cleanup=tmp)
