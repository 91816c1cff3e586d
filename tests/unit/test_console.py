"""The Console's waits on a scripted fake screen: OCR waits, change/still with a blinking cursor,
timeouts that name the step, secrets never logged, abort from another thread."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from labctl.console import Console, WaitTimeout, keys
from labctl.errors import RunFailed
from labctl.report import RunFolder


def draw(text: str, cursor: bool = False) -> np.ndarray:
    img = Image.new("RGB", (640, 200), (0, 0, 0))
    d = ImageDraw.Draw(img)
    try:
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.truetype("DejaVuSansMono.ttf", 16)
    except OSError:
        font = ImageFont.load_default()
    d.text((20, 40), text, fill=(220, 220, 220), font=font)
    if cursor:
        d.rectangle((300, 58, 309, 60), fill=(220, 220, 220))
    return np.array(img)


class FakeVnc:
    """Frames from ``script(t)`` (t = seconds since start); frame_no moves when the picture changes."""

    def __init__(self, script: Callable[[float], np.ndarray]) -> None:
        self.script = script
        self.t0 = time.monotonic()
        self.sent: list[keys.Action] = []
        self._last: np.ndarray | None = None
        self._no = 0
        self.aborted = ""

    @property
    def frame_no(self) -> int:
        f = self.script(time.monotonic() - self.t0)
        if self._last is None or not np.array_equal(f, self._last):
            self._last = f
            self._no += 1
        return self._no

    def frame(self) -> np.ndarray:
        _ = self.frame_no
        assert self._last is not None
        return self._last

    def fresh_frame(self, timeout: float = 5.0) -> np.ndarray:
        return self.frame()

    def wait_frame(self, after: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.aborted:
                raise RunFailed(self.aborted)
            if self.frame_no != after:
                break
            time.sleep(0.01)
        return self.frame_no

    def send(self, actions: Sequence[keys.Action], sleep: Callable[[float], None] = time.sleep) -> None:
        self.sent.extend(actions)

    def abort(self, reason: str) -> None:
        self.aborted = reason

    def close(self) -> None:
        pass


def console(tmp_path: Path, script: Callable[[float], np.ndarray], secrets: Sequence[str] = ()) -> Console:
    return Console(FakeVnc(script), None, RunFolder(tmp_path / "run"), secrets=secrets)  # type: ignore[arg-type]


needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")


@needs_tesseract
def test_wait_text_sees_a_screen_that_appears_later(tmp_path: Path) -> None:
    c = console(tmp_path, lambda t: draw("Scanning..." if t < 0.6 else "Select a Disk to Install or Upgrade"))
    ev = c.wait_text("Select a Disk to Install or Upgrade", 10)
    assert ev.source == "screen" and 0.5 < ev.seconds < 5


@needs_tesseract
def test_timeout_names_step_and_carries_screenshot_and_ocr(tmp_path: Path) -> None:
    c = console(tmp_path, lambda t: draw("Welcome to the VMware ESXi 6.7.0 Installation"))
    c.step = "disk list"
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout) as exc:
        c.wait_text("Select a Disk", 1.0)
    assert time.monotonic() - t0 < 4
    assert "step 'disk list'" in str(exc.value) and "Welcome" in exc.value.ocr_text
    assert exc.value.screenshot is not None and exc.value.screenshot.exists()


def test_blinking_cursor_is_still_and_not_a_change(tmp_path: Path) -> None:
    blink = lambda t: draw("Root password:", cursor=int(t / 0.1) % 2 == 0)  # noqa: E731
    c = console(tmp_path, blink)
    ev = c.wait_still(5, still_for=0.5)
    assert ev.seconds < 2
    with pytest.raises(WaitTimeout):
        c.wait_change(lambda: None, 0.6)  # only the cursor blinks: no change


def test_wait_change_takes_reference_before_the_action(tmp_path: Path) -> None:
    state = {"text": "EULA"}
    c = console(tmp_path, lambda t: draw(state["text"]))

    def act() -> None:  # the screen changes at once, during the action: must still count
        state["text"] = "Scanning for available devices"

    ev = c.wait_change(act, 2)
    assert ev.source == "change"


def test_secret_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c = console(tmp_path, lambda t: draw("x"), secrets=["Hunter2-Secret"])
    with caplog.at_level(logging.INFO):
        c.type_string("Hunter2-Secret", secret=True)
        c.type_string("pw=Hunter2-Secret")  # contains a secret: masked too
        c.send_keys("<enter>")
    assert "Hunter2" not in caplog.text and "<secret: 14 chars>" in caplog.text
    assert keys.press_count(list(c.vnc.sent)) == 14 + 17 + 1  # type: ignore[attr-defined]


def test_abort_from_another_thread_ends_a_wait(tmp_path: Path) -> None:
    c = console(tmp_path, lambda t: draw("Installing ESXi 6.7.0"))
    threading.Timer(0.3, c.abort, args=("QEMU exited",)).start()
    t0 = time.monotonic()
    with pytest.raises(RunFailed, match="QEMU exited"):
        c.wait_still(30, still_for=20)
    assert time.monotonic() - t0 < 3


class TextOcr:
    """OCR that reads a given text off any frame (the console's logic without tesseract)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def read(self, frame: np.ndarray, region: object = None, second: bool = False) -> str:
        return self.text


class SilentSerial:
    """A serial console whose reader ended: it never shows the prompt."""

    stopped = "the serial socket closed (EOF)"

    def mark(self) -> None: ...

    def wait(self, regex: object, timeout: float) -> None:
        return None

    def search(self, regex: object) -> None:
        return None

    def text(self) -> str:
        return ""

    def close(self) -> None: ...


def text_console(tmp_path: Path, text: str, serial: object = None, secrets: Sequence[str] = ()) -> Console:
    return Console(FakeVnc(lambda t: draw("x")), serial, RunFolder(tmp_path / "run"),  # type: ignore[arg-type]
                   secrets=secrets, ocr=TextOcr(text))  # type: ignore[arg-type]


def test_wait_any_names_the_pattern_that_matched_and_the_others_that_did_too(tmp_path: Path) -> None:
    c = text_console(tmp_path, "ESXi Found\nConfirm Disk Selection")
    key, ev = c.wait_any_text({"keyboard": "keyboard layout", "partitions": "Confirm Disk", "existing": "ESXi Found"},
                              2)
    assert key == "partitions" and ev.key == "partitions" and ev.also == ("existing",)
    c = text_console(tmp_path, "Please select a keyboard layout")
    key, ev = c.wait_any_text({"partitions": "Confirm Disk", "keyboard": "keyboard layout"}, 2)
    assert key == "keyboard" and ev.also == () and ev.screenshot is not None and ev.screenshot.exists()


def test_a_timeout_never_shows_a_secret_in_its_message(tmp_path: Path) -> None:
    import re

    pw = "Hunter2.Secret"
    c = text_console(tmp_path, f"login failed for {pw}", secrets=[pw])
    with pytest.raises(WaitTimeout) as exc:
        c.wait_text(f"password {re.escape(pw)} accepted", 0.3)
    assert "Hunter2" not in str(exc.value) and "*****" in str(exc.value)


def test_run_command_reads_the_screen_when_the_serial_console_stays_silent(tmp_path: Path) -> None:
    screen = ("[root@localhost:~] esxcli system settings kernel list -o preferVmklinux\n"
              "Name            Type  Configured  Runtime  Default  Description\n"
              "preferVmklinux  Bool  FALSE       TRUE     FALSE    Load vmklinux first\n"
              "[root@localhost:~] ")
    c = text_console(tmp_path, screen, serial=SilentSerial())
    out = c.run_command("esxcli system settings kernel list -o preferVmklinux", r"\[root@[^\]]*\]", 3.0)
    assert out.splitlines() == screen.splitlines()[1:3]
    assert keys.press_count(list(c.vnc.sent)) == len("esxcli system settings kernel list -o preferVmklinux\n")  # type: ignore[attr-defined]


def test_run_command_without_a_prompt_anywhere_fails_with_a_screenshot(tmp_path: Path) -> None:
    c = text_console(tmp_path, "ESXi 6.7.0 http://www.vmware.com\nlocalhost login:", serial=SilentSerial())
    with pytest.raises(WaitTimeout) as exc:
        c.run_command("esxcli system module list", r"\[root@[^\]]*\]", 3.0)
    assert exc.value.screenshot is not None and exc.value.screenshot.exists()
    assert "localhost login" in str(exc.value) and "EOF" in str(exc.value)


def test_a_secret_that_cannot_be_typed_is_not_named_in_the_error(tmp_path: Path) -> None:
    c = console(tmp_path, lambda t: draw("x"), secrets=["pässword"])
    with pytest.raises(keys.KeySpecError) as exc:
        c.type_string("pässword", secret=True)
    assert "ä" not in str(exc.value) and "secret" in str(exc.value)
    with pytest.raises(keys.KeySpecError, match="cannot type 'é'"):  # not a secret: the character helps
        c.type_string("café")


class SlowOcr(TextOcr):
    """OCR that takes ``seconds`` per reading, like tesseract on a new screen of a busy host."""

    def __init__(self, text: str, seconds: float) -> None:
        super().__init__(text)
        self.seconds = seconds
        self.calls = 0

    def read(self, frame: np.ndarray, region: object = None, second: bool = False) -> str:
        self.calls += 1
        time.sleep(self.seconds)
        return self.text


class LateSerial(SilentSerial):
    """A serial console that prints ``text`` ``after`` seconds from now."""

    def __init__(self, text: str, after: float) -> None:
        self.t0, self.after, self.line = time.monotonic(), after, text

    def search(self, regex: re.Pattern[str]) -> re.Match[str] | None:
        return regex.search(self.line) if time.monotonic() - self.t0 >= self.after else None

    def consume(self, m: object) -> None: ...


def test_serial_evidence_is_not_held_up_by_a_slow_reading_of_the_screen(tmp_path: Path) -> None:
    ocr = SlowOcr("Scanning...", 1.5)
    c = Console(FakeVnc(lambda t: draw("x" if t < 0.25 else "y")), LateSerial("Select a Disk", 0.2),  # type: ignore[arg-type]
                RunFolder(tmp_path / "run"), ocr=ocr)  # type: ignore[arg-type]
    t0 = time.monotonic()
    ev = c.wait_text("Select a Disk", 10)
    assert ev.source == "serial" and time.monotonic() - t0 < 1.2  # the serial line, not after the OCR's 1.5 s
    assert ocr.calls >= 1  # the screen was being read meanwhile
    c.close()


def test_with_a_silent_serial_console_the_screen_still_ends_the_wait(tmp_path: Path) -> None:
    ocr = SlowOcr("Select a Disk to Install or Upgrade", 0.2)
    c = Console(FakeVnc(lambda t: draw("x")), LateSerial("", 1e9), RunFolder(tmp_path / "run"),  # type: ignore[arg-type]
                ocr=ocr)  # type: ignore[arg-type]
    ev = c.wait_text("Select a Disk", 5)
    assert ev.source == "screen" and c.last_text.startswith("Select a Disk")
    ocr.text = "Welcome"
    with pytest.raises(WaitTimeout) as exc:  # and a wait that never sees its text still times out, bounded
        c.wait_text("Installation Complete", 0.5)
    assert "Welcome" in exc.value.ocr_text
    c.close()


ROWS = ["Configure Password", "Configure Lockdown Mode", "Configure Management Network", "Restart Management",
        "Test Management Network", "Network Restore Options", "Configure Keyboard", "Troubleshooting Options",
        "View System Logs", "View Support Information", "Reset System Configuration"]
BAR_X, BAR_TOP, BAR_W, BAR_H = 40, 30, 300, 19


class ListScreen:
    """A DCUI-like menu whose highlight moves on Down/Up and takes time to redraw, like the guest under
    TCG: the old row is cleared first (no bar on screen), then the new one is drawn. ``bar_first``: the new
    bar's colour lands before its text does. A white dot in the bar means its text is drawn."""

    def __init__(self, bar_first: bool = False, redraw: float = 0.08) -> None:
        self.sel, self.bar_first, self.redraw = 0, bar_first, redraw
        self.moves: list[tuple[float, int]] = []  # (time the key came, the row it selects)
        self.presses = 0
        self._no, self._key = 0, None

    def _state(self) -> tuple[int | None, bool]:
        """(highlighted row or None, its text drawn) now."""
        if not self.moves:
            return self.sel, True
        t, row = self.moves[-1]
        age = time.monotonic() - t
        prev = self.moves[-2][1] if len(self.moves) > 1 else 0
        if age < self.redraw / 2:
            return prev, True
        if age < self.redraw:
            return (row, False) if self.bar_first else (None, False)
        if self.bar_first and age < 3 * self.redraw:
            return row, False
        return row, True

    def _look(self) -> tuple[object, ...]:
        """What the screen shows now: a new value is a new frame."""
        return self._state()

    @property
    def frame_no(self) -> int:
        key = self._look()
        if key != self._key:
            self._key, self._no = key, self._no + 1  # type: ignore[assignment]
        return self._no

    def frame(self) -> np.ndarray:
        row, text = self._state()
        img = np.zeros((400, 400, 3), dtype=np.uint8)
        if row is not None:
            y = BAR_TOP + row * BAR_H
            img[y:y + BAR_H, BAR_X:BAR_X + BAR_W] = (200, 200, 0)
            if text:
                img[y + 9, BAR_X + 150] = (255, 255, 255)
        return img

    def fresh_frame(self, timeout: float = 5.0) -> np.ndarray:
        return self.frame()

    def wait_frame(self, after: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.frame_no == after and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.frame_no

    def send(self, actions: Sequence[keys.Action], sleep: Callable[[float], None] = time.sleep) -> None:
        for a in actions:
            if isinstance(a, keys.KeyEvent) and a.down:
                self.presses += 1
                step = {0xFF54: 1, 0xFF52: -1}.get(a.keysym, 0)
                self.sel = min(len(ROWS) - 1, max(0, self.sel + step))
                self.moves.append((time.monotonic(), self.sel))

    def close(self) -> None:
        pass


class BarOcr:
    """Reads a bar's row text when its text is drawn (the dot), nothing otherwise."""

    def read(self, frame: np.ndarray, region: tuple[int, int, int, int] | None = None, second: bool = False) -> str:
        if region is None:
            return ""
        y = region[1]
        if not (frame[y + 9, BAR_X + 150] == 255).all():
            return ""
        return ROWS[(y - BAR_TOP) // BAR_H]


@pytest.mark.parametrize("bar_first", [False, True], ids=["row drawn whole", "bar before its text"])
def test_select_stops_on_the_row_once_its_move_is_drawn(tmp_path: Path, bar_first: bool) -> None:
    screen = ListScreen(bar_first=bar_first)
    c = Console(screen, None, RunFolder(tmp_path / "run"), ocr=BarOcr())  # type: ignore[arg-type]
    ev = c.select("Troubleshooting Options", 30)
    assert ev.matched == "Troubleshooting Options" and ROWS[screen.sel] == "Troubleshooting Options"
    if not bar_first:
        assert screen.presses == 7  # one Down per row: never a key pressed before the last move was drawn
    else:
        assert screen.presses >= 7  # a bar read before its text may cost moves, never the right row


@pytest.mark.parametrize("bar_first", [False, True], ids=["row drawn whole", "bar before its text"])
def test_select_finds_a_row_above_the_highlight_on_the_way_back(tmp_path: Path, bar_first: bool) -> None:
    screen = ListScreen(bar_first=bar_first)
    screen.sel = 9
    c = Console(screen, None, RunFolder(tmp_path / "run"), ocr=BarOcr())  # type: ignore[arg-type]
    ev = c.select("Troubleshooting Options", 30)
    assert ev.matched == "Troubleshooting Options" and ROWS[screen.sel] == "Troubleshooting Options"
    downs = [a for a in screen.moves if a[1] >= 9]
    assert len(downs) >= 1 and screen.sel == 7  # to the end of the list, then back up to the row


def test_run_command_on_screen_waits_past_a_pause_for_the_prompt_below_the_output(tmp_path: Path) -> None:
    """Screen only: the output stops for 1.5 s halfway (a busy host). A still second is not the end: the
    output is read once the prompt follows it."""
    command = "esxcli system module list"
    parts = ["[root@localhost:~] ",
             f"[root@localhost:~] {command}\nName      Is Loaded  Is Enabled",
             f"[root@localhost:~] {command}\nName      Is Loaded  Is Enabled\nvmkusb    false      false\n"
             "[root@localhost:~] "]

    def text_at(t: float) -> str:
        return parts[0] if t < 0.3 else parts[1] if t < 2.8 else parts[2]

    vnc = FakeVnc(lambda t: draw(text_at(t)))

    class TimedOcr:
        def read(self, frame: np.ndarray, region: object = None, second: bool = False) -> str:
            return text_at(time.monotonic() - vnc.t0)

    c = Console(vnc, None, RunFolder(tmp_path / "run"), ocr=TimedOcr())  # type: ignore[arg-type]
    out = c.run_command(command, r"\[root@[^\]]*\]", 20.0)
    assert out.splitlines() == ["Name      Is Loaded  Is Enabled", "vmkusb    false      false"]


class SlowListScreen(ListScreen):
    """The same menu on a busy host: drawn only ``appears`` seconds from the start, and each move drawn
    ``late`` seconds after its key, with a stripe at the screen's foot flickering 50 ms after the key
    (the late end of an earlier redraw: a change that is not the move)."""

    def __init__(self, appears: float = 0.0, late: float = 0.0) -> None:
        super().__init__()
        self.appears, self.late, self.t0 = appears, late, time.monotonic()
        self.before_drawn = 0  # keys pressed while no menu was on screen

    def _state(self) -> tuple[int | None, bool]:
        now = time.monotonic()
        if now - self.t0 < self.appears:
            return None, False
        if not self.moves:
            return self.sel, True
        t, row = self.moves[-1]
        prev = self.moves[-2][1] if len(self.moves) > 1 else 0
        return (prev if now - t < self.late else row), True

    def _flicker(self) -> bool:
        return bool(self.moves) and 0.05 <= time.monotonic() - self.moves[-1][0] < 0.1

    def _look(self) -> tuple[object, ...]:
        return (*self._state(), self._flicker())

    def frame(self) -> np.ndarray:
        img = super().frame()
        if self._flicker():
            img[360:380, 0:400] = (90, 90, 90)
        return img

    def send(self, actions: Sequence[keys.Action], sleep: Callable[[float], None] = time.sleep) -> None:
        if self._state()[0] is None:
            self.before_drawn += 1
        super().send(actions, sleep)


def test_select_presses_nothing_until_the_list_is_drawn(tmp_path: Path) -> None:
    screen = SlowListScreen(appears=1.5)
    c = Console(screen, None, RunFolder(tmp_path / "run"), ocr=BarOcr())  # type: ignore[arg-type]
    ev = c.select("Troubleshooting Options", 30)
    assert ev.matched == "Troubleshooting Options" and ROWS[screen.sel] == "Troubleshooting Options"
    assert screen.before_drawn == 0 and screen.presses == 7


def test_select_does_not_take_a_move_drawn_late_for_the_end_of_the_list(tmp_path: Path) -> None:
    """After Down the screen changes at once (not the move) and the move shows 0.6 s later: the row read
    in between is the one already seen, and is looked at again before it counts as the list's end."""
    screen = SlowListScreen(late=0.6)
    c = Console(screen, None, RunFolder(tmp_path / "run"), ocr=BarOcr())  # type: ignore[arg-type]
    ev = c.select("Restart Management", 60)
    assert ev.matched == "Restart Management" and ROWS[screen.sel] == "Restart Management"
    assert screen.presses == 3
