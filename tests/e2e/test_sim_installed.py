"""Simulator e2e: the installed system on the stick.

The chain of the seed, timed from QEMU start: kickstart install onto a 16 GB stick -> eject the CD -> the
firmware boots the stick -> DCUI: F2, a wrong then the right password, Troubleshooting Options, Enable ESXi
Shell -> Alt+F1, log in -> the seed's two esxcli commands -> `partedUtil getptbl` equals the GPT read on the
host -> reboot -> the settings still apply (module list, kernel list) and are in the bootbank's state file
(mtools on the host). Then F12 powers the host off.

A second test boots a stick made on the host beside a local disk holding VMFS: scratch on the datastore's
.locker, ScratchConfig.ConfiguredScratchLocation taking effect on the next boot, console switching.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness.installed_fixtures import (
    CUSTOMIZATION_ITEMS,
    DCUI_MAIN,
    PROMPT,
    ROOT_PASSWORD,
    alt,
    build_installed_iso,
    dcui_login,
    enable_shell,
    make_installed_stick,
    make_vmfs_disk,
    sh,
    shell_login,
    state_cfg,
    wait_dcui,
)
from harness.simvm import SimVM, boot_installer, qemu_available

from labctl import layouts

pytestmark = pytest.mark.e2e

GIB = 1 << 30
STICK = "mpx.vmhba32:C0:T0:L0"


@pytest.fixture(scope="session")
def installed_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default simulator ISO (boot loader on the graphics console only) with the kickstart of
    installed_fixtures.KICKSTART as /KS.CFG."""
    if not qemu_available():
        pytest.skip("qemu-system-x86_64 or OVMF is missing")
    return build_installed_iso(tmp_path_factory.getbasetemp())


def table_row(output: str, name: str) -> list[str]:
    """The cells of the table row starting with name (esxcli tables: two or more blanks between cells)."""
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in:\n{output}")


def test_seed_chain_install_to_persisted_usb_settings(installed_iso: Path, simvm: Callable[..., SimVM]) -> None:
    vm = simvm(installed_iso, [("usb", 16 * GIB)])
    stick = vm.disks[0].path
    laps: dict[str, float] = {}

    # install (scripted) with the legacy USB driver so that the stick is seen
    boot_installer(vm, " preferVMklinux=TRUE ks=cdrom:/KS.CFG", screen=True)
    vm.expect(r"Installation Complete", 120)
    laps["installed"] = vm.elapsed()
    mark = vm.mark()
    assert vm.qmp is not None
    vm.qmp.execute("eject", device="cd0", force=True)
    wait_dcui(vm, mark)
    laps["dcui"] = vm.elapsed()

    # the shell console is blank (with a hint) while the ESXi Shell is disabled; Alt+F2 comes back
    alt(vm, "f1")
    vm.expect(r"ESXi Shell access is disabled", 15)
    alt(vm, "f2")
    vm.expect(DCUI_MAIN, 15)

    # F2: a wrong password is refused and asked again; then System Customization with all items in order
    vm.key("f2")
    dcui_login(vm, "not-the-password")
    vm.expect(r"Invalid login name or password", 15)
    mark = vm.mark()
    vm.type(ROOT_PASSWORD)
    vm.key("enter")
    m = vm.wait(r"System Customization" + "".join(r"[\s\S]*?" + re.escape(i) for i in CUSTOMIZATION_ITEMS), 15, mark)
    assert "Invalid login" not in m.group(0)
    vm.key("esc")  # Esc logs out
    vm.expect(DCUI_MAIN, 15)
    enable_shell(vm, ROOT_PASSWORD)
    laps["shell enabled"] = vm.elapsed()

    shell_login(vm, ROOT_PASSWORD)
    assert sh(vm, "esxcli system settings kernel set -s preferVmklinux -v FALSE") == ""
    assert sh(vm, "esxcli system module set --enabled=false -m vmkusb") == ""
    kl = sh(vm, "esxcli system settings kernel list -o preferVmklinux")
    assert kl.splitlines()[0].split() == ["Name", "Type", "Configured", "Runtime", "Default", "Description"]
    assert table_row(kl, "preferVmklinux")[:5] == ["preferVmklinux", "Bool", "FALSE", "TRUE", "FALSE"]
    assert table_row(sh(vm, "esxcli system module list"), "vmkusb") == ["vmkusb", "true", "false"]

    # partedUtil reads the GPT really on the stick: the same table as the host reads
    ptbl = sh(vm, f"partedUtil getptbl /dev/disks/{STICK}")
    assert ptbl.splitlines() == layouts.format_getptbl(layouts.read_gpt(str(stick))).splitlines()
    assert ptbl.splitlines()[1] == "2088 255 63 33554432"
    assert "scratch -> /tmp/scratch" in sh(vm, "ls -lh /")
    assert sh(vm, "frobnicate now") == "-sh: frobnicate: not found"
    assert sh(vm, "esxcli system module set -m vmkusb").startswith("Error: Missing required parameter -e|--enabled")
    laps["commands"] = vm.elapsed()

    mark = vm.mark()
    vm.type("reboot")
    vm.key("enter")
    vm.wait(r"Restarting system", 30, mark)
    wait_dcui(vm, vm.mark())
    laps["rebooted"] = vm.elapsed()

    # the ESXi Shell stayed enabled: Alt+F1 shows a login prompt at once
    shell_login(vm, ROOT_PASSWORD)
    assert table_row(sh(vm, "esxcli system module list"), "vmkusb") == ["vmkusb", "false", "false"]
    kl = sh(vm, "esxcli system settings kernel list -o preferVmklinux")
    assert table_row(kl, "preferVmklinux")[:5] == ["preferVmklinux", "Bool", "FALSE", "FALSE", "FALSE"]
    laps["verified"] = vm.elapsed()

    state = state_cfg(stick)
    assert state["kernel.preferVmklinux"] == "FALSE"
    assert state["module.vmkusb.enabled"] == "FALSE"
    assert state["shell.enabled"] == "TRUE"
    assert state["rootpw"].startswith("fnv1a64:") and ROOT_PASSWORD not in state["rootpw"]

    print("chain laps (s from QEMU start): " + ", ".join(f"{k} {v:.1f}" for k, v in laps.items()))

    # F12 -> log in -> F2 powers the host off
    alt(vm, "f2")
    vm.expect(DCUI_MAIN, 15)
    vm.key("f12")
    dcui_login(vm, ROOT_PASSWORD)
    vm.expect(r"Shut Down/Restart[\s\S]*<F2> Shut Down\s+<F11> Restart\s+<Esc> Cancel", 15)
    vm.key("f2")
    assert vm.proc is not None
    vm.proc.wait(60)


def test_scratch_on_local_datastore_and_configured_location(installed_iso: Path, simvm: Callable[..., SimVM],
                                                            tmp_path: Path) -> None:
    stick, disk = tmp_path / "usb0.img", tmp_path / "sata1.img"
    make_installed_stick(installed_iso, stick, 8 * GIB, ROOT_PASSWORD)
    make_vmfs_disk(disk, 10 * GIB)
    vm = simvm(installed_iso, [("usb", 8 * GIB), ("sata", 10 * GIB)])
    assert vm.qmp is not None
    vm.qmp.execute("eject", device="cd0", force=True)
    vm.qmp.execute("system_reset")
    wait_dcui(vm, 0)
    enable_shell(vm, ROOT_PASSWORD)
    shell_login(vm, ROOT_PASSWORD)
    root = sh(vm, "ls -lh /")
    m = re.search(r"scratch -> /vmfs/volumes/([0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{12})/\.locker", root)
    assert m, root
    uuid = m.group(1)
    disks = sh(vm, "ls -lh /dev/disks/")
    assert re.search(r"mpx\.vmhba0:C0:T0:L0:1\n", disks + "\n") and f"{STICK}:5" in disks

    loc = "/vmfs/volumes/datastore1/scratch"
    assert sh(vm, f"esxcli system settings advanced set -o /ScratchConfig/ConfiguredScratchLocation -s {loc}") == ""
    adv = sh(vm, "esxcli system settings advanced list -o /ScratchConfig/ConfiguredScratchLocation")
    assert f"String Value: {loc}" in adv
    assert f"scratch -> /vmfs/volumes/{uuid}/.locker" in sh(vm, "ls -lh /")  # takes effect on the next boot
    assert sh(vm, "esxcli system syslog config set --loghost=udp://192.168.1.10:514") == ""
    assert sh(vm, "esxcli system coredump network set --interface-name vmk0 --server-ipv4 192.168.1.10 "
                  "--server-port 6500") == ""

    # Alt+F2 / Alt+F1 keep each console's screen
    alt(vm, "f2")
    vm.expect(DCUI_MAIN, 15)
    alt(vm, "f1")
    vm.expect(PROMPT, 15)

    mark = vm.mark()
    vm.type("reboot")
    vm.key("enter")
    vm.wait(r"Restarting system", 30, mark)
    wait_dcui(vm, vm.mark())
    shell_login(vm, ROOT_PASSWORD)
    assert f"scratch -> /vmfs/volumes/{uuid}/scratch" in sh(vm, "ls -lh /")
    assert f"VSAN Traces Directory: /vmfs/volumes/{uuid}/scratch/vsantraces" in sh(vm, "esxcli vsan trace get")
    assert "Remote Host: udp://192.168.1.10:514" in sh(vm, "esxcli system syslog config get")
    dump = sh(vm, "esxcli system coredump network get")
    assert "Host VNic: vmk0" in dump and "Network Server IP: 192.168.1.10" in dump
    assert "Network Server Port: 6500" in dump
    state = state_cfg(stick)
    assert state["scratch.configured"] == loc and state["syslog.loghost"] == "udp://192.168.1.10:514"
    started = time.monotonic()
    vm.type("poweroff")
    vm.key("enter")
    assert vm.proc is not None
    vm.proc.wait(60)
    assert time.monotonic() - started < 60


def test_acpi_power_button_shuts_the_host_down_cleanly(installed_iso: Path, simvm: Callable[..., SimVM],
                                                       tmp_path: Path) -> None:
    """`labctl down` and VMware's "Shut Down Guest" press the ACPI power button: the host saves its state (the
    shell just enabled in the DCUI) to the bootbank and powers off, instead of waiting to be killed."""
    stick = tmp_path / "usb0.img"
    make_installed_stick(installed_iso, stick, 8 * GIB, ROOT_PASSWORD)
    assert state_cfg(stick).get("shell.enabled", "FALSE") == "FALSE"
    vm = simvm(installed_iso, [("usb", 8 * GIB)])
    assert vm.qmp is not None and vm.proc is not None
    vm.qmp.execute("eject", device="cd0", force=True)
    vm.qmp.execute("system_reset")
    wait_dcui(vm, 0)
    enable_shell(vm, ROOT_PASSWORD)
    mark = vm.mark()
    started = time.monotonic()
    vm.qmp.execute("system_powerdown")
    vm.wait(r"Saving the configuration to the bootbank[\s\S]*Shutting down system", 30, mark)
    vm.proc.wait(60)
    assert time.monotonic() - started < 30
    assert state_cfg(stick)["shell.enabled"] == "TRUE"
