"""Keys lost on a busy host: typing paced by the guest's keyboard vs fixed paces, on the simulator (QEMU/TCG).

    python benchmarks/keys_under_load.py           # ~6 minutes on 2 cores; --tries N per pace (default 30)

The simulator's boot-loader editor redraws its line for every key, so it leaves its keyboard unread for a
while after each one, and longer when the host is busy. While the benchmark types, the host is kept busy
the way a CI machine is: fsync'd writes of 1 GB files (the serial port QEMU writes then blocks the guest)
and two busy loops. Each try opens the editor (Shift+O), types 70 characters (a third of them shifted),
and reads the line back from the serial console (the test build of the simulator mirrors it there);
a try whose line differs lost keys. Esc drops the line, and the next try begins.

Paces, each on a fresh VM (baseline: the fixed paces in the same run), at 200 keys/s:
  QEMU's key-delay-ms=3 alone                (what labctl used before it read the keyboard's trace)
  a 10 ms gap between events                 (labctl's pace when QEMU's keyboard trace is missing)
  the keyboard trace, QEMU at 3 ms           (labctl's pace now: each event when the keyboard has room)
and the fastest: QEMU at 1 ms and the client at 1,000 keys/s, without and with the trace.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labctl.backends import qemu, qemu_argv
from labctl.backends.qemu import QemuBackend
from labctl.console import Console
from labctl.report import RunFolder
from labctl.sim.build import build_iso
from labctl.spec import load_lab

LAB = """name: typing-bench
backend: qemu
esxi: "6.7"
iso: sim
vm: {{cpus: 2, memory_mb: 8192, disk: none}}
stick: {{image: {stick}, size: 16G}}
install: {{playbook: esxi-6.7-interactive, boot_options: preferVMklinux=TRUE, root_password: {{env: TYPING_BENCH_PW}}}}
"""
CHARS = "AbC+12:zx_Y%z!Q@w#E*r0O1lI|i"
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DEFAULT_RATE = QemuBackend.default_key_rate
# name, QEMU key-delay-ms, keyboard trace, client gap (s), client keys/s
PACES: list[tuple[str, int, bool, float, float]] = [
    ("QEMU's pace alone, 3 ms (before)", 3, False, 0.0, DEFAULT_RATE),
    ("10 ms gap (no trace: fallback)", 3, False, qemu_argv.KEY_EVENT_GAP, DEFAULT_RATE),
    ("keyboard trace, QEMU at 3 ms (now)", 3, True, 0.0, DEFAULT_RATE),
    ("QEMU's pace alone, 1 ms, 1000 keys/s", 1, False, 0.0, 1000.0),
    ("keyboard trace, 1 ms, 1000 keys/s", 1, True, 0.0, 1000.0),
]


def _spin(stop: Any) -> None:
    while not stop.is_set():
        pass


@contextmanager
def busy_host(folder: Path) -> Iterator[None]:
    """fsync'd 1 GB writes in a loop and two busy loops, until the block ends."""
    stop = threading.Event()
    mp_stop = multiprocessing.Event()

    def writer() -> None:
        block = b"\0" * (1 << 20)
        while not stop.is_set():
            path = folder / "load.bin"
            with open(path, "wb") as f:
                for _ in range(1024):
                    if stop.is_set():
                        break
                    f.write(block)
                f.flush()
                os.fsync(f.fileno())
            path.unlink()

    t = threading.Thread(target=writer, daemon=True)
    spinners = [multiprocessing.Process(target=_spin, args=(mp_stop,), daemon=True) for _ in range(2)]
    t.start()
    for p in spinners:
        p.start()
    try:
        yield
    finally:
        stop.set()
        mp_stop.set()
        t.join(30)
        for p in spinners:
            p.join(5)


def one_pace(work: Path, iso: Path, delay_ms: int, trace: bool, gap: float, rate: float,
             tries: int) -> tuple[int, float]:
    """Lost tries and the median seconds from the first key to the whole line on the guest's serial
    console (the tries that lost none), on a fresh VM at this pace."""
    os.environ["TYPING_BENCH_PW"] = "x"
    (work / "lab.yaml").write_text(LAB.format(stick=work / "stick.img"))
    lab = load_lab(work / "lab.yaml")
    qemu_argv.KEY_DELAY_MS = delay_ms
    pacing: dict[str, Any] = {"refresh_nudge": qemu.REFRESH_NUDGE, "key_event_gap": gap}
    backend = QemuBackend(lab, lab.seat_list()[0], iso=iso)
    if trace:
        pacing["keyboard_trace"] = backend.files.keyboard_trace
    backend._vnc_pacing = lambda: pacing  # type: ignore[method-assign]
    lost, took = 0, []
    backend.define()
    backend.choose_accel()
    backend.start()
    try:
        c = Console.open(backend.vnc_endpoint(), None, RunFolder(work / "run"), key_rate=rate, secrets=[])
        try:
            c.wait_text(r"SHIFT\+O", 120, serial=False)
            if c.vnc.paced_by_guest != trace:  # type: ignore[attr-defined]
                raise SystemExit(f"the keyboard trace is {'missing' if trace else 'in use'}: not the pace asked for")
            serial = backend.serial_endpoint()
            assert serial is not None
            for n in range(tries):
                c.send_keys("<leftShiftOn>O<leftShiftOff>")
                time.sleep(0.3)
                line = "".join(CHARS[(i * 7 + n) % len(CHARS)] for i in range(70))
                at = serial.path.stat().st_size
                t0 = time.monotonic()
                c.type_string(" " + line)
                seen = False
                while not seen and time.monotonic() - t0 < 8:
                    text = serial.path.read_bytes()[at:].decode("latin-1")
                    seen = line in ESCAPE.sub("", text)
                    if not seen:
                        time.sleep(0.01)
                if seen:
                    took.append(time.monotonic() - t0)
                lost += not seen
                c.send_keys("<esc>")
                time.sleep(0.3)
                c.send_keys("<down>")  # any key: a fresh countdown
        finally:
            c.close()
    finally:
        backend.stop("hard")
    return lost, statistics.median(took) if took else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=30, help="tries of 70 characters per pace")
    args = parser.parse_args()
    iso = build_iso("fast", serial_bootloader=True)
    print(f"typing 70 characters into the boot-loader editor, {args.tries} tries per pace, host busy "
          f"(fsync'd 1 GB writes, two busy loops)")
    print(f"{'pace':<40} {'tries that lost keys':>22} {'typed and shown, median':>24}")
    with tempfile.TemporaryDirectory(prefix="labctl-typing-") as tmp, busy_host(Path(tmp)):
        for i, (name, delay_ms, trace, gap, rate) in enumerate(PACES):
            work = Path(tmp) / f"pace{i}"
            work.mkdir()
            lost, median = one_pace(work, iso, delay_ms, trace, gap, rate, args.tries)
            print(f"{name:<40} {f'{lost} of {args.tries}':>22} {median:>22.2f} s", flush=True)


if __name__ == "__main__":
    main()
