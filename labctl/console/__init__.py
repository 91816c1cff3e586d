"""The Console: what a playbook may do to a seat's screen, keyboard and serial port.

Verbs follow os-autoinst's testapi: ``send_keys`` (Packer's grammar), ``type_string``, ``wait_text``,
``wait_needle``, ``wait_serial``, ``wait_change(action)`` (reference frame taken *before* acting),
``wait_still``, ``screenshot``, ``read_screen``. Every wait is bounded; a timeout raises ``WaitTimeout``
(a ``RunFailed``) naming the step, with the last screenshot's path and what OCR read.

Evidence: the screen by default. When the seat has a serial console and the wait allows it
(``serial=True``, the default), text on the serial console counts too, whichever comes first — the
real ESXi boot loader and installer print nothing on serial, so playbooks must pass on screen alone.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from labctl.backends.base import SerialEndpoint, VncEndpoint
from labctl.console import keys
from labctl.console.screen import (
    Frame,
    Needle,
    Ocr,
    Region,
    canon,
    compare,
    crop,
    find_text,
    frame_hash,
    load_needle,
    match_needle,
)
from labctl.console.serial import SerialConsole
from labctl.errors import InputError, RunFailed
from labctl.report import RunFolder
from labctl.resources import data_path

log = logging.getLogger(__name__)

NEEDLE_DIRS = (data_path("labs", "needles"),)


class FrameSource(Protocol):
    """What the Console needs from a VNC session (a fake in unit tests)."""

    @property
    def frame_no(self) -> int: ...

    def frame(self) -> Frame: ...

    def fresh_frame(self, timeout: float = 5.0) -> Frame: ...

    def wait_frame(self, after: int, timeout: float) -> int: ...

    def send(self, actions: Sequence[keys.Action], sleep: Callable[[float], None] = time.sleep) -> None: ...

    def close(self) -> None: ...


class WaitTimeout(RunFailed):
    """A wait that did not see its evidence in time."""

    def __init__(self, step: str, what: str, timeout: float, screenshot: Path | None, ocr_text: str) -> None:
        self.step, self.what, self.timeout, self.screenshot, self.ocr_text = step, what, timeout, screenshot, ocr_text
        read = " | ".join(line for line in ocr_text.splitlines() if line.strip())
        super().__init__(
            f"step '{step}': no {what} within {timeout:g}s; screen read: {read[:300]!r}; "
            f"screenshot: {screenshot or '(none)'}")


@dataclass(frozen=True)
class Evidence:
    source: str  # screen | serial | needle | change | still
    matched: str
    seconds: float  # how long the wait took
    fuzzy: bool = False


def serial_regex(regex: str) -> str:
    """A screen pattern as the serial console searches it: a run of spaces (outside [...] and
    escapes) matches any whitespace, since a terminal wraps and pads lines; before a quantifier it
    becomes one ``\\s``, so ``a *b`` stays a valid pattern."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(regex):
        ch = regex[i]
        if ch == "\\" and i + 1 < len(regex):
            out.append(regex[i: i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if regex[i + 1: i + 2] == "]":  # a ']' first in a class is literal
                out.append("[]")
                i += 2
                continue
        elif ch == " ":
            j = i
            while j < len(regex) and regex[j] == " ":
                j += 1
            out.append("\\s" if regex[j: j + 1] in ("*", "+", "?", "{") else "\\s+")
            i = j
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class Console:
    def __init__(self, vnc: FrameSource, serial: SerialConsole | None, run: RunFolder, secrets: Sequence[str] = (),
                 timeout_scale: float = 1.0, ocr: Ocr | None = None,
                 needle_dirs: Sequence[Path] = NEEDLE_DIRS) -> None:
        self.vnc = vnc
        self.serial = serial
        self.run = run
        self.secrets = [s for s in secrets if s]
        run.add_secrets(self.secrets)
        self.timeout_scale = timeout_scale
        self.ocr = ocr or Ocr()
        self.needle_dirs = list(needle_dirs)
        self.step = "console"
        self.last_text = ""
        self._needles: dict[str, Needle] = {}

    @classmethod
    def open(cls, vnc: VncEndpoint, serial: SerialEndpoint | None, run: RunFolder, key_rate: float,
             secrets: list[str], timeout_scale: float = 1.0, alive: Callable[[], bool] | None = None) -> Console:
        from labctl.console.vnc import VncSession

        secret_list = [*secrets, *([vnc.password] if vnc.password else [])]
        run.add_secrets(secret_list)
        session = VncSession(vnc, key_rate=key_rate)
        session.connect(alive)
        ser = None
        if serial is not None:
            try:
                ser = SerialConsole(serial.path, run.log_path("serial.log"), scrub=run.scrub)
            except OSError as exc:
                session.close()
                raise RunFailed(f"cannot open the serial console {serial.path}: {exc}") from None
        return cls(session, ser, run, secret_list, timeout_scale)

    def abort(self, reason: str) -> None:
        """From any thread (the runner's watchdog): the VM is gone; waits and keys fail at once."""
        abort = getattr(self.vnc, "abort", None)
        if callable(abort):
            abort(reason)
        if self.serial:
            self.serial.abort()

    def close(self) -> None:
        self.vnc.close()
        if self.serial:
            self.serial.close()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys -----------------------------------------------------------------------------------------
    def _shown(self, text: str, secret: bool) -> str:
        if secret or any(s in text for s in self.secrets):
            return f"<secret: {len(text)} chars>"
        return text

    def send_keys(self, spec: str) -> None:
        actions = keys.parse(spec)
        log.info("%s: keys %s", self.step, self._shown(keys.describe(actions), False))
        if self.serial:
            self.serial.mark()
        self.vnc.send(actions)

    def type_string(self, text: str, secret: bool = False) -> None:
        shown = self._shown(text, secret)
        log.info("%s: type %s", self.step, shown if shown.startswith("<secret") else repr(text))
        if self.serial:
            self.serial.mark()
        self.vnc.send(keys.text(text))

    # -- frames ---------------------------------------------------------------------------------------
    def _frame(self) -> Frame:
        frame = self.vnc.frame()
        self.run.frame(frame)
        return frame

    def _evidence(self, source: str, matched: str, t0: float, fuzzy: bool = False) -> Evidence:
        """A wait succeeded: keep the screen it saw (forced past the frame throttle, still deduplicated)."""
        with contextlib.suppress(Exception):
            self.run.frame(self.vnc.frame(), force=True)
        return Evidence(source, matched, time.monotonic() - t0, fuzzy)

    def screenshot(self, name: str) -> Path:
        frame = self.vnc.fresh_frame()
        self.run.frame(frame, force=True)
        return self.run.screenshot(frame, name)

    def read_screen(self, region: Region | None = None) -> str:
        self.last_text = self.ocr.read(self._frame(), region)
        return self.last_text

    def _timeout(self, timeout: float) -> float:
        return timeout * self.timeout_scale

    def _fail(self, what: str, timeout: float, region: Region | None = None) -> WaitTimeout:
        shot: Path | None
        try:
            frame = self.vnc.frame()
            shot = self.run.screenshot(frame, f"timeout-{self.step}")
            text = self.ocr.read(frame, region)
        except Exception as exc:  # the screen itself may be what failed
            shot, text = None, f"(no screen: {exc})"
        return WaitTimeout(self.step, what, timeout, shot, self.run.scrub(text))

    # -- waits ----------------------------------------------------------------------------------------
    def _serial_rx(self, regex: str) -> re.Pattern[str]:
        return re.compile(serial_regex(regex), re.IGNORECASE)

    def wait_text(self, regex: str, timeout: float, region: Region | None = None, serial: bool = True) -> Evidence:
        """Until ``regex`` is on screen (OCR, fuzzy) — or on the serial console when allowed."""
        t0 = time.monotonic()
        deadline = t0 + self._timeout(timeout)
        srx = self._serial_rx(regex) if (serial and self.serial) else None
        seen_no, seen_hash = None, None
        while True:
            no = self.vnc.frame_no
            if no != seen_no:
                seen_no = no
                frame = self._frame()
                h = frame_hash(crop(frame, region))
                if h != seen_hash:
                    seen_hash = h
                    self.last_text = self.ocr.read(frame, region)
                    m = find_text(regex, self.last_text)
                    if not m and self._plausible(regex, self.last_text):
                        m = find_text(regex, self.ocr.read(frame, region, second=True))
                    if m:
                        return self._evidence("screen", m.text, t0, m.fuzzy)
            if srx is not None and self.serial is not None:
                sm = self.serial.search(srx)
                if sm:
                    self.serial.consume(sm)
                    return self._evidence("serial", sm.group(0), t0)
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"text /{regex}/", self._timeout(timeout), region)
            self.vnc.wait_frame(no, min(left, 0.05 if srx is not None else 1.0))

    @staticmethod
    def _plausible(regex: str, text: str) -> bool:
        """Worth a second OCR reading: some alternative of the pattern nearly shows (half of its literal
        text appears as one run in the OCR text), so a misread is likelier than a different screen."""
        import difflib

        hay = canon(text)
        for alt in regex.split("|"):
            lit = canon(re.sub(r"\\[dswbDSWB]|[\\\[\](){}*+?^$.]", "", alt))
            if len(lit) < 4:
                continue
            m = difflib.SequenceMatcher(None, lit, hay, autojunk=False).find_longest_match(0, len(lit), 0, len(hay))
            if m.size * 2 >= len(lit):
                return True
        return False

    def wait_serial(self, regex: str, timeout: float) -> Evidence:
        if self.serial is None:
            raise InputError(f"step '{self.step}': wait_serial needs a serial console, and this seat has none")
        t0 = time.monotonic()
        m = self.serial.wait(re.compile(regex), self._timeout(timeout))
        if m is None:
            tail = self.run.scrub(self.serial.text())[-300:]  # scrubbed whole: a cut must not split a secret
            err = self._fail(f"serial text /{regex}/", self._timeout(timeout))
            raise WaitTimeout(self.step, f"serial text /{regex}/ (serial tail: {tail!r})",
                              self._timeout(timeout), err.screenshot, err.ocr_text)
        return Evidence("serial", m.group(0), time.monotonic() - t0)

    def needle(self, name: str) -> Needle:
        if name not in self._needles:
            p = Path(name)
            candidates = [p] if p.suffix == ".json" else [d / f"{name}.json" for d in self.needle_dirs]
            found = next((c for c in candidates if c.exists()), None)
            if found is None:
                raise InputError(f"needle '{name}' not found in {', '.join(str(d) for d in self.needle_dirs)}")
            self._needles[name] = load_needle(found)
        return self._needles[name]

    def wait_needle(self, name: str, timeout: float) -> Evidence:
        needle = self.needle(name)
        t0 = time.monotonic()
        deadline = t0 + self._timeout(timeout)
        seen_no = None
        best = 0.0
        while True:
            no = self.vnc.frame_no
            if no != seen_no:
                seen_no = no
                hit, score = match_needle(self._frame(), needle)
                best = max(best, score)
                if hit:
                    return self._evidence("needle", f"{name} {hit.similarity:.1f}% at {hit.offset}", t0)
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"needle '{name}' (best {best:.1f}%)", self._timeout(timeout))
            self.vnc.wait_frame(no, min(left, 1.0))

    def wait_change(self, action: Callable[[], object], timeout: float) -> Evidence:
        """Take the reference frame, act, then wait until the screen differs (a blinking cursor does not count)."""
        ref = self.vnc.frame()
        t0 = time.monotonic()
        action()
        deadline = time.monotonic() + self._timeout(timeout)
        seen_no = None
        while True:
            no = self.vnc.frame_no
            if no != seen_no:
                seen_no = no
                ch = compare(ref, self._frame())
                if ch.significant:
                    return self._evidence("change", f"{ch.pixels} px in {ch.box}", t0)
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail("screen change", self._timeout(timeout))
            self.vnc.wait_frame(no, min(left, 1.0))

    def wait_still(self, timeout: float, still_for: float = 1.0) -> Evidence:
        """Until nothing but blinking has changed for ``still_for`` seconds."""
        t0 = time.monotonic()
        deadline = t0 + self._timeout(timeout)
        prev = self._frame()
        last_change = time.monotonic()
        seen_no = self.vnc.frame_no
        while True:
            now = time.monotonic()
            if now - last_change >= still_for:
                return Evidence("still", f"still for {still_for:g}s", now - t0)
            if now >= deadline:
                raise self._fail(f"still screen for {still_for:g}s", self._timeout(timeout))
            no = self.vnc.wait_frame(seen_no, min(deadline - now, still_for - (now - last_change)))
            if no != seen_no:
                seen_no = no
                cur = self._frame()
                ch = compare(prev, cur)
                if ch.significant:
                    last_change = time.monotonic()
                prev = cur

    def wait_any_text(self, patterns: dict[str, str], timeout: float, region: Region | None = None,
                      serial: bool = True) -> tuple[str, Evidence]:
        """Until one of several texts shows; returns its key (for optional screens)."""
        joined = "|".join(f"(?P<k{i}>{p})" for i, p in enumerate(patterns.values()))
        ev = self.wait_text(joined, timeout, region, serial)
        names = list(patterns)
        for i, p in enumerate(patterns.values()):
            if find_text(p, ev.matched) or re.search(p, ev.matched, re.IGNORECASE):
                return names[i], ev
        # fall back: test each against the whole screen text
        for i, p in enumerate(patterns.values()):
            if find_text(p, self.last_text):
                return names[i], ev
        return names[0], ev

    def has_text(self, regex: str, region: Region | None = None) -> bool:
        """On screen now (either OCR reading)."""
        if find_text(regex, self.read_screen(region)):
            return True
        return find_text(regex, self.ocr.read(self.vnc.frame(), region, second=True)) is not None

    def frame(self) -> Frame:
        return self._frame()


def blank_frame(w: int = 640, h: int = 400) -> Frame:
    return np.zeros((h, w, 3), dtype=np.uint8)
