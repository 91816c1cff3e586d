"""Simulator e2e: ks=cdrom:/KS.CFG installs onto the 1 GB stick with no keys (layout 1,5,6,7,8), settings
from the script land in the bootbank, `reboot` restarts into the installed system; script errors show on
screen. This ISO is the default build: the boot loader is on the graphics console only, so the test
types at it blind after seeing it in a screendump, as a playbook does with the real installer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness.simvm import NATIVE, VMFS, SimVM, boot_installer, check_gpt, mtype, read_range, remaster

pytestmark = pytest.mark.e2e

MIB = 1 << 20


def test_kickstart_install_on_1g_stick(sim_ks_iso: Path, simvm: Callable[..., SimVM]) -> None:
    vm = simvm(sim_ks_iso, [("usb", 1024 * MIB)])
    stick = vm.disks[0].path
    # without preferVMklinux the stick is invisible to the script too: an error on screen
    boot_installer(vm, " ks=cdrom:/KS.CFG", screen=True)
    vm.expect(r"install --firstdisk=local,usb: no matching disk was found", 30)
    vm.expect(r"\(Enter\) Reboot", 5)
    assert read_range(stick, 0, 34) == bytes(34 * 512)
    mark = vm.mark()
    vm.key("enter")
    boot_installer(vm, " ks=cdrom:/NOPE.CFG", since=mark, screen=True)
    vm.expect(r"cannot find kickstart file on cd-rom with path -- /NOPE\.CFG", 30)
    mark = vm.mark()
    vm.key("enter")
    boot_installer(vm, " preferVMklinux=TRUE ks=cdrom:/KS.CFG", since=mark, screen=True)
    vm.expect(r"Installing ESXi 6\.7\.0", 30)
    vm.expect(r"Warning: the disk \(mpx\.vmhba32:C0:T0:L0\) does not support VMFS\.", 10)
    vm.expect(r"Installation Complete", 60)
    mark = vm.mark()
    # `reboot` in the script: take the CD out so the firmware boots the stick (the installed system)
    assert vm.qmp is not None
    vm.qmp.execute("eject", device="cd0", force=True)
    vm.wait(r"<F2> Customize System/View Logs", 120, mark)  # the DCUI of the installed system (§4)
    blocks = vm.qmp.execute("query-block")
    assert isinstance(blocks, list)
    assert all("inserted" not in b for b in blocks if b.get("device") == "cd0")  # it booted the stick

    # the default build keeps the boot loader off the serial console, like esx-boot
    assert "Automatic boot in" not in vm.text() and "SHIFT+O" not in vm.text()

    check_gpt(stick, [1, 5, 6, 7, 8])
    state = mtype(stick, 8224, "/state.cfg")
    assert "keyboard=German" in state
    assert "install.media=usb" in state


def test_kickstart_install_on_6g_local_disk(sim_ks_iso: Path, simvm: Callable[..., SimVM]) -> None:
    """A 5.2-8.5 GiB local disk: 1,5,6,7,8, then a 4 GiB scratch at 1843200 and VMFS to the end."""
    vm = simvm(sim_ks_iso, [("sata", 6 << 30), ("usb", 1024 * MIB)])
    disk, stick = vm.disks[0].path, vm.disks[1].path
    boot_installer(vm, " preferVMklinux=TRUE ks=cdrom:/KS.CFG", screen=True)
    vm.expect(r"Installing ESXi 6\.7\.0", 30)
    vm.expect(r"Installation Complete", 60)
    vm.stop()
    total = disk.stat().st_size // 512
    check_gpt(disk, [1, 5, 6, 7, 8], extra=[(2, 1843200, 1843200 + 8388608 - 1, NATIVE),
                                             (3, 1843200 + 8388608, total - 34, VMFS)])
    assert read_range(stick, 0, 34) == bytes(34 * 512)  # local first: the stick is untouched
    assert "install.media=local" in mtype(disk, 8224, "/state.cfg")


def test_boot_loader_reads_boot_cfg_and_a_bad_script_stops_on_screen(sim_iso: Path, simvm: Callable[..., SimVM],
                                                                      tmp_path: Path) -> None:
    """kernelopt and timeout come from the CD's EFI/BOOT/BOOT.CFG: ks=cdrom:/KS.CFG there runs the script with
    no key typed; a script with errors shows the installer's error and waits for Enter."""
    from labctl.sim.build import iso_boot_cfg

    cfg = iso_boot_cfg().replace(b"timeout=5", b"timeout=2").replace(
        b"kernelopt=runweasel cdromBoot", b"kernelopt=runweasel cdromBoot ks=cdrom:/KS.CFG")
    iso = remaster(sim_iso, tmp_path / "ks.iso", cfg, b"vmaccepteula\ninstall --firstdisk=usb\nbogus\n")
    vm = simvm(iso, [("usb", 1024 * MIB)])
    vm.wait(r"Automatic boot in 2 seconds\.\.\.", 60)  # the countdown from BOOT.CFG
    vm.wait(r"An error has occurred while parsing the installation script", 60)
    vm.wait(r"error:/KS\.CFG:3: unknown command \"bogus\"", 5)
    vm.wait(r"rootpw command was not found\.", 5)
    vm.wait(r"\(Enter\) Reboot", 5)
    assert "Welcome to the VMware ESXi" not in vm.text()
    assert read_range(vm.disks[0].path, 0, 34) == bytes(34 * 512)
