"""Simulator e2e: a too-small stick, every password rule, and the system-scan errors of a 2 GiB, 1 CPU VM
(F9 back, F11 reboots)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from harness.simvm import SimVM, boot_installer, disk_rows, select_disk, to_disk_list

pytestmark = pytest.mark.e2e

MIB = 1 << 20


class Fields:
    """The two password fields as typed so far (focus on the first field between calls)."""

    def __init__(self, vm: SimVM) -> None:
        self.vm, self.values = vm, ["", ""]

    def set(self, first: str, second: str) -> None:
        for i, new in enumerate((first, second)):
            old = self.values[i]
            keep = next((n for n, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
            self.vm.key(*["backspace"] * (len(old) - keep))
            self.vm.type(new[keep:])
            self.values[i] = new
            self.vm.key("tab")


def test_too_small_disk_password_rules_and_system_scan_errors(
    sim_iso: Path, simvm: Callable[..., SimVM], tmp_path: Path
) -> None:
    # the 1 GB stick holds a foreign partition: "Confirm Disk Selection"
    foreign = tmp_path / "usb1.img"
    with foreign.open("wb") as f:
        f.truncate(1024 * MIB)
    subprocess.run(["sgdisk", "-n", "1:2048:+100M", "-t", "1:0700", str(foreign)], check=True, timeout=30,
                   capture_output=True)
    vm = simvm(sim_iso, [("usb", 512 * MIB), ("usb", 1024 * MIB)], memory_mb=2048, cpus=1)
    assert vm.disks[1].path == foreign
    boot_installer(vm, " PREFERVMKLINUX=true noise=1 quiet")  # case-insensitive; unknown words ignored
    to_disk_list(vm)
    rows = disk_rows(vm)
    assert any("(mpx.vmhba32:C0:T0:L0)" in r and r.endswith("512.00 MiB") for r in rows), rows
    assert any("(mpx.vmhba33:C0:T0:L0)" in r and r.endswith("1.00 GiB") for r in rows), rows
    select_disk(vm, "mpx.vmhba32:C0:T0:L0")
    vm.expect(r"The selected disk does not meet the minimum space requirements for ESXi 6\.7\.0\.", 10)
    vm.key("enter")
    vm.expect(r"Select a Disk to Install or Upgrade", 10)
    select_disk(vm, "mpx.vmhba33:C0:T0:L0")
    vm.expect(r"Confirm Disk Selection", 10)
    vm.expect(r"contains at least one partition with existing data\.", 5)
    vm.expect(r"If you continue the selected disk will be overwritten\.", 5)
    vm.expect(r"\(Esc\) Cancel      \(Enter\) OK", 5)
    vm.key("enter")
    vm.expect(r"Please select a keyboard layout", 10)
    vm.key("enter")
    vm.expect(r"Enter a root password", 10)
    vm.expect(r"Please enter a password\.", 5)

    fields = Fields(vm)
    fields.set("Ab1!xyz", "Ab1!xy")
    vm.expect(r"Passwords do not match\.", 10)
    vm.key("enter")  # refused: still on this screen
    cases = [
        ("Ab1!", "Password must be at least 7 characters long."),
        ("Aa1" * 14, "Password must be less than 41 characters long."),
        ("abcdefgh", "Password does not have enough character types."),
        ("ABCDEFG12", "Password does not have enough character types."),
    ]
    for pw, message in cases:
        fields.set(pw, pw)
        vm.expect(r"Passwords match\.", 10)
        vm.key("enter")
        vm.expect(message.replace(".", r"\."), 10)
    fields.set("VMware1!", "VMware1!")  # 3 classes + a special: accepted
    vm.key("enter")

    vm.expect(r"Scanning system\.\.\.", 10)
    vm.expect(r"Error\(s\)/Warning\(s\) Found During System Scan", 30)
    vm.expect(r"MEMORY_SIZE ERROR", 5)
    vm.expect(r"CPU_CORES ERROR", 5)
    vm.expect(r"\(F9\) Back     \(F11\) Reboot", 5)
    vm.key("f9")
    vm.expect(r"Enter a root password", 10)
    vm.key("enter")
    vm.expect(r"Found During System Scan", 30)
    mark = vm.mark()
    vm.key("f11")
    vm.wait(r"Automatic boot in 5 seconds", 60, mark)
