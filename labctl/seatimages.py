"""Seat images: which paths may be a seat's stick or disk image, and which images labctl made.

A lab names each seat's stick image (``stick.image``) and, optionally, a local disk image
(``vm.disk.image``, by default ``disk.img`` in the seat's state folder). A VM writes whatever file it
is given, so a wrong path there would install ESXi onto a host disk or over the lab file itself.
Two rules keep that from happening:

* **Image paths are images** (:func:`image_problem`, :func:`check_lab`, :func:`check_seat`): the
  path, resolved through symbolic links, is a regular file or does not exist yet (and then not in /dev,
  /proc or /sys: /dev/sdb with no stick plugged in is not a new file's name); never a block or
  character device, a FIFO, a socket or a folder; not the lab file, an ISO, a playbook, the password
  file or the UEFI firmware; not another seat's image (also not through a hard link); and an
  existing file is whole 512-byte sectors of at least 1 MiB (a text file is never a stick) and backs
  no loop device (it would be a disk in use).
  ``labctl validate`` reports a violation at the field's FILE:LINE:COL; every backend checks again
  right before it opens or creates an image (:func:`ensure_images`).
* **Reset touches only what labctl made** (:func:`recreate_blank`): an image labctl created is
  recorded in the seat's state folder (``images.json``: path, st_dev, st_ino, the inode's generation
  where the file system keeps one, size and a sha256 of its first 64 KiB). The generation tells a new
  file that got the inode number of a deleted one (ext4 hands a freed number out again at once) from
  the file labctl made. Reset empties such a file in place (ftruncate to 0, then to its size: the inode,
  owner, mode and links stay; nothing is unlinked). A file at that path that is not the recorded one
  (replaced, or a record of another size) is refused; a file labctl did not create but that holds
  data needs ``yes=True`` (``labctl reset --yes``); an empty one is adopted.

The API, for backends and for reset-like commands: :func:`seat_images`, :func:`check_seat`,
:func:`ensure_images`, :func:`check_reset`, :func:`recreate_blank`, :func:`load_records`,
:func:`fingerprint`. Nothing here prints; refusals are :class:`ImageRefused` (exit 2, one line).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.errors import RefusedError

if TYPE_CHECKING:
    from labctl.spec import Lab, Seat

PathKey = tuple[str | int, ...]
RECORDS = "images.json"
DEFAULT_DISK = "disk.img"  # a seat's local disk when vm.disk.image is not given (in its state folder)
MIN_IMAGE = 1 << 20
HEADER = 64 << 10  # the fingerprinted head: protective MBR, GPT header and entries
_KINDS = {
    stat.S_IFBLK: "a block device (a host disk: labctl never hands one to a VM as an image; use stick.usb "
                  "for a real stick, or 'labctl stick restore' to write an image onto one)",
    stat.S_IFCHR: "a character device, not an image file",
    stat.S_IFIFO: "a FIFO (named pipe), not an image file",
    stat.S_IFSOCK: "a socket, not an image file",
    stat.S_IFDIR: "a folder; give a file name for the image",
}


class ImageRefused(RefusedError):
    """A seat image path that must not be used (or reset); ``key`` is the lab-file field it came from."""

    def __init__(self, message: str, key: PathKey = ()) -> None:
        super().__init__(message)
        self.key = key
        self.reason = message


@dataclass(frozen=True)
class SeatImage:
    """One image file a seat's VM writes: its role, absolute path, size for a new file, lab field."""

    role: str  # "stick" | "disk"
    path: Path
    size: int
    key: PathKey

    @property
    def field(self) -> str:
        return ".".join(str(k) if isinstance(k, str) else f"[{k}]" for k in self.key).replace(".[", "[")


@dataclass(frozen=True)
class Record:
    """What labctl noted about an image it created (in ``images.json`` of the seat's state folder)."""

    role: str
    path: str
    dev: int
    ino: int
    size: int
    fingerprint: str
    created: str
    generation: int | None = None  # FS_IOC_GETVERSION; None where the file system has none (tmpfs)

    def matches(self, st: os.stat_result, generation: int | None) -> bool:
        """Whether a file (its stat and generation) is the inode this record describes."""
        same_gen = self.generation is None or generation is None or self.generation == generation
        return (st.st_dev, st.st_ino) == (self.dev, self.ino) and same_gen


# -- the path check ----------------------------------------------------------------------------------


def _stat(path: Path) -> os.stat_result | None:
    """stat through links; None when nothing is there. OSError (a loop, no access) goes to the caller."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _identity(path: Path) -> tuple[int, int] | str | None:
    """(st_dev, st_ino) of an existing file, the resolved path of an absent one, None on errors."""
    try:
        st = _stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st is not None else os.path.realpath(path)


def image_problem(path: Path, forbidden: Iterable[tuple[Path, str]] = ()) -> str | None:
    """Why ``path`` may not be a seat image, or None when it may.

    ``path`` is followed through symbolic links (a loop is a problem, not an exception). It may be
    a regular file or absent; an existing file must be whole 512-byte sectors and at least 1 MiB.
    ``forbidden`` pairs files the image must not be with their description ("the lab file", "seat 2's
    stick image"); they are compared by device and inode (hard links and symlinks count), or by
    resolved path while absent. This is the one check every backend runs right before it opens or
    creates an image file.
    """
    try:
        st = _stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a loop of symbolic links"
        return f"cannot be checked ({exc.strerror})"
    if st is None:
        if os.path.islink(path):  # resolved paths get here only when a link's target's folder is gone
            return "a symbolic link to nothing"
        from labctl.stick.blockdev import in_kernel_folder

        if in_kernel_folder(str(path)):
            return ("a device path with no device behind it (not plugged in?); labctl never creates an image "
                    "there: use stick.usb for a real stick, or an image file elsewhere")
    else:
        kind = _KINDS.get(stat.S_IFMT(st.st_mode))
        if kind is not None or not stat.S_ISREG(st.st_mode):
            return f"is {kind or 'not a regular file'}"
    mine = _identity(path)
    for other, label in forbidden:
        if mine is not None and _identity(other) == mine:
            return f"is {label}"
    if st is not None and (st.st_size < MIN_IMAGE or st.st_size % 512):
        return (f"holds {st.st_size} bytes: not a disk image (an image is whole 512-byte sectors, at least "
                "1 MiB); give a new file name")
    if st is not None:
        from labctl.stick.blockdev import loop_users

        if users := loop_users(str(path)):
            return f"backs loop device {', '.join(users)}: a disk in use ('losetup -d' frees it)"
    return None


# -- a lab's images ----------------------------------------------------------------------------------


def seat_images(lab: Lab, seat: Seat, default_disk: Path | None = None) -> list[SeatImage]:
    """The image files of a seat: its stick image (when not a host stick) and its local disk."""
    out = []
    image = seat.stick_image(lab)
    if image is not None:
        key: PathKey = ("seats", seat.index - 1, "stick", "image") if seat.override.stick else ("stick", "image")
        out.append(SeatImage("stick", image, seat.stick.size or 0, key))
    disk = lab.vm.disk
    if disk is not None:
        if disk.image:
            out.append(SeatImage("disk", lab.resolve(disk.image, seat), disk.size, ("vm", "disk", "image")))
        else:
            out.append(SeatImage("disk", default_disk or seat.state_dir / DEFAULT_DISK, disk.size, ("vm", "disk")))
    return out


def _playbook_files(lab: Lab) -> list[Path]:
    from labctl.spec import playbook_file

    return [playbook_file(lab, name) for name in [lab.install.playbook, *lab.post_install]]


def lab_files(lab: Lab) -> list[tuple[Path, str]]:
    """Files a lab reads that no image may be: the lab file, ISOs, playbooks, password and kickstart
    files, the lab's firmware and the host's (Debian's OVMF builds a QEMU seat boots by default)."""
    out: list[tuple[Path, str]] = [(lab.source, "the lab file itself")]
    for seat in lab.seat_list():
        iso = lab.iso_path(seat)
        if iso is not None:
            out.append((iso, "the installer ISO"))
    out += [(p, f"the playbook {p.name}") for p in _playbook_files(lab)]
    secret = lab.install.root_password.file
    if secret is not None:
        out.append((lab.resolve(secret), "the root password file"))
    if lab.install.kickstart is not None:
        out.append((lab.resolve(lab.install.kickstart), "the kickstart file"))
    for value, label in ((lab.qemu.ovmf_code, "the UEFI firmware"), (lab.qemu.ovmf_vars, "the UEFI variables")):
        if value is not None:
            out.append((lab.resolve(value), label))
    from labctl.backends import qemu_argv  # the host's own firmware files, used when the lab names none

    out += [(p, "the host's UEFI firmware") for p in (qemu_argv.OVMF_CODE, qemu_argv.OVMF_CODE_SECBOOT)]
    out += [(p, "the host's UEFI variables template") for p in (qemu_argv.OVMF_VARS, qemu_argv.OVMF_VARS_SECBOOT)]
    return out


def _label(seat: Seat, image: SeatImage) -> str:
    return f"seat {seat.index} ({seat.name})'s {image.role} image"


def check_lab(lab: Lab, seats: Iterable[Seat] | None = None) -> None:
    """Every seat image of the lab may be one (see :func:`image_problem`); no two are one file.
    Raises :class:`ImageRefused` with the lab field (``key``) of the first one that may not."""
    files = lab_files(lab)
    every = [(seat, img) for seat in lab.seat_list() for img in seat_images(lab, seat)]
    wanted = {s.index for s in seats} if seats is not None else None
    for i, (seat, img) in enumerate(every):
        if wanted is not None and seat.index not in wanted:
            continue
        others = files + [(o.path, _label(s, o)) for j, (s, o) in enumerate(every) if j != i]
        problem = image_problem(img.path, others)
        if problem is not None:
            raise ImageRefused(f"{img.path}: {problem}", img.key)


def _forbidden(lab: Lab, seat: Seat, mine: list[SeatImage], img: SeatImage) -> list[tuple[Path, str]]:
    """What ``img`` must not be: the lab's own files, the other seats' images, this seat's other one."""
    others = [(o.path, _label(s, o)) for s in lab.seat_list() if s.index != seat.index
              for o in seat_images(lab, s)]
    siblings = [(o.path, f"this seat's {o.role} image") for o in mine if o is not img]
    return lab_files(lab) + others + siblings


def _refused(seat: Seat, img: SeatImage, problem: str) -> ImageRefused:
    return ImageRefused(f"seat {seat.index} ({seat.name}): {img.role} image {img.path}: {problem}", img.key)


def check_seat(lab: Lab, seat: Seat, default_disk: Path | None = None) -> list[SeatImage]:
    """The backend's last check before it opens or creates a seat's images; returns them.
    Raises :class:`ImageRefused` ("seat N (name): stick image PATH: why") when one may not be used."""
    mine = seat_images(lab, seat, default_disk)
    for img in mine:
        problem = image_problem(img.path, _forbidden(lab, seat, mine, img))
        if problem is not None:
            raise _refused(seat, img, problem)
    return mine


def open_for_vm(lab: Lab, seat: Seat, roles: Iterable[str], default_disk: Path | None = None) -> dict[str, int]:
    """Open a seat's existing images of ``roles`` ("stick", "disk") read-write for a VM to inherit: role
    -> descriptor (close-on-exec; the caller hands it over and closes its own).

    Each is checked as the file it opens, not by its path alone. The path is first pinned with O_PATH,
    which opens nothing (a device put there is not opened: no side effects); the pinned inode must be
    a regular file of whole sectors, none of the files the image must not be (by device and inode), and
    the file the path names once :func:`image_problem` passed. Only then is that inode opened
    read-write, through the pin. A path swapped for a disk or another file after the check changes
    nothing: the VM gets the file that was checked. Raises :class:`ImageRefused`.
    """
    wanted = set(roles)
    mine = seat_images(lab, seat, default_disk)
    fds: dict[str, int] = {}
    try:
        for img in mine:
            if img.role in wanted:
                fds[img.role] = _open_checked(seat, img, _forbidden(lab, seat, mine, img))
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _open_checked(seat: Seat, img: SeatImage, forbidden: list[tuple[Path, str]]) -> int:
    try:
        pin = os.open(img.path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        raise _refused(seat, img, f"cannot be opened ({exc.strerror})") from None
    try:
        st = os.fstat(pin)
        identity = (st.st_dev, st.st_ino)
        problem = image_problem(img.path, forbidden)
        if problem is None and not stat.S_ISREG(st.st_mode):
            problem = f"is {_KINDS.get(stat.S_IFMT(st.st_mode)) or 'not a regular file'}"
        if problem is None and (st.st_size < MIN_IMAGE or st.st_size % 512):
            problem = f"holds {st.st_size} bytes: not a disk image"
        if problem is None:
            problem = next((f"is {label}" for other, label in forbidden if _identity(other) == identity), None)
        if problem is None and _identity(img.path) != identity:
            problem = "changed while it was being opened (another program replaced it)"
        if problem is not None:
            raise _refused(seat, img, problem)
        fd = os.open(f"/proc/self/fd/{pin}", os.O_RDWR | os.O_CLOEXEC | os.O_NOCTTY)  # the pinned inode
    finally:
        os.close(pin)
    if (os.fstat(fd).st_dev, os.fstat(fd).st_ino) != identity:  # pragma: no cover - a pin reopens its inode
        os.close(fd)
        raise _refused(seat, img, "changed while it was being opened")
    return fd


def ensure_images(lab: Lab, seat: Seat, default_disk: Path | None = None) -> list[SeatImage]:
    """Check a seat's images (:func:`check_seat`) and create the missing ones, sparse, recording
    each as made by labctl. Backends call this right before they hand the images to a VM."""
    images = check_seat(lab, seat, default_disk)
    for img in images:
        if not os.path.lexists(img.path):
            create(seat.state_dir, img)
    return images


# -- creating, recording, resetting ------------------------------------------------------------------


_FS_IOC_GETVERSION = 0x80087601  # _IOR('v', 1, long); the kernel writes an unsigned 32-bit generation


def generation(fd: int) -> int | None:
    """The inode's generation number (new for every inode the file system hands out), or None."""
    try:
        raw = fcntl.ioctl(fd, _FS_IOC_GETVERSION, bytes(8))
    except OSError:  # ENOTTY/EOPNOTSUPP: tmpfs, some network file systems
        return None
    return int.from_bytes(raw[:4], sys.byteorder)


def fingerprint(fd: int) -> str:
    """sha256 of a file's first 64 KiB (its partition table area), from an open descriptor."""
    return hashlib.sha256(os.pread(fd, HEADER, 0)).hexdigest()


def _records_path(state_dir: Path) -> Path:
    return state_dir / RECORDS


def load_records(state_dir: Path) -> dict[str, Record]:
    """The images labctl created for a seat, by path; a missing or damaged file is no records."""
    try:
        data = json.loads(_records_path(state_dir).read_text(encoding="utf-8"))
        return {r["path"]: Record(**r) for r in data["images"]}
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return {}


def _save_records(state_dir: Path, records: dict[str, Record]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = _records_path(state_dir)
    tmp = path.with_name(f".{RECORDS}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "images": [asdict(r) for r in records.values()]}, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _note(state_dir: Path, role: str, path: Path, fd: int) -> Record:
    st = os.fstat(fd)
    rec = Record(role, str(path), st.st_dev, st.st_ino, st.st_size, fingerprint(fd),
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), generation(fd))
    records = load_records(state_dir)
    records[str(path)] = rec
    _save_records(state_dir, records)
    return rec


def create(state_dir: Path, img: SeatImage) -> Record:
    """Create a new sparse image (never over an existing file or through a link) and record it."""
    img.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(img.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(fd, img.size)
        return _note(state_dir, img.role, img.path, fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(fd: int, path: Path) -> Iterator[None]:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise ImageRefused(f"{path} is locked by another program (a running VM?); refused") from None
    yield


def _open_in_place(img: SeatImage, write: bool = True) -> int:
    try:
        return os.open(img.path, (os.O_RDWR if write else os.O_RDONLY) | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ImageRefused(f"{img.role} image {img.path}: cannot open it ({exc.strerror})", img.key) from None


def _holds_data(fd: int) -> bool:
    try:
        os.lseek(fd, 0, os.SEEK_DATA)
    except OSError:
        return False  # ENXIO: only holes
    return True


def _verdict(state_dir: Path, img: SeatImage, fd: int, yes: bool) -> tuple[bool, int]:
    """(whether labctl created the open file, the size to make it) or ImageRefused."""
    what = f"{img.role} image {img.path}"
    rec = load_records(state_dir).get(str(img.path))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise ImageRefused(f"{what}: not a regular file; refused", img.key)
    ours = rec is not None and rec.matches(st, generation(fd))
    if rec is not None and ours and st.st_size != rec.size:
        raise ImageRefused(f"{what}: {st.st_size} bytes, labctl made it {rec.size}: something else changed "
                           "it; refused (move it away and reset again for a new one)", img.key)
    if not ours and _holds_data(fd) and not yes:
        why = "labctl did not create this file" if rec is None else "it is not the file labctl created there"
        raise ImageRefused(f"{what}: holds data labctl did not write ({why}); pass --yes to empty it", img.key)
    return ours, (rec.size if rec is not None and ours else st.st_size)


def check_reset(state_dir: Path, img: SeatImage, *, yes: bool = False) -> None:
    """Raise :class:`ImageRefused` when :func:`recreate_blank` would refuse; changes nothing. Run it
    for every image before a reset touches anything, so a refusal leaves every file as it was."""
    if not os.path.lexists(img.path):
        return
    fd = _open_in_place(img, write=False)
    try:
        _verdict(state_dir, img, fd, yes)
    finally:
        os.close(fd)


def recreate_blank(state_dir: Path, img: SeatImage, *, yes: bool = False) -> str:
    """Make a seat image blank again, in place, when labctl may; returns what was done (one line).

    The file must pass the path check first (the caller runs :func:`check_seat`). A missing file is
    created. A file labctl created (same device, inode and size as recorded) is emptied in place. A
    file labctl did not create is emptied only with ``yes`` when it holds data; an empty one is
    adopted. A recorded path now holding the recorded inode at another size is refused. The inode,
    its owner, mode and hard links stay: the file is cut to 0 bytes and extended again, to the lab's
    size for an image labctl made (the lab's stick.size may have changed), else to its own size.
    """
    what = f"{img.role} image {img.path}"
    if not os.path.lexists(img.path):
        create(state_dir, img)
        return f"{what} created blank ({img.size / 2**30:g} GiB, sparse)"
    fd = _open_in_place(img)
    try:
        ours, size = _verdict(state_dir, img, fd, yes)
        if ours and img.size:  # labctl's own image is made again as the lab says now (stick.size changed?)
            size = img.size
        with _locked(fd, img.path):
            if ours and not _holds_data(fd) and os.fstat(fd).st_size == size:
                return f"{what} already blank"
            os.ftruncate(fd, 0)
            os.ftruncate(fd, size)
            os.fsync(fd)
            _note(state_dir, img.role, img.path, fd)
    finally:
        os.close(fd)
    return f"{what} recreated blank in place ({size / 2**30:g} GiB, sparse)"
