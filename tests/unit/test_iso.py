"""labctl iso kickstart: /KS.CFG added, ks=cdrom:/KS.CFG in both BOOT.CFGs, both El Torito entries, the
volume label and the BIOS boot-info table kept. The source ISOs are built here with xorriso the way
ESXi's is laid out (BIOS ISOLINUX.BIN with a boot-info table + EFI EFIBOOT.IMG) and the way the simulator's
is (EFI entry only)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from labctl import iso
from labctl.cli import main
from labctl.errors import InputError

pytestmark = pytest.mark.skipif(shutil.which("xorriso") is None, reason="needs xorriso (scripts/setup installs it)")

LABEL = "ESXI-6.7.0-20180408001-STANDARD"
BOOT_CFG = (b"bootstate=0\r\ntitle=Loading ESXi installer\r\ntimeout=5\r\nprefix=\r\nkernel=/B.B00\r\n"
            b"kernelopt=runweasel cdromBoot\r\nmodules=/JUMPSTRT.GZ --- /USEROPTS.GZ\r\nbuild=\r\nupdated=0\r\n")
KS = b"vmaccepteula\nrootpw VMware1!\ninstall --firstdisk=usb --overwritevmfs\nreboot\n"


def _xorriso(*args: str) -> str:
    return subprocess.run(["xorriso", *args], capture_output=True, text=True, timeout=60, check=True).stdout


def make_iso(tmp: Path, *, bios: bool = True, root_cfg: bool = True, efi_cfg: bool = True) -> Path:
    tree = tmp / "tree"
    (tree / "EFI" / "BOOT").mkdir(parents=True)
    if root_cfg:
        (tree / "BOOT.CFG").write_bytes(BOOT_CFG)
    if efi_cfg:
        (tree / "EFI" / "BOOT" / "BOOT.CFG").write_bytes(BOOT_CFG.replace(b"/B.B00", b"/b.b00"))
    (tree / "EFI" / "BOOT" / "BOOTX64.EFI").write_bytes(b"MZ" + bytes(4094))
    (tree / "EFIBOOT.IMG").write_bytes(b"\xeb\x3c\x90" + bytes(1474560 - 3))
    argv = ["-as", "mkisofs", "-quiet", "-o", str(tmp / "src.iso"), "-V", LABEL]
    if bios:
        (tree / "ISOLINUX.BIN").write_bytes(bytes(range(256)) * 96)
        argv += ["-b", "ISOLINUX.BIN", "-c", "BOOT.CAT", "-no-emul-boot", "-boot-load-size", "4",
                 "-boot-info-table", "-eltorito-alt-boot"]
    argv += ["-e", "EFIBOOT.IMG", "-no-emul-boot", str(tree)]
    _xorriso(*argv)
    return tmp / "src.iso"


def extract(image: Path, path: str, tmp: Path) -> bytes:
    out = tmp / ("x-" + path.strip("/").replace("/", "_"))
    subprocess.run(["osirrox", "-indev", str(image), "-extract", path, str(out)], capture_output=True,
                   timeout=60, check=True)
    return out.read_bytes()


def el_torito(image: Path) -> list[str]:
    return [ln for ln in _xorriso("-indev", str(image), "-report_el_torito", "plain").splitlines()
            if ln.startswith("El Torito boot img")]


def test_remaster_of_an_esxi_like_iso_keeps_both_entries_and_the_label(tmp_path: Path) -> None:
    src = make_iso(tmp_path)
    assert [ln.split()[6] for ln in el_torito(src)] == ["BIOS", "UEFI"]
    out = tmp_path / "out.iso"
    facts = iso.remaster_kickstart(src, KS, out, ["preferVMklinux=TRUE"])

    entries = el_torito(out)  # what xorriso reads back, not only what pycdlib says
    assert [ln.split()[6] for ln in entries] == ["BIOS", "UEFI"]
    assert [e.kind for e in facts.boot_entries] == ["BIOS", "EFI"]
    assert facts.volume_label == LABEL
    pvd = subprocess.run(["xorriso", "-indev", str(out), "-pvd_info"], capture_output=True, text=True, timeout=60)
    assert f"Volume id    : '{LABEL}'" in pvd.stdout + pvd.stderr
    assert extract(out, "/KS.CFG", tmp_path) == KS
    for cfg in ("/BOOT.CFG", "/EFI/BOOT/BOOT.CFG"):
        text = extract(out, cfg, tmp_path)
        assert b"kernelopt=runweasel cdromBoot preferVMklinux=TRUE ks=cdrom:/KS.CFG\r\n" in text
        assert text.count(b"\r\n") == BOOT_CFG.count(b"\r\n")  # every other line as it was
    assert extract(out, "/EFI/BOOT/BOOTX64.EFI", tmp_path) == b"MZ" + bytes(4094)
    # the BIOS loader's boot-info table names its new place: PVD at 16, the file's own LBA, its length
    lba = int(entries[0].split()[-1])
    with out.open("rb") as f:
        f.seek(lba * 2048)
        head = f.read(2048 * 4)
    pvd, file_lba, length = struct.unpack_from("<3I", head, 8)
    assert (pvd, file_lba, length) == (16, lba, 256 * 96)
    assert head[64:] == (bytes(range(256)) * 96)[64:2048 * 4]
    assert src.read_bytes() != out.read_bytes() and iso.inspect_iso(src).kernelopts["/BOOT.CFG"] == \
        "runweasel cdromBoot"  # the source is never changed


def test_simulator_like_iso_efi_entry_only(tmp_path: Path) -> None:
    src = make_iso(tmp_path, bios=False, root_cfg=False)
    facts = iso.remaster_kickstart(src, KS, tmp_path / "out.iso")
    assert [e.kind for e in facts.boot_entries] == ["EFI"]
    assert facts.kernelopts == {"/EFI/BOOT/BOOT.CFG": "runweasel cdromBoot ks=cdrom:/KS.CFG"}
    assert facts.has_kickstart


def test_a_second_remaster_replaces_the_kickstart(tmp_path: Path) -> None:
    src = make_iso(tmp_path)
    first = tmp_path / "one.iso"
    iso.remaster_kickstart(src, KS, first)
    again = tmp_path / "two.iso"
    iso.remaster_kickstart(first, b"vmaccepteula\n", again)
    assert extract(again, "/KS.CFG", tmp_path) == b"vmaccepteula\n"
    assert iso.inspect_iso(again).kernelopts["/BOOT.CFG"] == "runweasel cdromBoot ks=cdrom:/KS.CFG"


def test_an_iso_without_boot_cfg_is_refused(tmp_path: Path) -> None:
    src = make_iso(tmp_path, root_cfg=False, efi_cfg=False)
    with pytest.raises(InputError, match="not an ESXi installer ISO"):
        iso.remaster_kickstart(src, KS, tmp_path / "out.iso")
    assert not (tmp_path / "out.iso").exists()
    assert not list(tmp_path.glob(".out.iso*"))


def test_set_kernelopt_replaces_ks_and_the_same_option() -> None:
    cfg = b"title=x\nkernelopt=cdromBoot runweasel ks=usb:/ks.cfg preferVMklinux=FALSE\nupdated=0\n"
    assert iso.set_kernelopt(cfg, ["preferVMklinux=TRUE"]) == (
        b"title=x\nkernelopt=cdromBoot runweasel preferVMklinux=TRUE ks=cdrom:/KS.CFG\nupdated=0\n")
    with pytest.raises(InputError, match="no kernelopt"):
        iso.set_kernelopt(b"title=x\n")


def test_cache_reuses_and_follows_the_kickstart(tmp_path: Path) -> None:
    src = make_iso(tmp_path)
    ks = tmp_path / "ks.cfg"
    ks.write_bytes(KS)
    cache = tmp_path / "cache"
    one = iso.cached_kickstart_iso(src, ks, cache, ["preferVMklinux=TRUE"])
    stamp = one.stat().st_mtime_ns
    assert iso.cached_kickstart_iso(src, ks, cache, ["preferVMklinux=TRUE"]) == one
    assert one.stat().st_mtime_ns == stamp
    ks.write_bytes(KS + b"# changed\n")
    two = iso.cached_kickstart_iso(src, ks, cache, ["preferVMklinux=TRUE"])
    assert two != one and extract(two, "/KS.CFG", tmp_path) == KS + b"# changed\n"


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_iso(tmp_path)
    ks = tmp_path / "ks.cfg"
    ks.write_bytes(KS)
    out = tmp_path / "out.iso"
    assert main(["iso", "kickstart", str(src), str(ks), "-o", str(out), "--boot-option", "preferVMklinux=TRUE"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "El Torito: BIOS, EFI" in captured.err
    assert main(["iso", "kickstart", str(tmp_path / "none.iso"), str(ks), "-o", str(out)]) == 2
    assert main(["iso", "kickstart", str(ks), str(ks), "-o", str(tmp_path / "x.iso")]) == 2
    assert "not an ISO 9660 image" in capsys.readouterr().err
    assert main(["iso", "kickstart", str(src), str(ks), "-o", str(src)]) == 2
    assert main(["iso", "kickstart", str(src), str(ks), "-o", str(out), "--boot-option", "a b"]) == 2


def test_up_step_boots_the_remastered_iso_and_reuses_it(tmp_path: Path) -> None:
    import threading
    from types import SimpleNamespace

    from labctl.runner import KickstartIso, build_steps
    from labctl.spec import load_lab

    src = make_iso(tmp_path)
    (tmp_path / "ks").mkdir()
    (tmp_path / "ks" / "usb.cfg").write_bytes(KS)
    lab_file = tmp_path / "lab.yaml"
    lab_file.write_text(f"name: ks\nbackend: qemu\niso: {src}\nstick: {{image: s.img, size: 1G}}\n"
                        "install: {kickstart: ks/usb.cfg, playbook: esxi-6.7-kickstart, "
                        "root_password: {env: LAB_ROOT_PASSWORD}}\n")
    lab = load_lab(lab_file, strict=True)
    assert [type(s).__name__ for s in build_steps(lab, SimpleNamespace(boot_only=True))][:3] == [  # type: ignore[arg-type]
        "Prepare", "KickstartIso", "StartVm"]
    events: list[dict[str, object]] = []
    isos = []
    for _ in range(2):
        ctx = SimpleNamespace(lab=lab, seat=lab.seat_list()[0], iso=None, backend=SimpleNamespace(iso=src),
                              options=SimpleNamespace(build_lock=threading.Lock()),
                              run=SimpleNamespace(event=lambda step, **kw: events.append(kw)))
        KickstartIso().run(ctx)  # type: ignore[arg-type]
        assert ctx.backend.iso == ctx.iso
        isos.append(ctx.iso)
    assert isos[0] == isos[1] and isos[0] != src
    facts = iso.inspect_iso(isos[0])
    assert facts.kernelopts["/EFI/BOOT/BOOT.CFG"] == "runweasel cdromBoot preferVMklinux=TRUE ks=cdrom:/KS.CFG"
    assert extract(isos[0], "/KS.CFG", tmp_path) == KS
    assert events[0]["source"] == str(src)
