#!/usr/bin/env python3
"""The VMware backend's cost: the seed's install (labs/usb-install.yaml with iso: sim) through vmrun (the
shim in tests/fakes/vmrun, which runs the .vmx on QEMU) and the same install on the qemu backend, at the
same key rate (the lab's 10 keys/s), in one run. Prints both wall times, the ratio (target: at most 1.10,
i.e. the vmrun path costs at most 10 % more) and the vmrun calls per install.

Boots QEMU twice (about 2 x 2 minutes under TCG): run it under the team's e2e lock.

    flock /tmp/labctl-e2e.lock python3 benchmarks/vmware.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SHIM = REPO / "tests" / "fakes" / "vmrun"
TARGET = 1.10


def seed_lab() -> dict[str, Any]:
    lab: dict[str, Any] = yaml.safe_load((REPO / "labs" / "usb-install.yaml").read_text())
    lab["iso"] = "sim"
    return lab


def up(lab: Path, env: dict[str, str]) -> float:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "labctl", "up", str(lab)], capture_output=True, text=True,
                       timeout=1800, env=env, cwd=lab.parent)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"labctl up {lab} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return took


def vmware_install(d: Path, env: dict[str, str]) -> tuple[float, int]:
    d.mkdir()
    lab = seed_lab()
    (d / "lab.yaml").write_text(yaml.safe_dump(lab, sort_keys=False))
    stick = d / "stick.img"
    with open(stick, "wb") as f:
        f.truncate(16 * 2**30)
    (d / "usb.json").write_text(json.dumps([{"vid": "0x0781", "pid": "0x5567", "name": "SanDisk Cruzer Blade",
                                             "image": str(stick)}]))
    shim_env = {**env, "LABCTL_VMRUN": str(SHIM), "VMRUN_SHIM_STATE": str(d / "shim"),
                "VMRUN_SHIM_USB": str(d / "usb.json")}
    took = up(d / "lab.yaml", shim_env)
    calls = len((d / "shim" / "calls.jsonl").read_text().splitlines())
    return took, calls


def qemu_install(d: Path, env: dict[str, str]) -> float:
    d.mkdir()
    lab = seed_lab()
    lab["backend"] = "qemu"
    lab["stick"] = {"image": "sticks/{seat}.img", "size": "16G"}  # QEMU's twin of the passed-through stick
    (d / "lab.yaml").write_text(yaml.safe_dump(lab, sort_keys=False))
    return up(d / "lab.yaml", env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1, help="installs per backend (alternating); the median is shown")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="labctl-bench-vmware-") as tmp:
        base = Path(tmp)
        env = {**os.environ, "LAB_ROOT_PASSWORD": os.environ.get("LAB_ROOT_PASSWORD", "VMware1!lab"),
               "LABCTL_CACHE_DIR": os.environ.get("LABCTL_CACHE_DIR", str(base / "cache"))}
        # build the simulator ISO once, outside the timings
        subprocess.run([sys.executable, "-m", "labctl", "sim", "build"], check=True, capture_output=True,
                       env=env, timeout=600)
        vm_times: list[float] = []
        qemu_times: list[float] = []
        calls: list[int] = []
        for i in range(args.runs):
            t, n = vmware_install(base / f"vmware{i}", env)
            vm_times.append(t)
            calls.append(n)
            qemu_times.append(qemu_install(base / f"qemu{i}", env))
        vm, qe = statistics.median(vm_times), statistics.median(qemu_times)
        key_rate = seed_lab()["console"]["key_rate"]
        print(f"seed install (iso: sim, {key_rate:g} keys/s), median of {args.runs}:")
        print(f"  vmware backend through the vmrun shim: {vm:7.1f} s   ({', '.join(f'{t:.1f}' for t in vm_times)})")
        print(f"  qemu backend (baseline):               {qe:7.1f} s   ({', '.join(f'{t:.1f}' for t in qemu_times)})")
        ratio = vm / qe
        print(f"  ratio vmware/qemu: {ratio:.3f}  (target <= {TARGET:.2f}: {'met' if ratio <= TARGET else 'NOT met'})")
        print(f"  vmrun calls per install: {statistics.median(calls):g}  ({', '.join(map(str, calls))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
