"""Simulator e2e, ESXi 8.0 profile: one test per stick size, each an install checked sector by sector with
an independent reader (sfdisk, sgdisk) against the numbers published for ESXi 8.0.

- 32 GB: `labctl up` of the 8.0 lab (esxi-8.0-interactive, enable-esxi-shell, harden-usb-host) on a host
  that also has a local VMFS datastore, so harden-usb-host moves scratch and logs there; every setting is
  proven after the reboot, and the bootbank's state holds them.
- 16 GB: the interactive install by hand (preferVMklinux=TRUE typed anyway and ignored), the under-32-GB
  warning, 1 GiB bootbanks; the installed 8.0.3 DCUI says the stick-only host has no persistent storage.
- 10 GB: the installer's own "disk device does not support OSDATA", and labctl refuses such a lab.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from harness.installed_fixtures import make_vmfs_disk, state_cfg
from harness.simvm import SimVM, boot_installer, disk_rows, finish_install, remaster, sgdisk_layout, words

pytestmark = pytest.mark.e2e

GIB = 1 << 30
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
NATIVE = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
VMFSL = "4EB2EA39-7855-4790-A79E-FAE495E21F8D"
BOOTBANK = 208896  # partition 5 on ESXi 7.0/8.0
DCUI_TITLE = r"VMware ESXi 8\.0\.3 \(VMKernel Release Build 24677879\)"

LAB = """\
name: esxi8-up
backend: qemu
esxi: "8.0"
iso: sim
vm:
  nic: vmxnet3
  disk: {size: 20G, image: "disks/{seat}.img"}
stick:
  image: sticks/{seat}.img
  size: 32G
install:
  playbook: esxi-8.0-interactive
  boot_options: ""
  root_password: {env: LAB_ROOT_PASSWORD}
post_install: [enable-esxi-shell, harden-usb-host]
verify: {layout: esxi8, media: usb}
"""


def sfdisk_rows(image: Path) -> list[tuple[int, int, int, str]]:
    """(number, start, end, type) of every partition, read by util-linux's sfdisk."""
    out = subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True, timeout=30, check=True)
    table = json.loads(out.stdout)["partitiontable"]
    assert table["label"] == "gpt" and table["sectorsize"] == 512
    return [(int(p["node"].removeprefix(str(image))), p["start"], p["start"] + p["size"] - 1, p["type"])
            for p in table["partitions"]]


def test_up_32g_stick_hardened_usb_host(tmp_path: Path) -> None:
    (tmp_path / "disks").mkdir()
    make_vmfs_disk(tmp_path / "disks" / "esxi8-up.img", 20 * GIB)  # the host's local datastore
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB)
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "labctl", "up", str(lab), "--runs", str(runs)],
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "esxi8 usb layout" in proc.stderr + proc.stdout

    stick = tmp_path / "sticks" / "esxi8-up.img"
    total = stick.stat().st_size // 512
    assert total == 32 * GIB // 512
    # ESXi 8.0 on a 32 GB stick, as published: 100M / 4G / 4G / the rest
    assert sfdisk_rows(stick) == [(1, 64, 204863, ESP), (5, 208896, 8595455, NATIVE),
                                  (6, 8597504, 16984063, NATIVE), (7, 16986112, total - 34, VMFSL)]

    events = [json.loads(line) for line in next(runs.rglob("events.jsonl")).read_text().splitlines()]
    ok = {e["step"] for e in events if e.get("result") == "ok"}
    for step in ("keep OSData on the stick", "VMware Tools in a RAM disk", "scratch on the datastore",
                 "logs on the datastore", "Tools RAM disk after the reboot", "core dump file after the reboot"):
        assert step in ok, step
    state = state_cfg(stick, BOOTBANK)
    assert state["adv.UserVars.ToolsRamdisk"] == "1"
    assert state["scratch.configured"] == "/vmfs/volumes/datastore1/.locker"
    assert state["syslog.logdir"] == "/vmfs/volumes/datastore1/logs"
    assert state["coredump.file.enabled"] == "TRUE"
    assert state["coredump.file.path"].endswith("/vmkdump/localhost.dumpfile")
    assert "kernel.preferVmklinux" not in state


def test_16g_stick_interactive_install_and_degraded_host(sim8_iso: Path, simvm: Callable[..., SimVM]) -> None:
    vm = simvm(sim8_iso, [("usb", 16 * GIB)])
    stick = vm.disks[0].path
    boot_installer(vm, " preferVMklinux=TRUE")  # an unknown option on 8.0: ignored
    vm.expect(r"Welcome to the VMware ESXi 8\.0\.3 Installation", 30)
    vm.key("enter")
    vm.expect(r"\(F11\) Accept and Continue", 15)
    vm.key("f11")
    vm.expect(r"Select a Disk to Install or Upgrade[\s\S]*Remote:\s+\(none\)", 30)
    rows = disk_rows(vm)
    assert any("(mpx.vmhba32:C0:T0:L0)" in r and r.endswith("16.00 GiB") for r in rows), rows
    vm.key("enter")
    vm.expect(r"Select a Disk to store ESX OSData[\s\S]*\(mpx\.vmhba32:C0:T0:L0\)", 15)
    vm.key("enter")
    finish_install(vm)
    text = vm.text()
    assert re.search(words("The boot disk is smaller than the recommended 32 GB."), text)  # warned, accepted
    assert "ESXi 8.0.3 has been installed successfully." in text

    total = stick.stat().st_size // 512
    got = [(n, s, e, g) for n, s, e, g, _attrs in sgdisk_layout(stick)]
    assert got == [(1, 64, 204863, ESP.replace("-", "")), (5, 208896, 2306047, NATIVE.replace("-", "")),
                   (6, 2308096, 4405247, NATIVE.replace("-", "")), (7, 4407296, total - 34, VMFSL.replace("-", ""))]
    with stick.open("rb") as f:  # OSData carries its VMFS-L header and the USB label
        f.seek((4407296 + 2048) * 512)
        header = f.read(512)
    assert header[64:71] == b"LOCKER-"

    # the installed system: the 8.0.3 DCUI, degraded without a datastore
    mark = vm.mark()
    assert vm.qmp is not None
    vm.qmp.execute("eject", device="cd0", force=True)
    vm.key("enter")
    vm.wait(DCUI_TITLE + r"[\s\S]*ALERT: No persistent storage available for system logs and data\.", 120, mark)
    assert "kernel.preferVmklinux" not in state_cfg(stick, BOOTBANK)


def test_10g_stick_refused_by_the_installer_and_by_labctl(sim8_iso: Path, simvm: Callable[..., SimVM],
                                                          tmp_path: Path) -> None:
    vm = simvm(sim8_iso, [("usb", 10 * GIB)])
    boot_installer(vm)
    vm.expect(r"Welcome to the VMware ESXi 8\.0\.3 Installation", 30)
    vm.key("enter")
    vm.expect(r"\(F11\) Accept and Continue", 15)
    vm.key("f11")
    vm.expect(r"Select a Disk to Install or Upgrade[\s\S]*Remote:\s+\(none\)", 30)
    vm.key("enter")
    vm.expect(r"disk device does not support OSDATA", 15)
    with vm.disks[0].path.open("rb") as f:
        assert f.read(34 * 512) == bytes(34 * 512)  # nothing written

    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB.replace("size: 32G", "size: 10G"))
    proc = subprocess.run([sys.executable, "-m", "labctl", "validate", str(lab)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"{lab}:10:")
    assert "stick.size: 10.7 GB: ESXi 8.0's installer refuses media under 16 GB" in proc.stderr


def test_160g_local_disk_by_kickstart_gets_osdata_and_a_datastore(sim8_iso: Path, simvm: Callable[..., SimVM],
                                                                  tmp_path: Path) -> None:
    """A large local disk, installed unattended (ks=cdrom:/KS.CFG in the CD's BOOT.CFG, no key typed): OSData
    ends at sector 268435455 (128 GiB) and a VMFS datastore takes the rest, as published for ESXi 8.0."""
    from labctl.sim.build import iso_boot_cfg

    cfg = iso_boot_cfg("8.0").replace(b"kernelopt=runweasel cdromBoot",
                                      b"kernelopt=runweasel cdromBoot ks=cdrom:/KS.CFG")
    ks = b"vmaccepteula\nrootpw VMware1!\ninstall --firstdisk=local --overwritevmfs\n"
    iso = remaster(sim8_iso, tmp_path / "ks8.iso", cfg, ks)
    vm = simvm(iso, [("sata", 160 * GIB)])
    vm.wait(r"Installing ESXi 8\.0\.3", 90)
    vm.wait(r"Installation Complete", 120)
    vm.stop()
    disk = vm.disks[0].path
    total = disk.stat().st_size // 512
    assert sfdisk_rows(disk) == [(1, 64, 204863, ESP), (5, 208896, 8595455, NATIVE), (6, 8597504, 16984063, NATIVE),
                                 (7, 16986112, 268435455, VMFSL),
                                 (8, 268437504, total - 34, "AA31E02A-400F-11DB-9590-000C2911D1B8")]
    with disk.open("rb") as f:
        f.seek((16986112 + 2048) * 512)
        assert f.read(512)[64:71] == b"OSDATA-"  # a local disk's OSData label
