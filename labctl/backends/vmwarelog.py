"""Reading ``vmware.log``: the only place VMware says that a USB stick did not connect.

vmrun has no USB command and reports nothing about passthrough; a failed ``usb.autoConnect`` shows up
only as a ``[msg.usb.connectFailed]`` line in the VM's ``vmware.log``. vmrun's ``The operation was
canceled`` and ``Unknown error`` likewise explain themselves only there, in a ``Msg_Post: Error`` block
that ends at a ``-----`` line. Lines look like ``2026-12-01T09:00:00.123Z| vmx| I005: text``; the
prefix is dropped for messages.

``LogWatcher`` follows one power-on's log incrementally (VMware starts a fresh ``vmware.log`` at every
power-on and keeps the older ones as ``vmware-0.log`` ...), so a watchdog can poll it cheaply.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_PREFIX_RE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d)?\|\s*[^|]*\|\s*(?:[A-Z]\d+:\s*)?")
USB_CONNECT_FAILED = "[msg.usb.connectFailed]"
_POWERED_OFF_RE = re.compile(r"^VMX exit \(\d+\)\.|Transitioned vmx/execState/val to poweredOff")


def strip_prefix(line: str) -> str:
    """``2026-...Z| vmx| I005: text`` -> ``text`` (other lines unchanged)."""
    return _PREFIX_RE.sub("", line.rstrip("\r\n"))


def messages(text: str) -> list[str]:
    """The log's lines without their time/thread/level prefix."""
    return [strip_prefix(line) for line in text.splitlines()]


def usb_connect_failures(text: str) -> list[str]:
    """Every ``[msg.usb.connectFailed] ...`` message, in VMware's words (the tag kept)."""
    out = []
    for line in messages(text):
        at = line.find(USB_CONNECT_FAILED)
        if at >= 0:
            out.append(line[at:].strip())
    return out


def msg_post_error(text: str) -> str | None:
    """The last ``Msg_Post: Error`` block: its lines up to (not including) the ``-----`` line."""
    lines = messages(text)
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("Msg_Post: Error")]
    if not starts:
        return None
    block: list[str] = []
    for line in lines[starts[-1] + 1 :]:
        if line.strip().startswith("-----"):
            break
        if line.strip():
            block.append(line.strip())
    return "\n".join(block) if block else None


def vmx_pid(text: str) -> int | None:
    """The VMX process's pid from the log's first line ``Log for VMware Workstation pid=NNNN ...``."""
    for line in messages(text)[:5]:
        m = re.match(r"Log for VMware \S.*?\bpid=(\d+)", line)
        if m:
            return int(m.group(1))
    return None


def powered_off(text: str) -> bool:
    """The log records the VM's power-off (its VMX process exited)."""
    return any(_POWERED_OFF_RE.search(line) for line in messages(text))


def read_tail(path: Path, max_bytes: int = 65536) -> str:
    """The end of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def tail(path: Path, lines: int = 10) -> str:
    """The last ``lines`` messages of a log file, prefixes dropped, for error messages."""
    return "\n".join([m for m in messages(read_tail(path)) if m.strip()][-lines:])


@dataclass
class LogWatcher:
    """Follows one power-on's ``vmware.log`` from where it was when the VM started."""

    path: Path
    offset: int = 0
    _inode: int | None = None
    _pending: str = ""
    usb_failures: list[str] = field(default_factory=list)
    off: bool = False

    @classmethod
    def from_now(cls, path: Path) -> LogWatcher:
        """A watcher for the next power-on, made before it: what the log holds now (an earlier power-on's,
        until VMware starts a new one) is not read."""
        try:
            st = path.stat()
        except OSError:
            return cls(path)
        return cls(path, offset=st.st_size, _inode=st.st_ino)

    def poll(self) -> list[str]:
        """Read what was appended since the last poll; returns the new complete messages."""
        try:
            st = self.path.stat()
        except OSError:
            return []
        if self._inode is not None and (st.st_ino != self._inode or st.st_size < self.offset):
            self.offset, self._pending = 0, ""  # a new power-on's log replaced the old one
        self._inode = st.st_ino
        if st.st_size <= self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(st.st_size - self.offset)
        self.offset += len(data)
        text = self._pending + data.decode("utf-8", errors="replace")
        complete, _, self._pending = text.rpartition("\n")
        if not complete:
            return []
        self.usb_failures += usb_connect_failures(complete)
        if powered_off(complete):
            self.off = True
        return messages(complete)
