"""vmware.log: USB connect failures in VMware's words, the Msg_Post: Error block, the power-off lines, and
following one power-on's log incrementally; the host-side stick check through a sysfs tree."""

from __future__ import annotations

import os
from pathlib import Path

from labctl.backends import vmwarelog, vmwareusb
from labctl.spec import UsbPassthrough

P = "2026-12-01T09:00:01.500Z| vmx| I005: "
FAILED4 = ('[msg.usb.connectFailed] The connection for the USB device "SanDisk Cruzer Blade" was unsuccessful. '
           "The VMware USB Arbitrator returned error code 4.")
FAILED_DRIVER = '[msg.usb.connectFailed] The connection for the USB device "SanDisk Cruzer Blade" was unsuccessful. ' \
    "Driver error."


def test_usb_connect_failures_in_vmwares_words() -> None:
    text = f"{P}USB: Found device [name:SanDisk|20Cruzer|20Blade vid:0781 pid:5567]\n{P}{FAILED4}\n" \
           f"2026-12-01T09:00:02.000+01:00| vmx| W003: {FAILED_DRIVER}\n"
    assert vmwarelog.usb_connect_failures(text) == [FAILED4, FAILED_DRIVER]
    assert vmwarelog.usb_connect_failures(f"{P}USB: Connecting device desc:name:x\n") == []


def test_msg_post_error_block_up_to_the_dashes() -> None:
    text = (f"{P}Msg_Post: Error\n{P}[msg.old] an older one\n{P}-----\n"
            f"{P}Msg_Post: Error\n{P}[msg.vmx.poweron.failed] Failed to start the virtual machine.\n"
            f"{P}[msg.moduletable.powerOnFailed] Module 'DevicePowerOn' power on failed.\n"
            f"{P}----------------------------------------\n{P}VMX exit (1).\n")
    assert vmwarelog.msg_post_error(text) == ("[msg.vmx.poweron.failed] Failed to start the virtual machine.\n"
                                              "[msg.moduletable.powerOnFailed] Module 'DevicePowerOn' power on failed.")
    assert vmwarelog.msg_post_error(f"{P}nothing\n") is None


def test_powered_off_and_prefixes() -> None:
    assert vmwarelog.powered_off(f"{P}VMX exit (0).\n")
    assert vmwarelog.powered_off(f"{P}Transitioned vmx/execState/val to poweredOff\n")
    assert not vmwarelog.powered_off(f"{P}Transitioned vmx/execState/val to poweredOn\n")
    assert vmwarelog.strip_prefix(f"{P}hello") == "hello"
    assert vmwarelog.strip_prefix("no prefix here") == "no prefix here"


def test_watcher_reads_incrementally_and_follows_a_new_power_on(tmp_path: Path) -> None:
    log = tmp_path / "vmware.log"
    w = vmwarelog.LogWatcher(log)
    assert w.poll() == []  # not there yet
    log.write_text(f"{P}Log for VMware Workstation\n{P}half")
    assert w.poll() == ["Log for VMware Workstation"]
    with open(log, "a") as f:
        f.write(f" a line\n{P}{FAILED4}\n")
    assert w.poll() == ["half a line", FAILED4]
    assert w.usb_failures == [FAILED4] and not w.off
    log.rename(tmp_path / "vmware-0.log")  # the next power-on: VMware starts a new log
    log.write_text(f"{P}VMX exit (0).\n")
    assert w.poll() == ["VMX exit (0)."] and w.off


def test_vmx_pid_from_the_first_line() -> None:
    assert vmwarelog.vmx_pid(f"{P}Log for VMware Workstation pid=4711 version=17.5.0 build-24995812\n") == 4711
    assert vmwarelog.vmx_pid(f"{P}something else\n") is None


def test_tail_drops_prefixes(tmp_path: Path) -> None:
    log = tmp_path / "vmware.log"
    log.write_text("".join(f"{P}line {i}\n" for i in range(30)))
    assert vmwarelog.tail(log, 3) == "line 27\nline 28\nline 29"
    assert vmwarelog.tail(tmp_path / "missing.log") == ""


# -- the host's view of the stick (sysfs) --------------------------------------------------------------


def fake_sysfs(root: Path, vid: str = "0781", pid: str = "5567", name: str = "1-3.2", block: str = "sdb") -> Path:
    real = root / "devices" / "pci0000:00" / name
    (real / f"{name}:1.0" / "host6" / "target6:0:0" / "6:0:0:0" / "block" / block).mkdir(parents=True)
    (real / "idVendor").write_text(vid + "\n")
    (real / "idProduct").write_text(pid + "\n")
    links = root / "bus" / "usb" / "devices"
    links.mkdir(parents=True, exist_ok=True)
    os.symlink(real, links / name)
    os.symlink(real / f"{name}:1.0", links / f"{name}:1.0")
    return root


USB = UsbPassthrough(vendor_id=0x0781, product_id=0x5567)


def test_stick_missing_on_the_host(tmp_path: Path) -> None:
    (tmp_path / "bus" / "usb" / "devices").mkdir(parents=True)
    verdict, line = vmwareusb.before_start(USB, tmp_path, tmp_path / "mounts", platform="linux")
    assert verdict == "missing" and "the stick 0781:5567 is not plugged into this host" in line


def test_stick_present_and_not_mounted(tmp_path: Path) -> None:
    fake_sysfs(tmp_path)
    (tmp_path / "mounts").write_text("/dev/sda1 / ext4 rw 0 0\n")
    verdict, line = vmwareusb.before_start(USB, tmp_path, tmp_path / "mounts", platform="linux")
    assert verdict == "ok" and "1-3.2, /dev/sdb" in line


def test_stick_mounted_on_the_host(tmp_path: Path) -> None:
    fake_sysfs(tmp_path)
    (tmp_path / "mounts").write_text("/dev/sdb1 /media/my\\040stick vfat rw 0 0\n")
    verdict, line = vmwareusb.before_start(USB, tmp_path, tmp_path / "mounts", platform="linux")
    assert verdict == "mounted" and "/dev/sdb1 on /media/my stick" in line and "unmount it" in line


def test_stick_by_bus_path_and_other_ids_do_not_match(tmp_path: Path) -> None:
    fake_sysfs(tmp_path, vid="0951", pid="1666", name="1-3.2")
    assert vmwareusb.find(USB, tmp_path, tmp_path / "mounts") == []
    found = vmwareusb.find(UsbPassthrough(path="1/3/2"), tmp_path, tmp_path / "mounts")
    assert [s.block for s in found] == [("/dev/sdb",)]


def test_not_checked_off_linux() -> None:
    assert vmwareusb.before_start(USB, platform="win32")[0] == "unknown"


def test_watcher_started_before_power_on_ignores_the_previous_power_ons_log(tmp_path: Path) -> None:
    """A power-on whose new vmware.log comes late: the old log's USB failure is not this power-on's."""
    log = tmp_path / "vmware.log"
    log.write_text(f"{P}Log for VMware Workstation\n{P}{FAILED4}\n{P}VMX exit (0).\n")
    w = vmwarelog.LogWatcher.from_now(log)
    assert w.poll() == [] and w.usb_failures == [] and not w.off
    log.rename(tmp_path / "vmware-0.log")
    log.write_text(f"{P}Log for VMware Workstation\n{P}USB: Connected device 0781:5567\n")
    assert w.poll() == ["Log for VMware Workstation", "USB: Connected device 0781:5567"]
    assert w.usb_failures == [] and not w.off
    assert vmwarelog.LogWatcher.from_now(tmp_path / "none.log").poll() == []
