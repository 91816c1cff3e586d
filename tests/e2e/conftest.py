"""Fixtures for the end-to-end tests that boot the simulator ISO in QEMU (helpers in tests/harness/)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness.cache import run_cache_dir
from harness.simvm import SimDisk, SimVM, qemu_available

from labctl.errors import InputError

KICKSTART_USB = b"""# scripted install onto the first local disk, else the first USB stick (labctl e2e)
vmaccepteula
rootpw VMware1!
keyboard German
install --firstdisk=local,usb --overwritevmfs
network --bootproto=dhcp --device=vmnic0
reboot
"""


def _build(tmp_path_factory: pytest.TempPathFactory, **kwargs: object) -> Path:
    from labctl.sim.build import build_iso

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABCTL_CACHE_DIR", str(run_cache_dir(tmp_path_factory)))
        try:
            return build_iso("fast", **kwargs)  # type: ignore[arg-type]
        except InputError as exc:
            pytest.skip(f"cannot build the simulator here: {exc}")


@pytest.fixture(scope="session")
def sim_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator ISO (fast speed), built once per session, with the boot loader also on the serial
    console (serial_bootloader=True) so the tests can read it."""
    if not qemu_available():
        pytest.skip("qemu-system-x86_64 or OVMF is missing")
    return _build(tmp_path_factory, serial_bootloader=True)


@pytest.fixture(scope="session")
def sim8_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ESXi 8.0 simulator ISO (fast speed, boot loader also on the serial console), built once per session."""
    if not qemu_available():
        pytest.skip("qemu-system-x86_64 or OVMF is missing")
    return _build(tmp_path_factory, serial_bootloader=True, esxi="8.0")


@pytest.fixture(scope="session")
def sim_ks_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default simulator ISO (boot loader on the graphics console only) with KS.CFG (KICKSTART_USB)."""
    if not qemu_available():
        pytest.skip("qemu-system-x86_64 or OVMF is missing")
    ks = tmp_path_factory.mktemp("ks") / "ks.cfg"
    ks.write_bytes(KICKSTART_USB)
    return _build(tmp_path_factory, kickstart=ks)


@pytest.fixture
def simvm(tmp_path: Path) -> Iterator[Callable[..., SimVM]]:
    """Factory: simvm(iso, disks=[("usb"|"sata", size_bytes), ...], **SimVM kwargs) -> started SimVM.

    Disk images are sparse files in the test's tmp_path (vm.disk_paths). QEMU is always stopped."""
    vms: list[SimVM] = []

    def make(iso: Path, disks: list[tuple[str, int]], **kwargs: object) -> SimVM:
        d = [SimDisk(tmp_path / f"{bus}{i}.img", bus, size) for i, (bus, size) in enumerate(disks)]
        vm = SimVM(iso, tmp_path / f"vm{len(vms)}", d, **kwargs)  # type: ignore[arg-type]
        vms.append(vm)
        vm.start()
        return vm

    yield make
    for vm in vms:
        vm.stop()
