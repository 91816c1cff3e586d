"""The Backend contract: what the runner and the console may ask of a hypervisor.

Two implementations: ``vmware`` (vmrun, .vmx) and ``qemu`` (QEMU + QMP). Anything platform-specific
stays behind this protocol (Packer's Driver idea): the playbook talks to a Console, the runner to a
Backend, never to vmrun or QMP directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable


class PowerState(StrEnum):
    OFF = "off"
    RUNNING = "running"
    PAUSED = "paused"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class VncEndpoint:
    """Where the seat's screen is. ``password`` is a secret: never log it."""

    host: str
    port: int
    password: str | None = None
    socket_path: Path | None = None  # a unix socket instead of host:port (QEMU can do both)

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        where = self.socket_path or f"{self.host}:{self.port}"
        return f"VncEndpoint({where}, password={'set' if self.password else 'none'})"


@dataclass(frozen=True)
class SerialEndpoint:
    """The VM's first serial port: a file the VM appends to (QEMU), or a unix socket / named pipe."""

    path: Path


@runtime_checkable
class Backend(Protocol):
    """One seat's VM on one hypervisor."""

    name: str

    def define(self) -> None:
        """Create the VM definition and its disks/stick images if missing (idempotent)."""

    def start(self) -> None:
        """Power on with the ISO in the CD and the stick attached. Returns once VNC answers."""

    def stop(self, mode: Literal["hard", "soft"] = "soft", timeout: float = 60.0) -> None:
        """Power off; soft asks the guest, and falls back to hard after ``timeout``."""

    def reset(self, mode: Literal["hard", "soft"] = "hard") -> None:
        """Press the reset button."""

    def eject_cdrom(self) -> None:
        """Take the installer ISO out (the seed's 'remove the installation media')."""

    def snapshot(self, name: str) -> None: ...

    def revert(self, name: str) -> None: ...

    def clone(self, dest: Path, linked: bool = True) -> Path: ...

    def vnc_endpoint(self) -> VncEndpoint: ...

    def serial_endpoint(self) -> SerialEndpoint | None:
        """None when the backend has no serial console to read."""

    def power_state(self) -> PowerState: ...

    def screendump(self, out: Path) -> Path:
        """A PNG of the screen without VNC (QMP screendump); VMware raises NotImplementedError."""
