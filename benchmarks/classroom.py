#!/usr/bin/env python3
"""Classroom figures: three simulator seats installed in parallel vs one after another (same run, same lab), and
the wall time of ``labctl reset`` of three seats back to after-install on image sticks of 16 GB and 64 GB.

    flock /tmp/labctl-e2e.lock .venv/bin/python benchmarks/classroom.py            # both (boots QEMU 6 times)
    .venv/bin/python benchmarks/classroom.py --reset-only                           # no VM: the reset figures

The lab is labs/classroom-sim.yaml without its post-install playbooks (the install is what parallelism is about),
written to a temporary folder. Resets: each seat's stick gets 400 MiB of "installed" data, its golden copy is kept
the way a successful up keeps it, then 256 MiB of each stick is rewritten (the students' work) and ``labctl reset``
is timed as a command (start-up included). Bar: under 5 s, whatever the stick's size. The baseline beside it is a
sparse copy of the golden image per seat (what a restore of the stick image would at least cost).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BAR_S = 5.0
LABCTL = [sys.executable, "-m", "labctl"]


def labctl(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*LABCTL, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"labctl {' '.join(args)} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return r


def write_lab(folder: Path, size: str = "16G", post_install: bool = False) -> Path:
    data = yaml.safe_load((REPO / "labs" / "classroom-sim.yaml").read_text())
    data["stick"]["size"] = size
    if not post_install:
        data["post_install"] = []
    lab = folder / "classroom.yaml"
    lab.write_text(yaml.safe_dump(data, sort_keys=False))
    return lab


def parallel_vs_sequential(folder: Path) -> None:
    lab = write_lab(folder)
    t0 = time.monotonic()
    labctl("-q", "up", str(lab))
    parallel = time.monotonic() - t0
    labctl("-q", "reset", str(lab), "--to", "before-install")
    t0 = time.monotonic()
    labctl("-q", "up", str(lab), "--parallel", "1")
    sequential = time.monotonic() - t0
    print(f"3 seats, up (install + verify), {os.cpu_count()} cores, QEMU under TCG unless KVM works:")
    print(f"  {'one after another (--parallel 1, baseline)':<46}{sequential:>8.0f} s")
    print(f"  {'in parallel (default)':<46}{parallel:>8.0f} s   speed-up {sequential / parallel:.2f}x")


def _qemu_io(image: Path, fmt: str, command: str) -> None:
    subprocess.run(["qemu-io", "-f", fmt, "-c", command, str(image)], check=True, capture_output=True, timeout=600)


def reset_time(folder: Path, size: str) -> tuple[float, float]:
    """(labctl reset of 3 seats, sparse copy of the 3 golden images) in seconds."""
    sys.path.insert(0, str(REPO))
    from labctl.classroom import keep_golden
    from labctl.runner import UpOptions, make_backend
    from labctl.spec import load_lab

    lab_path = write_lab(folder, size)
    lab = load_lab(lab_path)
    for seat in lab.seat_list():
        b = make_backend(lab, seat)
        b.define()
        image = seat.stick_image(lab)
        assert image is not None
        _qemu_io(image, "raw", "write -P 0x5a 1M 400M")  # the installed system
        keep_golden(lab, seat, UpOptions())
        chain = seat.state_dir / "stick-snapshots" / "chain.json"
        active = yaml.safe_load(chain.read_text())["active"]
        _qemu_io(Path(active), "qcow2", "write -P 0xa5 100M 256M")  # the students' changes
    t0 = time.monotonic()
    labctl("-q", "reset", str(lab_path))
    reset = time.monotonic() - t0
    t0 = time.monotonic()
    for seat in lab.seat_list():
        image = seat.stick_image(lab)
        assert image is not None
        subprocess.run(["cp", "--sparse=always", str(image), str(folder / f"copy-{seat.name}.img")], check=True,
                       timeout=900)
    copy = time.monotonic() - t0
    return reset, copy


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reset-only", action="store_true", help="only the reset figures (no VM is booted)")
    args = p.parse_args()
    os.environ.setdefault("LAB_ROOT_PASSWORD", "VMware1!lab")
    ok = True
    with tempfile.TemporaryDirectory(prefix="labctl-bench-classroom-") as tmp:
        if not args.reset_only:
            run = Path(tmp) / "up"
            run.mkdir()
            parallel_vs_sequential(run)
        print("reset of 3 seats to after-install (image sticks, 400 MiB installed, 256 MiB changed per seat):")
        print(f"  {'stick':<8}{'labctl reset':>14}{'sparse copy of golden (baseline)':>36}")
        for size in ("16G", "64G"):
            folder = Path(tmp) / f"reset-{size}"
            folder.mkdir()
            reset, copy = reset_time(folder, size)
            verdict = "PASS" if reset < BAR_S else "FAIL"
            ok = ok and reset < BAR_S
            print(f"  {size:<8}{reset:>12.2f} s{copy:>34.2f} s   bar < {BAR_S:g} s: {verdict}")
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
