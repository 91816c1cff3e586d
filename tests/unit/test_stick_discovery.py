"""The safety decision, fed with fake lsblk JSON, /proc/swaps and a fake sysfs tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labctl.errors import RefusedError
from labctl.stick import blockdev


def disk(name: str, **kw: Any) -> dict[str, Any]:
    d = {"name": name, "path": f"/dev/{name}", "type": "disk", "tran": None, "rm": False, "hotplug": False,
         "ro": False, "size": 16 * 2**30, "model": None, "serial": None, "subsystems": "block:scsi:pci"}
    d.update(kw)
    return d


def tree(name: str, mounts: list[str | None] | None = None, children: list[dict[str, Any]] | None = None
         ) -> dict[str, Any]:
    return {"name": name, "path": f"/dev/{name}", "mountpoints": mounts or [None], "fstype": None,
            "children": children or []}


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    """/sys/block/sdb -> .../usb1/1-1/1-1:1.0/host0/.../block/sdb with idVendor/idProduct on 1-1."""
    root = tmp_path / "sys"
    usbdev = root / "devices/pci0000:00/0000:00:14.0/usb1/1-1"
    blk = usbdev / "1-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"
    (blk / "holders").mkdir(parents=True)
    (usbdev / "idVendor").write_text("0781\n")
    (usbdev / "idProduct").write_text("5567\n")
    (root / "block").mkdir()
    (root / "block/sdb").symlink_to(blk)
    (blk / "device").symlink_to(usbdev / "1-1:1.0/host6/target6:0:0/6:0:0:0")
    (usbdev / "1-1:1.0/host6/target6:0:0/6:0:0:0").mkdir(parents=True, exist_ok=True)
    # sdd: a USB disk whose partition is held by device-mapper (LVM)
    sdd = root / "devices/virtual/fake/block/sdd"
    (sdd / "sdd1/holders/dm-0").mkdir(parents=True)
    (sdd / "sdd1/partition").write_text("1\n")
    (sdd / "holders").mkdir()
    (root / "block/sdd").symlink_to(sdd)
    return root


DISKS = {"blockdevices": [
    disk("sda", tran="sata", model="Samsung SSD"),
    disk("sdb", tran="usb", rm=True, hotplug=True, model="Ultra Fit", serial="4C530001",
         subsystems="block:scsi:usb:pci"),
    disk("sdc", tran=None, rm=False, hotplug=True, subsystems="block:scsi:usb:pci", model="UAS stick"),
    disk("sdd", tran="usb"),
    disk("sde", tran="usb", rm=True),
    disk("sdf", tran="usb", ro=True),
    disk("sdg", tran="usb", size=0),
    disk("nvme0n1", tran="nvme", subsystems="block:nvme:pci"),
    disk("loop0", type="loop", subsystems="block"),
    disk("zram0", subsystems="block"),
    disk("sr0", type="rom", tran="sata", rm=True),
    disk("sdh", tran="usb"),
]}
TREES = {"blockdevices": [
    tree("sda", children=[tree("sda1", ["/boot/efi"]), tree("sda2", ["/"])]),
    tree("sdb", children=[tree("sdb1"), tree("sdb5")]),
    tree("sdc"),
    tree("sdd", children=[tree("sdd1")]),
    tree("sde", children=[tree("sde1", ["/media/user/STICK"])]),
    tree("sdh", children=[tree("sdh1")]),
    tree("nvme0n1", children=[tree("nvme0n1p1", ["/data"])]),
]}
SWAPS = "Filename\tType\tSize\tUsed\tPriority\n/dev/sdh1 partition 8388604 0 -2\n"


@pytest.fixture
def disks(sysfs: Path) -> dict[str, blockdev.BlockDisk]:
    return {d.name: d for d in blockdev.assess_disks(DISKS, TREES, SWAPS, {"sda"}, sysfs)}


def test_usb_stick_is_safe_with_its_usb_id(disks: dict[str, blockdev.BlockDisk]) -> None:
    d = disks["sdb"]
    assert d.usb and d.safe and d.usb_id == "0781:5567" and d.removable
    assert d.reason == "USB stick, not in use"


def test_uas_stick_with_rm_0_counts_as_usb_by_subsystems(disks: dict[str, blockdev.BlockDisk]) -> None:
    assert disks["sdc"].usb and disks["sdc"].safe and not disks["sdc"].removable


@pytest.mark.parametrize(("name", "why"), [
    ("sda", "running system"),
    ("sdd", "in use by dm-0"),
    ("sde", "mounted at /media/user/STICK"),
    ("sdf", "read-only"),
    ("sdg", "no medium"),
    ("sdh", "swap"),
    ("nvme0n1", "mounted at /data"),
    ("loop0", "loop device"),
    ("zram0", "RAM disk"),
    ("sr0", "optical"),
])
def test_unsafe_disks_say_why(disks: dict[str, blockdev.BlockDisk], name: str, why: str) -> None:
    d = disks[name]
    assert not d.safe and why in d.reason


def test_allow_non_usb_admits_idle_disks_only(disks: dict[str, blockdev.BlockDisk]) -> None:
    nvme_idle = blockdev.assess_disks({"blockdevices": [disk("nvme1n1", tran="nvme")]},
                                      {"blockdevices": [tree("nvme1n1")]}, "", set())[0]
    assert not nvme_idle.safe and "not USB" in nvme_idle.reason
    assert blockdev.verdict(nvme_idle, allow_non_usb=True)[0]
    assert blockdev.verdict(disks["loop0"], allow_non_usb=True)[0]
    for name in ("sda", "sde", "nvme0n1", "sdh", "sdd", "zram0", "sr0"):  # never, whatever flags
        assert not blockdev.verdict(disks[name], allow_non_usb=True)[0], name


def test_disks_larger_than_a_stick_need_allow_large() -> None:
    big, stick = blockdev.assess_disks(
        {"blockdevices": [disk("sdx", tran="usb", size=2 * 10**12, model="Elements"),
                          disk("sdy", tran="usb", size=128 * 10**9, model="128 GB stick")]},
        {"blockdevices": [tree("sdx"), tree("sdy")]}, "", set())
    assert not big.safe and "1.8 TiB is larger than a lab stick" in big.reason and "--allow-large" in big.reason
    assert blockdev.verdict(big, allow_non_usb=False, allow_large=True) == (True, "USB stick, not in use")
    assert stick.safe  # a "128 GB" stick is 128e9 bytes, under 128 GiB


def test_system_disk_found_by_mount_point_alone(sysfs: Path) -> None:
    d = blockdev.assess_disks({"blockdevices": [disk("sdx", tran="usb")]},
                              {"blockdevices": [tree("sdx", children=[tree("sdx1", ["/boot"])])]}, "", set(),
                              sysfs)[0]
    assert d.system and not blockdev.verdict(d, allow_non_usb=True)[0]


def test_lsblk_pre_2_37_single_mountpoint_key() -> None:
    old = {"blockdevices": [{"name": "sdy", "path": "/dev/sdy", "mountpoint": None,
                             "children": [{"name": "sdy1", "mountpoint": "/mnt"}]}]}
    d = blockdev.assess_disks({"blockdevices": [disk("sdy", tran="usb")]}, old, "", set())[0]
    assert d.mountpoints == ["/mnt"] and not d.safe


def test_resolve_target_regular_and_new_files(tmp_path: Path) -> None:
    f = tmp_path / "stick.img"
    f.write_bytes(b"x" * 4096)
    t = blockdev.resolve_target(str(f), allow_non_usb=False)
    assert not t.is_block and t.exists and t.size == 4096
    new = blockdev.resolve_target(str(tmp_path / "new.img"), allow_non_usb=False)
    assert not new.exists
    with pytest.raises(blockdev.InputError):
        blockdev.resolve_target(str(tmp_path / "no/such/dir/x.img"), allow_non_usb=False)
    with pytest.raises(RefusedError, match="neither"):
        blockdev.resolve_target("/dev/null", allow_non_usb=True)


def test_swaps_parser() -> None:
    assert blockdev.parse_swaps(SWAPS) == ["/dev/sdh1"]
    assert blockdev.parse_swaps("Filename Type Size Used Priority\n") == []


def test_list_command_shows_usb_disks_and_json(disks: dict[str, blockdev.BlockDisk], monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from labctl.cli import main

    monkeypatch.setattr(blockdev, "probe", lambda device=None: list(disks.values()))
    assert main(["stick", "list", "--json"]) == 0
    shown = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert set(shown) == {"sdb", "sdc", "sdd", "sde", "sdf", "sdg", "sdh"}  # USB only without --all
    assert shown["sdb"]["safe"] and shown["sdb"]["usb_id"] == "0781:5567"
    assert main(["stick", "list", "--all", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(DISKS["blockdevices"])
    assert main(["stick", "list"]) == 0
    out = capsys.readouterr().out
    assert "/dev/sdb" in out and "yes: USB stick, not in use" in out and "/dev/sda" not in out
