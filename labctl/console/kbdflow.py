"""Flow control for QEMU's PS/2 keyboard, from QEMU's own trace of it.

QEMU's PS/2 keyboard holds 16 bytes and drops what comes while it is full. A guest reads it when it gets
to it: firmware polls it every 20 ms but not while it draws or writes its serial port, and a busy host can
hold a guest back for longer. A fixed pace can only guess; this module knows. QEMU is started with its
trace events for the keyboard written to a file (``-D FILE -trace enable=ps2_*``, see
``labctl.backends.qemu_argv``): each byte queued (``ps2_put_keycode``; a command's reply is counted from
``ps2_write_keyboard``), each byte the guest reads (``ps2_read_data``), and the firmware's reset of the
keyboard, which empties it. ``KeyboardFlow.wait_room`` lets a key event go only when it fits.

Everything here is an estimate that errs on the safe side, and every wait is bounded: with no trace
(another QEMU build, a user's own ``-D``) ``live`` stays False and the caller keeps a fixed pace.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

CAPACITY = 16  # bytes QEMU's PS/2 queue holds (PS2_QUEUE_SIZE)
MARGIN = 2  # bytes kept free: a reply to a command of the guest's (an ACK) may come in between
EVENT_BYTES = 2  # the most one key event queues (an extended key: 0xE0 and its code; translated scan codes)
# X11 keysyms of keys whose scan code has no 0xE0 prefix (one byte a press or a release): the printable
# characters, and these
_ONE_BYTE = {0xFF08, 0xFF09, 0xFF0D, 0xFF1B, 0xFFE1, 0xFFE2, 0xFFE3, 0xFFE9, 0xFFE5, *range(0xFFBE, 0xFFCA)}
POLL = 0.002  # seconds between looks at the trace while waiting for room: a file has no readiness to wait on
STALE = 2.0  # seconds without a new code or key after which events sent but never queued are given up

_LINE = re.compile(r"(ps2_put_keycode|ps2_read_data|ps2_reset_keyboard|ps2_write_keyboard|ps2_kbd_reset"
                   r"|ps2_keyboard_set_translation) (0x[0-9a-f]+)(?: keycode 0x([0-9a-f]+)| val (\d+)| mode (\d+))?")
_PREFIXES = (0xE0, 0xF0)  # bytes that begin a code and, translated, queue nothing (0xF0) or one (0xE0)
_REPLIES = {0xFF: 0, 0xF2: 3, 0xEE: 1}  # bytes queued for a command (reset: counted at its trace line; id: ACK
# and two bytes; echo: 0xEE); any other command or data byte gets an ACK
_WITH_DATA = (0xED, 0xF0, 0xF3)  # commands whose next byte is data (LEDs, scan code set, typematic rate)


class KeyboardFlow:
    """How full QEMU's PS/2 keyboard queue is, from its trace file, and room for the next key event."""

    def __init__(self, trace: Path) -> None:
        self.trace = trace
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._pos = 0
        self._partial = ""
        self._kbd: str | None = None  # the keyboard's address in the trace (a mouse's reads are another's)
        self.queued = 0  # bytes put in the queue
        self.read = 0  # bytes the guest read from it
        self.codes = 0  # key events QEMU turned into codes (prefix bytes not counted)
        self.sent = 0  # key events handed to QEMU's VNC server
        self._sent_bytes: list[int] = []  # what each of those not yet seen as a code may queue
        self.raw = False  # translation off: a release queues 0xF0 too (after a reset, until the firmware says)
        self._command: int | None = None  # a command waiting for its data byte
        self._last_code = 0.0
        self._last_sent = 0.0

    @property
    def live(self) -> bool:
        """True once the trace shows QEMU's keyboard (its reset by the firmware, or a byte)."""
        self.refresh()
        return self._kbd is not None

    @property
    def fill(self) -> int:
        """Bytes waiting in the queue, plus what the events still on their way through QEMU will queue."""
        self.refresh()
        with self._lock:
            on_the_way = max(0, self.sent - self.codes)
            if on_the_way and time.monotonic() - max(self._last_code, self._last_sent) > STALE:
                self.sent = self.codes  # keys QEMU had no code for: they will never arrive
                on_the_way = 0
            coming = sum(self._sent_bytes[-on_the_way:]) if on_the_way else 0
            return max(0, self.queued - self.read) + max(coming, on_the_way)

    def bytes_of(self, keysym: int) -> int:
        """What one press or release of ``keysym`` queues at the most: 1, 2 with the 0xE0 prefix, one more
        untranslated (a release's 0xF0)."""
        return (1 if keysym < 0xFF00 or keysym in _ONE_BYTE else EVENT_BYTES) + self.raw

    def sent_one(self, keysym: int) -> None:
        """A key event went to QEMU's VNC server."""
        with self._lock:
            self.sent += 1
            self._sent_bytes = [*self._sent_bytes[-31:], self.bytes_of(keysym)]
            self._last_sent = time.monotonic()

    def wait_room(self, keysym: int, timeout: float, stop: Callable[[], bool] = lambda: False) -> bool:
        """Until one more event of ``keysym`` fits in the queue (True), or ``timeout`` seconds or ``stop()``
        (False). After a timeout the count starts again from an empty queue: the guest has not read its
        keyboard for that long, or the count was wrong, and either way it should not cost the next key too."""
        deadline = time.monotonic() + timeout
        need = self.bytes_of(keysym)
        while True:
            if self.fill + need <= CAPACITY - MARGIN:
                return True
            if stop():
                return False
            if time.monotonic() >= deadline:
                with self._lock:
                    self.queued, self.sent = self.read, self.codes
                return False
            time.sleep(POLL)

    def refresh(self) -> None:
        """Read what QEMU appended to the trace since the last look."""
        with self._lock:
            try:
                now = os.stat(self.trace)
                if self._file is None or os.fstat(self._file.fileno()).st_ino != now.st_ino:
                    self._close()
                    self._file = open(self.trace, "rb")  # noqa: SIM115 - kept open between looks
                    self._restart(keep_sent=True)  # read from the start: the events sent are still ours
                elif now.st_size < self._pos:  # QEMU started again: the same file, truncated
                    self._restart()
                self._file.seek(self._pos)
                data = self._file.read()
            except OSError:
                return
            if not data:
                return
            self._pos += len(data)
            text = self._partial + data.decode("ascii", "replace")
            lines = text.split("\n")
            self._partial = lines.pop()
            for line in lines:
                self._take(line)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _restart(self, keep_sent: bool = False) -> None:
        """Read the trace from its start again; a new QEMU's (``keep_sent=False``) has none of our keys."""
        self._pos, self._partial, self._kbd = 0, "", None
        self._zero(keep_sent)

    def _zero(self, keep_sent: bool) -> None:
        """A keyboard not seen yet: nothing queued or read, translated, no command pending."""
        self.queued = self.read = self.codes = 0
        self.raw, self._command = False, None
        if not keep_sent:
            self.sent = 0

    def _take(self, line: str) -> None:
        m = _LINE.search(line)
        if not m:
            return
        event, where = m.group(1), m.group(2)
        if event != "ps2_read_data" and where != self._kbd:
            # only the keyboard has these; another address is a new QEMU's keyboard (a file read mid-way)
            if self._kbd is not None:
                self._zero(keep_sent=False)
            self._kbd = where
        if where != self._kbd:
            return
        if event == "ps2_reset_keyboard":  # the reset command: the queue emptied, then ACK and 0xAA
            self.queued = self.read + 2
            self._command = None
        elif event == "ps2_kbd_reset":  # the machine's reset: emptied, translation off until set again
            self.queued, self.raw, self._command = self.read, True, None
        elif event == "ps2_keyboard_set_translation":
            self.raw = m.group(5) == "0"
        elif event == "ps2_write_keyboard":
            val = int(m.group(4) or 0)
            if self._command is not None:  # the data byte of a command: ACK (scan code set 0: ACK + the set)
                self.queued += 2 if self._command == 0xF0 and val == 0 else 1
                self._command = None
            else:
                self.queued += _REPLIES.get(val, 1)
                self._command = val if val in _WITH_DATA else None
        elif event == "ps2_put_keycode":
            code = int(m.group(3) or "0", 16)
            if code != 0xF0 or self.raw:
                # a byte that came while the queue was full was dropped: it never holds more than that
                self.queued = min(self.queued + 1, self.read + CAPACITY)
            if code not in _PREFIXES:
                self.codes += 1
                self._last_code = time.monotonic()
                self.sent = max(self.sent, self.codes)
        elif event == "ps2_read_data":
            self.read += 1
            self.queued = max(self.queued, self.read)
