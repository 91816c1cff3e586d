"""Flow control from QEMU's PS/2 keyboard trace: the queue's fill read from the trace lines QEMU writes,
and a VNC session that never lets more keys out than a stalled guest's keyboard holds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.backends.base import VncEndpoint
from labctl.console import keys
from labctl.console.kbdflow import CAPACITY, MARGIN, KeyboardFlow
from labctl.console.vnc import VncSession

KBD = "0x55dd81351350"
# what QEMU 7.2 writes while OVMF starts its keyboard driver: enable, reset (ACK + 0xAA), scan code set,
# LEDs; each command's reply read back
FIRMWARE = f"""ps2_write_keyboard {KBD} val 244
ps2_read_data {KBD}
ps2_write_keyboard {KBD} val 255
ps2_reset_keyboard {KBD}
ps2_read_data {KBD}
ps2_read_data {KBD}
ps2_write_keyboard {KBD} val 240
ps2_read_data {KBD}
ps2_write_keyboard {KBD} val 2
ps2_read_data {KBD}
ps2_write_keyboard {KBD} val 237
ps2_read_data {KBD}
ps2_write_keyboard {KBD} val 0
ps2_read_data {KBD}
"""


def put(code: int) -> str:
    return f"ps2_put_keycode {KBD} keycode 0x{code:02x}\n"


def test_the_fill_follows_bytes_queued_and_read(tmp_path: Path) -> None:
    trace = tmp_path / "keyboard.trace"
    trace.write_text("")
    flow = KeyboardFlow(trace)
    assert not flow.live  # nothing yet: the caller keeps its fixed pace
    with trace.open("a") as f:
        f.write(FIRMWARE)
    assert flow.live and flow.fill == 0  # the replies were all read
    with trace.open("a") as f:  # Shift+a: 12, 1c, f0 1c, f0 12 -> four bytes (set 1 after translation)
        f.write(put(0x12) + put(0x1C) + put(0xF0) + put(0x1C) + put(0xF0) + put(0x12))
    assert flow.fill == 4
    with trace.open("a") as f:  # an arrow: e0 72, e0 f0 72 -> two bytes each way
        f.write(f"ps2_read_data {KBD}\n" * 4 + put(0xE0) + put(0x72) + put(0xE0) + put(0xF0) + put(0x72))
    assert flow.fill == 4 and flow.codes == 6
    with trace.open("a") as f:
        f.write(f"ps2_read_data {KBD}\n" * 4 + "ps2_read_data 0x1111\n")  # another device's read is not ours
    assert flow.fill == 0


def test_a_queue_that_overflowed_is_counted_full_not_fuller(tmp_path: Path) -> None:
    trace = tmp_path / "keyboard.trace"
    trace.write_text(FIRMWARE + put(0x1C) * 40)  # 40 bytes while nobody read: QEMU kept 16
    flow = KeyboardFlow(trace)
    assert flow.fill == CAPACITY
    with trace.open("a") as f:
        f.write(f"ps2_read_data {KBD}\n" * CAPACITY)
    assert flow.fill == 0  # and not stuck at 24 forever


def test_events_qemu_never_turned_into_codes_are_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("labctl.console.kbdflow.STALE", 0.3)
    trace = tmp_path / "keyboard.trace"
    trace.write_text(FIRMWARE)
    flow = KeyboardFlow(trace)
    flow.sent_one(ord("a"))
    flow.sent_one(0xFF52)  # Up: an extended key, 0xE0 and its code
    assert flow.fill == 3  # on their way: counted at what they will queue
    time.sleep(0.35)
    assert flow.fill == 0


def test_a_new_qemu_starts_a_new_count(tmp_path: Path) -> None:
    trace = tmp_path / "keyboard.trace"
    trace.write_text(FIRMWARE + put(0x1C) * 5)
    flow = KeyboardFlow(trace)
    assert flow.fill == 5
    trace.write_text(FIRMWARE[:40])  # QEMU started again and truncated its file
    assert flow.fill == 0


class StallingGuest:
    """A PS/2 keyboard as QEMU's: each key event the fake VNC server gets is put in a 16-byte queue (the
    trace line written, the byte dropped when full); the guest reads it all every 20 ms, except during
    ``stalls`` (start, end seconds after ``start()``)."""

    def __init__(self, server: object, trace: Path, stalls: list[tuple[float, float]]) -> None:
        self.server, self.trace, self.stalls = server, trace, stalls
        self.queue = 0
        self.dropped = 0
        self.peak = 0
        self._seen = 0
        self._stop = False
        self.trace.write_text(FIRMWARE)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        last_read = 0.0
        while not self._stop:
            got = self.server.keys  # type: ignore[attr-defined]
            with self.trace.open("a") as f:
                while self._seen < len(got):
                    keysym, down = got[self._seen]
                    self._seen += 1
                    code = 0x1C if keysym < 0xFF00 else 0x12
                    f.write(put(code) if down else put(0xF0) + put(code))
                    if self.queue < CAPACITY:
                        self.queue += 1
                        self.peak = max(self.peak, self.queue)
                    else:
                        self.dropped += 1
                now = time.monotonic() - self.t0
                stalled = any(a <= now < b for a, b in self.stalls)
                if not stalled and now - last_read >= 0.02:
                    f.write(f"ps2_read_data {KBD}\n" * self.queue)
                    self.queue, last_read = 0, now
            time.sleep(0.003)

    def stop(self) -> None:
        self._stop = True
        self._thread.join(2)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[object]:
    from test_vnc import FakeRfbServer  # the RFB server fake of the VNC session's own tests

    srv = FakeRfbServer(tmp_path / "vnc.sock")
    yield srv
    srv.close()


@pytest.mark.parametrize("flow", [True, False], ids=["keyboard trace", "fixed gap only"])
def test_typing_through_a_long_stall_loses_nothing_when_the_keyboard_is_traced(tmp_path: Path, server: object,
                                                                            flow: bool) -> None:
    trace = tmp_path / "keyboard.trace"
    guest = StallingGuest(server, trace, stalls=[(0.05, 0.55)])  # half a second without reading
    s = VncSession(VncEndpoint("127.0.0.1", 0, socket_path=server.path, key_event_gap=0.01,  # type: ignore[attr-defined]
                               keyboard_trace=trace if flow else None), key_rate=1000.0)
    s.connect()
    guest.start()
    try:
        text = "esxcli system settings kernel set -s preferVmklinux -v FALSE"
        t0 = time.monotonic()
        s.send(keys.text(text))
        took = time.monotonic() - t0
        time.sleep(0.1)
    finally:
        guest.stop()
        s.close()
    if flow:
        assert guest.dropped == 0 and guest.peak <= CAPACITY - MARGIN
        assert took >= 0.5  # it waited out the stall
    else:
        assert guest.dropped > 0  # a 10 ms gap fills 16 bytes in 160 ms: the test can tell the two apart


def test_a_trace_read_mid_way_from_a_new_qemu_follows_the_new_keyboard(tmp_path: Path) -> None:
    trace = tmp_path / "keyboard.trace"
    trace.write_text(FIRMWARE + put(0x1C) * 5)
    flow = KeyboardFlow(trace)
    assert flow.fill == 5
    with trace.open("a") as f:  # lines of another keyboard: a QEMU that began again, its file not yet shorter
        f.write(FIRMWARE.replace(KBD, "0x7777") + put(0x1C).replace(KBD, "0x7777"))
    assert flow.fill == 1
    flow.close()
    assert flow.fill == 1  # reopened and read again from the start: the same answer


def test_replies_to_the_firmwares_commands_are_counted_until_read(tmp_path: Path) -> None:
    trace = tmp_path / "keyboard.trace"
    trace.write_text(f"ps2_write_keyboard {KBD} val 255\nps2_reset_keyboard {KBD}\n")
    flow = KeyboardFlow(trace)
    assert flow.fill == 2  # ACK and 0xAA after the reset
    with trace.open("a") as f:  # LEDs: the command and its data byte, an ACK each
        f.write(f"ps2_read_data {KBD}\n" * 2 + f"ps2_write_keyboard {KBD} val 237\nps2_write_keyboard {KBD} val 242\n")
    assert flow.fill == 2  # 242 here is the LED data, not the identify command (which would queue 3)


def test_without_translation_a_release_queues_its_f0_too(tmp_path: Path) -> None:
    trace = tmp_path / "keyboard.trace"
    trace.write_text(FIRMWARE + f"ps2_keyboard_set_translation {KBD} mode 0\n" + put(0x1C) + put(0xF0) + put(0x1C))
    flow = KeyboardFlow(trace)
    assert flow.fill == 3 and flow.bytes_of(ord("a")) == 2
    with trace.open("a") as f:
        f.write(f"ps2_read_data {KBD}\n" * 3 + f"ps2_keyboard_set_translation {KBD} mode 1\n")
    assert flow.fill == 0 and flow.bytes_of(ord("a")) == 1
    with trace.open("a") as f:  # the machine reset: emptied, and untranslated until the firmware says
        f.write(put(0x1C) + f"ps2_kbd_reset {KBD}\n")
    assert flow.fill == 0 and flow.raw


def test_a_wait_that_times_out_starts_the_count_again_and_a_stop_ends_it(tmp_path: Path) -> None:
    trace = tmp_path / "keyboard.trace"
    trace.write_text(FIRMWARE + put(0x1C) * 14)
    flow = KeyboardFlow(trace)
    t0 = time.monotonic()
    assert not flow.wait_room(ord("a"), 0.2)
    assert 0.2 <= time.monotonic() - t0 < 1.0
    assert flow.fill == 0 and flow.wait_room(ord("a"), 0.2)  # the next key does not wait again
    with trace.open("a") as f:
        f.write(put(0x1C) * 14)
    t0 = time.monotonic()
    assert not flow.wait_room(ord("a"), 5.0, stop=lambda: time.monotonic() - t0 > 0.1)
    assert time.monotonic() - t0 < 1.0


def test_a_guest_that_never_reads_gets_the_keys_at_the_fixed_gap_after_a_bounded_wait(
        tmp_path: Path, server: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("labctl.console.vnc.FLOW_WAIT", 0.3)
    trace = tmp_path / "keyboard.trace"
    trace.write_text(FIRMWARE + put(0x1C) * 14)  # full, and nobody reads
    s = VncSession(VncEndpoint("127.0.0.1", 0, socket_path=server.path, key_event_gap=0.02,  # type: ignore[attr-defined]
                               keyboard_trace=trace), key_rate=1000.0)
    s.connect()
    try:
        assert s.paced_by_guest
        t0 = time.monotonic()
        s.send(keys.text("abcdefghij"))
        took = time.monotonic() - t0
        deadline = time.monotonic() + 3
        while len(server.keys) < 20 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
    finally:
        s.close()
    assert len(server.keys) == 20  # type: ignore[attr-defined]
    assert 0.3 + 19 * 0.02 - 0.01 <= took < 1.5  # one bounded wait, then the gap: not a wait per key (6 s)
    assert "has not read its keyboard" in caplog.text
