"""Simulator e2e: the boot loader, the hidden stick, cancel, an install onto a 10 GB SATA disk, and the
"ESXi and VMFS Found" dialog when installing again. One QEMU, three boots (the resets are the product's)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from harness.simvm import (
    SimVM,
    boot_installer,
    check_gpt,
    disk_rows,
    mdir,
    read_range,
    select_disk,
    to_disk_list,
    words,
)

pytestmark = pytest.mark.e2e

GIB = 1 << 30


def test_boot_loader_hidden_stick_install_on_local_disk_then_esxi_and_vmfs_found(
    sim_iso: Path, simvm: Callable[..., SimVM]
) -> None:
    # qemu64 without SVM: no hardware virtualisation, like TCG on a real host without nested VT-x
    vm = simvm(sim_iso, [("sata", 10 * GIB), ("usb", 16 * GIB)], cpu_model="qemu64,-svm")
    sata, stick = vm.disks[0].path, vm.disks[1].path

    # §1 boot loader: hints, countdown 5..1 with "second" singular, any other key restarts at 5
    vm.wait(r"<ENTER: Boot>", 60)
    vm.wait(r"<SHIFT\+O: Edit boot options>", 5)
    m = vm.wait(r"Automatic boot in 4 seconds\.\.\.", 10)
    vm.type("x")
    vm.wait(r"Automatic boot in 5 seconds\.\.\.", 10, m.end())
    # Shift+O: the editor, prefilled, typing appends, Backspace deletes, Esc cancels back to the countdown
    vm.type("O")
    vm.expect(r"<ENTER: Apply options and boot>", 10)
    vm.expect(r"<ESC: Cancel>", 5)
    vm.expect(r"> runweasel cdromBoot\s", 5)
    vm.type(" foo")
    vm.expect(r"> runweasel cdromBoot foo", 10)
    vm.key("backspace")
    vm.expect(r"> runweasel cdromBoot fo\s", 10)
    vm.key("esc")
    vm.expect(r"Automatic boot in 5 seconds\.\.\.", 10)
    # no key: counts down to the singular and boots with the default options (stick hidden)
    m = vm.expect(r"Automatic boot in 2 seconds\.\.\.[\s\S]*Automatic boot in 1 second\.\.\.", 15)
    assert "Automatic boot in 1 seconds" not in vm.text()

    # Welcome -> Esc -> Confirm Cancel -> F9 No -> back
    vm.wait(r"Welcome to the VMware ESXi 6\.7\.0 Installation", 30, m.end())
    vm.expect(r"\(Esc\) Cancel      \(Enter\) Continue", 5)
    vm.key("esc")
    vm.expect(r"Confirm Cancel[\s\S]*Are you sure you want to cancel the installation\?", 10)
    vm.expect(r"\(F9\) No      \(F11\) Yes", 5)
    vm.key("f9")
    vm.expect(r"Welcome to the VMware ESXi 6\.7\.0 Installation", 10)
    vm.key("enter")
    vm.expect(r"End User License Agreement \(EULA\)", 10)
    vm.expect(r"Use the arrow keys to scroll the EULA text", 5)
    assert "will be lost. Make sure" not in vm.text()
    vm.key("down", "down")
    vm.expect(r"will be lost\. Make sure", 5)  # scrolled: a line below the first page is drawn
    vm.key("f11")
    vm.expect(r"Scanning\.\.\.[\s\S]*Scanning for available devices\. This may take a few seconds\.", 15)
    vm.expect(r"Select a Disk to Install or Upgrade[\s\S]*Remote:\s+\(none\)", 30)
    vm.expect(r"\(Esc\) Cancel    \(F1\) Details    \(F5\) Refresh    \(Enter\) Continue", 5)
    rows = disk_rows(vm)
    # the USB stick is silently absent without preferVMklinux=TRUE
    assert len(rows) == 1 and "(mpx.vmhba0:C0:T0:L0)" in rows[0], rows
    assert "vmhba32" not in vm.text()
    assert re.fullmatch(r"   \S.* \(mpx\.vmhba0:C0:T0:L0\)\s+10\.00 GiB", rows[0]), rows[0]
    assert len(rows[0]) == 70  # 60 + 10 columns
    header = vm.text()[vm.text().rindex("Storage Device"):]
    assert header.startswith("Storage Device" + " " * 46)
    assert "-" * 70 in header

    vm.key("f1")
    vm.expect(r"Disk Details[\s\S]*Full Disk Name:\s+mpx\.vmhba0:C0:T0:L0[\s\S]*Capacity:\s+10\.00 GiB", 10)
    vm.key("enter")
    vm.expect(r"Select a Disk to Install or Upgrade", 10)
    vm.key("f5")
    vm.expect(r"Scanning for available devices[\s\S]*Select a Disk to Install or Upgrade", 15)
    select_disk(vm, "mpx.vmhba0:C0:T0:L0")

    # keyboard with US Default, F9 back works, then forward
    vm.expect(r"Please select a keyboard layout", 10)
    vm.expect(r"Use the arrow keys to scroll\.", 5)
    vm.expect(r"US Default", 5)
    vm.expect(r"\(Esc\) Cancel    \(F9\) Back    \(Enter\) Continue", 5)
    vm.key("enter")
    vm.expect(r"Enter a root password[\s\S]*Root password:[\s\S]*Confirm password:", 10)
    vm.expect(r"Please enter a password\.", 5)
    vm.type("VMware1!")
    vm.expect(r"\*{8}", 5)
    assert "VMware1!" not in vm.text()
    vm.key("down")
    vm.type("VMware1!")
    vm.expect(r"Passwords match\.", 10)
    vm.key("enter")
    # no VMX/SVM: the warning that Enter passes
    vm.expect(r"Error\(s\)/Warning\(s\) Found During System Scan", 30)
    vm.expect(words("Hardware Virtualization is not a feature of the CPU, or is not enabled in the BIOS"), 5)
    vm.key("enter")
    vm.expect(r"Confirm Install[\s\S]*The installer is configured to install ESXi 6\.7\.0 on:", 10)
    vm.expect(r"mpx\.vmhba0:C0:T0:L0[\s\S]*Warning: This disk will be repartitioned\.", 5)
    vm.key("f11")
    vm.expect(r"Installing ESXi 6\.7\.0", 10)
    vm.expect(r"Installation Complete[\s\S]*ESXi 6\.7\.0 has been installed successfully\.", 120)
    vm.expect(r"Remove the installation media before rebooting\.", 5)

    # the 10 GB local disk: 1,5,6,7,8,9,2,3, sector-exact; VMFS-like header on 3; the stick untouched
    check_gpt(sata, [1, 5, 6, 7, 8, 9, 2, 3])
    assert read_range(sata, 15472640 + 2048, 1)[:4] == bytes.fromhex("0dd001c0")
    assert "SCRATCH" in mdir(sata, 7086080)  # partition 2: a FAT file system (the scratch)
    assert "boot" in mdir(sata, 8224)
    assert read_range(stick, 0, 64) == bytes(64 * 512)

    # Enter reboots; this time with preferVMklinux=TRUE the stick is listed and the disk marked " * "
    mark = vm.mark()
    vm.key("enter")
    boot_installer(vm, " preferVMklinux=TRUE", since=mark)
    to_disk_list(vm)
    rows = disk_rows(vm)
    assert any(r.startswith(" * ") and "(mpx.vmhba0:C0:T0:L0)" in r for r in rows), rows
    assert any(r.startswith("   ") and "(mpx.vmhba32:C0:T0:L0)" in r and r.endswith("16.00 GiB") for r in rows), rows
    select_disk(vm, "mpx.vmhba0:C0:T0:L0")
    vm.expect(r"ESXi and VMFS Found", 10)
    vm.expect(r"Install ESXi, overwrite VMFS datastore", 5)
    vm.expect(r"\(Esc\) Cancel      \(Enter\) OK", 5)
    # cancel for real: F11 Yes resets the machine (back at the boot loader)
    mark = vm.mark()
    vm.key("esc")
    vm.expect(r"Confirm Cancel", 10)
    vm.key("f11")
    vm.wait(r"Automatic boot in 5 seconds", 60, mark + 10)
