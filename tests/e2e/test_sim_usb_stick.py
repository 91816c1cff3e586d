"""Simulator e2e: the seed's path — a 16 GB USB stick, listed only with preferVMklinux=TRUE, installed
interactively (timed), its layout sector-exact and its payloads readable by mtools; installing again
shows "ESXi Found"."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness.simvm import (
    SimVM,
    boot_installer,
    check_gpt,
    finish_install,
    mdir,
    mtype,
    read_range,
    select_disk,
    to_disk_list,
)

pytestmark = pytest.mark.e2e

GIB = 1 << 30


def test_usb_stick_16g_interactive_install_and_esxi_found(sim_iso: Path, simvm: Callable[..., SimVM]) -> None:
    started = time.monotonic()
    vm = simvm(sim_iso, [("usb", 16 * GIB)])
    stick = vm.disks[0].path
    boot_installer(vm, " preferVMklinux=TRUE")
    to_disk_list(vm)
    select_disk(vm, "mpx.vmhba32:C0:T0:L0")
    finish_install(vm)
    install_s = time.monotonic() - started
    print(f"QEMU start to Installation Complete: {install_s:.1f} s")

    check_gpt(stick, [1, 5, 6, 7, 8, 9])
    assert "BOOTX64  EFI" in mdir(stick, 64, "/EFI/BOOT")
    boot_cfg = mtype(stick, 8224, "/boot.cfg")
    assert "kernelopt=preferVMklinux=TRUE" in [line.rstrip() for line in boot_cfg.splitlines()]
    assert "build=6.7.0-8169922" in boot_cfg
    state = mtype(stick, 8224, "/state.cfg")
    assert "install.disk=mpx.vmhba32:C0:T0:L0" in state
    assert "keyboard=US Default" in state
    assert "kernel.preferVmklinux=TRUE" in state
    assert "@@" not in boot_cfg + state
    mdir(stick, 520224)  # altbootbank, store: FAT file systems
    mdir(stick, 1257504)
    assert read_range(stick, 1032224, 2048) == bytes(2048 * 512)  # coredump partition 7 zeroed (start)

    # installing again over the install: "ESXi Found" (no VMFS on a stick)
    mark = vm.mark()
    vm.key("enter")
    boot_installer(vm, " preferVMklinux=TRUE", since=mark)
    to_disk_list(vm)
    select_disk(vm, "mpx.vmhba32:C0:T0:L0")
    m = vm.expect(r"ESXi and VMFS Found|ESXi Found", 10)
    assert m.group(0) == "ESXi Found"
    vm.expect(r"Upgrade ESXi, preserve VMFS datastore[\s\S]*Install ESXi, overwrite VMFS datastore", 5)
    vm.key("down", "down", "enter")
    finish_install(vm)
    check_gpt(stick, [1, 5, 6, 7, 8, 9])
