"""USB stick backup / restore / wipe / verify: the operations, without any terminal I/O.

Every operation takes a :class:`Job` it reports into (bytes done, phase, what state the target is
in right now) and whose ``cancel`` event it checks between blocks; the CLI draws progress from the
job and, on Ctrl-C, prints ``job.state``.

Restore is *exact* over the image's extents (both GPT areas and every partition) and writes only
what differs: it reads each 1 MiB block of the target, compares it with the image, and writes the
4 KiB pages that differ. When whole blocks keep differing (a stick full of other data) it stops
reading first and writes blocks outright, probing one page per block to notice when the target
agrees again. Partition data go first, the GPT areas last; before the first partition byte is
written the target's GPT headers are cleared, so an interrupted restore never looks like a valid
stick. Afterwards: fsync, drop caches, read every written range back from the device (O_DIRECT)
and compare its sha256.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import stat
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from labctl import layouts
from labctl.errors import InputError, RefusedError
from labctl.stick.blockdev import Target, human_size, in_kernel_folder, loop_users
from labctl.stick.imaging import (
    BLOCK,
    MAX_RANGE,
    PAGE,
    ZERO_GRAIN,
    ZEROS,
    DataRange,
    Dev,
    Extent,
    ImageData,
    Manifest,
    aligned_buffer,
    held_for_writing,
    manifest_path,
    remove_stale,
    temp_tag,
)

BLIND_AFTER = 4  # whole-block mismatches in a row before writing without reading first


class Cancelled(Exception):
    """The job's cancel event was set (Ctrl-C); job.state says where the target stands."""


@dataclass
class Job:
    label: str
    total: int = 0
    done: int = 0
    phase: str = "waiting"
    state: str = "untouched"
    bytes_read: int = 0
    bytes_written: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    notes: list[str] = field(default_factory=list)

    def tick(self, n: int) -> None:
        self.done += n
        if self.cancel.is_set():
            raise Cancelled(self.label)

    def start_phase(self, phase: str, total: int) -> None:
        self.phase, self.total, self.done = phase, total, 0


@dataclass
class Written:
    offset: int
    length: int
    sha256: str
    extent: str


@dataclass
class RestoreResult:
    target: str
    compared: int
    bytes_read: int
    bytes_written: int
    written_ranges: int
    mismatches: list[str]
    seconds: float


# ------------------------------------------------------------------------------------------ plan


def plan_extents(gpt: layouts.Gpt | None, size: int, full: bool) -> list[Extent]:
    """What an image covers: the GPT areas and the partitions in on-disk order, or the whole disk."""
    if gpt is None or full:
        return [Extent(0, size - size % 512, "disk")]
    ss = gpt.sector_size
    out = [Extent(a * ss, (b - a + 1) * ss, name) for a, b, name in gpt.metadata_extents()]
    for p in gpt.partitions:
        start, end = p.first_lba * ss, min((p.last_lba + 1) * ss, size)
        if end > start:
            out.append(Extent(start, end - start, f"p{p.number}"))
    out.sort(key=lambda e: e.offset)
    for a, b in itertools.pairwise(out):
        if b.offset < a.end:
            raise InputError(f"{a.name} and {b.name} overlap; the partition table is not usable")
    return out


def layout_problems(gpt: layouts.Gpt, size: int) -> list[str]:
    """Why a GPT's extents cannot be copied as a GPT image: partitions that are empty, outside the
    usable area or the disk, or overlap each other or the GPT areas (a table may be CRC-correct and
    still say so). Empty when the extents are sound."""
    ss = gpt.sector_size
    out = []
    spans = [(a * ss, (b + 1) * ss, name) for a, b, name in gpt.metadata_extents()]
    for p in gpt.partitions:
        if p.last_lba < p.first_lba:
            out.append(f"partition {p.number} ends before it starts")
            continue
        if p.first_lba < gpt.first_usable or p.last_lba > gpt.last_usable:
            out.append(f"partition {p.number} lies outside the usable area")
        spans.append((p.first_lba * ss, (p.last_lba + 1) * ss, f"partition {p.number}"))
    for _start, end, name in spans:
        if end > size:
            out.append(f"{name} ends beyond the disk")
    spans.sort()
    for (_, a_end, a), (b_start, _, b) in itertools.pairwise(spans):
        if b_start < a_end:
            out.append(f"{a} and {b} overlap")
    return out


def coredump_header_only(m: Manifest, keep: int = BLOCK) -> tuple[Manifest, int]:
    """The manifest a ``--coredump-header-only`` restore or verify holds the stick to, and the bytes
    it leaves alone.

    A vmkDiagnostic (core dump) partition is mostly zeros in an image, yet an exact restore onto a
    stick that held other data must write all of it: 2.6 GiB of the 3.4 GiB an ESXi 6.7 stick
    needs. ESXi itself overwrites that space when it writes a dump. So, on request, such a
    partition is cut to its first ``keep`` bytes plus the data ranges the image holds there; the
    rest keeps the target's old bytes. Everything else stays exact.
    """
    if m.table is None or m.mode != "gpt":
        return m, 0
    dumps = {f"p{t.number}" for t in layouts.parse_getptbl(m.table).entries
             if t.type_guid == layouts.VMK_DIAGNOSTIC}
    extents: list[Extent] = []
    left = 0
    for e in m.extents:
        if e.name not in dumps or e.length <= keep:
            extents.append(e)
            continue
        parts = [Extent(e.offset, keep, e.name)]
        for r in m.ranges:
            if e.offset <= r.offset and r.end <= e.end and r.end > e.offset + keep:
                start = max(r.offset - r.offset % 512, parts[-1].end)
                end = min(e.end, -(-r.end // 512) * 512)
                if start <= parts[-1].end:
                    parts[-1] = Extent(parts[-1].offset, end - parts[-1].offset, e.name)
                else:
                    parts.append(Extent(start, end - start, e.name))
        extents += parts
        left += e.length - sum(p.length for p in parts)
    return replace(m, extents=extents), left


def gaps(extents: list[Extent], size: int) -> list[Extent]:
    """The unallocated parts of [0, size) between the extents."""
    out, pos = [], 0
    for e in sorted(extents, key=lambda e: e.offset):
        if e.offset > pos:
            out.append(Extent(pos, e.offset - pos, "unallocated"))
        pos = max(pos, e.end)
    if size - size % 512 > pos:
        out.append(Extent(pos, size - size % 512 - pos, "unallocated"))
    return out


# ---------------------------------------------------------------------------------------- backup


def check_image_path(image: str) -> None:
    """IMG may be new or a regular file; never a device node or a folder (it would be replaced), nor a
    new name in /dev (backup SRC /dev/sdb with the arguments swapped and the stick unplugged)."""
    if not os.path.lexists(image):
        if in_kernel_folder(image):
            raise InputError(f"{image}: no such device, and labctl makes no image file in /dev, /proc or /sys "
                             "(backup is DEVICE IMAGE; restore is IMAGE DEVICE)")
        return
    try:
        mode = os.stat(image).st_mode
    except OSError as exc:
        why = "a loop of symbolic links" if exc.errno == errno.ELOOP else exc.strerror
        raise InputError(f"{image}: {why}; give a new file name for the image") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{image} exists and is not a regular file (a device or a folder?); "
                         "give a new file name for the image")


def check_backup_paths(source: str, image: str) -> None:
    """IMG and IMG.manifest.json may be written (new or regular files) and neither is the source."""
    check_image_path(image)
    check_image_path(manifest_path(image))
    for own, what in ((image, "the image"), (manifest_path(image), "the image's manifest")):
        if os.path.exists(own) and os.path.exists(source) and os.path.samefile(source, own):
            raise InputError(f"{source} is {what} itself: a backup would replace its own source; "
                             "give another image name")
        if os.path.exists(own) and (users := loop_users(own)):  # e.g. the source /dev/loopN's own backing file
            raise InputError(f"{own} backs loop device {', '.join(users)}: a backup would replace a disk in use "
                             "(perhaps its own source); give another image name")


def backup(source: str, image: str, *, full: bool, compress: bool, job: Job,
           source_info: dict[str, Any] | None = None) -> Manifest:
    """Copy a stick (or stick image file) to IMG + IMG.manifest.json, sparse and GPT-aware."""
    folder = os.path.dirname(os.path.abspath(image))
    if not os.path.isdir(folder):
        raise InputError(f"{image}: folder {folder} does not exist")
    check_backup_paths(source, image)
    for stale in remove_stale(folder, f".{os.path.basename(image)}.partial-"):
        job.notes.append(f"removed {stale}, left by an interrupted backup")
    if held_for_writing(source):
        raise RefusedError(f"{source} is in use for writing by a running VM (QEMU): an image taken now would "
                           "be torn; stop the VM first ('labctl down')")
    with Dev(source, exclusive=True) as src:
        size = src.size
        if size < 512 * 3:
            raise InputError(f"{source}: too small to be a stick ({size} bytes)")
        note = ""
        try:
            gpt: layouts.Gpt | None = layouts.read_gpt_from(src.read, size, src.sector, name=source)
        except layouts.GptError as exc:
            gpt, note = None, f"no usable GPT ({exc}); copied every byte (full image)"
        if gpt is not None and not full and (bad := layout_problems(gpt, size)):
            gpt, note = None, f"the GPT's CRCs check out but its layout does not ({'; '.join(bad)}); " \
                              "copied every byte (full image)"
        if gpt is not None and gpt.problems and not full:
            job.notes += [f"GPT: {p}" for p in gpt.problems]
        extents = plan_extents(gpt, size, full)
        job.start_phase("reading", sum(e.length for e in extents))
        job.state = "source untouched; no image written yet"
        tmp = os.path.join(folder, f".{os.path.basename(image)}.partial-{temp_tag()}")
        try:
            ranges = _copy_ranges(src, extents, tmp, size, compress, job)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            job.state = "source untouched; no image written (the temporary file was removed)"
            raise
    m = Manifest(
        size=size, sector_size=gpt.sector_size if gpt else (src.sector or 512),
        mode="full" if gpt is None or full else "gpt",
        compression="zstd" if compress else "none", extents=extents, ranges=ranges,
        source=dict(source_info or {}, path=source, size=size),
        table=layouts.format_getptbl(gpt) if gpt else None,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), note=note,
    )
    try:
        _commit_image(tmp, image, m)
    except InputError:
        job.state = "source untouched; no image written (the temporary files were removed)"
        raise
    if note:
        job.notes.append(note)
    job.state = "image complete"
    return m


def _copy_ranges(src: Dev, extents: list[Extent], tmp: str, size: int, compress: bool,
                 job: Job) -> list[DataRange]:
    ranges: list[DataRange] = []
    buf = aligned_buffer()
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    zw: Any = None
    zfile: Any = None
    if compress:
        import zstandard

        zfile = os.fdopen(out, "wb", closefd=False)
        zw = zstandard.ZstdCompressor(level=3).stream_writer(zfile, closefd=False)
    else:
        os.ftruncate(out, size)
    try:
        for e in extents:
            cur: list[Any] | None = None  # [offset, length, hasher]

            def close_run() -> None:
                nonlocal cur
                if cur is not None:
                    ranges.append(DataRange(cur[0], cur[1], cur[2].hexdigest(), e.name))  # noqa: B023
                    cur = None

            covered = e.offset
            for s0, s1 in src.data_segments(e.offset, e.end):
                close_run()
                job.tick(s0 - covered)
                pos = s0
                while pos < s1:
                    n = min(BLOCK, s1 - pos)
                    got = src.read_into(buf[:n], pos)
                    if len(got) != n:
                        raise InputError(f"{src.path}: short read at byte {pos}")
                    job.bytes_read += n
                    data = got.tobytes()
                    if data == ZEROS[:n]:
                        close_run()
                    else:
                        for g in range(0, n, ZERO_GRAIN):
                            piece = data[g: g + ZERO_GRAIN]
                            if piece == ZEROS[: len(piece)]:
                                close_run()
                                continue
                            off = pos + g
                            if cur is None or cur[0] + cur[1] != off or cur[1] + len(piece) > MAX_RANGE:
                                close_run()
                                cur = [off, 0, hashlib.sha256()]
                            cur[1] += len(piece)
                            cur[2].update(piece)
                            if zw is not None:
                                zw.write(piece)
                            else:
                                os.pwrite(out, piece, off)
                    pos += n
                    job.tick(n)
                covered = s1
            close_run()
            job.tick(e.end - covered)
        if zw is not None:
            zw.close()  # ends the frame
            zfile.flush()
        os.fsync(out)
    finally:
        os.close(out)
    return ranges


def _commit_image(tmp: str, image: str, m: Manifest) -> None:
    """Old manifest out first, then the image, then the new manifest: a half image never has one.
    On failure both temporary files go (InputError naming the image)."""
    mpath = manifest_path(image)
    folder, base = os.path.split(os.path.abspath(image))
    mtmp = os.path.join(folder, f".{base}.partial-{temp_tag()}-manifest")
    try:
        fd = os.open(mtmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(m.to_json())
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(mpath):
            os.unlink(mpath)
        os.replace(tmp, image)
        os.replace(mtmp, mpath)
    except BaseException as exc:
        for leftover in (tmp, mtmp):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        if isinstance(exc, OSError):
            raise InputError(f"{image}: could not write the image ({exc.strerror})") from None
        raise
    dfd = os.open(os.path.dirname(os.path.abspath(image)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


# --------------------------------------------------------------------------------------- restore


def open_target(target: Target, min_size: int, sector_size: int | None = None) -> Dev:
    """Open a checked target for writing: O_EXCL on block devices, files created/extended as needed."""
    if target.is_block:
        dev = Dev(target.path, write=True, exclusive=True, expect=target.ident)
        if dev.size != target.size:  # same device number, another disk: /dev/sdX after a replug
            dev.close()
            raise RefusedError(f"{target.path} now holds {human_size(dev.size)}, {human_size(target.size)} when it "
                               "was checked: another disk? nothing written")
        if dev.size < min_size:
            dev.close()
            raise RefusedError(f"{target.path} holds {human_size(dev.size)} ({dev.size} bytes), the image "
                               f"needs {human_size(min_size)} ({min_size} bytes): refused")
        if sector_size and dev.sector != sector_size:
            dev.close()
            raise RefusedError(f"{target.path} has {dev.sector}-byte sectors, the image {sector_size}-byte "
                               "ones: its GPT would not be valid there; refused")
        return dev
    return Dev(target.path, write=True, create_size=min_size, expect=target.ident)


def restore(img: ImageData, dev: Dev, *, zero_rest: bool, job: Job,
            coredumps: bool = True) -> RestoreResult:
    """Make ``dev`` equal the image over its extents (and zero the rest with ``zero_rest``).
    ``coredumps=False`` holds core dump partitions to their first MiB (:func:`coredump_header_only`)."""
    t0 = time.monotonic()
    m = img.manifest
    held = m.extents if coredumps else coredump_header_only(m)[0].extents
    if m.mode == "full":
        held = _split_full(held, m.sector_size)
    meta = [e for e in held if e.name.startswith("gpt-")]
    body = [e for e in held if not e.name.startswith("gpt-")]
    if zero_rest:
        body = sorted(body + gaps(m.extents, dev.size), key=lambda e: e.offset)
    order = body + sorted(meta, key=lambda e: -e.offset)  # backup GPT area, then primary, last
    job.start_phase("restoring", sum(e.length for e in order))
    w = _Writer(img, dev, job, m)
    for e in order:
        w.extent(e, is_meta=e.name.startswith("gpt-"))
    for off in w.cleared:  # header sectors cleared after their block may have been compared: redo them
        w.extent(Extent(off, m.sector_size, "gpt-header"), is_meta=True)
    job.state = ("restored, not yet flushed or verified — run 'labctl stick verify'" if w.written
                 else "unchanged: it already equalled the image")
    job.phase = "flushing"
    dev.sync_and_drop()
    if w.written:
        job.state = "restored and flushed; the read-back check did not finish — run 'labctl stick verify'"
    mismatches = _read_back(dev, w.written, job)
    if w.written:
        dev.rescan_partitions()
    job.state = "restored and verified" if not mismatches else "restored, but the read-back differs"
    return RestoreResult(dev.path, sum(e.length for e in order), job.bytes_read, job.bytes_written,
                         len(w.written), mismatches, time.monotonic() - t0)


def _split_full(extents: list[Extent], ss: int) -> list[Extent]:
    """A full image's one "disk" extent with its first 34 and last 33 sectors (where a GPT lives)
    as metadata, so that they are written last, as in a GPT image: an interrupted restore of a full
    image must not leave a valid partition table over incomplete data either."""
    out: list[Extent] = []
    for e in extents:
        head, tail = 34 * ss, 33 * ss
        if e.name != "disk" or e.offset != 0 or e.length <= head + tail:
            out.append(e)
            continue
        out += [Extent(0, head, "gpt-primary"), Extent(head, e.length - head - tail, "disk"),
                Extent(e.length - tail, tail, "gpt-backup")]
    return out


class _Writer:
    """Compare-and-write over extents, remembering what it wrote."""

    def __init__(self, img: ImageData, dev: Dev, job: Job, m: Manifest) -> None:
        self.img, self.dev, self.job, self.m = img, dev, job, m
        self.cur = aligned_buffer()
        self.exp = aligned_buffer()
        self.written: list[Written] = []
        self.cleared: list[int] = []  # offsets of the header sectors zeroed by _clear_headers
        self.dirty = False  # partition data written (GPT headers cleared before)

    def _clear_headers(self) -> None:
        """Zero the target's GPT header sectors (LBA 1, the image's and the device's last LBA)."""
        ss = self.m.sector_size
        zero = aligned_buffer(ss)
        spots = {ss, (self.m.size // ss - 1) * ss, (self.dev.size // ss - 1) * ss}
        for off in sorted(spots):
            if off > 0 and off + ss <= self.dev.size:
                self.dev.write(zero[:ss], off)
                self.job.bytes_written += ss
                self.cleared.append(off)
        self.dirty = True
        self.job.state = ("partially restored: GPT headers cleared (the stick shows no partitions), "
                          "partition data incomplete — run the restore again")

    def _write(self, e: Extent, is_meta: bool, off: int, view: memoryview) -> None:
        if not is_meta and not self.dirty:
            self._clear_headers()
        if is_meta:
            self.job.state = ("partially restored: the GPT is being written (partition data done) — "
                              "run the restore again")
        self.dev.write(view, off)
        self.job.bytes_written += len(view)
        self.written.append(Written(off, len(view), hashlib.sha256(view).hexdigest(), e.name))

    def extent(self, e: Extent, is_meta: bool) -> None:
        job = self.job
        streak = 0
        pos = e.offset
        while pos < e.end:
            n = min(BLOCK, e.end - pos)
            exp = self.exp[:n]
            has_data = self.img.fill(exp, pos)
            if streak >= BLIND_AFTER and n > PAGE:
                probe = self.dev.read_into(self.cur[:PAGE], pos)
                job.bytes_read += PAGE
                if probe.tobytes() != exp[:PAGE].tobytes():
                    self._write(e, is_meta, pos, exp)
                    pos += n
                    job.tick(n)
                    continue
                streak = 0
            cur = self.dev.read_into(self.cur[:n], pos)
            if len(cur) != n:
                raise InputError(f"{self.dev.path}: short read at byte {pos}")
            job.bytes_read += n
            have, want = cur.tobytes(), exp.tobytes() if has_data else ZEROS[:n]
            streak = self._write_pages(e, is_meta, pos, have, want, exp, streak) if have != want else 0
            pos += n
            job.tick(n)

    def _write_pages(self, e: Extent, is_meta: bool, pos: int, have: bytes, want: bytes,
                     exp: memoryview, streak: int) -> int:
        n = len(want)
        run_start = -1
        differing = 0
        for g in range(0, n + PAGE, PAGE):
            same = g >= n or have[g: g + PAGE] == want[g: g + PAGE]
            if not same:
                differing += 1
                if run_start < 0:
                    run_start = g
            elif run_start >= 0:
                self._write(e, is_meta, pos + run_start, exp[run_start: min(g, n)])
                run_start = -1
        return streak + 1 if differing * PAGE >= n else 0


def _read_back(dev: Dev, written: list[Written], job: Job) -> list[str]:
    job.start_phase("verifying", sum(w.length for w in written))
    buf = aligned_buffer()
    bad = []
    for w in written:
        got = dev.read_into(buf[: w.length], w.offset)
        job.bytes_read += w.length
        if len(got) != w.length or hashlib.sha256(got).hexdigest() != w.sha256:
            bad.append(f"{w.extent} bytes {w.offset}-{w.offset + w.length - 1}: read back differs "
                       "from what was written")
        job.tick(w.length)
    return bad


# ------------------------------------------------------------------------------------------ wipe


def wipe(dev: Dev, *, quick: bool, job: Job) -> int:
    """Zero the device (GPT areas first), or with ``quick`` only the GPT areas and each partition's
    first MiB. Returns bytes written."""
    size = dev.size - dev.size % 512
    head, tail = Extent(0, min(BLOCK, size), "start"), Extent(max(0, size - BLOCK), min(BLOCK, size), "end")
    if quick:
        try:
            gpt: layouts.Gpt | None = layouts.read_gpt_from(dev.read, dev.size, dev.sector, name=dev.path)
        except layouts.GptError:
            gpt = None
        parts = []
        if gpt:
            ss = gpt.sector_size
            for p in gpt.partitions:
                start = p.first_lba * ss
                parts.append(Extent(start, max(0, min(start + BLOCK, (p.last_lba + 1) * ss, size) - start),
                                    f"p{p.number}"))
        todo = [head, tail, *[p for p in parts if p.length > 0]]
    else:
        todo = [head, tail, Extent(head.end, max(0, tail.offset - head.end), "rest")]
    job.start_phase("wiping", sum(e.length for e in todo))
    zero = aligned_buffer()
    for e in todo:
        pos = e.offset
        while pos < e.end:
            n = min(BLOCK, e.end - pos)
            dev.zero(pos, n, zero)  # a hole in an image file: it stays sparse
            job.bytes_written += n
            if e.name in ("start", "end"):
                job.state = "partially wiped: the partition table is cleared, the data is not"
            pos += n
            job.tick(n)
    job.phase = "flushing"
    dev.sync_and_drop()
    dev.rescan_partitions()
    job.state = "wiped (partition table and each partition's first MiB)" if quick else "wiped (all zero)"
    return job.bytes_written


# ---------------------------------------------------------------------------------------- verify


def verify(m: Manifest, dev: Dev, job: Job, limit: int = 20) -> list[str]:
    """Compare a device (or file) with a manifest, range by range: each data range's sha256, and
    zeros everywhere else inside the extents. Returns readable differences (empty = equal)."""
    if dev.size < m.size:
        return [f"{dev.path} is {dev.size} bytes, smaller than the image ({m.size})"]
    if dev.sector and dev.sector != m.sector_size:
        return [f"{dev.path} has {dev.sector}-byte sectors, the image {m.sector_size}-byte ones: "
                "its partition table cannot be the image's"]
    job.start_phase("verifying", sum(e.length for e in m.extents))
    buf = aligned_buffer()
    diffs: list[str] = []
    ranges = sorted(m.ranges, key=lambda r: r.offset)
    ri = 0
    for e in sorted(m.extents, key=lambda e: e.offset):
        hasher: Any = None
        zero_bad: list[int] | None = None  # [start, end) of a run of non-zero bytes outside ranges

        def flush_zero() -> None:
            nonlocal zero_bad
            if zero_bad is not None:
                diffs.append(f"{e.name} bytes {zero_bad[0]}-{zero_bad[1] - 1}: should be zero, "  # noqa: B023
                             "is not")
                zero_bad = None

        pos = e.offset
        while pos < e.end:
            n = min(BLOCK, e.end - pos)
            got = dev.read_into(buf[:n], pos)
            job.bytes_read += n
            data = got.tobytes()
            end = pos + n
            p = pos
            while p < end:
                while ri < len(ranges) and ranges[ri].end <= p:
                    ri += 1
                r = ranges[ri] if ri < len(ranges) else None
                if r is not None and r.offset <= p:
                    q = min(end, r.end)
                    if hasher is None:
                        hasher = hashlib.sha256()
                    hasher.update(data[p - pos: q - pos])
                    if q == r.end:
                        if hasher.hexdigest() != r.sha256:
                            diffs.append(f"range {r.label()}: sha256 differs")
                        hasher = None
                    p = q
                else:
                    q = min(end, r.offset if r is not None else end)
                    chunk = data[p - pos: q - pos]
                    if chunk != ZEROS[: q - p]:
                        first = p + (len(chunk) - len(chunk.lstrip(b"\0")))
                        last = p + len(chunk.rstrip(b"\0"))
                        if zero_bad is not None and zero_bad[1] >= first - BLOCK:
                            zero_bad[1] = last
                        else:
                            flush_zero()
                            zero_bad = [first, last]
                    p = q
            pos = end
            job.tick(n)
        flush_zero()
    if len(diffs) > limit:
        diffs = [*diffs[:limit], f"... and {len(diffs) - limit} more"]
    return diffs
