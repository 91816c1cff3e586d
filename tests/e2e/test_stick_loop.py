"""Stick safety and round trips on real loop devices (root only; CI runs as root).

Only loop devices over files made here are touched, and every loop device is detached in teardown.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labctl import layouts
from labctl.cli import main

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices"),
    pytest.mark.skipif(shutil.which("losetup") is None, reason="needs losetup"),
]

MIB = 1 << 20
TOTAL = 131072  # 64 MiB, an ESXi-like layout scaled down
LAYOUT = [
    layouts.TableEntry(1, 64, 8191, layouts.ESP, "systemPartition", 128),
    layouts.TableEntry(5, 8224, 40959, layouts.BASIC_DATA, "linuxNative", 0),
    layouts.TableEntry(6, 40992, 57343, layouts.BASIC_DATA, "linuxNative", 0),
    layouts.TableEntry(7, 57376, 73727, layouts.VMK_DIAGNOSTIC, "vmkDiagnostic", 0),
    layouts.TableEntry(8, 73760, 106495, layouts.BASIC_DATA, "linuxNative", 0),
]


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")


def _backing(dev: str) -> str:
    try:
        return Path(f"/sys/block/{os.path.basename(dev)}/loop/backing_file").read_text().strip()
    except OSError:
        return ""


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """attach(file) -> /dev/loopN. Afterwards each device still backed by our file is detached (its
    partitions dropped), even on failure; one detached already, maybe reused by someone else, is left alone."""
    attached: list[tuple[str, str]] = []

    def attach(backing: Path | str, *options: str) -> str:
        dev = run("losetup", *options, "--find", "--show", str(backing))
        attached.append((dev, os.path.realpath(backing)))
        return dev

    yield attach
    for dev, backing in reversed(attached):  # a loop over a loop goes first
        if _backing(dev) != backing:
            continue
        subprocess.run(["partx", "-d", dev], capture_output=True, timeout=30, check=False)
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30, check=False)


def make_stick(path: Path, junk: bool = False) -> Path:
    with open(path, "wb") as f:
        f.truncate(TOTAL * 512)
        if junk:
            f.write(os.urandom(TOTAL * 512))
    layouts.write_gpt(str(path), TOTAL, LAYOUT)
    with open(path, "r+b") as f:
        for lba, n in [(64, MIB), (8224, 3 * MIB), (28224, 2 * MIB + 4096), (40992, MIB), (73760, 2 * MIB)]:
            f.seek(lba * 512)
            f.write(os.urandom(n))
    return path


def extent_digest(path: Path | str, gpt: layouts.Gpt) -> str:
    """sha256 over the GPT areas and the partitions, read independently of labctl (O_DIRECT for
    devices would need alignment; plain reads of the backing file are the independent view)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        spans = [(a, b) for a, b, _ in gpt.metadata_extents()] + [(p.first_lba, p.last_lba) for p in gpt.partitions]
        for a, b in sorted(spans):
            f.seek(a * 512)
            h.update(f.read((b - a + 1) * 512))
    return h.hexdigest()


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_loop_device_refused_without_allow_non_usb(tmp_path: Path, loop: Callable[[Path], str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    backing = tmp_path / "target.raw"
    backing.write_bytes(bytes(TOTAL * 512))
    dev = loop(backing)
    before = file_sha(backing)
    assert main(["stick", "restore", str(img), dev, "--yes"]) == 2
    assert "loop device, never a stick" in capsys.readouterr().err
    assert main(["stick", "wipe", dev, "--yes"]) == 2
    assert file_sha(backing) == before


def test_mounted_device_refused_even_with_allow_non_usb(tmp_path: Path, loop: Callable[[Path], str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("needs mkfs.ext4")
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    backing = make_stick(tmp_path / "target.raw")
    dev = loop(backing)
    part = f"{dev}p5"
    if subprocess.run(["partx", "-a", dev], capture_output=True, timeout=30, check=False).returncode != 0 \
            or not os.path.exists(part):
        part = dev  # no partition devices here: mount the whole loop device instead
    run("mkfs.ext4", "-q", "-F", part)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    run("mount", part, str(mnt))
    try:
        before = file_sha(backing)
        assert main(["stick", "restore", str(img), dev, "--yes", "--allow-non-usb"]) == 2
        err = capsys.readouterr().err
        assert "mounted at" in err and str(mnt) in err
        assert main(["stick", "wipe", dev, "--yes", "--allow-non-usb"]) == 2
        assert main(["stick", "wipe", dev, "--yes", "--allow-non-usb", "--quick"]) == 2
        assert file_sha(backing) == before
    finally:
        run("umount", str(mnt))


def test_disk_larger_than_a_stick_needs_allow_large(tmp_path: Path, loop: Callable[[Path], str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A 200 GiB disk (a sparse file: it costs no space) is more likely a USB backup drive than a
    lab stick: refused, and only --allow-large admits it."""
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    huge = tmp_path / "huge.raw"
    with open(huge, "wb") as f:
        f.truncate(200 * 2**30)
        f.seek(MIB)
        f.write(b"backup drive data")
    dev = loop(huge)
    capsys.readouterr()
    assert main(["stick", "restore", str(img), dev, "--yes", "--allow-non-usb"]) == 2
    assert "200.0 GiB is larger than a lab stick" in capsys.readouterr().err
    assert main(["stick", "wipe", dev, "--yes", "--allow-non-usb", "--quick"]) == 2
    with open(huge, "rb") as f:
        f.seek(MIB)
        untouched = f.read(17) == b"backup drive data"
    assert untouched and os.stat(huge).st_blocks * 512 < MIB * 2
    assert main(["stick", "restore", str(img), dev, "--yes", "--allow-non-usb", "--allow-large"]) == 0
    assert "read back and verified" in capsys.readouterr().out


def test_disks_and_files_backing_a_loop_device_are_refused(tmp_path: Path, loop: Callable[..., str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A loop device over a disk or a file is invisible to O_EXCL and to the holders list: a file
    system mounted on loop1 over loop0 would be destroyed by a wipe of loop0."""
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    backing = make_stick(tmp_path / "target.raw")
    lower = loop(backing)
    upper = loop(lower)  # loop over a loop device: like a disk image file on a stick, in use
    before = file_sha(backing)
    capsys.readouterr()
    assert main(["stick", "wipe", lower, "--yes", "--allow-non-usb", "--quick"]) == 2
    assert f"backs loop device {os.path.basename(upper)}" in capsys.readouterr().err
    assert main(["stick", "restore", str(img), str(backing), "--yes"]) == 2  # the file under lower
    assert f"backs loop device {os.path.basename(lower)}" in capsys.readouterr().err
    assert file_sha(backing) == before


def test_file_in_use_by_a_running_qemu_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QEMU locks the disk images it runs on (OFD locks); restore and wipe see the lock and refuse, and
    so does a backup (the VM may write while it is copied)."""
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu is not None, "qemu-system-x86_64 is installed by .ci/run"
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    target = make_stick(tmp_path / "seat1.raw")
    before = file_sha(target)
    vm = subprocess.Popen([qemu, "-machine", "q35", "-accel", "tcg", "-nodefaults", "-display", "none", "-S",
                           "-drive", f"file={target},format=raw,if=none,id=d0", "-device", "qemu-xhci",
                           "-device", "usb-storage,drive=d0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        held = re.compile(rf"^\d+: \w+ .* [0-9a-f]+:[0-9a-f]+:{os.stat(target).st_ino} ", re.MULTILINE)
        for _ in range(300):  # until QEMU holds its lock (a line "N: OFDLCK ADVISORY READ -1 MAJ:MIN:INODE ...")
            if held.search(Path("/proc/locks").read_text()):
                break
            assert vm.poll() is None, vm.stderr.read() if vm.stderr else ""
            subprocess.run(["sleep", "0.1"], check=True, timeout=5)
        else:
            pytest.fail("QEMU took no lock on the image within 30 s")
        capsys.readouterr()
        assert main(["stick", "restore", str(img), str(target), "--yes"]) == 2
        assert "locked by another program (a running VM" in capsys.readouterr().err
        assert main(["stick", "wipe", str(target), "--yes", "--quick"]) == 2
        assert file_sha(target) == before
        assert main(["stick", "backup", str(target), str(tmp_path / "torn.img")]) == 2  # a copy would be torn
        assert "in use for writing by a running VM" in capsys.readouterr().err
        assert not (tmp_path / "torn.img").exists()
    finally:
        vm.kill()
        vm.wait(timeout=30)
    assert main(["stick", "restore", str(img), str(target), "--yes"]) == 0  # once QEMU is gone


def test_4k_sector_disk_full_image_and_verify(tmp_path: Path, loop: Callable[..., str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A full image of a 4096-byte-sector disk records that sector size and restores onto it; a
    512-byte image verified against such a disk is reported as different, without a traceback."""
    raw = tmp_path / "4k.raw"
    with open(raw, "wb") as f:
        f.truncate(64 * MIB)
        f.write(os.urandom(MIB))
    dev = loop(raw, "--sector-size", "4096")
    full = tmp_path / "4k.img"
    assert main(["stick", "backup", dev, str(full), "--full"]) == 0
    assert json.loads(Path(f"{full}.manifest.json").read_text())["sector_size"] == 4096
    assert main(["stick", "restore", str(full), dev, "--yes", "--allow-non-usb"]) == 0
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    capsys.readouterr()
    assert main(["stick", "verify", str(img), dev]) == 1
    assert "4096-byte sectors, the image 512-byte ones" in capsys.readouterr().out


def test_partition_and_too_small_device_refused(tmp_path: Path, loop: Callable[[Path], str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    small = tmp_path / "small.raw"
    small.write_bytes(bytes(32 * MIB))
    dev = loop(small)
    assert main(["stick", "restore", str(img), dev, "--yes", "--allow-non-usb"]) == 2
    assert "smaller than the image" in capsys.readouterr().err
    assert file_sha(small) == hashlib.sha256(bytes(32 * MIB)).hexdigest()
    big = make_stick(tmp_path / "big.raw")
    bdev = loop(big)
    if subprocess.run(["partx", "-a", bdev], capture_output=True, timeout=30, check=False).returncode == 0 \
            and os.path.exists(f"{bdev}p5"):
        assert main(["stick", "restore", str(img), f"{bdev}p5", "--yes", "--allow-non-usb"]) == 2
        assert "is a partition" in capsys.readouterr().err


def test_regular_file_target_accepted(tmp_path: Path) -> None:
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    dst = make_stick(tmp_path / "dst.raw", junk=True)
    assert main(["stick", "restore", str(img), str(dst), "--yes"]) == 0
    gpt = layouts.read_gpt(str(src))
    assert extent_digest(dst, gpt) == extent_digest(src, gpt)


def test_backup_wipe_restore_verify_round_trip_on_loop(tmp_path: Path, loop: Callable[[Path], str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    original = make_stick(tmp_path / "original.raw")
    stick = tmp_path / "stick.raw"
    shutil.copyfile(original, stick)
    dev = loop(stick)
    img = tmp_path / "stick.img"
    gpt = layouts.read_gpt(str(original))
    assert main(["stick", "backup", dev, str(img)]) == 0
    assert main(["layout", str(img)]) == 0
    assert main(["stick", "wipe", dev, "--yes", "--allow-non-usb"]) == 0
    zero = stick.read_bytes() == bytes(TOTAL * 512)
    assert zero
    assert main(["stick", "verify", str(img), dev]) == 1
    assert "sha256 differs" in capsys.readouterr().out
    assert main(["stick", "restore", str(img), dev, "--yes", "--allow-non-usb"]) == 0
    assert "read back and verified" in capsys.readouterr().out
    assert extent_digest(stick, gpt) == extent_digest(original, gpt)  # the backing file, read by Python
    assert extent_digest(dev, gpt) == extent_digest(original, gpt)  # the device, through a fresh open
    assert main(["stick", "verify", str(img), dev]) == 0
    assert main(["layout", dev]) == 0
    # a used stick: restore writes only the difference, onto two sticks at once
    with open(stick, "r+b") as f:
        f.seek(8224 * 512 + 4096)
        f.write(os.urandom(MIB))
    second = make_stick(tmp_path / "second.raw", junk=True)
    dev2 = loop(second)
    run("blockdev", "--flushbufs", dev)
    assert main(["stick", "restore", str(img), dev, dev2, "--yes", "--allow-non-usb"]) == 0
    out = capsys.readouterr().out.splitlines()
    first_line = next(line for line in out if f"-> {dev}:" in line)
    written = int(first_line.split("wrote ")[1].split("(")[1].split(" bytes")[0])
    assert MIB <= written <= MIB + 64 * 1024
    assert extent_digest(stick, gpt) == extent_digest(original, gpt)
    assert extent_digest(second, gpt) == extent_digest(original, gpt)


def test_compressed_backup_of_a_loop_device(tmp_path: Path, loop: Callable[[Path], str]) -> None:
    original = make_stick(tmp_path / "original.raw")
    dev = loop(original)
    img = tmp_path / "stick.img.zst"
    assert main(["stick", "backup", dev, str(img), "--compress"]) == 0
    dst = tmp_path / "copy.raw"
    assert main(["stick", "restore", str(img), str(dst), "--yes"]) == 0
    gpt = layouts.read_gpt(str(original))
    assert extent_digest(dst, gpt) == extent_digest(original, gpt)


# ------------------------------------------------------------------ the simulator's installed stick


@pytest.fixture(scope="session")
def installed_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.installed_fixtures import build_installed_iso
    from harness.simvm import qemu_available

    if not qemu_available():
        pytest.skip("qemu-system-x86_64 or OVMF is missing")
    return build_installed_iso(tmp_path_factory.getbasetemp())


@pytest.mark.e2e
def test_installed_stick_round_trip_boots_again(installed_iso: Path, tmp_path: Path, loop: Callable[[Path], str],
                                                simvm: Callable[..., object],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The simulator's installed stick on a loop device: backup, wipe, restore, verify; the stick's
    backing file then boots in QEMU to the DCUI again."""
    from harness.installed_fixtures import ROOT_PASSWORD, make_installed_stick, wait_dcui

    size = 4 * 2**30  # >= 3.4 GiB: partitions 1, 5, 6, 7, 8, 9
    stick = tmp_path / "usb0.img"  # the name the simvm factory gives its first USB disk
    make_installed_stick(installed_iso, stick, size, ROOT_PASSWORD)
    gpt = layouts.read_gpt(str(stick))
    golden = extent_digest(stick, gpt)
    dev = loop(stick)
    img = tmp_path / "installed.img"
    assert main(["stick", "backup", dev, str(img)]) == 0
    assert main(["layout", str(img), "--expect", "esxi6"]) == 0
    assert main(["stick", "wipe", dev, "--quick", "--yes", "--allow-non-usb"]) == 0
    assert main(["layout", dev]) == 2  # no GPT left: the stick would not boot
    capsys.readouterr()
    assert main(["stick", "restore", str(img), dev, "--yes", "--allow-non-usb"]) == 0
    assert "read back and verified" in capsys.readouterr().out
    assert main(["stick", "verify", str(img), dev]) == 0
    subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30, check=True)
    assert extent_digest(stick, gpt) == golden
    vm: Any = simvm(installed_iso, [("usb", size)])
    vm.qmp.execute("eject", device="cd0", force=True)
    vm.qmp.execute("system_reset")
    wait_dcui(vm, 0)


@pytest.mark.parametrize(("sig", "code", "word"),
                         [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_backup_of_a_loop_device_stopped_by_a_signal_leaves_no_temporary_file(
        tmp_path: Path, loop: Callable[[Path], str], sig: int, code: int, word: str) -> None:
    """A real labctl process, signalled as soon as its temporary image appears: it stops between
    blocks, removes the temporary file, prints the state and exits 130 / 143."""
    backing = tmp_path / "stick.raw"
    with open(backing, "wb") as f:
        for _ in range(20):
            f.write(os.urandom(16 * MIB))  # 320 MiB without a GPT: a full copy, a few seconds
    dev = loop(backing)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "stick", "backup", dev, str(out / "s.img")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, CI="true"))
    deadline = time.monotonic() + 60
    while not any(out.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=150)
    assert proc.returncode == code, err
    assert f"labctl: {word}" in err and "the temporary file was removed" in err
    assert list(out.iterdir()) == []


def test_a_lab_cannot_use_a_file_that_backs_a_loop_device_as_a_stick(tmp_path: Path, loop: Callable[[Path], str],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    backing = tmp_path / "disk.raw"
    backing.write_bytes(bytes(4 * MIB))
    dev = loop(backing)
    lab = tmp_path / "lab.yaml"
    lab.write_text("name: t\nbackend: qemu\niso: sim\nstick: {image: disk.raw, size: 4M}\n"
                   "install: {root_password: {env: LAB_ROOT_PASSWORD}}\n")
    assert main(["validate", str(lab)]) == 2
    err = capsys.readouterr().err
    assert f"backs loop device {os.path.basename(dev)}" in err and ":4:" in err


def test_a_device_node_pointed_at_another_disk_while_confirming_is_not_written(
        tmp_path: Path, loop: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The checked disk's node (and a checked file's path) name another disk by the time the user has
    typed the confirmation: nothing is written to either."""
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    checked, other = make_stick(tmp_path / "checked.raw", junk=True), make_stick(tmp_path / "other.raw", junk=True)
    dev_checked, dev_other = loop(checked), loop(other)
    before = {p: file_sha(p) for p in (checked, other)}
    node = tmp_path / "stick"
    os.mknod(node, 0o600 | 0o060000, os.stat(dev_checked).st_rdev)
    plain = tmp_path / "plain.raw"
    plain.write_bytes(bytes(TOTAL * 512))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    for name, swap in ((node, lambda: os.mknod(node, 0o600 | 0o060000, os.stat(dev_other).st_rdev)),
                       (plain, lambda: plain.symlink_to(dev_other))):
        def answer(prompt: str, name: Path = name, swap: Callable[[], None] = swap) -> str:
            name.unlink()
            swap()
            return name.name

        monkeypatch.setattr("builtins.input", answer)
        assert main(["stick", "restore", str(img), str(name), "--allow-non-usb"]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert "nothing written" in last, last
    assert {p: file_sha(p) for p in (checked, other)} == before


def test_a_backup_never_replaces_the_file_behind_its_source_loop_device(
        tmp_path: Path, loop: Callable[[Path], str], capsys: pytest.CaptureFixture[str]) -> None:
    backing = make_stick(tmp_path / "stick.raw")
    dev = loop(backing)
    before = file_sha(backing)
    assert main(["stick", "backup", dev, str(backing), "--yes"]) == 2
    assert "backs loop device" in capsys.readouterr().err
    assert file_sha(backing) == before and _backing(dev) == str(backing)
