"""A step's thumbnail is the screen as it was when its evidence matched: when the serial console is ahead of
the screen, the next screen change (within a bounded wait), not the screen from before."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from labctl.console import Console, keys
from labctl.console.console import SERIAL_SCREEN_WAIT
from labctl.report import RunFolder

OLD = np.full((100, 200, 3), 30, dtype=np.uint8)
NEW = np.full((100, 200, 3), 200, dtype=np.uint8)


class LateScreen:
    """The screen shows OLD until ``switch_at`` seconds after creation, then NEW (None: never)."""

    def __init__(self, switch_at: float | None) -> None:
        self.t0, self.switch_at = time.monotonic(), switch_at

    def _new(self) -> bool:
        return self.switch_at is not None and time.monotonic() - self.t0 >= self.switch_at

    @property
    def frame_no(self) -> int:
        return 2 if self._new() else 1

    def frame(self) -> np.ndarray:
        return NEW if self._new() else OLD

    def fresh_frame(self, timeout: float = 5.0) -> np.ndarray:
        return self.frame()

    def wait_frame(self, after: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.frame_no == after and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.frame_no

    def send(self, actions: Sequence[keys.Action], sleep: Callable[[float], None] = time.sleep) -> None:
        pass

    def close(self) -> None:
        pass


class SerialAhead:
    """A serial console that already printed the text."""

    def __init__(self, text: str) -> None:
        self.buffer = text

    def search(self, regex: re.Pattern[str]) -> re.Match[str] | None:
        return regex.search(self.buffer)

    def consume(self, m: re.Match[str]) -> None:
        self.buffer = self.buffer[m.end():]

    def mark(self) -> None:
        pass

    def close(self) -> None:
        pass


class BlindOcr:
    def read(self, frame: Any, region: Any = None, second: bool = False) -> str:
        return ""


def saved(run: RunFolder) -> np.ndarray:
    assert run.last_frame_path is not None
    return np.array(Image.open(run.last_frame_path).convert("RGB"))


def wait_on(tmp_path: Path, switch_at: float | None) -> tuple[RunFolder, float, float]:
    run = RunFolder(tmp_path / "run")
    c = Console(LateScreen(switch_at), SerialAhead("... End User License Agreement ..."), run,  # type: ignore[arg-type]
                ocr=BlindOcr())  # type: ignore[arg-type]
    t0 = time.monotonic()
    ev = c.wait_text("End User License Agreement", 5)
    assert ev.source == "serial"
    return run, ev.seconds, time.monotonic() - t0


def test_serial_ahead_of_the_screen_keeps_the_next_screen(tmp_path: Path) -> None:
    run, seconds, took = wait_on(tmp_path, switch_at=0.3)
    assert np.array_equal(saved(run), NEW)
    assert seconds < 0.2  # the evidence's own time is when the serial matched
    assert took < 0.3 + SERIAL_SCREEN_WAIT


def test_a_screen_that_never_changes_is_waited_for_a_bounded_time(tmp_path: Path) -> None:
    run, _, took = wait_on(tmp_path, switch_at=None)
    assert np.array_equal(saved(run), OLD)
    assert SERIAL_SCREEN_WAIT * 0.9 <= took < SERIAL_SCREEN_WAIT + 0.5
