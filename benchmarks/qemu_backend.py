#!/usr/bin/env python3
"""QEMU backend figures on this machine (median of 5): the KVM probe, QEMU start to VNC answering,
a QMP round trip, a PNG screendump, a hard stop — beside the baseline of a bare QEMU started by hand
(Popen, then poll the VNC port) with the same argv.

    python3 benchmarks/qemu_backend.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labctl.backends.accel import probe_kvm
from labctl.backends.qemu import QemuBackend, _vnc_answers
from labctl.backends.qemu_argv import OVMF_CODE, OVMF_VARS, VncListen
from labctl.spec import load_lab

RUNS = 5
LAB = """\
name: bench
backend: qemu
iso: sim
vm: {memory_mb: 4096, network: none}
stick:
  image: sticks/{seat}.img
  size: 16G
install:
  root_password: {value: "VMware1!lab"}
qemu: {accel: tcg}
"""


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
        d = Path(tmp)
        (d / "lab.yaml").write_text(LAB)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lab = load_lab(d / "lab.yaml")
        seat = lab.seat_list()[0]

        probe = []
        verdict = ""
        for _ in range(RUNS):
            t0 = time.perf_counter()
            v = probe_kvm(lab.qemu.binary, OVMF_CODE, OVMF_VARS)
            probe.append(time.perf_counter() - t0)
            verdict = f"{v.accel} ({v.reason[:70]})"

        start, qmp, shot, stop, bare = [], [], [], [], []
        for i in range(RUNS):
            b = QemuBackend(lab, seat)
            t0 = time.perf_counter()
            b.start()
            start.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b.qemu_status()
            qmp.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b.screendump(d / f"s{i}.png")
            shot.append(time.perf_counter() - t0)
            argv = b.argv(VncListen(port=5990))
            t0 = time.perf_counter()
            b.stop("hard")
            stop.append(time.perf_counter() - t0)

            # baseline: the same argv, started and polled by hand
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 30
                while not _vnc_answers("127.0.0.1", 5990, None, 0.5) and time.monotonic() < deadline:
                    time.sleep(0.01)
                bare.append(time.perf_counter() - t0)
            finally:
                proc.kill()
                proc.wait(10)

    print(f"{'figure (median of ' + str(RUNS) + ')':<44}{'seconds':>10}")
    print(f"{'KVM probe (uncached) -> ' + verdict:<44}")
    print(f"{'  probe time':<44}{median(probe):>10.3f}")
    print(f"{'QEMU start -> VNC answering (labctl)':<44}{median(start):>10.3f}")
    print(f"{'QEMU start -> VNC answering (bare, baseline)':<44}{median(bare):>10.3f}")
    print(f"{'QMP round trip (connect + query-status)':<44}{median(qmp):>10.3f}")
    print(f"{'screendump PNG over QMP':<44}{median(shot):>10.3f}")
    print(f"{'hard stop (QMP quit -> process gone)':<44}{median(stop):>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
