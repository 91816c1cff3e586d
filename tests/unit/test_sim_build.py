"""labctl.sim.build: deterministic, cached, honest about missing tools (no QEMU needed)."""

from __future__ import annotations

import hashlib
import io
import shutil
import time
from pathlib import Path

import pytest

from labctl.errors import InputError
from labctl.sim import build

needs_tools = pytest.mark.skipif(
    any(shutil.which(t, path="/usr/bin:/usr/sbin:/bin:/sbin") is None
        for t in ("gcc", "xorriso", "mkfs.vfat", "mcopy")) or not build.EFI_LDS.exists(),
    reason="gcc/gnu-efi/xorriso/mtools/dosfstools not installed",
)


def test_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABCTL_CACHE_DIR", str(tmp_path / "c"))
    assert build.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LABCTL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert build.cache_dir() == tmp_path / "x" / "labctl" / "sim"


def test_missing_tools_name_the_apt_packages_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "_which", lambda name: None if name in ("xorriso", "mcopy") else "/usr/bin/" + name)
    with pytest.raises(InputError) as exc:
        build.find_tools()
    msg = str(exc.value)
    assert "\n" not in msg
    assert "xorriso" in msg and "mcopy" in msg
    assert "apt-get install gcc binutils gnu-efi xorriso mtools dosfstools" in msg


def test_bad_speed_is_input_error() -> None:
    with pytest.raises(InputError):
        build.build_iso("slow")


def test_key_depends_on_speed_and_kickstart() -> None:
    keys = {build.build_key("fast", None), build.build_key("real", None), build.build_key("fast", b"vmaccepteula\n")}
    assert len(keys) == 3


def test_placeholders_fit_their_lines() -> None:
    for text in (build.boot_cfg(), build.state_cfg()):
        for line in text.decode().splitlines():
            if "@@" in line:
                assert line.rstrip().endswith("@@") and len(line) > line.index("@@") + 8


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_tools
def test_build_is_deterministic_cached_and_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_CACHE_DIR", str(tmp_path / "cache"))
    t0 = time.monotonic()
    first = build.build_iso("fast", output=tmp_path / "a.iso", force=True)
    built_s = time.monotonic() - t0
    assert built_s < 30
    second = build.build_iso("fast", output=tmp_path / "b.iso", force=True)
    assert sha(first) == sha(second)  # digests: a failing compare of two 11 MB images stays readable
    t0 = time.monotonic()
    cached = build.build_iso("fast")
    assert time.monotonic() - t0 < 1.0
    assert cached.parent == tmp_path / "cache" and sha(cached) == sha(first)
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers
    data = first.read_bytes()
    assert b"CD001" in data[16 * 2048:16 * 2048 + 8]
    assert b"EFI PART" not in data[:4096]  # a plain El Torito ISO


@needs_tools
def test_kickstart_lands_on_the_iso(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_CACHE_DIR", str(tmp_path / "cache"))
    ks = tmp_path / "ks.cfg"
    ks.write_bytes(b"vmaccepteula\nrootpw VMware1!\ninstall --firstdisk=usb\n# marker-7f3a\n")
    iso = build.build_iso("fast", kickstart=ks)
    assert b"# marker-7f3a" in iso.read_bytes()
    assert iso != build.build_iso("fast")


def test_unreadable_kickstart_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        build.build_iso("fast", kickstart=tmp_path / "missing.cfg")


@needs_tools
def test_cli_sim_build_prints_the_iso_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labctl.cli import main

    out = tmp_path / "sim.iso"
    assert main(["sim", "build", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.stat().st_size > 1 << 20
    assert main(["sim", "build", "-o", str(tmp_path / "missing" / "x.iso")]) == 2


def test_profile_is_part_of_the_key_and_unknown_profiles_are_input_errors() -> None:
    assert build.build_key("fast", None, esxi="6.7") != build.build_key("fast", None, esxi="8.0")
    with pytest.raises(InputError, match=r"esxi must be one of 6\.7, 8\.0"):
        build.build_iso("fast", esxi="7.0")


def test_profile_payloads_and_state() -> None:
    assert [p.number for p in build.payloads(b"x", "6.7")] == [1, 5, 6, 8, 2]
    p8 = build.payloads(b"x", "8.0")
    assert [(p.number, p.sectors) for p in p8] == [(1, 204800), (5, 1024000), (6, 1024000)]  # 100 MiB, 500 MiB
    assert b"build=8.0.3-24677879" in build.boot_cfg("8.0") and b"build=6.7.0-8169922" in build.boot_cfg()
    assert b"preferVmklinux" in build.state_cfg("6.7") and b"preferVmklinux" not in build.state_cfg("8.0")


@needs_tools
def test_iso_carries_boot_cfg_like_vmwares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BOOT.CFG and EFI/BOOT/BOOT.CFG in upper case with kernelopt=runweasel cdromBoot and timeout=5: what the
    simulator's boot loader reads, and what `labctl iso kickstart` edits."""
    import pycdlib

    monkeypatch.setenv("LABCTL_CACHE_DIR", str(tmp_path / "cache"))
    iso = build.build_iso("fast", esxi="8.0")
    assert iso.name.startswith("esxi80-sim-fast-")
    cd = pycdlib.PyCdlib()
    cd.open(str(iso))
    try:
        assert cd.pvd.volume_identifier.decode().strip() == "ESXI-8.0U3E-SIM"
        for path in ("/BOOT.CFG;1", "/EFI/BOOT/BOOT.CFG;1"):
            out = io.BytesIO()
            cd.get_file_from_iso_fp(out, iso_path=path)
            lines = out.getvalue().decode().splitlines()
            assert "kernelopt=runweasel cdromBoot" in lines and "timeout=5" in lines, path
            assert "title=Loading ESXi installer" in lines and "build=8.0.3-24677879" in lines
    finally:
        cd.close()
