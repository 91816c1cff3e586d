"""vmrun, driven as its quirks demand (the Driver of the VMware backend).

- **Where it is**: the lab's ``vmware.vmrun``, ``$LABCTL_VMRUN``, ``PATH``, then the places VMware installs
  it: Windows ``%VMWARE_HOME%``, the ``InstallPath`` of ``HKLM\\SOFTWARE\\[WOW6432Node\\]VMware, Inc.\\VMware
  Workstation``, the ``Path`` of the ``App Paths\\vmware.exe`` key, ``%ProgramFiles(x86)%`` /
  ``%ProgramFiles%``; macOS the Fusion bundle; Linux ``/usr/bin`` and ``/usr/local/bin``. A missing vmrun
  is one line naming every place looked at.
- **When a call failed**: vmrun prints its errors on stdout and its exit code is not reliable (0 has been
  seen with an error; -1 on Windows is 4294967295). A call failed when the exit code is not 0, or any
  stdout line starts with ``Error:`` (Fusion prints a log line before it), or line 1 is ``Unable to
  connect to host.`` (the reason follows on line 2, without ``Error:``).
- **Bounded**: every call has a timeout (``start`` 300 s: it may hang; ``$LABCTL_VMRUN_START_TIMEOUT``
  overrides it); a timed-out vmrun is killed and reported as such.
- ``list`` prints paths as they were registered: they are compared after normalising (``\\`` to ``/``,
  case-folded on Windows and macOS).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

from labctl.backends import vmwarelog
from labctl.errors import InputError, RunFailed

Product = Literal["ws", "player", "fusion"]
PRODUCTS: tuple[Product, ...] = ("ws", "player", "fusion")

TIMEOUTS: dict[str, float] = {
    "start": 300.0,  # Vagrant: start may hang
    "stop": 60.0,
    "reset": 60.0,
    "clone": 600.0,
    "snapshot": 300.0,
    "revertToSnapshot": 300.0,
    "deleteSnapshot": 300.0,
}
DEFAULT_TIMEOUT = 30.0
START_TIMEOUT_ENV = "LABCTL_VMRUN_START_TIMEOUT"

# -- discovery ---------------------------------------------------------------------------------------

WS_KEYS = (r"SOFTWARE\WOW6432Node\VMware, Inc.\VMware Workstation", r"SOFTWARE\VMware, Inc.\VMware Workstation")
APP_PATHS_KEY = r"SOFTWARE\Microsoft\Windows\CurrentVersion\App Paths\vmware.exe"
FUSION_VMRUN = "/Applications/VMware Fusion.app/Contents/Library/vmrun"
LINUX_PLACES = ("/usr/bin/vmrun", "/usr/local/bin/vmrun")

Registry = Callable[[str, str], str | None]  # (HKLM subkey, value name) -> value or None


def windows_registry(key: str, value: str) -> str | None:
    """A string value under HKEY_LOCAL_MACHINE (None when the key or value is absent, or not on Windows)."""
    try:
        import winreg
    except ImportError:
        return None
    try:  # pragma: no cover - Windows only
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as k:  # type: ignore[attr-defined,unused-ignore]
            v, _ = winreg.QueryValueEx(k, value)  # type: ignore[attr-defined,unused-ignore]
            return str(v)
    except OSError:  # pragma: no cover - Windows only
        return None


@dataclass(frozen=True)
class Host:
    """What discovery looks at; tests pass a fake Windows or macOS host."""

    platform: str = sys.platform
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    which: Callable[[str], str | None] = shutil.which
    is_file: Callable[[str], bool] = os.path.isfile
    registry: Registry = windows_registry

    @property
    def windows(self) -> bool:
        return self.platform.startswith("win")

    @property
    def macos(self) -> bool:
        return self.platform == "darwin"

    def getenv(self, name: str) -> str | None:
        """An environment variable; on Windows by any case (a copy of os.environ there has upper-case keys,
        so ``ProgramFiles(x86)`` is ``PROGRAMFILES(X86)``)."""
        if not self.windows:
            return self.env.get(name)
        folded = name.casefold()
        return next((v for k, v in self.env.items() if k.casefold() == folded), None)


def _join(host: Host, folder: str, name: str) -> str:
    return str(PureWindowsPath(folder) / name) if host.windows else str(PurePosixPath(folder) / name)


def find_vmrun(configured: str | None = None, host: Host | None = None) -> str:
    """The vmrun to use; InputError (one line, every place it looked) when there is none."""
    host = host or Host()
    exe = "vmrun.exe" if host.windows else "vmrun"
    looked: list[str] = []

    def given(what: str, value: str | None) -> str | None:
        if not value:
            looked.append(f"{what} (not set)")
            return None
        is_path = "/" in value or "\\" in value
        found = (value if host.is_file(value) else None) if is_path else host.which(value)
        if found is None:
            looked.append(f"{what} {value} (no such file)")
        return found

    for what, value in (("lab vmware.vmrun", configured), ("$LABCTL_VMRUN", host.getenv("LABCTL_VMRUN"))):
        found = given(what, value)
        if found:
            return found
        if value:  # given but wrong: say so rather than silently running another vmrun
            raise InputError(f"vmrun not found: {what} is {value}, which is not an executable file")
    found = host.which(exe)
    if found:
        return found
    looked.append("PATH")
    candidates: list[tuple[str, str]] = []
    if host.windows:
        if home := host.getenv("VMWARE_HOME"):
            candidates.append(("%VMWARE_HOME%", _join(host, home, exe)))
        else:
            looked.append("%VMWARE_HOME% (not set)")
        for key in WS_KEYS:
            if folder := host.registry(key, "InstallPath"):
                candidates.append((f"HKLM\\{key}\\InstallPath", _join(host, folder, exe)))
            else:
                looked.append(f"HKLM\\{key}\\InstallPath")
        if app := host.registry(APP_PATHS_KEY, "Path"):
            candidates.append((f"HKLM\\{APP_PATHS_KEY}\\Path", _join(host, app, exe)))
        else:
            looked.append(f"HKLM\\{APP_PATHS_KEY}\\Path")
        for var in ("ProgramFiles(x86)", "ProgramFiles"):
            base = host.getenv(var)
            if base:
                candidates.append((f"%{var}%", _join(host, _join(host, base, "VMware"), f"VMware Workstation\\{exe}")))
    elif host.macos:
        candidates.append((FUSION_VMRUN, FUSION_VMRUN))
    else:
        candidates += [(p, p) for p in LINUX_PLACES]
    for what, path in candidates:
        if host.is_file(path):
            return path
        looked.append(path if what == path else f"{what} -> {path}")
    raise InputError("vmrun not found (install VMware Workstation, or set vmware.vmrun or LABCTL_VMRUN); "
                     "looked in: " + "; ".join(looked))


# -- paths and names -----------------------------------------------------------------------------------


def normalize_path(path: str, case_insensitive: bool) -> str:
    """A .vmx path as vmrun prints it -> a comparable key: ``\\`` to ``/``, no doubled or trailing ``/``,
    case-folded where the file system is case-insensitive (Windows, macOS)."""
    p = path.strip().replace("\\", "/")
    p = re.sub(r"(?<!^)/{2,}", "/", p)
    if case_insensitive:
        p = p.casefold()
    return p.rstrip("/")


def same_vmx(a: str, b: str, case_insensitive: bool) -> bool:
    return normalize_path(a, case_insensitive) == normalize_path(b, case_insensitive)


# -- output parsing -----------------------------------------------------------------------------------


def parse_list(lines: Sequence[str]) -> list[str]:
    """``Total running VMs: N`` then N paths -> the paths (RunFailed when the header is missing)."""
    for i, line in enumerate(lines):
        m = re.match(r"Total running VMs:\s*(\d+)", line.strip())
        if m:
            return [p.strip() for p in lines[i + 1 :] if p.strip()][: int(m.group(1))]
    raise RunFailed("vmrun list printed no 'Total running VMs:' line: " + " / ".join(lines)[:300])


def parse_snapshots(lines: Sequence[str]) -> list[str]:
    """``Total snapshots: N`` then N names -> the names."""
    for i, line in enumerate(lines):
        m = re.match(r"Total snapshots:\s*(\d+)", line.strip())
        if m:
            return [p.strip() for p in lines[i + 1 :] if p.strip()][: int(m.group(1))]
    raise RunFailed("vmrun listSnapshots printed no 'Total snapshots:' line: " + " / ".join(lines)[:300])


# -- the failure test -----------------------------------------------------------------------------------


def failure_words(code: int, lines: Sequence[str]) -> str | None:
    """vmrun's own words when the call failed, else None.

    Failed = exit code not 0, or any line starting with ``Error:``, or line 1 ``Unable to connect to host.``
    (then line 2 holds the reason)."""
    clean = [line.rstrip() for line in lines]
    if clean and clean[0].strip() == "Unable to connect to host.":
        rest = [line.strip() for line in clean[1:] if line.strip()]
        return " ".join(["Unable to connect to host.", *rest[:1]])
    errors = [line.strip() for line in clean if line.lstrip().startswith("Error:")]
    if errors:
        return " ".join(errors)
    if code != 0:
        said = " ".join(line.strip() for line in clean if line.strip())
        return said or f"exit code {code} and no output"
    return None


# Known texts -> what the user should know or do. Matched against vmrun's words; the words stay in the message.
HINTS: tuple[tuple[str, str], ...] = (
    (r"VIX_SERVICEPROVIDER_VMWARE_WORKSTATION .*not installed",
     "this host has VMware Workstation Player, not Workstation Pro: set vmware.product: player"),
    (r"^Unable to connect to host\.", "vmrun cannot reach the VMware service of this product (-T)"),
    (r"The virtual machine is not powered on", "the VM is not running"),
    (r"Cannot open VM", "the .vmx is missing or VMware cannot read it"),
    (r"The operation is not supported for the specified parameters",
     "this product (-T) or this VM's state does not allow the command"),
    (r"The operation is not supported", "VMware Player has no snapshots, clones or pause; set vmware.product"),
    (r"One of the parameters was invalid", "vmrun rejected an argument (a device name, snapshot or mode)"),
    (r"The VMware Tools are not running", "the command needs VMware Tools in the guest, and ESXi has none"),
    (r"Cannot connect to the virtual machine", "vmrun lost its link to the VM (run labctl as the desktop user)"),
    (r"A snapshot with the name already exists", "choose another snapshot name, or delete the old one"),
    (r"The name does not uniquely identify one snapshot", "no snapshot has that name, or several do"),
    (r"This VM is in use", "the Workstation window holds the VM: close its tab and retry"),
    (r"Unrecognized command", "this vmrun is too old for the command"),
)
_NEEDS_LOG = ("The operation was canceled", "Unknown error")


def hint_for(words: str) -> str | None:
    for pattern, hint in HINTS:
        if re.search(pattern, words):
            return hint
    return None


class VmrunFailed(RunFailed):
    """A vmrun call failed; ``words`` is what vmrun printed, ``command`` its verb."""

    def __init__(self, message: str, command: str, words: str) -> None:
        super().__init__(message)
        self.command = command
        self.words = words


class VmrunTimeout(VmrunFailed):
    """vmrun did not return in time (and was killed)."""


def failure_message(command: str, words: str, log: Path | None = None) -> str:
    """One clear message: the command, vmrun's words, what they mean, and vmware.log where it explains."""
    msg = f"vmrun {command} failed: {words}"
    hint = hint_for(words)
    if hint:
        msg += f" ({hint})"
    if log is not None and any(t in words for t in _NEEDS_LOG):
        text = vmwarelog.read_tail(log)
        block = vmwarelog.msg_post_error(text)
        if block:
            msg += f"\nvmware.log ({log}) says:\n{block}"
        else:
            last = vmwarelog.tail(log)
            msg += f"\nlast lines of {log}:\n{last}" if last else f"\n{log} is empty or missing"
    return msg


# -- the driver ---------------------------------------------------------------------------------------


@dataclass
class Vmrun:
    """Runs vmrun for one product. ``log_for`` names the vmware.log of a .vmx (for the messages)."""

    exe: str
    product: Product = "ws"
    start_timeout: float | None = None
    runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
    calls: int = 0

    def timeout(self, command: str) -> float:
        if command == "start":
            if self.start_timeout is not None:
                return self.start_timeout
            env = os.environ.get(START_TIMEOUT_ENV)
            if env:
                try:
                    return max(1.0, float(env))
                except ValueError:
                    raise InputError(f"${START_TIMEOUT_ENV}={env!r} is not a number of seconds") from None
        return TIMEOUTS.get(command, DEFAULT_TIMEOUT)

    def call(self, command: str, *args: str, timeout: float | None = None, log: Path | None = None,
             product: Product | None = None) -> list[str]:
        """Run ``vmrun -T PRODUCT COMMAND ARGS``; its stdout lines. VmrunFailed on any sign of failure."""
        argv = [self.exe, "-T", product or self.product, command, *args]
        limit = timeout if timeout is not None else self.timeout(command)
        self.calls += 1
        try:
            res = self.runner(argv, capture_output=True, text=True, timeout=limit, check=False,
                              stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise VmrunTimeout(f"vmrun {command} did not return within {limit:g} s (killed it); "
                               f"VMware may be waiting on a dialog or stuck"
                               + self._log_hint(log), command, "timeout") from None
        except FileNotFoundError:
            raise InputError(f"vmrun not found: {self.exe}") from None
        except PermissionError:
            raise InputError(f"vmrun is not executable: {self.exe}") from None
        lines = (res.stdout or "").splitlines()
        words = failure_words(res.returncode, lines + [x for x in (res.stderr or "").splitlines()
                                                      if x.startswith("Error:")])
        if words is not None:
            raise VmrunFailed(failure_message(command, words, log), command, words)
        return lines

    @staticmethod
    def _log_hint(log: Path | None) -> str:
        if log is None:
            return ""
        last = vmwarelog.tail(log, 5)
        return f"\nlast lines of {log}:\n{last}" if last else ""

    def running(self) -> list[str]:
        return parse_list(self.call("list"))


def probe_product(exe: str, runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
                  timeout: float = 30.0) -> tuple[Product, list[str]]:
    """The first of ws, player, fusion whose ``vmrun -T X list`` succeeds, and what the others said.
    RunFailed (with vmrun's words for each) when none does."""
    said: list[str] = []
    for product in PRODUCTS:
        v = Vmrun(exe, product, runner=runner)
        try:
            v.call("list", timeout=timeout)
        except VmrunFailed as exc:
            said.append(f"-T {product}: {exc.words}")
            continue
        return product, said
    raise RunFailed("vmrun works with no VMware product here (" + "; ".join(said) + ")")


# -- lock files after a stop ----------------------------------------------------------------------------


def lock_files(vmx: Path) -> list[Path]:
    """VMware's ``*.lck`` files and folders beside the .vmx, except a lone ``<name>.vmx.lck`` (harmless)."""
    folder = vmx.parent
    try:
        locks = sorted(p for p in folder.iterdir() if p.name.lower().endswith(".lck"))
    except OSError:
        return []
    if len(locks) == 1 and locks[0].name.lower() == (vmx.name + ".lck").lower():
        return []
    return locks


def wait_unlocked(vmx: Path, timeout: float = 120.0, poll: float = 0.2) -> list[Path]:
    """Wait for VMware to drop the VM's lock files after a power-off; the ones still there at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = lock_files(vmx)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(poll)
