"""Build the ESXi installer simulator ISO (``labctl sim build [--esxi 6.7|8.0]``).

One source tree serves every profile: the build selects the profile's table (``src/lib/profile.c``)
with ``-DSIM_ESXI=67|80`` and lays out the partition payloads the profile's installer copies.

Two gnu-efi applications share the C library in ``src/lib``: the installer (``src/installer``, the El
Torito EFI boot image of the ISO) and the installed system (``src/esxi``, written by the installer as
``\\EFI\\BOOT\\BOOTX64.EFI`` into partition 1 of the target disk). The partition payloads (FAT images for
partitions 1, 5, 6, 8 and 2) are built here with mkfs.vfat/mtools at their exact partition sizes, then
stored on the ISO9660 tree under ``/PAYLOAD`` with their trailing zeros cut off; the installer copies
them raw onto the disk.

Output is deterministic (fixed timestamps, volume ids, sorted inputs) and cached by a hash of the
sources, the speed and the optional kickstart file in ``$LABCTL_CACHE_DIR`` or
``$XDG_CACHE_HOME/labctl/sim`` (``~/.cache/labctl/sim``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import InputError, RunFailed

SRC = Path(__file__).resolve().parent / "src"
BUILD_FORMAT = "5"  # bump when the build recipe changes in a way the sources do not show
SOURCE_DATE_EPOCH = 1534204800  # 2018-08-14, ESXi 6.7.0 GA build 8169922's era
SPEEDS = ("fast", "real")
PROFILES = ("6.7", "8.0")
APT_PACKAGES = "gcc binutils gnu-efi xorriso mtools dosfstools"

EFI_INC = Path("/usr/include/efi")
EFI_LDS = Path("/usr/lib/elf_x86_64_efi.lds")
EFI_CRT0 = Path("/usr/lib/crt0-efi-x86_64.o")
EFI_LIBDIR = Path("/usr/lib")

CFLAGS = [
    "-std=c99", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
    "-fpic", "-ffreestanding", "-fno-stack-protector", "-fno-strict-aliasing", "-fshort-wchar",
    "-mno-red-zone", "-maccumulate-outgoing-args", "-DEFI_FUNCTION_WRAPPER",
    "-I", str(EFI_INC), "-I", str(EFI_INC / "x86_64"), "-I", str(EFI_INC / "protocol"),
]
OBJCOPY_SECTIONS = [
    ".text", ".sdata", ".data", ".rodata", ".dynamic", ".dynsym", ".rel", ".rela", ".rel.*", ".rela.*", ".reloc",
]

SECTOR = 512


@dataclass(frozen=True)
class FatPayload:
    """One partition image: partedUtil number, size in sectors, label, files (path in FAT -> bytes)."""

    number: int
    sectors: int
    label: str
    files: dict[str, bytes]
    dirs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    """What the build needs to know of a profile (the screens' texts live in src/lib/profile.c)."""

    esxi: str
    define: int  # -DSIM_ESXI=
    build: str  # boot.cfg build=
    volume: str  # ISO volume label
    payload_sectors: dict[int, int]  # FAT payloads: partition -> sectors


PROFILE_DATA = {
    # reference/esxi-6.7-installer.md §3: 1 64-8191, 5 8224-520191, 6 520224-1032191, 8 1257504-1843199,
    # 2 7086080-15472639
    "6.7": Profile("6.7", 67, "6.7.0-8169922", "ESXI-6.7.0-SIM",
                   {1: 8191 - 64 + 1, 5: 520191 - 8224 + 1, 6: 1032191 - 520224 + 1, 8: 1843199 - 1257504 + 1,
                    2: 15472639 - 7086080 + 1}),
    # ESXi 8.0: 1 64-204863 (100 MiB); bootbanks 500 MiB, 1 GiB or 4 GiB by media size: the file systems
    # are made at the smallest (500 MiB) and fit every bootbank
    "8.0": Profile("8.0", 80, "8.0.3-24677879", "ESXI-8.0U3E-SIM", {1: 204863 - 64 + 1, 5: 1024000, 6: 1024000}),
}


def profile(esxi: str) -> Profile:
    if esxi not in PROFILE_DATA:
        raise InputError(f"esxi must be one of {', '.join(PROFILES)}, not {esxi!r}")
    return PROFILE_DATA[esxi]


def _field(name: str, width: int) -> str:
    """A placeholder the installer overwrites in place: @@NAME@@ padded with spaces to width."""
    token = f"@@{name}@@"
    return token + " " * (width - len(token))


def iso_boot_cfg(esxi: str = "6.7") -> bytes:
    """BOOT.CFG and EFI/BOOT/BOOT.CFG of the ISO, as on VMware's: the installer's boot loader reads its
    title, timeout and kernelopt (a remastered ISO adds ks=cdrom:/KS.CFG to kernelopt)."""
    lines = [
        "bootstate=0",
        "title=Loading ESXi installer",
        "timeout=5",
        "prefix=",
        "kernel=/b.b00",
        "kernelopt=runweasel cdromBoot",
        "modules=/jumpstrt.gz --- /useropts.gz --- /features.gz --- /k.b00 --- /chardevs.b00 --- /s.v00"
        " --- /weaselin.t00 --- /imgdb.tgz --- /imgpayld.tgz",
        f"build={profile(esxi).build}",
        "updated=0",
    ]
    return ("\n".join(lines) + "\n").encode()


def boot_cfg(esxi: str = "6.7") -> bytes:
    lines = [
        "bootstate=0",
        "title=Loading VMware ESXi",
        "timeout=5",
        "prefix=",
        "kernel=/b.b00",
        "kernelopt=" + _field("KERNELOPT", 200),
        "modules=/jumpstrt.gz --- /useropts.gz --- /features.gz --- /k.b00 --- /chardevs.b00 --- /s.v00"
        " --- /esx_dvfi.v00 --- /state.tgz",
        f"build={profile(esxi).build}",
        "updated=1",
    ]
    return ("\n".join(lines) + "\n").encode()


def state_cfg(esxi: str = "6.7") -> bytes:
    """Settings state of the installed system (key=value, values padded with spaces: trim them).
    8.0 has no preferVmklinux (vmklinux is gone)."""
    lines = [
        "# labctl ESXi simulator state: key=value, trailing spaces are padding",
        "version=1",
        "install.disk=" + _field("DISK", 40),
        "install.media=" + _field("MEDIA", 8),
        "keyboard=" + _field("KEYBOARD", 40),
        "rootpw=" + _field("ROOTPW", 40),
    ]
    if esxi == "6.7":
        lines.append("kernel.preferVmklinux=" + _field("PREFERVMKLINUX", 8))
    lines += [
        "module.vmkusb.enabled=TRUE",
        "shell.enabled=FALSE",
        "ssh.enabled=FALSE",
        "scratch.configured=",
        "syslog.loghost=",
        "syslog.logdir=",
        "coredump.network.enabled=FALSE",
        "coredump.network.vnic=",
        "coredump.network.ip=",
        "coredump.network.port=",
    ]
    return ("\n".join(lines) + "\n").encode()


def payloads(esxi_efi: bytes, esxi: str = "6.7") -> list[FatPayload]:
    """Partition images of the profile (sizes in PROFILE_DATA)."""
    sectors = profile(esxi).payload_sectors
    all_payloads = [
        FatPayload(1, sectors[1], "ESXI", {"EFI/BOOT/BOOTX64.EFI": esxi_efi}, ("EFI", "EFI/BOOT")),
        FatPayload(5, sectors[5], "BOOTBANK", {"boot.cfg": boot_cfg(esxi), "state.cfg": state_cfg(esxi)}),
        FatPayload(6, sectors[6], "ALTBOOTBANK", {}),
        FatPayload(8, sectors.get(8, 0), "STORE", {}, ("packages", "var", "var/db", "locker")),
        FatPayload(2, sectors.get(2, 0), "SCRATCH", {}, ("log", "var", "var/tmp", "core", "downloads")),
    ]
    return [p for p in all_payloads if p.number in sectors]


def cache_dir() -> Path:
    env = os.environ.get("LABCTL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "labctl" / "sim"


def source_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*") if p.is_file() and p.suffix in (".c", ".h"))


def build_key(speed: str, kickstart: bytes | None, serial_bootloader: bool = False, esxi: str = "6.7") -> str:
    h = hashlib.sha256()
    h.update(f"format={BUILD_FORMAT}\nspeed={speed}\nserial_bootloader={serial_bootloader}\nesxi={esxi}\n".encode())
    h.update(Path(__file__).read_bytes())
    for p in source_files():
        h.update(str(p.relative_to(SRC)).encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    if kickstart is not None:
        h.update(b"kickstart\0" + kickstart)
    return h.hexdigest()[:20]


def _which(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return shutil.which(name, path=path)


def find_tools() -> dict[str, str]:
    """Absolute paths of the host tools; InputError naming the apt packages when any is missing."""
    names = ["gcc", "ld", "objcopy", "xorriso", "mkfs.vfat", "mmd", "mcopy"]
    found = {n: _which(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    missing += [str(p) for p in (EFI_LDS, EFI_CRT0, EFI_INC / "efi.h", EFI_LIBDIR / "libefi.a") if not p.exists()]
    if missing:
        raise InputError(
            f"sim build needs {', '.join(missing)}: install them with 'sudo apt-get install {APT_PACKAGES}'"
        )
    return {n: p for n, p in found.items() if p is not None}


def _run(argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 120) -> None:
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise RunFailed(f"sim build: {Path(argv[0]).name} timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        out = (proc.stderr or proc.stdout).strip().splitlines()
        detail = "\n".join(out[-15:])
        raise RunFailed(f"sim build: {Path(argv[0]).name} failed (exit {proc.returncode}):\n{detail}")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    env.update({"SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH), "LANG": "C", "LC_ALL": "C", "TZ": "UTC",
                "MTOOLS_SKIP_CHECK": "1"})
    return env


def _compile(tools: dict[str, str], src: Path, obj: Path, speed: str, serial_bootloader: bool,
             esxi: str = "6.7") -> None:
    defs = [f"-DSIM_SPEED_REAL={1 if speed == 'real' else 0}",
            f"-DSIM_SERIAL_BOOTLOADER={1 if serial_bootloader else 0}", f"-DSIM_ESXI={profile(esxi).define}"]
    _run([tools["gcc"], *CFLAGS, *defs, f"-ffile-prefix-map={SRC}=sim", "-c", str(src), "-o", str(obj)],
         env=_env())


def _link(tools: dict[str, str], objs: Sequence[Path], out: Path) -> bytes:
    so = out.with_suffix(".so")
    _run([tools["ld"], "-shared", "-Bsymbolic", "-nostdlib", "-znocombreloc", "--build-id=none",
          "-T", str(EFI_LDS), str(EFI_CRT0), *map(str, objs), "-L", str(EFI_LIBDIR), "-lefi", "-lgnuefi",
          "-o", str(so)], env=_env())
    sections = [arg for s in OBJCOPY_SECTIONS for arg in ("-j", s)]
    _run([tools["objcopy"], *sections, "--target", "efi-app-x86_64", "--subsystem=10", str(so), str(out)],
         env=_env())
    return out.read_bytes()


def compile_apps(tools: dict[str, str], work: Path, speed: str, serial_bootloader: bool = False,
                 esxi: str = "6.7") -> tuple[bytes, bytes]:
    """Compile the library once and both applications; returns (installer.efi, esxi.efi) bytes."""
    groups = {g: sorted((SRC / g).glob("*.c")) for g in ("lib", "installer", "esxi")}
    jobs: list[tuple[Path, Path]] = []
    for g, files in groups.items():
        (work / g).mkdir(parents=True, exist_ok=True)
        jobs += [(f, work / g / (f.stem + ".o")) for f in files]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for fut in [pool.submit(_compile, tools, s, o, speed, serial_bootloader, esxi) for s, o in jobs]:
            fut.result()

    def objs(*gs: str) -> list[Path]:
        return [work / g / (f.stem + ".o") for g in gs for f in groups[g]]

    installer = _link(tools, objs("installer", "lib"), work / "installer.efi")
    installed = _link(tools, objs("esxi", "lib"), work / "esxi.efi")
    return installer, installed


def _fixed_time(path: Path) -> None:
    os.utime(path, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))


def make_fat(tools: dict[str, str], image: Path, sectors: int, label: str, files: dict[str, bytes],
             dirs: Sequence[str], work: Path, volume_id: int) -> None:
    """A FAT file system of exactly sectors*512 bytes holding files (deterministic)."""
    with image.open("wb") as f:
        f.truncate(sectors * SECTOR)
    _run([tools["mkfs.vfat"], "--invariant", "-i", f"{volume_id:08X}", "-n", label, str(image)], env=_env())
    all_dirs = sorted(set(dirs) | {str(Path(p).parent) for p in files if str(Path(p).parent) != "."},
                      key=lambda d: (d.count("/"), d))
    if all_dirs:
        _run([tools["mmd"], "-i", str(image), *[f"::/{d}" for d in all_dirs]], env=_env())
    stage = work / f"stage-{image.stem}"
    for name in sorted(files):
        src = stage / name
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(files[name])
        _fixed_time(src)
        _run([tools["mcopy"], "-i", str(image), "-m", "-o", str(src), f"::/{name}"], env=_env())


def _data_end(path: Path) -> int:
    """End of the last allocated extent of a sparse file (SEEK_DATA/SEEK_HOLE), else its size."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = last = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after pos
                break
            pos = last = os.lseek(fd, data, os.SEEK_HOLE)
        return last
    except OSError:
        return size
    finally:
        os.close(fd)


def strip_zeros(path: Path) -> bytes:
    """The image without its trailing zero bytes, as a whole number of sectors (at least one)."""
    with path.open("rb") as f:
        data = f.read(_data_end(path))
    end = len(data.rstrip(b"\0"))
    end = max(SECTOR, -(-end // SECTOR) * SECTOR)
    return data[:end]


def build_into(tools: dict[str, str], work: Path, speed: str, kickstart: bytes | None,
               progress: Callable[[str], None], serial_bootloader: bool = False, esxi: str = "6.7") -> Path:
    prof = profile(esxi)
    progress(f"compiling the ESXi {esxi} installer and installed system")
    installer, esxi_efi = compile_apps(tools, work, speed, serial_bootloader, esxi)
    tree = work / "iso"
    (tree / "PAYLOAD").mkdir(parents=True)
    (tree / "EFI" / "BOOT").mkdir(parents=True)
    (tree / "BOOT.CFG").write_bytes(iso_boot_cfg(esxi))
    (tree / "EFI" / "BOOT" / "BOOT.CFG").write_bytes(iso_boot_cfg(esxi))

    progress("building the partition images")
    for i, p in enumerate(payloads(esxi_efi, esxi)):
        img = work / f"p{p.number}.full"
        make_fat(tools, img, p.sectors, p.label, p.files, p.dirs, work, 0x67000000 + i)
        (tree / "PAYLOAD" / f"P{p.number}.IMG").write_bytes(strip_zeros(img))
        img.unlink()

    progress("building the EFI boot image")
    esp = tree / "EFIBOOT.IMG"
    esp_sectors = max(2880, (len(installer) * 2 + 512 * 1024) // SECTOR)
    make_fat(tools, esp, esp_sectors, "ESXI-BOOT", {"EFI/BOOT/BOOTX64.EFI": installer}, ("EFI", "EFI/BOOT"),
             work, 0x67000100)
    if kickstart is not None:
        (tree / "KS.CFG").write_bytes(kickstart)
    (tree / "README.TXT").write_bytes(
        f"labctl ESXi {prof.build} installer simulator (not VMware software). Boot it with UEFI.\n".encode()
    )
    for entry in sorted(tree.rglob("*")):
        _fixed_time(entry)
    _fixed_time(tree)

    progress("writing the ISO")
    iso = work / "out.iso"
    # File data in path order, the boot image first. Left to itself, xorriso orders it by inode number,
    # and a freed inode (the partition images above) can go to a later file: the same sources then
    # gave another layout, now and then, on a busy machine.
    files = sorted(("/" + p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()),
                   key=lambda name: (name != "/EFIBOOT.IMG", name))
    weights = work / "sort-weights.txt"
    weights.write_text("".join(f"{len(files) - i} {name}\n" for i, name in enumerate(files)))
    _run([tools["xorriso"], "-as", "mkisofs", "-quiet", "-o", str(iso), "-V", prof.volume,
          "-sysid", "", "-appid", "LABCTL ESXI SIMULATOR", "-publisher", "", "-preparer", "",
          "--sort-weight-list", str(weights), "-e", "EFIBOOT.IMG", "-no-emul-boot", "-hide", "EFIBOOT.IMG",
          str(tree)], env=_env(), timeout=300)
    return iso


def build_iso(speed: str = "fast", output: Path | None = None, force: bool = False,
              kickstart: Path | None = None, progress: Callable[[str], None] | None = None,
              serial_bootloader: bool = False, esxi: str = "6.7") -> Path:
    """Build (or reuse from the cache) the simulator ISO; returns its path (output when given).

    esxi: the profile, "6.7" (default) or "8.0".
    kickstart: a file put on the ISO9660 tree as /KS.CFG (boot with ks=cdrom:/KS.CFG).
    serial_bootloader: test aid; the boot loader stage also prints to the serial console (the real
    esx-boot, and the default build, draw it on the graphics console only).
    """
    if speed not in SPEEDS:
        raise InputError(f"speed must be one of {', '.join(SPEEDS)}, not {speed!r}")
    prof = profile(esxi)
    ks_bytes: bytes | None = None
    if kickstart is not None:
        try:
            ks_bytes = Path(kickstart).read_bytes()
        except OSError as exc:
            raise InputError(f"{kickstart}: cannot read the kickstart file: {exc.strerror}") from exc
    report = progress or (lambda _msg: None)
    cdir = cache_dir()
    key = build_key(speed, ks_bytes, serial_bootloader, esxi)
    cached = cdir / f"esxi{prof.define}-sim-{speed}{'-serialboot' if serial_bootloader else ''}-{key}.iso"
    if force or not cached.exists():
        tools = find_tools()
        cdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".build-", dir=cdir) as tmp:
            iso = build_into(tools, Path(tmp), speed, ks_bytes, report, serial_bootloader, esxi)
            part = cdir / f".{cached.name}.{os.getpid()}.part"
            shutil.move(str(iso), part)
            os.replace(part, cached)
    else:
        report("cache hit")
    if output is None:
        return cached
    output = Path(output)
    if output.is_dir():
        output = output / cached.name
    if not output.parent.exists():
        raise InputError(f"{output}: the folder {output.parent} does not exist")
    tmp_out = output.with_name(f".{output.name}.{os.getpid()}.part")
    shutil.copyfile(cached, tmp_out)
    os.replace(tmp_out, output)
    return output
