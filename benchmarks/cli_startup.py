#!/usr/bin/env python3
"""Median wall time of `labctl --help` over 10 runs (the bar: under 0.3 s), beside `python -c pass`.

The baseline is the interpreter's own start-up in the same run, so the ratio shows what labctl adds.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

RUNS = 10
BAR_S = 0.3


def median_wall(argv: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=30)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    labctl = shutil.which("labctl")
    argv = [labctl, "--help"] if labctl else [sys.executable, "-m", "labctl", "--help"]
    base = median_wall([sys.executable, "-c", "pass"])
    ours = median_wall(argv)
    verdict = "PASS" if ours < BAR_S else "FAIL"
    print(f"{'command':<28}{'median (s)':>12}{'ratio':>8}")
    print(f"{'python -c pass (baseline)':<28}{base:>12.3f}{1.0:>8.2f}")
    print(f"{'labctl --help':<28}{ours:>12.3f}{ours / base:>8.2f}   bar < {BAR_S} s: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
