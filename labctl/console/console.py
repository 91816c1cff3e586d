"""The Console: what a playbook (or ``labctl send/screenshot/wait``) may do to a seat's screen,
keyboard and serial port.

Verbs follow os-autoinst's testapi: ``send_keys`` (Packer's grammar), ``type_string``, ``wait_text``,
``wait_any_text``, ``wait_needle``, ``wait_serial``, ``wait_change(action)`` (reference frame taken
*before* acting), ``wait_still``, ``select`` (move a list's highlight to a row), ``run_command`` (a
shell line and its output), ``screenshot``, ``read_screen``, ``has_text``. Every wait is bounded
(``labctl.console.waiting``); a timeout raises ``WaitTimeout`` (a ``RunFailed``) naming the step, with
the last screenshot's path and what OCR read. Nothing a Console says (logs, errors) shows a secret.

Evidence: the screen by default. When the seat has a serial console and the wait allows it
(``serial=True``, the default), text on the serial console counts too, whichever comes first — the
real ESXi boot loader and installer print nothing on serial, so playbooks must pass on screen alone.
With a serial console, the screen's OCR runs on a worker thread beside the wait, so a text the serial line
shows first ends the wait at once instead of after a reading of the screen.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from labctl.backends.base import SerialEndpoint, VncEndpoint
from labctl.console import keys
from labctl.console.screen import (
    Frame,
    Needle,
    Ocr,
    Region,
    TextMatch,
    canon,
    compare,
    crop,
    find_text,
    frame_hash,
    highlighted_rows,
    load_needle,
    match_needle,
)
from labctl.console.serial import SerialConsole
from labctl.console.waiting import Deadline
from labctl.errors import InputError, RunFailed
from labctl.report import RunFolder
from labctl.resources import data_path
from labctl.secrets import Secrets

log = logging.getLogger(__name__)

NEEDLE_DIRS = (data_path("labs", "needles"),)
SERIAL_AHEAD = 0.2  # a screen looked at this long before serial evidence came predates its text
LAST_READING_WAIT = 10.0  # seconds a wait that ran out lets the OCR of its last screen finish
SERIAL_SCREEN_WAIT = 1.0  # seconds a serial match waits for the screen to show it too (a server not nudged)
SHELL_PROMPT = r"\[root@[^\]]*\]\s?[#$]?"  # ESXi Shell's "[root@localhost:~]"


class FrameSource(Protocol):
    """What the Console needs from a VNC session (a fake in unit tests)."""

    @property
    def frame_no(self) -> int: ...

    def frame(self) -> Frame: ...

    def fresh_frame(self, timeout: float = 5.0) -> Frame: ...

    def wait_frame(self, after: int, timeout: float) -> int: ...

    def send(self, actions: Sequence[keys.Action], sleep: Callable[[float], None] = time.sleep) -> None: ...

    def close(self) -> None: ...


class ScreenFailure(RunFailed):
    """A step that failed with the screen as its evidence: what OCR read and the screenshot."""

    def __init__(self, step: str, reason: str, screenshot: Path | None, ocr_text: str) -> None:
        self.step, self.screenshot, self.ocr_text = step, screenshot, ocr_text
        read = " | ".join(line for line in ocr_text.splitlines() if line.strip())
        super().__init__(f"step '{step}': {reason}; screen read: {read[:300]!r}; screenshot: {screenshot or '(none)'}")


class WaitTimeout(ScreenFailure):
    """A wait that did not see its evidence in time."""

    def __init__(self, step: str, what: str, timeout: float, screenshot: Path | None, ocr_text: str) -> None:
        self.what, self.timeout = what, timeout
        super().__init__(step, f"no {what} within {timeout:g}s", screenshot, ocr_text)


@dataclass(frozen=True)
class Evidence:
    """What ended a wait. ``key`` is the pattern's name in a ``wait_any_text``; ``also`` names the other
    patterns that matched the same evidence (the first listed wins, and the evidence says so)."""

    source: str  # screen | serial | needle | change | still | screenshot
    matched: str
    seconds: float  # how long the wait took
    fuzzy: bool = False
    key: str | None = None
    also: tuple[str, ...] = ()
    screenshot: Path | None = None
    typed: float | None = None  # seconds a run step took to type its command line


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


def pattern_problem(regex: str) -> str | None:
    """What makes ``regex`` unfit for a wait (None when it is fit): it must compile, in its serial form
    too, and must not match the empty string (such a wait ends at once, on any screen)."""
    if not regex:
        return "a regular expression (text) is needed here"
    try:
        compiled = re.compile(regex, re.IGNORECASE)
        re.compile(serial_regex(regex))
    except re.error as exc:
        return f"bad regular expression: {exc}"
    if compiled.search("") is not None:
        return "this pattern matches the empty string, so it would match any screen at once; write the text to wait for"
    return None


def _plausible(regex: str, text: str) -> bool:
    """Worth a second OCR reading: some alternative of the pattern nearly shows (half of its literal
    text appears as one run in the OCR text), so a misread is likelier than a different screen."""
    hay = canon(text)
    for alt in regex.split("|"):
        lit = canon(re.sub(r"\\[dswbDSWB]|[\\\[\](){}*+?^$.]", "", alt))
        if len(lit) < 4:
            continue
        m = difflib.SequenceMatcher(None, lit, hay, autojunk=False).find_longest_match(0, len(lit), 0, len(hay))
        if m.size * 2 >= len(lit):
            return True
    return False


def _first_hit(patterns: Mapping[str, str], text: str) -> tuple[str, TextMatch, tuple[str, ...]] | None:
    """The pattern that matched ``text`` (an exact match beats a fuzzy one, then the order given) and
    the names of the others that matched too."""
    hits = [(k, m) for k, p in patterns.items() if (m := find_text(p, text)) is not None]
    if not hits:
        return None
    best = next((h for h in hits if not h[1].fuzzy), hits[0])
    return best[0], best[1], tuple(k for k, _ in hits if k != best[0])


def output_below(text: str, command: str, prompt: str, strict: bool = True) -> str | None:
    """The lines between the last line showing ``command`` and the prompt after it. Strict: None unless
    the screen shows both. Lenient (OCR may garble the command line): from the top when the command is
    not found, to the bottom when no prompt follows."""
    lines = text.splitlines()
    key = _squeezed(command)[:24]
    starts = [i for i, ln in enumerate(lines) if key and key in _squeezed(ln)]
    if not starts and strict:
        return None
    out: list[str] = []
    for ln in lines[(starts[-1] if starts else -1) + 1:]:
        if find_text(prompt, ln):
            return "\n".join(out)
        out.append(ln)
    return None if strict else "\n".join(out)


def _squeezed(text: str) -> str:
    """Lower case without whitespace: a command line as OCR may space it."""
    return re.sub(r"\s+", "", text).lower()


def _ends_at_prompt(text: str, command: str, prompt: str) -> bool:
    """The screen's last line is a fresh prompt (not the command line, which begins with one)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    key = _squeezed(command)[:24]
    return bool(lines) and find_text(prompt, lines[-1]) is not None and (not key or key not in _squeezed(lines[-1]))


Reading = tuple[str, tuple[str, TextMatch, tuple[str, ...]] | None]  # OCR text, and the pattern it shows


class _ScreenReader:
    """OCR of a wait's frames on the Console's worker thread: one reading at a time, of the newest frame
    offered meanwhile (frames between are skipped: the newest screen is the one that counts)."""

    def __init__(self, console: Console, patterns: Mapping[str, str], region: Region | None) -> None:
        self.console, self.patterns, self.region = console, patterns, region
        self._running: Future[Reading] | None = None
        self._next: Frame | None = None

    def offer(self, frame: Frame) -> None:
        if self._running is not None:
            self._next = frame
            return
        try:
            self._running = self.console._worker().submit(self.console._screen_hit, frame, self.patterns, self.region)
        except RuntimeError:  # no new threads at interpreter shutdown: read it here
            done: Future[Reading] = Future()
            done.set_result(self.console._screen_hit(frame, self.patterns, self.region))
            self._running = done

    def take(self) -> Reading | None:
        """The finished reading, or None while it runs; starts the next offered frame's."""
        if self._running is None or not self._running.done():
            return None
        done, self._running = self._running.result(), None  # an OCR error is the wait's error
        if self._next is not None:
            frame, self._next = self._next, None
            self.offer(frame)
        return done

    def finish(self, timeout: float) -> Reading | None:
        """At the deadline: the reading under way and the frame waiting for one, each to its end (within
        ``timeout`` s); the first that shows a pattern, else the last reading, else None."""
        bound = Deadline(timeout)
        last: Reading | None = None
        while self._running is not None:
            with contextlib.suppress(FutureTimeout):
                self._running.result(timeout=bound.left())
            if not self._running.done():
                return last
            done = self.take()
            if done is not None:
                if done[1] is not None:
                    return done
                last = done
        return last

    def close(self) -> None:
        """The wait is over: no further frame is read (a reading under way ends by itself)."""
        self._next = None


class Console:
    """One seat's screen, keyboard and (optional) serial console, with a run folder for evidence."""

    def __init__(self, vnc: FrameSource, serial: SerialConsole | None, run: RunFolder, secrets: Sequence[str] = (),
                 timeout_scale: float = 1.0, ocr: Ocr | None = None,
                 needle_dirs: Sequence[Path] = NEEDLE_DIRS) -> None:
        self.vnc = vnc
        self.serial = serial
        self.run = run
        self.secrets = Secrets()
        self.add_secrets(secrets)
        self.timeout_scale = timeout_scale
        self.ocr = ocr or Ocr()
        self.needle_dirs = list(needle_dirs)
        self.step = "console"
        self.last_text = ""
        self._needles: dict[str, Needle] = {}
        self._seen: Frame | None = None  # the last frame a wait looked at
        # how long a screen must stay still after a move before its highlight is read: a few of the
        # server's looks for changes (QEMU's, kept 30-130 ms apart by the refresh nudge; others' unknown)
        self.settle = 0.3
        # how long serial evidence waits for the screen to show it too (a screen that showed it already
        # never changes: this is then lost time)
        self.screen_lag = SERIAL_SCREEN_WAIT
        self.last_typing: float | None = None  # seconds the last run_command took to type its line
        self._pool: ThreadPoolExecutor | None = None  # OCR beside a serial wait (one thread, made when needed)

    def _worker(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labctl-ocr")
        return self._pool

    @classmethod
    def open(cls, vnc: VncEndpoint, serial: SerialEndpoint | None, run: RunFolder, key_rate: float,
             secrets: Sequence[str], timeout_scale: float = 1.0, alive: Callable[[], bool] | None = None) -> Console:
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
        console = cls(session, ser, run, secret_list, timeout_scale)
        if vnc.refresh_nudge:
            console.settle = max(0.25, 2.5 * vnc.refresh_nudge)
            console.screen_lag = max(0.3, 3 * vnc.refresh_nudge)
        return console

    def abort(self, reason: str) -> None:
        """From any thread (the runner's watchdog): the VM is gone; waits and keys fail at once."""
        abort = getattr(self.vnc, "abort", None)
        if callable(abort):
            abort(reason)
        if self.serial:
            self.serial.abort()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.vnc.close()
        if self.serial:
            self.serial.close()

    @staticmethod
    def end_of_process() -> None:
        """Stop the VNC client's event loop: once, when a short-lived process (``labctl send``) is done
        with every console it opened (a long run keeps one loop for all its seats)."""
        from labctl.console.vnc import stop_event_loop

        stop_event_loop()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- secrets --------------------------------------------------------------------------------------
    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Texts never to show (a password, a literal marked secret), here and in the run folder."""
        found = [s for s in secrets if s]
        self.secrets.add(found)
        self.run.add_secrets(found)

    def scrub(self, text: str) -> str:
        return self.secrets.scrub(text)

    # -- keys -----------------------------------------------------------------------------------------
    def _shown(self, text: str, secret: bool) -> str:
        if secret or self.secrets.shows(text):
            return f"<secret: {len(text)} chars>"
        return text

    def send_keys(self, spec: str) -> None:
        actions = keys.parse(spec)
        log.info("%s: keys %s", self.step, self._shown(keys.describe(actions), False))
        if self.serial:
            self.serial.mark()
        self.vnc.send(actions)

    def type_string(self, text: str, secret: bool = False) -> None:
        """Type ``text``; ``secret=True`` also remembers it as a secret (a literal a playbook marks)."""
        if secret:
            self.add_secrets([text])
        hidden = secret or self.secrets.shows(text)
        try:
            actions = keys.text(text)
        except keys.KeySpecError:
            if not hidden:
                raise
            raise keys.KeySpecError("the secret text has a character that cannot be typed "
                                    "(printable ASCII, newline and tab only)") from None
        log.info("%s: type %s", self.step, self._shown(text, secret) if hidden else repr(text))
        if self.serial:
            self.serial.mark()
        self.vnc.send(actions)

    # -- frames ---------------------------------------------------------------------------------------
    def frame(self) -> Frame:
        """The current screen (kept in the run folder when it changed)."""
        frame = self.vnc.frame()
        self.run.frame(frame)
        self._seen = frame
        return frame

    def _evidence(self, source: str, matched: str, deadline: Deadline, fuzzy: bool = False, key: str | None = None,
                  also: tuple[str, ...] = (), before: Frame | None = None) -> Evidence:
        """A wait succeeded: keep the screen it saw (forced past the frame throttle, still deduplicated).
        Serial evidence is often ahead of the screen: the screen kept is then the first that differs from
        ``before`` (a screen from before the text), within ``screen_lag`` seconds (the report's
        thumbnail), not the one from before the text was drawn."""
        seconds = deadline.elapsed()
        shot = None
        with contextlib.suppress(Exception):
            seen = before if before is not None else self._seen
            frame = self._screen_catching_up(seen) if source == "serial" and seen is not None else self.vnc.frame()
            shot = self.run.frame(frame, force=True) or self.run.last_frame_path
        return Evidence(source, matched, seconds, fuzzy, key, also, shot)

    def _screen_catching_up(self, before: Frame) -> Frame:
        """The first frame that differs from ``before`` by more than a blinking cursor (at once when the
        screen has moved on already), or the newest after the bound."""
        bound = Deadline(self.screen_lag)
        while True:
            no = self.vnc.frame_no
            frame = self.vnc.frame()
            if bound.left() <= 0 or compare(before, frame).significant:
                return frame
            self.vnc.wait_frame(no, bound.left())

    def screenshot(self, name: str) -> Path:
        """A fresh frame saved as ``NAME.png`` in the run folder."""
        frame = self.vnc.fresh_frame()
        self.run.frame(frame, force=True)
        return self.run.screenshot(frame, name)

    def save_screen(self, path: Path) -> Path:
        """A fresh frame saved as the PNG ``path`` (outside the run folder: ``labctl screenshot``)."""
        from PIL import Image

        Image.fromarray(self.vnc.fresh_frame()).save(path)
        return path

    def read_screen(self, region: Region | None = None) -> str:
        self.last_text = self.ocr.read(self.frame(), region)
        return self.last_text

    def has_text(self, regex: str, region: Region | None = None) -> bool:
        """On screen now (either OCR reading)."""
        if find_text(regex, self.read_screen(region)):
            return True
        return find_text(regex, self.ocr.read(self.vnc.frame(), region, second=True)) is not None

    def _scaled(self, timeout: float) -> Deadline:
        return Deadline(timeout * self.timeout_scale)

    def _fail(self, what: str, timeout: float, region: Region | None = None) -> WaitTimeout:
        shot: Path | None
        try:
            frame = self.vnc.frame()
            shot = self.run.screenshot(frame, f"timeout-{self.step}")
            text = self.ocr.read(frame, region)
        except Exception as exc:  # the screen itself may be what failed
            shot, text = None, f"(no screen: {exc})"
        return WaitTimeout(self.step, self.scrub(what), timeout, shot, self.scrub(text))

    def _until(self, deadline: Deadline, what: str, check: Callable[[bool], Evidence | None], poll: float,
               region: Region | None = None) -> Evidence:
        """The frame-driven wait every screen verb shares: ``check(new_frame)`` after each new frame (and
        once per ``poll`` seconds otherwise) until it gives evidence or the deadline passes."""
        seen_no: int | None = None
        while True:
            no = self.vnc.frame_no
            ev = check(no != seen_no)
            seen_no = no
            if ev is not None:
                return ev
            if deadline.expired():
                raise self._fail(what, deadline.seconds, region)
            self.vnc.wait_frame(no, deadline.slice(poll))

    # -- waits ----------------------------------------------------------------------------------------
    def wait_text(self, regex: str, timeout: float, region: Region | None = None, serial: bool = True) -> Evidence:
        """Until ``regex`` is on screen (OCR, fuzzy) — or on the serial console when allowed."""
        return self._wait_texts({"text": regex}, timeout, region, serial, f"text /{regex}/")

    def wait_any_text(self, patterns: Mapping[str, str], timeout: float, region: Region | None = None,
                      serial: bool = True) -> tuple[str, Evidence]:
        """Until one of several texts shows; returns its name. Each pattern is tested on its own, so the
        name is always the one that matched; when several match the same screen, the first listed wins
        and ``Evidence.also`` names the others."""
        if not patterns:
            raise InputError(f"step '{self.step}': wait any needs at least one pattern")
        what = "text of " + ", ".join(f"{k} /{p}/" for k, p in patterns.items())
        ev = self._wait_texts(patterns, timeout, region, serial, what)
        if ev.also:
            log.warning("%s: %s matched, and so did %s (the first listed wins)", self.step, ev.key,
                        ", ".join(ev.also))
        assert ev.key is not None
        return ev.key, ev

    def _screen_hit(self, frame: Frame, patterns: Mapping[str, str], region: Region | None) -> Reading:
        """What OCR reads on ``frame`` and the pattern it shows (a second reading when one nearly shows)."""
        text = self.ocr.read(frame, region)
        hit = _first_hit(patterns, text)
        if hit is None and any(_plausible(p, text) for p in patterns.values()):
            hit = _first_hit(patterns, self.ocr.read(frame, region, second=True))
        return text, hit

    def _wait_texts(self, patterns: Mapping[str, str], timeout: float, region: Region | None, serial: bool,
                    what: str) -> Evidence:
        deadline = self._scaled(timeout)
        use_serial = serial and self.serial is not None
        srx = {k: re.compile(serial_regex(p), re.IGNORECASE) for k, p in patterns.items()} if use_serial else {}
        seen_hash: list[str] = []
        # With a serial console, a new frame's OCR (a few tenths of a second) runs beside the wait, so the
        # serial line, often first with the text, is still looked at every 50 ms meanwhile.
        reader = _ScreenReader(self, patterns, region) if srx else None
        # what serial evidence's screenshot must differ from: the newest screen this wait looked at well
        # before the serial text showed (one looked at since may already show it), else the first
        began = self.vnc.frame() if srx else None
        looked: deque[tuple[float, Frame]] = deque(maxlen=2)

        def screen(reading: Reading) -> Evidence | None:
            self.last_text, hit = reading
            if hit is None:
                return None
            key, m, also = hit
            return self._evidence("screen", m.text, deadline, m.fuzzy, key, also)

        def check(new_frame: bool) -> Evidence | None:
            if srx and self.serial is not None:
                found = [(sm, k) for k, rx in srx.items() if (sm := self.serial.search(rx)) is not None]
                if found:  # the earliest text on the line is the one that showed first
                    first, key = min(found, key=lambda f: f[0].start())
                    self.serial.consume(first)
                    also = tuple(k for other, k in found if k != key and other.start() == first.start())
                    now = time.monotonic()
                    before = next((f for t, f in reversed(looked) if t <= now - SERIAL_AHEAD), began)
                    return self._evidence("serial", first.group(0), deadline, key=key, also=also, before=before)
            if new_frame:
                frame = self.frame()
                if srx:
                    looked.append((time.monotonic(), frame))
                h = frame_hash(crop(frame, region))
                if h not in seen_hash[-1:]:
                    seen_hash.append(h)
                    if reader is None:
                        return screen(self._screen_hit(frame, patterns, region))
                    reader.offer(frame)
            if reader is not None and (done := reader.take()) is not None:
                return screen(done)
            return None

        if reader is None:  # screen only
            return self._until(deadline, what, check, 1.0, region)
        try:
            return self._until(deadline, what, check, 0.05, region)
        except WaitTimeout:
            # the screen read last may be the one with the text: let its reading end before failing
            done = reader.finish(LAST_READING_WAIT)
            if done is not None and (ev := screen(done)) is not None:
                return ev
            raise
        finally:
            reader.close()

    def wait_serial(self, regex: str, timeout: float) -> Evidence:
        if self.serial is None:
            raise InputError(f"step '{self.step}': wait_serial needs a serial console, and this seat has none")
        deadline = self._scaled(timeout)
        m = self.serial.wait(re.compile(regex), deadline.seconds)
        if m is None:
            tail = self.scrub(self.serial.text())[-300:]  # scrubbed whole: a cut must not split a secret
            raise self._fail(f"serial text /{regex}/ (serial tail: {tail!r})", deadline.seconds)
        return Evidence("serial", m.group(0), deadline.elapsed())

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
        deadline = self._scaled(timeout)
        best = [0.0]

        def check(new_frame: bool) -> Evidence | None:
            if not new_frame:
                return None
            hit, score = match_needle(self.frame(), needle)
            best[0] = max(best[0], score)
            return self._evidence("needle", f"{name} {hit.similarity:.1f}% at {hit.offset}", deadline) if hit else None

        try:
            return self._until(deadline, f"needle '{name}'", check, 1.0)
        except WaitTimeout as exc:
            raise WaitTimeout(exc.step, f"{exc.what} (best {best[0]:.1f}%)", exc.timeout, exc.screenshot,
                              exc.ocr_text) from None

    def wait_change(self, action: Callable[[], object], timeout: float) -> Evidence:
        """Take the reference frame, act, then wait until the screen differs (a blinking cursor does not count)."""
        return self._change(action, self._scaled(timeout))

    def _change(self, action: Callable[[], object], deadline: Deadline) -> Evidence:
        ref = self.vnc.frame()
        action()

        def check(new_frame: bool) -> Evidence | None:
            if not new_frame:
                return None
            ch = compare(ref, self.frame())
            return self._evidence("change", f"{ch.pixels} px in {ch.box}", deadline) if ch.significant else None

        return self._until(deadline, "screen change", check, 1.0)

    def wait_still(self, timeout: float, still_for: float = 1.0) -> Evidence:
        """Until nothing but blinking has changed for ``still_for`` seconds."""
        return self._still(self._scaled(timeout), still_for)

    def _still(self, deadline: Deadline, still_for: float) -> Evidence:
        if self._quiet(deadline, still_for) != "still":
            raise self._fail(f"still screen for {still_for:g}s", deadline.seconds)
        return Evidence("still", f"still for {still_for:g}s", deadline.elapsed())

    def _quiet(self, deadline: Deadline, still_for: float, done: Callable[[Frame], bool] | None = None) -> str:
        """Follow the screen until nothing but blinking has changed for ``still_for`` seconds ("still"),
        ``done(frame)`` holds ("done"), or the deadline passes ("deadline")."""
        prev = self.frame()
        quiet = Deadline(still_for)  # restarted at every significant change
        seen_no = self.vnc.frame_no
        while True:
            if quiet.expired():
                return "still"
            if deadline.expired():
                return "deadline"
            if done is not None and done(prev):
                return "done"
            no = self.vnc.wait_frame(seen_no, min(deadline.left(), quiet.left()))
            if no != seen_no:
                seen_no = no
                cur = self.frame()
                if compare(prev, cur).significant:
                    quiet = Deadline(still_for)
                prev = cur

    # -- compound verbs -------------------------------------------------------------------------------
    def select(self, regex: str, timeout: float, max_moves: int = 40, region: Region | None = None) -> Evidence:
        """Move a list's highlight with Down (then Up) until the highlighted row's text matches ``regex``.
        The highlighted row is found in the frame (a bar on another background), never by counting."""
        deadline = self._scaled(timeout)
        seen_rows: list[str] = []
        for key in ("<down>", "<up>"):
            seen: set[str] = set()
            hasty = key == "<down>"  # the way back, if needed, reads each row only once it is still
            early = False  # the bars were read as soon as the move looked drawn, not once still
            rechecked = False  # a row read twice was looked at again after a longer still
            presses = 0
            while True:
                frame = self.frame()
                bars = highlighted_rows(frame, region)
                if not bars and not deadline.expired():
                    # the list is not drawn yet (serial evidence can run ahead of the screen): never press
                    # keys blind, let the screen settle and look again, until the step's timeout
                    with contextlib.suppress(WaitTimeout):
                        self._still(Deadline(deadline.slice(5.0, least=0.5)), still_for=0.3)
                    continue
                texts = [self.ocr.read(frame, bar) for bar in bars[:4]]
                hit = next((t for t in texts if find_text(regex, t)), None)
                current = " | ".join(texts)  # several bars (a footer stripe too): the set moves when we move
                if early and (hit is not None or not all(t.strip() for t in texts) or current in seen):
                    # read before the screen was still: a match may be half a row (the part that would not
                    # match yet undrawn), an empty bar or a row already passed its text not drawn yet;
                    # read it again once still
                    early = False
                    with contextlib.suppress(WaitTimeout):
                        self._still(Deadline(deadline.slice(5.0, least=0.5)), still_for=self.settle)
                    continue
                if hit is not None:
                    return self._evidence("screen", hit, deadline)
                if current in seen and not rechecked and not deadline.expired():
                    # the same row again: the end of a list that wraps, or a move not drawn yet (the change
                    # seen after the key was a late part of an earlier one): look once more after a still second
                    rechecked = True
                    with contextlib.suppress(WaitTimeout):
                        self._still(Deadline(deadline.slice(5.0, least=0.5)), still_for=1.0)
                    continue
                rechecked = False
                seen_rows.append(current)
                if current in seen or deadline.expired() or presses >= max_moves:
                    break
                seen.add(current)
                try:
                    self._change(lambda k=key: self.send_keys(k),  # type: ignore[misc]
                                 Deadline(deadline.slice(5.0, least=0.5)))
                except WaitTimeout:
                    break  # the highlight did not move: an end of the list
                presses += 1
                early = self._settle_move(bars, region, Deadline(deadline.slice(deadline.seconds, least=1.0)),
                                          hasty)
        rows = " | ".join(dict.fromkeys(r for r in seen_rows if r))
        shot = self.screenshot(f"select-{self.step}")
        raise WaitTimeout(self.step, self.scrub(f"highlighted row matching /{regex}/ (rows seen: {rows[:300]})"),
                          deadline.seconds, shot, self.scrub(self.last_text))

    def _settle_move(self, before: list[Region], region: Region | None, deadline: Deadline, hasty: bool) -> bool:
        """After a key moved a list's highlight: return once the move is drawn, so the bar can be read;
        True when that was decided before the screen was still.

        ``hasty``: drawn as soon as there are as many bars as before, of the same sizes, not all where they
        were (the old row cleared, the new one highlighted: a guest that draws each row whole is done).
        Otherwise, and when that never shows, the screen must be still for ``settle`` seconds. A bar read
        early may be painted before its text: ``select`` reads a match, an empty bar or a row it passed
        again once still; a partial row that does not match costs moves, never the right row, since the way
        back is read only when still."""
        shape = sorted((w, h) for _, _, w, h in before)
        where = sorted((x, y) for x, y, _, _ in before)

        def moved(frame: Frame) -> bool:
            now = highlighted_rows(frame, region)
            return sorted((w, h) for _, _, w, h in now) == shape and sorted((x, y) for x, y, _, _ in now) != where

        return self._quiet(deadline, self.settle, moved if hasty else None) == "done"

    def _type_timed(self, text: str) -> None:
        t0 = time.monotonic()
        self.type_string(text)
        self.last_typing = round(time.monotonic() - t0, 3)

    def run_command(self, command: str, prompt: str = SHELL_PROMPT, timeout: float = 60.0) -> str:
        """Type a command line at a shell prompt, wait for the prompt again, return the output read back:
        from the serial console when there is one, else by OCR of the screen below the command line.

        The serial mirror is a convenience, the screen the authority: when the serial line stays silent
        (it can lose bytes, or its reader can end), the screen is read before the step is called failed."""
        deadline = self._scaled(timeout)
        if self.serial is not None:
            self.serial.mark()
            self._type_timed(command + "\n")
            rx = re.compile(re.escape(command[-20:]) + r".*?\n(?P<out>.*?)" + prompt, re.S)
            m = self.serial.wait(rx, deadline.left())
            if m:  # the serial mirror repeats line ends (cursor moves + CR LF): drop empty lines
                return "\n".join(line.rstrip() for line in m.group("out").splitlines() if line.strip())
            with contextlib.suppress(WaitTimeout):
                self._still(Deadline(5.0), still_for=1.0)
            out = output_below(self.read_screen(), command, prompt)
            if out is not None:
                log.warning("step %r: the serial console did not show the prompt (%s); output read from the screen",
                            self.step, self.serial.stopped or "no text")
                return out
            shot = self.screenshot(f"run-{self.step}")
            heard = self.serial.stopped or f"serial read {self.scrub(self.serial.text())[-120:]!r}"
            raise WaitTimeout(self.step, self.scrub(f"prompt /{prompt}/ after '{command}' ({heard})"),
                              deadline.seconds, shot, self.scrub(self.last_text))
        self._change(lambda: self._type_timed(command + "\n"), deadline)
        # A long output scrolls for a while: its own budget. A still second is not proof the command
        # ended (a busy host can pause its screen, a command can think before it prints): the output
        # counts once a prompt follows it; without one, what the screen shows at the timeout (leniently
        # read: OCR may garble the command line or the prompt) is all there is.
        whole = self._scaled(timeout)
        while True:
            self._quiet(whole, 1.0)
            text = self.read_screen()
            out = output_below(text, command, prompt)
            if out is not None or _ends_at_prompt(text, command, prompt):
                return out if out is not None else output_below(text, command, prompt, strict=False) or ""
            if whole.expired():
                log.warning("step %r: no prompt read below '%s' within %.0f s; the output is what the screen "
                            "shows now", self.step, self.scrub(command), whole.seconds)
                return output_below(text, command, prompt, strict=False) or ""
            self.vnc.wait_frame(self.vnc.frame_no, min(whole.left(), 1.0))
