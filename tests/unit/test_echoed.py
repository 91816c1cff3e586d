"""Typing a shell line checked against the guest's echo on a real serial console file: bursts that fit
the keyboard, a lost key found and the line retyped, a guest that echoes nothing, one that always drops."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from labctl.console import keys
from labctl.console.echoed import bursts, line_of, type_echoed
from labctl.console.serial import SerialConsole
from labctl.console.waiting import Deadline
from labctl.errors import RunFailed


class EchoGuest:
    """A shell behind a keyboard: echoes each printable key on the serial file (a backspace as ``\\b \\b``),
    but drops the presses whose numbers (counted from 0 over the whole test) are in ``drop``."""

    def __init__(self, serial_file: Path, drop: Callable[[int], bool] = lambda n: False, echo: bool = True) -> None:
        self.file, self.drop, self.echo = serial_file, drop, echo
        self.presses = 0
        self.line = ""
        self.sends: list[tuple[int, bool]] = []  # (key events, burst) per send

    def send(self, actions: Sequence[keys.Action], sleep: Callable[[float], None] = time.sleep,
             burst: bool = False) -> None:
        self.sends.append((len(actions), burst))
        for a in actions:
            if not isinstance(a, keys.KeyEvent) or not a.is_press:
                continue
            n, self.presses = self.presses, self.presses + 1
            if self.drop(n):
                continue
            out = ""
            if a.label == "bs":
                if self.line:
                    self.line, out = self.line[:-1], "\b \b"
            else:
                ch = chr(a.keysym)
                self.line += ch
                out = ch
            if self.echo and out:
                with self.file.open("a") as f:
                    f.write(out)


@pytest.fixture
def serial(tmp_path: Path) -> Iterator[SerialConsole]:
    path = tmp_path / "serial.log"
    path.write_text("")
    s = SerialConsole(path)
    s.mark()  # where the echo starts, as Console.run_command sets it
    yield s
    s.close()


LINE = "esxcli system settings kernel set -s preferVmklinux -v FALSE"


def test_line_of_drops_wraps_and_applies_backspaces() -> None:
    assert line_of("esxcli sys\r\ntem\b \bm") == "esxcli system"
    assert line_of("\b \b\b \b") == ""


def test_bursts_are_whole_characters_within_the_event_budget() -> None:
    pieces = bursts("ab:CD e", 12)
    assert "".join(pieces) == "ab:CD e"
    assert all(len(keys.text(p)) <= 12 for p in pieces) and len(pieces) == 2  # a b : C D = 2+2+4+4+4 = 16


def test_a_line_echoed_as_typed_goes_in_bursts_and_is_checked(tmp_path: Path, serial: SerialConsole) -> None:
    guest = EchoGuest(tmp_path / "serial.log")
    assert type_echoed(guest, serial, LINE, 12, Deadline(10)) == "checked"
    assert guest.line == LINE
    assert all(burst and n <= 12 for n, burst in guest.sends)
    assert len(guest.sends) == len(bursts(LINE, 12))


@pytest.mark.parametrize("lost", [9, len(LINE) - 1], ids=["in a burst", "the last key"])
def test_a_lost_key_is_found_and_the_line_retyped_at_the_paced_rate(tmp_path: Path, serial: SerialConsole,
                                                                      lost: int) -> None:
    guest = EchoGuest(tmp_path / "serial.log", drop=lambda n: n == lost)
    assert type_echoed(guest, serial, LINE, 12, Deadline(10)) == "retyped"
    assert guest.line == LINE  # what the shell holds when Enter comes
    assert guest.sends[-1] == (len(keys.text(LINE)), False)  # the retype: paced, whole
    assert line_of(serial.text()) == LINE


def test_a_guest_that_echoes_nothing_gets_the_rest_paced_and_each_key_once(tmp_path: Path,
                                                                           serial: SerialConsole) -> None:
    guest = EchoGuest(tmp_path / "serial.log", echo=False)
    t0 = time.monotonic()
    assert type_echoed(guest, serial, LINE, 12, Deadline(10)) == "unchecked"
    assert guest.line == LINE and guest.presses == len(LINE)
    assert guest.sends[0][1] and not guest.sends[-1][1]  # one burst (the keyboard holds it), then paced
    assert time.monotonic() - t0 < 2


def test_a_guest_that_keeps_losing_keys_fails_the_step_without_showing_a_secret(tmp_path: Path,
                                                                                serial: SerialConsole) -> None:
    guest = EchoGuest(tmp_path / "serial.log", drop=lambda n: n % 7 == 3)
    with pytest.raises(RunFailed) as exc:
        type_echoed(guest, serial, "echo Hunter2.Secret", 12, Deadline(20),
                    shown=lambda t: t.replace("Hunter2.Secret", "*****"))
    assert "Hunter2" not in str(exc.value) and "even at the paced rate" in str(exc.value)
