"""The serial console as evidence: a file the VM appends to (QEMU) or a unix socket, VT100 escapes stripped.

OVMF mirrors everything an EFI application prints onto the serial port wrapped in VT100 escapes
(colour, cursor positioning), so a regex cannot match the raw stream. A reader thread follows the file
(or drains the socket: an unread socket would stall the guest's console output), strips the escapes
(a cursor move to another row becomes a newline) and appends the text to a buffer. ``wait(regex)``
searches the buffer from a mark: the position of the last action (``mark()``), so the evidence is what
the guest printed after we acted, not an old screen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pexpect
import pexpect.fdpexpect

from labctl.console.waiting import Deadline, poll_until
from labctl.errors import RunFailed

log = logging.getLogger(__name__)

# CSI sequences, OSC, single-character escapes
_ESC = re.compile(r"\x1b\[([0-9;?=<>]*)([@-~])|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[@-Z\\-_]")
_PARTIAL = re.compile(r"\x1b(\[[0-9;?=<>]*|\][^\x07]*|[()])?$")


def _position(params: str) -> tuple[int, int]:
    """Row and column of a cursor position (CSI row;col H). A serial line can lose bytes, so the
    parameters may be garbage ('?25', '=0'): such a part counts as 0, a row no real move goes to."""
    parts = (params or "1;1").split(";")

    def num(i: int) -> int:
        part = parts[i] if i < len(parts) else ""
        return int(part) if part.isdigit() else (1 if part == "" else 0)

    return num(0), num(1)


class VtStripper:
    """Incremental VT100 -> plain text (escapes split across reads are kept until complete)."""

    def __init__(self) -> None:
        self._pending = ""
        self._row: int | None = None
        self._col = 0  # where the cursor is after the text printed since the last positioning

    def feed(self, data: str) -> str:
        data = self._pending + data
        self._pending = ""
        m = _PARTIAL.search(data)
        if m:
            self._pending = data[m.start():]
            data = data[:m.start()]

        out: list[str] = []
        pos = 0
        for m in _ESC.finditer(data):
            self._emit(data[pos:m.start()], out)
            pos = m.end()
            if m.group(2) in ("H", "f"):
                row, col = _position(m.group(1))
                if row != self._row:
                    out.append("\n")
                elif col != self._col:
                    out.append(" ")  # a jump along the same row
                self._row, self._col = row, col
            elif m.group(2) == "J":
                out.append("\n")
        self._emit(data[pos:], out)
        text = "".join(out)
        return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


    def _emit(self, chunk: str, out: list[str]) -> None:
        if not chunk:
            return
        out.append(chunk)
        last = max(chunk.rfind("\n"), chunk.rfind("\r"))
        if last >= 0:
            self._row = None
            self._col = 1 + len(chunk) - last - 1
        else:
            self._col += len(chunk)


class SerialConsole:
    """Reads one serial endpoint for as long as the run lasts: a regular file the VM appends to (QEMU's
    ``file`` chardev; followed from its end at open, so old output never satisfies a wait), or a unix
    socket."""

    def __init__(self, path: Path, log_path: Path | None = None,
                 scrub: Callable[[str], str] = lambda s: s, connect_timeout: float = 30.0) -> None:
        self.path = path
        self._scrub = scrub
        self._log = log_path.open("a", encoding="utf-8") if log_path else None
        self._buf = ""
        self._mark = 0
        self._cond = threading.Condition()
        self._closed = False
        self._strip = VtStripper()
        self._log_pending = ""
        self.stopped: str | None = None  # why the reader ended, when it did
        self._sock: socket.socket | None = None
        self._file: BinaryIO | None = None
        self._child: pexpect.fdpexpect.fdspawn | None = None
        if self._is_file(path, connect_timeout):
            self._file = path.open("rb")
            self._file.seek(0, os.SEEK_END)
            read: Callable[[], str] = self._read_file
        else:
            self._sock = self._connect(connect_timeout)
            # latin-1: OVMF sends ASCII plus PC-ANSI box-drawing bytes; a byte is a character, nothing merges
            self._child = pexpect.fdpexpect.fdspawn(self._sock.fileno(), encoding="latin-1")
            read = self._read_socket
        self._thread = threading.Thread(target=self._reader, args=(read,), name=f"serial {path.name}", daemon=True)
        self._thread.start()

    @staticmethod
    def _is_file(path: Path, timeout: float) -> bool:
        """A regular file (wait, bounded, for the VM to create it), or not (a socket or pipe)."""
        return poll_until(lambda: stat.S_ISREG(path.stat().st_mode), timeout, 0.2,
                          f"serial endpoint {path}", retry_on=(FileNotFoundError,))

    def _connect(self, timeout: float) -> socket.socket:
        def once() -> socket.socket:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(self.path))
            except OSError:
                s.close()
                raise
            return s

        return poll_until(once, timeout, 0.2, f"serial socket {self.path}", retry_on=(OSError,))

    def _read_file(self) -> str:
        """What the VM appended since the last read ('' when nothing yet). A regular file has no
        readiness to wait on (select() always says ready), so an empty read is followed by a 20 ms pause:
        a bounded poll interval, not a guess about the guest."""
        assert self._file is not None
        try:
            data = self._file.read(65536)
        except (OSError, ValueError) as exc:
            raise EOFError(f"the serial file could not be read ({exc})") from None
        if not data:
            if os.fstat(self._file.fileno()).st_size < self._file.tell():
                self._file.seek(0)  # the VM started again and truncated its file
            time.sleep(0.02)
        return data.decode("latin-1")

    def _read_socket(self) -> str:
        """What arrived on the socket within 0.5 s ('' when nothing)."""
        assert self._child is not None
        try:
            data: str = self._child.read_nonblocking(65536, timeout=0.5)
        except pexpect.TIMEOUT:
            return ""
        except (pexpect.EOF, OSError, ValueError) as exc:
            raise EOFError(f"the serial socket closed ({type(exc).__name__})") from None
        return data

    def _reader(self, read: Callable[[], str]) -> None:
        """The reader thread: everything ``read`` returns goes through the stripper into the buffer."""
        while not self._closed:
            try:
                data = read()
            except EOFError as exc:
                self.stopped = str(exc)
                break
            if not data:
                continue
            try:
                self._take(data)
            except Exception as exc:  # never let one bad chunk end the evidence for the rest of the run
                log.warning("serial: dropped %d characters that could not be processed: %s", len(data), exc)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _take(self, data: str) -> None:
        text = self._strip.feed(data)
        if text:
            if self._log:
                self._log_pending += text
                cut = self._log_pending.rfind("\n") + 1
                if cut or len(self._log_pending) > 8192:
                    cut = cut or len(self._log_pending)
                    self._log.write(self._scrub(self._log_pending[:cut]))
                    self._log.flush()
                    self._log_pending = self._log_pending[cut:]
            with self._cond:
                self._buf += text
                if len(self._buf) > 4_000_000:  # bounded memory: keep the last 2 MB
                    cut = len(self._buf) - 2_000_000
                    self._buf = self._buf[cut:]
                    self._mark = max(0, self._mark - cut)
                self._cond.notify_all()

    def abort(self) -> None:
        """From any thread: wake and end every wait (the VM is gone)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def mark(self) -> None:
        """From now on, waits look only at text printed after this point."""
        with self._cond:
            self._mark = len(self._buf)

    def text(self, since_mark: bool = True) -> str:
        with self._cond:
            return self._buf[self._mark:] if since_mark else self._buf

    def search(self, regex: re.Pattern[str]) -> re.Match[str] | None:
        with self._cond:
            return regex.search(self._buf, self._mark)

    def consume(self, m: re.Match[str]) -> None:
        with self._cond:
            self._mark = max(self._mark, m.end())

    def wait(self, regex: re.Pattern[str] | str, timeout: float) -> re.Match[str] | None:
        """Block until ``regex`` matches text after the mark (then move the mark past it), or timeout."""
        rx = re.compile(regex) if isinstance(regex, str) else regex
        deadline = Deadline(timeout)
        with self._cond:
            while True:
                m = rx.search(self._buf, self._mark)
                if m:
                    self._mark = m.end()
                    return m
                if deadline.expired() or self._closed:
                    return None
                self._cond.wait(deadline.left())

    def wait_changed(self, seen: int, timeout: float) -> int:
        """Block until the buffer grows past ``seen`` characters; return its length."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._buf) != seen or self._closed, timeout=max(0.0, timeout))
            return len(self._buf)

    @property
    def size(self) -> int:
        with self._cond:
            return len(self._buf)

    def write(self, data: str) -> None:
        if self._child is None:
            raise RunFailed(f"the serial port {self.path} is output only")
        self._child.send(data)

    def close(self) -> None:
        self._closed = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        if self._file is not None:
            self._file.close()
        if self._log:
            self._log.write(self._scrub(self._log_pending))
            self._log.close()
