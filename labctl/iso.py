"""Remastering an ESXi installer ISO with a kickstart file (``labctl iso kickstart``), with pycdlib.

What an unattended install needs on the CD (reference: ESXi's scripted install, §5 of the 6.7 facts):

- the script itself as ``/KS.CFG`` (upper case: the boot option is ``ks=cdrom:/KS.CFG``);
- ``ks=cdrom:/KS.CFG`` in the ``kernelopt=`` line of both boot loader configurations, ``/BOOT.CFG``
  (BIOS, read by isolinux's mboot.c32) and ``/EFI/BOOT/BOOT.CFG`` (UEFI, read by esx-boot), so the
  installer starts the script whatever the firmware, with nothing typed at the boot loader.

Everything else is kept as it was: the volume label, both El Torito entries (BIOS ``ISOLINUX.BIN`` and
EFI ``EFIBOOT.IMG``) and every other file. pycdlib rewrites the image; the original is never changed.
An ISO with only one of the two ``BOOT.CFG`` files (the simulator has only the EFI one) gets that one
changed; an ISO with neither is not an ESXi installer and is refused.

``cached_kickstart_iso`` is what ``labctl up`` uses for a lab with ``install.kickstart``: the remastered
ISO is kept in a cache folder under a name made of the SHA-256 of the ISO, the kickstart and the boot
options, so a second run (or a second seat) reuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from labctl.errors import InputError

KS_NAME = "KS.CFG"
KS_OPTION = "ks=cdrom:/KS.CFG"
BOOT_CFGS = ("/BOOT.CFG", "/EFI/BOOT/BOOT.CFG")
MAX_KICKSTART = 1 << 20
_KERNELOPT = re.compile(rb"^(kernelopt=)(.*?)(\r?)$", re.M)


@dataclass(frozen=True)
class BootEntry:
    """One El Torito entry: the platform (0 = BIOS x86, 0xEF = EFI), its emulation and where it starts."""

    platform: int
    media: str
    load_rba: int
    sectors: int

    @property
    def kind(self) -> str:
        return "EFI" if self.platform == 0xEF else "BIOS"


@dataclass(frozen=True)
class IsoFacts:
    """What a remaster must keep, read back from an ISO."""

    volume_label: str
    boot_entries: tuple[BootEntry, ...]
    kernelopts: dict[str, str]  # BOOT.CFG path -> its kernelopt value
    has_kickstart: bool


def set_kernelopt(cfg: bytes, extra: Sequence[str] = ()) -> bytes:
    """A BOOT.CFG with ``ks=cdrom:/KS.CFG`` (and the ``extra`` options) at the end of its kernelopt line.

    An earlier ``ks=`` word goes, as does any word setting the same option as one of ``extra``
    (``preferVMklinux=FALSE`` when ``preferVMklinux=TRUE`` is added); everything else, the other lines
    and their line ends included, stays as it was. No kernelopt line: InputError."""
    added = [*extra, KS_OPTION]
    keys = {w.split("=", 1)[0].lower() for w in added}

    def repl(m: re.Match[bytes]) -> bytes:
        words = [w for w in m.group(2).decode("ascii", "replace").split()
                 if w.split("=", 1)[0].lower() not in keys]
        return m.group(1) + " ".join([*words, *added]).encode() + m.group(3)

    out, n = _KERNELOPT.subn(repl, cfg, count=1)
    if n == 0:
        raise InputError("BOOT.CFG has no kernelopt= line")
    return out


def _kernelopt(cfg: bytes) -> str:
    m = _KERNELOPT.search(cfg)
    return m.group(2).decode("ascii", "replace").strip() if m else ""


def _check_options(extra: Sequence[str]) -> None:
    for word in extra:
        if not word or any(c.isspace() for c in word) or not word.isascii():
            raise InputError(f"boot option {word!r}: one word of printable ASCII, like preferVMklinux=TRUE")


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[pycdlib.PyCdlib]:
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(path))
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    except PyCdlibException as exc:
        raise InputError(f"{path}: not an ISO 9660 image ({exc})") from None
    try:
        yield iso
    finally:
        iso.close()


def _find(iso: pycdlib.PyCdlib, path: str) -> str | None:
    """The ISO9660 path (with its ;1 version) of a file, or None."""
    for candidate in (f"{path};1", path):
        try:
            rec = iso.get_record(iso_path=candidate)
        except PyCdlibException:
            continue
        if rec.is_file():
            return candidate
    return None


def _read(iso: pycdlib.PyCdlib, iso_path: str) -> bytes:
    buf = io.BytesIO()
    iso.get_file_from_iso_fp(buf, iso_path=iso_path)
    return buf.getvalue()


def _add(iso: pycdlib.PyCdlib, fp: io.BytesIO, path: str) -> None:
    """Add a file under its ISO9660 name, and its Rock Ridge / Joliet names when the ISO has those trees."""
    iso.add_fp(fp, len(fp.getvalue()), iso_path=f"{path};1",
               rr_name=path.rsplit("/", 1)[-1] if iso.has_rock_ridge() else None,
               joliet_path=path if iso.has_joliet() else None)


def _entries(iso: pycdlib.PyCdlib) -> tuple[BootEntry, ...]:
    cat = iso.eltorito_boot_catalog
    if cat is None:
        return ()
    medias = {0: "no emulation", 1: "1.2M floppy", 2: "1.44M floppy", 3: "2.88M floppy", 4: "hard disk"}
    out = [BootEntry(int(cat.validation_entry.platform_id), medias.get(cat.initial_entry.boot_media_type, "?"),
                     int(cat.initial_entry.load_rba), int(cat.initial_entry.sector_count))]
    for section in cat.sections:
        for e in section.section_entries:
            out.append(BootEntry(int(section.platform_id), medias.get(e.boot_media_type, "?"), int(e.load_rba),
                                 int(e.sector_count)))
    return tuple(out)


def inspect_iso(path: Path) -> IsoFacts:
    """Volume label, El Torito entries, the kernelopt of each BOOT.CFG and whether /KS.CFG is there."""
    with _opened(path) as iso:
        opts = {}
        for cfg in BOOT_CFGS:
            found = _find(iso, cfg)
            if found:
                opts[cfg] = _kernelopt(_read(iso, found))
        label = iso.pvd.volume_identifier.decode("ascii", "replace").rstrip()
        return IsoFacts(label, _entries(iso), opts, _find(iso, "/" + KS_NAME) is not None)


def read_kickstart(path: Path) -> bytes:
    """The kickstart's bytes: a regular text file of at most 1 MiB (one clear line otherwise)."""
    try:
        if not path.is_file():
            raise InputError(f"{path}: not a regular file (the kickstart)")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    if len(data) > MAX_KICKSTART:
        raise InputError(f"{path}: {len(data)} bytes; a kickstart is a small text file (at most 1 MiB)")
    if b"\0" in data:
        raise InputError(f"{path}: binary data; a kickstart is a text file")
    return data


def remaster_kickstart(source: Path, kickstart: bytes, output: Path, extra_options: Sequence[str] = ()) -> IsoFacts:
    """Write ``output``: ``source`` with /KS.CFG = ``kickstart`` and ks=cdrom:/KS.CFG (plus
    ``extra_options``) in the kernelopt of every BOOT.CFG it has. Returns what the new ISO holds.

    The output is written to a temporary file beside it and renamed into place, so a failure never
    leaves half an ISO under the output's name."""
    _check_options(extra_options)
    source, output = Path(source), Path(output)
    if output.resolve() == source.resolve():
        raise InputError(f"{output}: the output must not be the source ISO")
    before = inspect_iso(source)
    if not before.kernelopts:
        raise InputError(f"{source}: no BOOT.CFG or EFI/BOOT/BOOT.CFG: not an ESXi installer ISO")
    keep: list[io.BytesIO] = []  # pycdlib reads these at write time
    with _opened(source) as iso:
        for cfg in BOOT_CFGS:
            found = _find(iso, cfg)
            if found is None:
                continue
            new = io.BytesIO(set_kernelopt(_read(iso, found), extra_options))
            keep.append(new)
            iso.update_file_contents_fp(new, len(new.getvalue()), iso_path=found)
        ks = io.BytesIO(kickstart)
        keep.append(ks)
        existing = _find(iso, "/" + KS_NAME)
        if existing:
            iso.update_file_contents_fp(ks, len(kickstart), iso_path=existing)
        else:
            _add(iso, ks, "/" + KS_NAME)
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=output.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                iso.write_fp(out)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the ISO from a hypervisor's user
            os.replace(tmp, output)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    after = inspect_iso(output)
    if after.volume_label != before.volume_label or len(after.boot_entries) != len(before.boot_entries):
        raise InputError(f"{output}: the remaster lost the volume label or an El Torito entry")  # pragma: no cover
    return after


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(source: Path, kickstart: bytes, extra_options: Sequence[str] = ()) -> str:
    """SHA-256 over the ISO's bytes, the kickstart and the boot options (a changed file is a new key)."""
    h = hashlib.sha256()
    h.update(b"labctl-iso-kickstart-1\0")
    h.update(_sha256_file(source).encode() + b"\0")
    h.update(hashlib.sha256(kickstart).hexdigest().encode() + b"\0")
    h.update(" ".join(extra_options).encode())
    return h.hexdigest()[:24]


def cached_kickstart_iso(source: Path, kickstart: Path, cache: Path, extra_options: Sequence[str] = ()) -> Path:
    """The remastered ISO for a lab's ``install.kickstart``: built once into ``cache`` and reused."""
    data = read_kickstart(kickstart)
    try:
        key = cache_key(source, data, extra_options)
    except OSError as exc:
        raise InputError(f"{source}: {exc.strerror}") from None
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{source.stem}-ks-{key}.iso"
    if not out.is_file():
        remaster_kickstart(source, data, out, extra_options)
    return out


def lab_kickstart_iso(kickstart: Path, source: Path, boot_options: str = "") -> Path:
    """The ISO ``labctl up`` boots for a lab with ``install.kickstart``: ``source`` (the lab's ISO or the
    built simulator) remastered with the kickstart and the lab's boot options, from labctl's cache."""
    from labctl.sim.build import cache_dir

    return cached_kickstart_iso(source, kickstart, cache_dir() / "kickstart", boot_options.split())
