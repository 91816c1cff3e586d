"""An in-memory Backend for unit tests: the whole ``labctl.backends.base.Backend`` contract, no hypervisor.

A ``FakeHost`` plays the machine: it remembers which seats run (so a second backend object can
``attach_running`` as another labctl process would), and it is what the registry needs of a backend
class (``create`` and ``usable``)::

    host = FakeHost()
    registry = Registry()
    registry.register("fake", host)
    options = UpOptions(backend="fake", registry=registry)

Tests make things happen with ``backend.crash(...)`` (the VM dies on its own) and read what was asked
of it in ``backend.calls``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from labctl.backends import Registry
from labctl.backends.base import (
    Backend,
    BackendClass,
    Capabilities,
    Facts,
    PowerState,
    SeatImages,
    SerialEndpoint,
    StickView,
    StopMode,
    StopResult,
    Unsupported,
    VmDied,
    VncEndpoint,
)
from labctl.errors import InputError, RunFailed
from labctl.spec import Lab, Seat


@dataclass
class FakeVm:
    """One seat's VM as the fake host keeps it."""

    pid: int
    vnc_port: int
    power: PowerState = PowerState.RUNNING
    dead: str | None = None  # why it died, once it did
    stopped_by: str | None = None
    cdrom: Path | None = None


@dataclass
class FakeHost:
    """The fake machine: running VMs by seat name, and the registry entry for ``FakeBackend``."""

    usable_reason: tuple[bool, str] = (True, "in memory")
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(snapshots=True, screendump=True,
                                                                             attach=True, clone=True))
    vms: dict[str, FakeVm] = field(default_factory=dict)
    next_pid: int = 4242
    fail_start: dict[str, str] = field(default_factory=dict)  # seat name -> why its start fails

    def create(self, lab: Lab, seat: Seat, **options: object) -> FakeBackend:
        return FakeBackend(lab, seat, self, detached=bool(options.get("detached", False)))

    def usable(self, lab: Lab) -> tuple[bool, str]:
        return self.usable_reason

    def registry(self, name: str = "fake") -> Registry:
        reg = Registry()
        reg.register(name, self)
        return reg


class FakeBackend:
    """One seat's VM in a ``FakeHost``. The stick is the seat's image file (or ``stick_image``)."""

    name = "fake"
    default_key_rate = 50.0

    def __init__(self, lab: Lab, seat: Seat, host: FakeHost | None = None, *, detached: bool = False,
                 stick_image: Path | None = None) -> None:
        self.lab, self.seat = lab, seat
        self.host = host if host is not None else FakeHost()
        self.detached = detached
        self.capabilities = self.host.capabilities
        self.iso: Path | None = lab.iso_path(seat)
        self.stick_image = stick_image if stick_image is not None else seat.stick_image(lab)
        self.calls: list[str] = []
        self._vm: FakeVm | None = None  # the VM this object started or attached to
        self._started_here = False
        self._stopping = False
        self.defined = False

    # -- lifecycle --------------------------------------------------------------------------------

    def prepare(self) -> Facts:
        self.calls.append("prepare")
        return {"fake": True}

    def define(self) -> None:
        self.calls.append("define")
        self.defined = True
        image = self.stick_image
        if image is not None and not image.exists():
            image.parent.mkdir(parents=True, exist_ok=True)
            with image.open("xb") as f:
                f.truncate(self.seat.stick.size or 2**20)

    def cleanup_stale(self) -> list[str]:
        self.calls.append("cleanup_stale")
        vm = self.host.vms.get(self.seat.name)
        if vm is not None and vm.dead is not None:
            del self.host.vms[self.seat.name]
            return ["fake.json"]
        return []

    def start(self) -> Facts:
        self.calls.append("start")
        if self.seat.name in self.host.fail_start:
            raise RunFailed(self.host.fail_start[self.seat.name])
        vm = self.host.vms.get(self.seat.name)
        if vm is not None and vm.dead is None and not self._started_here:
            raise InputError(f"seat {self.seat.index} ({self.seat.name}) is already running")
        if vm is None or vm.dead is not None:
            vm = FakeVm(pid=self.host.next_pid, vnc_port=5900 + self.seat.index, cdrom=self.iso)
            self.host.next_pid += 1
            self.host.vms[self.seat.name] = vm
        vm.power = PowerState.RUNNING
        self._vm, self._started_here, self._stopping = vm, True, False
        return {"pid": vm.pid, "vnc": self.vnc_display()}

    def stop(self, mode: StopMode = "soft", timeout: float = 60.0) -> StopResult:
        self.calls.append(f"stop {mode}")
        t0 = time.monotonic()
        self._stopping = True
        vm = self._vm or self.host.vms.get(self.seat.name)
        if vm is None or vm.dead is not None or vm.power is PowerState.OFF:
            self.host.vms.pop(self.seat.name, None)
            return StopResult("not running", time.monotonic() - t0)
        self.host.vms.pop(self.seat.name, None)
        vm.power = PowerState.OFF
        return StopResult(mode, time.monotonic() - t0, vm.pid)

    def kill(self) -> None:
        self.calls.append("kill")
        self._stopping = True
        vm = self._vm or self.host.vms.get(self.seat.name)
        if vm is not None:
            vm.power = PowerState.OFF
            vm.dead = vm.dead or "killed"
        self.host.vms.pop(self.seat.name, None)

    def reset(self, mode: StopMode = "hard") -> None:
        self.calls.append(f"reset {mode}")
        self._running_vm()

    def eject_cdrom(self) -> None:
        self.calls.append("eject")
        self._running_vm().cdrom = None

    def reset_definition(self) -> list[str]:
        if self.alive():
            raise InputError("reset the VM definition: the seat is running")
        self.calls.append("reset_definition")
        return ["fake definition reset"]

    # -- state --------------------------------------------------------------------------------------

    def _running_vm(self) -> FakeVm:
        vm = self._vm
        if vm is None or vm.dead is not None or vm.power is PowerState.OFF:
            raise InputError(f"seat {self.seat.index} ({self.seat.name}) is not running")
        return vm

    def power_state(self) -> PowerState:
        vm = self._vm or self.host.vms.get(self.seat.name)
        return PowerState.OFF if vm is None or vm.dead is not None else vm.power

    def alive(self) -> bool:
        vm = self._vm
        return vm is not None and vm.dead is None and vm.power is not PowerState.OFF

    def died(self) -> bool:
        return self._vm is not None and self._vm.dead is not None and not self._stopping

    def death_message(self) -> str:
        vm = self._vm
        if vm is None or vm.dead is None:
            return "the VM is running"
        if vm.stopped_by:
            return f"fake VM (pid {vm.pid}) was stopped by 'labctl {vm.stopped_by}' from another shell"
        return f"fake VM (pid {vm.pid}) exited unexpectedly ({vm.dead})"

    def check(self) -> None:
        if self.died():
            raise VmDied(self.death_message())

    @property
    def started_here(self) -> bool:
        return self._started_here

    def attach_running(self) -> bool:
        vm = self.host.vms.get(self.seat.name)
        if vm is None or vm.dead is not None:
            return False
        self._vm = vm
        return True

    def mark_stopped_by(self, verb: str) -> None:
        vm = self.host.vms.get(self.seat.name)
        if vm is not None:
            vm.stopped_by = verb

    def stop_strays(self) -> list[int]:
        return []

    def status_details(self) -> Facts:
        vm = self.host.vms.get(self.seat.name)
        return {"pid": vm.pid if vm is not None and vm.dead is None else None, "stick_snapshots": self.snapshots()}

    def images(self) -> SeatImages:
        return SeatImages(self.stick_image, None)

    # -- endpoints ------------------------------------------------------------------------------------

    def vnc_endpoint(self) -> VncEndpoint:
        vm = self._running_vm()
        return VncEndpoint("127.0.0.1", vm.vnc_port, "fakepass")

    def vnc_display(self) -> str:
        vm = self._vm
        return f"127.0.0.1 port {vm.vnc_port}" if vm is not None and vm.dead is None else "-"

    def serial_endpoint(self) -> SerialEndpoint | None:
        return None

    def screendump(self, out: Path) -> Path:
        if not self.capabilities.screendump:
            raise Unsupported("fake: no screendump")
        from PIL import Image

        self._running_vm()
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48)).save(out)
        return out

    # -- stick --------------------------------------------------------------------------------------

    @contextmanager
    def stick_view(self) -> Iterator[StickView]:
        if self.stick_image is None:
            yield StickView(None, "a host stick passed through")
            return
        yield StickView(self.stick_image)

    # -- snapshots ----------------------------------------------------------------------------------

    def _snapshot_dir(self) -> Path:
        return self.seat.state_dir / "fake-snapshots"

    def snapshots(self) -> list[str]:
        d = self._snapshot_dir()
        return sorted((p.stem for p in d.glob("*.img")), key=lambda n: (d / f"{n}.img").stat().st_mtime_ns) \
            if d.is_dir() else []

    def snapshot(self, name: str) -> None:
        if not self.capabilities.snapshots or self.stick_image is None:
            raise Unsupported("fake: no snapshots")
        d = self._snapshot_dir()
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.stick_image, d / f"{name}.img")

    def revert(self, name: str) -> None:
        if self.stick_image is None or name not in self.snapshots():
            raise InputError(f"no snapshot {name!r}")
        shutil.copyfile(self._snapshot_dir() / f"{name}.img", self.stick_image)

    def delete_snapshot(self, name: str) -> None:
        if name not in self.snapshots():
            raise InputError(f"no snapshot {name!r}")
        (self._snapshot_dir() / f"{name}.img").unlink()

    def clone(self, dest: Path, linked: bool = True) -> Path:
        if self.stick_image is None:
            raise Unsupported("fake: no stick image to clone")
        shutil.copyfile(self.stick_image, dest)
        return dest

    # -- what the tests do to it ------------------------------------------------------------------

    def crash(self, why: str = "killed by signal 9") -> None:
        """The VM dies on its own (or, with ``mark_stopped_by`` first, by another labctl)."""
        vm = self._vm or self.host.vms.get(self.seat.name)
        assert vm is not None, "crash() of a VM that never started"
        vm.dead = why
        vm.power = PowerState.OFF


_FAKE_IS_A_BACKEND: type[Backend] = FakeBackend
_FAKE_HOST_IS_A_BACKEND_CLASS: BackendClass = FakeHost()
