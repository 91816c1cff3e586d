"""The Backend contract: everything the runner, the classroom and the commands may ask of a hypervisor.

One object is one seat's VM on one hypervisor. Implementations live beside this module (``qemu.py``,
``vmware.py``) and are found through the registry in ``labctl.backends`` (by name, or ``auto``); nothing
outside ``labctl/backends`` imports a concrete backend (Packer's Driver idea: the playbook talks to a
Console, the runner to a Backend, never to vmrun or QMP directly).

Rules every implementation follows:

- Every call is bounded in time; a failure raises ``labctl.errors.InputError`` (refused, exit 2) or
  ``RunFailed`` (the VM did not do it, exit 1) with one line a user can act on.
- Secrets (the VNC password) appear only in ``VncEndpoint.password``, never in facts, messages or logs.
- ``start`` / ``prepare`` return *facts*: small JSON-able dicts the runner writes to the run's event log.
- What a hypervisor cannot do is a ``Capabilities`` flag, checked by callers before they ask; asking anyway
  raises ``Unsupported`` (an ``InputError``) naming the backend and the reason.

This contract only grows: existing members keep their signatures; a new member is listed under
"Changes" below when it is added.

Changes since the first version:
- ``StopResult.process`` (what was stopped, for messages: 'QEMU', 'vmware-vmx'; default 'VM').
- ``Backend.delete_snapshot(name)`` (forget one snapshot, keeping the VM as it is now; vmrun deleteSnapshot).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from labctl.errors import InputError, RunFailed

if TYPE_CHECKING:
    from labctl.spec import Lab, Seat

StopMode = Literal["hard", "soft"]
Facts = dict[str, object]
"""JSON-able facts for the run's event log (``events.jsonl``); never a secret."""


class PowerState(StrEnum):
    OFF = "off"
    RUNNING = "running"
    PAUSED = "paused"
    UNKNOWN = "unknown"


class VmDied(RunFailed):
    """The VM (its hypervisor process) went away while labctl still needed it. The message is the
    evidence: exit code or signal, the tail of the hypervisor's log, or who stopped it."""


class Unsupported(InputError):
    """The backend (or this host's edition of it) cannot do that, e.g. snapshots on VMware Player."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do on this host; callers check before they ask."""

    snapshots: bool = False  # snapshot / revert / snapshots() (not Player, not a QEMU seat on a host stick)
    screendump: bool = False  # a PNG of the screen without VNC (QMP screendump; vmrun has none without Tools)
    attach: bool = True  # another labctl process can find and drive a running seat (down, send, status)
    clone: bool = False


@dataclass(frozen=True)
class VncEndpoint:
    """Where the seat's screen is. ``password`` is a secret: never log it."""

    host: str
    port: int
    password: str | None = None
    socket_path: Path | None = None  # a unix socket instead of host:port (QEMU can do both)
    # Seconds between the client's "keep refreshing" messages, for a server whose refresh slows down on a
    # still screen (QEMU: from 30 ms up to 3 s, back to 30 ms on any client input message); None: never.
    refresh_nudge: float | None = None
    # QEMU's trace of its PS/2 keyboard (labctl.console.kbdflow): while it shows the keyboard, each key
    # event waits until the guest has room for it in the keyboard's 16-byte queue.
    keyboard_trace: Path | None = None
    # Without that trace, the smallest gap in seconds between key events, so that a guest that leaves its
    # keyboard unread for a moment (drawing, writing its serial port on a busy host) loses none.
    key_event_gap: float = 0.0

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        where = self.socket_path or f"{self.host}:{self.port}"
        return f"VncEndpoint({where}, password={'set' if self.password else 'none'})"

    @property
    def url(self) -> str:
        """``vnc://127.0.0.1:5901`` or ``unix:/path`` (no password: safe to print)."""
        return f"unix:{self.socket_path}" if self.socket_path else f"vnc://{self.host}:{self.port}"


@dataclass(frozen=True)
class SerialEndpoint:
    """The VM's first serial port: a file the VM appends to (QEMU), or a unix socket / named pipe."""

    path: Path


@dataclass(frozen=True)
class StickView:
    """The stick's bytes as the host can read them now: ``path`` is a raw readable file (the image itself
    or a temporary raw view of it), or None with ``reason`` (a host stick passed through to a running VM,
    a real device labctl will not open)."""

    path: Path | None
    reason: str = ""


@dataclass(frozen=True)
class SeatImages:
    """The files a seat's VM writes to (None: none of that kind, or a host device)."""

    stick: Path | None
    disk: Path | None


@dataclass(frozen=True)
class StopResult:
    """How a ``stop`` went: ``how`` is 'soft' (the guest powered off), 'hard', or 'not running'."""

    how: Literal["soft", "hard", "not running"]
    seconds: float
    pid: int | None = None  # the hypervisor process that was stopped, when there is one
    process: str = "VM"  # what was stopped, for messages ('stopped QEMU pid 123')


@runtime_checkable
class Backend(Protocol):
    """One seat's VM on one hypervisor."""

    name: str
    """The registry name ('qemu', 'vmware')."""
    default_key_rate: float
    """Keys per second the guest's console takes safely on this hypervisor (the lab may override)."""
    capabilities: Capabilities
    iso: Path | None
    """The installer ISO put in the CD at ``start`` (the runner sets it after building the simulator)."""

    # -- lifecycle --------------------------------------------------------------------------------

    def prepare(self) -> Facts:
        """Host-specific choices made once before ``start`` (QEMU: the accelerator probe; VMware: the
        product, ws/player/fusion). Idempotent; the facts go to the event log."""
        ...

    def define(self) -> None:
        """Create the VM definition and its disk/stick images when missing (idempotent)."""
        ...

    def cleanup_stale(self) -> list[str]:
        """Remove what a crashed run left (runtime records, sockets, lock files) when no VM of this seat
        runs; the names of what it removed."""
        ...

    def start(self) -> Facts:
        """Power on with the ISO in the CD and the stick attached; returns once VNC answers. An own VM
        that the guest powered off is powered on again. Facts: pid, VNC display, seconds to VNC."""
        ...

    def stop(self, mode: StopMode = "soft", timeout: float = 60.0) -> StopResult:
        """Power off; soft asks the guest (ACPI power button) and falls back to hard after ``timeout``.
        Never leaves the VM running; a VM that is off already is 'not running', not an error."""
        ...

    def kill(self) -> None:
        """The last line of defence on every failure path: end the VM now, without asking."""
        ...

    def reset(self, mode: StopMode = "hard") -> None:
        """Hard: the reset button. Soft: Ctrl+Alt+Del to the guest."""
        ...

    def eject_cdrom(self) -> None:
        """Take the installer ISO out (the installer's 'remove the installation media')."""
        ...

    def reset_definition(self) -> list[str]:
        """Put the VM definition back as rendered (QEMU: fresh UEFI variables; VMware: the .vmx and nvram
        re-rendered), leaving images alone; what it did, as short phrases. The VM must be off."""
        ...

    # -- state --------------------------------------------------------------------------------------

    def power_state(self) -> PowerState: ...

    def alive(self) -> bool:
        """The VM's process runs (cheap, no round trip to the hypervisor: polled by the supervisor)."""
        ...

    def died(self) -> bool:
        """The VM is gone although nobody here asked it to stop."""
        ...

    def death_message(self) -> str:
        """Why it died, with the evidence (exit code or signal, log tail, 'stopped by labctl down')."""
        ...

    def check(self) -> None:
        """Raise ``VmDied`` with ``death_message()`` when the VM died on its own; else nothing."""
        ...

    @property
    def started_here(self) -> bool:
        """This object started the VM (as opposed to attaching to one another process started)."""
        ...

    def attach_running(self) -> bool:
        """Bind this object to the seat's VM started by another labctl process (``up --keep``);
        False when none runs."""
        ...

    def mark_stopped_by(self, verb: str) -> None:
        """Before stopping a seat another labctl process runs: leave word of who did it, so that process's
        ``death_message`` says 'stopped by labctl VERB' instead of 'crashed'."""
        ...

    def stop_strays(self) -> list[int]:
        """Stop VM processes of this seat that no runtime record knows (a record lost in a crash), each
        only after proving it is this seat's VM; the pids stopped."""
        ...

    def status_details(self) -> Facts:
        """Backend-specific facts for ``labctl status`` (pid, accelerator, product, snapshots); no secrets."""
        ...

    def images(self) -> SeatImages: ...

    # -- endpoints ------------------------------------------------------------------------------------

    def vnc_endpoint(self) -> VncEndpoint:
        """Where the running seat's screen is (InputError when it is not running)."""
        ...

    def vnc_display(self) -> str:
        """The VNC address for messages ('127.0.0.1 port 5901 (display :1)'), no password; '-' when off."""
        ...

    def serial_endpoint(self) -> SerialEndpoint | None:
        """None when the backend has no serial console to read."""
        ...

    def screendump(self, out: Path) -> Path:
        """A PNG of the screen without VNC; ``Unsupported`` unless ``capabilities.screendump``."""
        ...

    # -- stick --------------------------------------------------------------------------------------

    def stick_view(self) -> AbstractContextManager[StickView]:
        """``with backend.stick_view() as view:`` the stick's bytes (``view.path``) for reading, or
        ``view.path is None`` and ``view.reason`` (e.g. a host stick passed through while the VM runs)."""
        ...

    # -- snapshots (capabilities.snapshots) ---------------------------------------------------------

    def snapshots(self) -> list[str]:
        """Names, oldest first; [] when the backend has none."""
        ...

    def snapshot(self, name: str) -> None: ...

    def revert(self, name: str) -> None: ...

    def delete_snapshot(self, name: str) -> None:
        """Forget snapshot ``name``; the VM and its stick keep their current contents."""
        ...

    def clone(self, dest: Path, linked: bool = True) -> Path: ...


class BackendClass(Protocol):
    """What the registry needs of a backend class (its class methods)."""

    def create(self, lab: Lab, seat: Seat, **options: object) -> Backend:
        """A backend object for one seat. Options a backend does not know are ignored; known ones:
        ``detached`` (bool: the VM outlives labctl, ``up --keep``), ``vnc_unix`` (bool), ``accel_cache``
        (Path), ``iso`` (Path)."""
        ...

    def usable(self, lab: Lab) -> tuple[bool, str]:
        """Whether this host can run the lab's seats on this backend, and why (or why not), cheaply."""
        ...
