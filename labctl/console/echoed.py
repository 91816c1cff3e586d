"""Typing a line that the guest echoes on its serial console: fast, and checked key by key.

A guest's keyboard holds only a few key events. QEMU's PS/2 keyboard keeps 16 and drops the rest while
the guest does not read them, and a guest that is drawing or writing its serial port can leave them
unread for tens of milliseconds on a busy host. Paced typing (``VncEndpoint.key_event_gap``) survives a
stall of 16 gaps and no longer. A line the guest echoes can go faster and be proven: it is sent in bursts
small enough for the keyboard to hold whole (``VncEndpoint.burst_events``), each one once the guest has
echoed the one before. When the echo differs from what was typed (a key was lost), the line is erased
with backspaces and typed again at the paced rate, and that is checked too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from labctl.console import keys
from labctl.console.waiting import Deadline
from labctl.errors import RunFailed

log = logging.getLogger(__name__)

QUIET = 0.5  # seconds of a silent serial line after which an incomplete echo is taken as final
ATTEMPTS = 2  # paced retypes after a lost key, before the step fails

Outcome = Literal["checked", "retyped", "unchecked"]


class _Keyboard(Protocol):
    def send(self, actions: Sequence[keys.Action], sleep: Callable[[float], None] = ...,
             burst: bool = False) -> None: ...


class _Serial(Protocol):
    def text(self, since_mark: bool = True) -> str: ...

    @property
    def size(self) -> int: ...

    def wait_changed(self, seen: int, timeout: float) -> int: ...


def line_of(echo: str) -> str:
    """The line a terminal shows after ``echo``: a wrap's CR/LF dropped, each backspace taking back the
    character before it (``\\b \\b``, the usual erase, takes back one)."""
    out: list[str] = []
    for ch in echo:
        if ch in "\r\n":
            continue
        if ch == "\b":
            if out:
                out.pop()
            continue
        out.append(ch)
    return "".join(out)


def bursts(text: str, max_events: int) -> list[str]:
    """``text`` cut into pieces of whole characters, each at most ``max_events`` key events (a shifted
    character is four) — but never less than one character."""
    pieces: list[str] = []
    cur, n = "", 0
    for ch in text:
        cost = len(keys.text(ch))
        if cur and n + cost > max_events:
            pieces.append(cur)
            cur, n = "", 0
        cur += ch
        n += cost
    if cur:
        pieces.append(cur)
    return pieces


def type_echoed(keyboard: _Keyboard, serial: _Serial, text: str, max_events: int, deadline: Deadline,
                shown: Callable[[str], str] = str) -> Outcome:
    """Type ``text`` (no Enter) at a prompt that echoes it on ``serial``; the serial mark must be set
    where the echo starts. Returns ``checked`` (the echo matched), ``retyped`` (a key was lost, the line
    was erased and typed again at the paced rate, and then matched) or ``unchecked`` (the guest echoed
    nothing: the rest was typed at the paced rate). ``shown`` hides secrets in messages.
    Raises ``RunFailed`` when even the paced retypes do not come back as typed."""
    typed = ""
    for piece in bursts(text, max_events):
        keyboard.send(keys.text(piece), burst=True)
        typed += piece
        state = _await(serial, typed, deadline)
        if state == "ok":
            continue
        if state == "silent":  # no echo on this line at all: finish at the pace that needs none
            rest = text[len(typed):]
            if rest:
                keyboard.send(keys.text(rest))
            return "unchecked"
        log.warning("a key was lost typing %r (the guest echoed %r): typing the line again at the paced rate",
                    shown(text), shown(line_of(serial.text())))
        break
    else:
        return "checked"
    for _ in range(ATTEMPTS):
        _await(serial, typed, deadline, settled=True)  # let the keys still on their way be echoed first
        shows = line_of(serial.text())
        if shows:
            keyboard.send(keys.parse("<bs>" * len(shows)))
            _await(serial, "", deadline, settled=True)
        keyboard.send(keys.text(text))
        typed = text
        if _await(serial, text, deadline, settled=True) == "ok":
            return "retyped"
    raise RunFailed(f"the guest did not echo what was typed, even at the paced rate: typed {shown(text)!r}, "
                    f"the line shows {shown(line_of(serial.text()))!r}")


def _await(serial: _Serial, want: str, deadline: Deadline, settled: bool = False) -> Literal["ok", "lost", "silent"]:
    """Until the line echoed since the mark is ``want`` (``ok``), or stops short of it for ``QUIET``
    seconds (``lost``, or ``silent`` when nothing at all was echoed). Unless ``settled``, also ``lost`` as
    soon as the line differs from every beginning of ``want`` (a key went missing or came twice): the
    keys before were all echoed, so an echo that lags behind is still a beginning of ``want``."""
    seen = serial.size
    quiet = Deadline(QUIET)
    while True:
        shows = line_of(serial.text())
        if shows == want or (want and shows.endswith(want)):  # endswith: the guest printed something first
            return "ok"
        if not settled and not want.startswith(shows):
            return "lost"
        if quiet.expired() or deadline.expired():
            return "silent" if not serial.text() else "lost"
        now = serial.wait_changed(seen, max(0.0, min(quiet.left(), deadline.left())))
        if now != seen:
            seen = now
            quiet = Deadline(QUIET)
