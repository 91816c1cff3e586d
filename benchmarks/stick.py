#!/usr/bin/env python3
"""Stick imaging vs dd, measured on what a USB stick would feel (run as root).

A loop device over a sparse 16 GiB file stands in for the stick. It holds ESXi's 6-partition USB
layout (1,5,6,7,8,9 at the sectors of reference §3, written by labctl.layouts) with ~400 MiB of
os.urandom data in partitions 1, 5, 6 and 8. For every command the loop device's own counters
(/sys/block/loopN/stat: sectors read = field 3, written = field 7, discarded = field 14 — counted as
written, sticks have no discard) give the bytes the stick would have moved; from them the time on a
USB 2 stick (30 MB/s read, 10 MB/s write) and a USB 3 stick (100/30 MB/s) is modelled. dd (bs=4M,
conv=fsync) runs in the same run on the same device as the baseline. Scenarios:

  backup    labctl stick backup DEV IMG            vs  dd if=DEV of=dd.img bs=4M (conv=sparse)
  restore1  onto a stick full of other data (random bytes in and between the partitions)
  restore2  onto a stick restored before and then used (a few MiB changed in the bootbank p5 and
            the store p8, a 200 MiB core dump at the start of p9)
  dd        dd if=IMG of=DEV bs=4M conv=fsync      (the baseline for both restores)
  restore1h restore1 again with --coredump-header-only (opt-in, not exact in the core dump
            partitions' bodies): printed for information, not one of the bars

Then the same for ESXi 8.0 on a 16 GiB stick (layout esxi8: 1, 5, 6 with 1 GiB bootbanks, 7 OSData as
VMFS-L to the end): ~650 MiB of data in p1, p5, p6 and inside OSData (its metadata, the Tools locker,
logs, a core dump file). OSData spans the rest of the stick and is kept byte for byte (only zeros are
skipped; no partition is held to a header), so an exact restore onto junk must zero every junk byte
inside it: the junk is written over the first 5.4 GiB (the system area and 4 GiB of OSData) and the
last 16 MiB. The 8.0 figures are printed beside the 6.7 ones.

Usage: sudo python3 benchmarks/stick.py [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labctl import layouts

MIB = 1 << 20
GIB = 1 << 30
TOTAL = 33554432  # 16 GiB in sectors
USB2 = (30e6, 10e6)
USB3 = (100e6, 30e6)
# (partition, offset in the partition, length): ~400 MiB, written as a FAT-ish start plus files
DATA = [(1, 0, 3 * MIB)] + [
    (p, off, n) for p in (5, 6) for off, n in [(0, 2 * MIB), (4 * MIB, 60 * MIB), (70 * MIB, 38 * MIB),
                                                (120 * MIB, 30 * MIB)]
] + [(8, 0, 2 * MIB), (8, 8 * MIB, 80 * MIB), (8, 100 * MIB, 45 * MIB)]


@dataclass
class Measure:
    name: str
    read: int
    written: int
    wall: float

    def model(self, speeds: tuple[float, float]) -> float:
        return self.read / speeds[0] + self.written / speeds[1]


def sh(*argv: str, timeout: float = 1800) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout).stdout.strip()


def counters(dev: str) -> tuple[int, int]:
    f = Path(f"/sys/block/{os.path.basename(dev)}/stat").read_text().split()
    read = int(f[2]) * 512
    written = int(f[6]) * 512 + (int(f[13]) * 512 if len(f) > 13 else 0)
    return read, written


def measure(name: str, dev: str, argv: list[str]) -> Measure:
    sh("blockdev", "--flushbufs", dev)  # nothing of the device in the page cache before a run
    r0, w0 = counters(dev)
    t0 = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=3600,
                         env=dict(os.environ, CI="true"), check=False)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        raise SystemExit(f"{name}: {' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    r1, w1 = counters(dev)
    for line in (res.stdout + res.stderr).strip().splitlines():
        print(f"    {line}")
    return Measure(name, r1 - r0, w1 - w0, wall)


def make_stick(path: Path, layout: layouts.LayoutName,
               data: list[tuple[int, int, int]]) -> tuple[list[layouts.TableEntry], dict[int, tuple[int, int]], int]:
    """A sparse 16 GiB stick file with ESXi's ``layout`` GPT and os.urandom data at (partition, offset, bytes):
    the table, each partition's byte span, and how many data bytes were written."""
    with open(path, "wb") as f:
        f.truncate(TOTAL * 512)
    table = layouts.expected_layout(TOTAL, "usb", layout)
    layouts.write_gpt(str(path), TOTAL, table)
    spans = {e.number: (e.start * 512, (e.end + 1) * 512) for e in table}
    data_bytes = 0
    with open(path, "r+b") as f:
        for p, off, n in data:
            f.seek(spans[p][0] + off)
            f.write(os.urandom(n))
            data_bytes += n
        os.fsync(f.fileno())
    return table, spans, data_bytes


def extent_digests(path: Path) -> dict[str, str]:
    """sha256 of each GPT area and partition, read straight from the backing file."""
    gpt = layouts.read_gpt(str(path))
    spans = {name: (a * 512, (b + 1) * 512) for a, b, name in gpt.metadata_extents()}
    spans.update({f"p{p.number}": (p.first_lba * 512, (p.last_lba + 1) * 512) for p in gpt.partitions})
    out = {}
    with open(path, "rb", buffering=0) as f:
        for name, (a, b) in spans.items():
            h = hashlib.sha256()
            pos = a
            while pos < b:
                chunk = os.pread(f.fileno(), min(16 * MIB, b - pos), pos)
                h.update(chunk)
                pos += len(chunk)
            out[name] = h.hexdigest()
    return out


def region_digest(path: Path, a: int, b: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        pos = a
        while pos < b:
            chunk = os.pread(f.fileno(), min(16 * MIB, b - pos), pos)
            h.update(chunk)
            pos += len(chunk)
    return h.hexdigest()


def fill_random(path: Path, a: int, b: int) -> None:
    """Unique random-looking bytes over [a, b): a 64 MiB urandom pool, each MiB stamped with its offset."""
    pool = os.urandom(64 * MIB)
    fd = os.open(path, os.O_WRONLY)
    try:
        pos, i = a, 0
        while pos < b:
            n = min(16 * MIB, b - pos)
            chunk = bytearray(pool[(i * 16 * MIB) % (64 * MIB):][:n])
            for k in range(0, n, MIB):
                chunk[k: k + 16] = (pos + k).to_bytes(16, "little")
            os.pwrite(fd, chunk, pos)
            pos += n
            i += 1
        os.fsync(fd)
    finally:
        os.close(fd)


def count_differing(a_path: Path, b_path: Path, spans: list[tuple[int, int]]) -> int:
    import numpy as np

    diff = 0
    with open(a_path, "rb", buffering=0) as fa, open(b_path, "rb", buffering=0) as fb:
        for a, b in spans:
            pos = a
            while pos < b:
                n = min(16 * MIB, b - pos)
                x = np.frombuffer(os.pread(fa.fileno(), n, pos), dtype=np.uint8)
                y = np.frombuffer(os.pread(fb.fileno(), n, pos), dtype=np.uint8)
                diff += int(np.count_nonzero(x != y))
                pos += n
    return diff


def use_the_stick(path: Path, spans: dict[int, tuple[int, int]]) -> list[tuple[int, int]]:
    """What a week in the lab does to a stick: state.tgz rewritten and a few FAT/dir sectors
    updated in the bootbank (p5) and the store (p8), a 200 MiB core dump at the start of p9.
    Returns the touched spans."""
    touched = []
    fd = os.open(path, os.O_WRONLY)
    try:
        for p, rewrites, sectors in ((5, [(61 * MIB, 2 * MIB + 300 * 1024)], 12), (8, [(20 * MIB, 1 * MIB)], 8)):
            base = spans[p][0]
            for off, n in rewrites:
                os.pwrite(fd, os.urandom(n), base + off)
                touched.append((base + off, base + off + n))
            for k in range(sectors):  # a few bytes in scattered metadata sectors
                off = base + 64 * 1024 + k * 40960 + 96
                os.pwrite(fd, os.urandom(24), off)
                touched.append((off, off + 24))
        p9 = spans[9][0]
        pos = p9
        while pos < p9 + 200 * MIB:
            os.pwrite(fd, os.urandom(8 * MIB), pos)
            pos += 8 * MIB
        touched.append((p9, p9 + 200 * MIB))
        os.fsync(fd)
    finally:
        os.close(fd)
    return touched


def fmt_b(n: float) -> str:
    return f"{n / MIB:,.1f} MiB"


# ESXi 8.0 on a 16 GiB stick: (partition, offset in the partition, length)
DATA8 = [(1, 0, 3 * MIB)] + [
    (p, off, n) for p in (5, 6) for off, n in [(0, 2 * MIB), (4 * MIB, 60 * MIB), (70 * MIB, 38 * MIB),
                                                (120 * MIB, 30 * MIB)]
] + [(7, 0, 4 * MIB), (7, 1 * GIB, 100 * MIB), (7, 3 * GIB, 80 * MIB), (7, 8 * GIB, 64 * MIB)]


@dataclass
class Esxi8:
    """What the 8.0 run measured."""

    results: dict[str, Measure]
    image_alloc: int
    data_bytes: int
    differing: int
    exact1: bool
    exact2: bool
    exact_dd: bool


def run_esxi8(work: Path, labctl: list[str], keep: bool = False) -> Esxi8:
    """Backup, restore onto junk, restore onto a used stick and dd, on a 16 GiB stick with ESXi 8.0's layout."""
    stick, img, ddimg = work / "stick8.raw", work / "stick8.img", work / "dd8.img"
    table, spans, data_bytes = make_stick(stick, "esxi8", DATA8)
    print(f"  GPT: {' '.join(str(e.number) for e in table)} (p7 OSData {fmt_b(spans[7][1] - spans[7][0])}); "
          f"{fmt_b(data_bytes)} of os.urandom data in p1, p5, p6, p7")
    golden = extent_digests(stick)
    dev = sh("losetup", "--find", "--show", str(stick))
    results: dict[str, Measure] = {}
    try:
        print("8.0 backup:")
        results["backup"] = measure("labctl backup (8.0)", dev, [*labctl, "stick", "backup", dev, str(img)])
        results["dd-backup"] = measure("dd backup (8.0)", dev, ["dd", f"if={dev}", f"of={ddimg}", "bs=4M",
                                                                "conv=sparse", "status=none"])
        ddimg.unlink()
        image_alloc = os.stat(img).st_blocks * 512

        print("8.0 restore onto a stick full of other data:")
        junk_end = spans[7][0] + 4 * GIB
        fill_random(stick, 0, junk_end)
        fill_random(stick, TOTAL * 512 - 16 * MIB, TOTAL * 512)
        results["restore1"] = measure("labctl restore (8.0 junk)", dev,
                                      [*labctl, "stick", "restore", str(img), dev, "--yes", "--allow-non-usb"])
        exact1 = extent_digests(stick) == golden

        print("8.0 restore onto a restored-then-used stick:")
        touched = []
        fd = os.open(stick, os.O_WRONLY)
        try:  # state.tgz in the bootbank, logs growing and a new core dump inside OSData
            for off, n in ((spans[5][0] + 61 * MIB, 2 * MIB + 300 * 1024), (spans[7][0] + 3 * GIB + 80 * MIB, 50 * MIB),
                           (spans[7][0] + 8 * GIB, 200 * MIB), (spans[7][0] + 64 * 1024, 4096)):
                pos = off
                while pos < off + n:
                    k = min(8 * MIB, off + n - pos)
                    os.pwrite(fd, os.urandom(k), pos)
                    pos += k
                touched.append((off, off + n))
            os.fsync(fd)
        finally:
            os.close(fd)
        differing = count_differing(stick, img, touched)
        print(f"    {fmt_b(differing)} ({differing} bytes) differ from the image")
        results["restore2"] = measure("labctl restore (8.0 used)", dev,
                                      [*labctl, "stick", "restore", str(img), dev, "--yes", "--allow-non-usb"])
        exact2 = extent_digests(stick) == golden

        print("8.0 dd restore (baseline for both):")
        results["dd-restore"] = measure("dd restore (8.0)", dev, ["dd", f"if={img}", f"of={dev}", "bs=4M",
                                                                  "conv=fsync", "status=none"])
        exact_dd = extent_digests(stick) == golden
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=60, check=False)
        for f in () if keep else (stick, img, ddimg, Path(str(img) + ".manifest.json")):
            f.unlink(missing_ok=True)
    return Esxi8(results, image_alloc, data_bytes, differing, exact1, exact2, exact_dd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", help="folder on a real disk (default: a new one under /var/tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("benchmarks/stick.py needs root (loop devices)", file=sys.stderr)
        return 2
    for tool in ("losetup", "dd", "blockdev"):
        if shutil.which(tool) is None:
            print(f"needs {tool}", file=sys.stderr)
            return 2
    work = Path(args.workdir or tempfile.mkdtemp(prefix="labctl-bench-", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    stick, img, ddimg = work / "stick.raw", work / "stick.img", work / "dd.img"
    labctl = [sys.executable, "-m", "labctl"]
    dev = ""
    t_start = time.monotonic()
    try:
        print(f"setting up a 16 GiB stick in {work} ...")
        table, spans, data_bytes = make_stick(stick, "esxi6", DATA)
        print(f"  GPT: {' '.join(str(e.number) for e in table)}; "
              f"{fmt_b(data_bytes)} of os.urandom data in p1, p5, p6, p8")
        golden = extent_digests(stick)
        dev = sh("losetup", "--find", "--show", str(stick))
        print(f"  loop device {dev}")
        results: dict[str, Measure] = {}

        print("backup:")
        results["backup"] = measure("labctl backup", dev, [*labctl, "stick", "backup", dev, str(img)])
        results["dd-backup"] = measure("dd backup", dev, ["dd", f"if={dev}", f"of={ddimg}", "bs=4M",
                                                          "conv=sparse", "status=none"])
        ddimg.unlink()
        image_alloc = os.stat(img).st_blocks * 512

        print("restore onto a stick full of other data:")
        p9_end = spans[9][1]
        gap_probe = (p9_end, p9_end + 64 * MIB)  # unallocated space after p9: must be left alone
        fill_random(stick, 0, p9_end + 64 * MIB)
        fill_random(stick, TOTAL * 512 - 16 * MIB, TOTAL * 512)
        gap_before = region_digest(stick, *gap_probe)
        results["restore1"] = measure("labctl restore (junk)", dev,
                                      [*labctl, "stick", "restore", str(img), dev, "--yes", "--allow-non-usb"])
        exact1 = extent_digests(stick) == golden
        gap_kept = region_digest(stick, *gap_probe) == gap_before

        print("restore onto a restored-then-used stick:")
        touched = use_the_stick(stick, spans)
        differing = count_differing(stick, img, touched)
        print(f"    {fmt_b(differing)} ({differing} bytes) differ from the image")
        results["restore2"] = measure("labctl restore (used)", dev,
                                      [*labctl, "stick", "restore", str(img), dev, "--yes", "--allow-non-usb"])
        exact2 = extent_digests(stick) == golden

        print("dd restore (baseline for both):")
        results["dd-restore"] = measure("dd restore", dev, ["dd", f"if={img}", f"of={dev}", "bs=4M",
                                                            "conv=fsync", "status=none"])
        exact_dd = extent_digests(stick) == golden

        print("restore onto a stick full of other data, --coredump-header-only (information):")
        fill_random(stick, 0, p9_end + 64 * MIB)
        fill_random(stick, TOTAL * 512 - 16 * MIB, TOTAL * 512)
        results["restore1h"] = measure("labctl restore (junk, -h)", dev,
                                       [*labctl, "stick", "restore", str(img), dev, "--yes", "--allow-non-usb",
                                        "--coredump-header-only"])
        after = extent_digests(stick)
        exact1h = all(after[k] == golden[k] for k in golden if k not in ("p7", "p9")) and all(
            region_digest(stick, spans[p][0], spans[p][0] + MIB) == region_digest(img, spans[p][0],
                                                                                  spans[p][0] + MIB)
            for p in (7, 9))
        verify1h = subprocess.run([*labctl, "stick", "verify", str(img), dev, "--coredump-header-only"],
                                  capture_output=True, timeout=3600, check=False).returncode == 0
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=60, check=False)
        dev = ""
        if not args.keep:  # room for the 8.0 stick (dd restore filled this one)
            stick.unlink()

        print("ESXi 8.0: setting up a 16 GiB stick ...")
        e8 = run_esxi8(work, labctl, args.keep)
    finally:
        if dev:
            subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=60, check=False)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    # ------------------------------------------------------------------------------ the table
    print()
    print(f"{'command':<24}{'read':>14}{'written':>14}{'wall s':>9}{'USB2 s':>10}{'USB3 s':>10}")
    for m in results.values():
        print(f"{m.name:<24}{fmt_b(m.read):>14}{fmt_b(m.written):>14}{m.wall:>9.1f}"
              f"{m.model(USB2):>10.1f}{m.model(USB3):>10.1f}")
    b, ddb, r1, r2, ddr, r1h = (results[k] for k in ("backup", "dd-backup", "restore1", "restore2", "dd-restore",
                                                     "restore1h"))
    stick_size = TOTAL * 512
    extents_bytes = sum(e - s for s, e in spans.values()) + 67 * 512
    bars: list[tuple[str, str, str, bool | None]] = [
        ("backup reads vs dd", f"{b.read / max(ddb.read, 1):.4f} (1/{ddb.read / max(b.read, 1):.1f})",
         "<= 1/4", b.read * 4 <= ddb.read),
        ("image size / stick", f"{image_alloc / stick_size:.2%} ({fmt_b(image_alloc)})", "<= 5%",
         image_alloc <= 0.05 * stick_size),
        ("restore1 exact", str(exact1 and gap_kept), "GPT+partitions equal, gap untouched", exact1 and gap_kept),
    ]
    for label, speeds in (("USB2", USB2), ("USB3", USB3)):
        x = ddr.model(speeds) / r1.model(speeds)
        bars.append((f"restore1 speed-up {label}", f"{x:.2f}x", ">= 8x", x >= 8))
    bars.append(("restore2 exact", str(exact2), "GPT+partitions equal", exact2))
    bars.append(("restore2 written", f"{fmt_b(r2.written)} for {fmt_b(differing)} differing",
                 f"<= {fmt_b(1.2 * differing + MIB)}", r2.written <= 1.2 * differing + MIB))
    for label, speeds in (("USB2", USB2), ("USB3", USB3)):
        x = ddr.model(speeds) / r2.model(speeds)
        bars.append((f"restore2 speed-up {label}", f"{x:.2f}x", ">= 10x", x >= 10))
    bars.append(("dd restore exact", str(exact_dd), "(sanity)", exact_dd))
    bars.append(("restore1h exact but p7/p9", str(exact1h and verify1h), "(opt-in; p7/p9 first MiB exact)", None))
    for label, speeds in (("USB2", USB2), ("USB3", USB3)):
        x = ddr.model(speeds) / r1h.model(speeds)
        bars.append((f"restore1h speed-up {label}", f"{x:.2f}x", "(opt-in, information only)", None))
    print()
    print(f"{'bar':<26}{'measured':<42}{'target':<38}result")
    for name, got, want, ok in bars:
        print(f"{name:<26}{got:<42}{want:<38}{'info' if ok is None else 'PASS' if ok else 'FAIL'}")
    bound = stick_size / extents_bytes
    print()
    print(f"note: an exact restore onto junk must write every byte of the GPT areas and partitions "
          f"({fmt_b(extents_bytes)}); with writes alone that is at best {bound:.2f}x dd's 16 GiB, so the "
          f">= 8x bar for restore1 cannot be met by any exact restore under this model.")

    # ------------------------------------------------------------------ ESXi 8.0 beside ESXi 6.7
    r8 = e8.results
    print()
    print(f"{'command (ESXi 8.0)':<24}{'read':>14}{'written':>14}{'wall s':>9}{'USB2 s':>10}{'USB3 s':>10}")
    for m in r8.values():
        print(f"{m.name:<24}{fmt_b(m.read):>14}{fmt_b(m.written):>14}{m.wall:>9.1f}"
              f"{m.model(USB2):>10.1f}{m.model(USB3):>10.1f}")
    print()
    print(f"{'figure':<38}{'ESXi 6.7 (1,5,6,7,8,9)':<30}{'ESXi 8.0 (1,5,6,7 OSData)':<30}")
    rows8 = [
        ("data on the stick", fmt_b(data_bytes), fmt_b(e8.data_bytes)),
        ("backup image size", f"{fmt_b(image_alloc)} ({image_alloc / stick_size:.2%})",
         f"{fmt_b(e8.image_alloc)} ({e8.image_alloc / stick_size:.2%})"),
        ("backup reads vs dd", f"1/{ddb.read / max(b.read, 1):.1f}",
         f"1/{r8['dd-backup'].read / max(r8['backup'].read, 1):.1f}"),
        ("restore onto junk: written", fmt_b(r1.written), fmt_b(r8["restore1"].written)),
        ("restore onto junk: exact", str(exact1 and gap_kept), str(e8.exact1)),
    ]
    for label, speeds in (("USB2", USB2), ("USB3", USB3)):
        rows8.append((f"restore onto junk vs dd {label}", f"{ddr.model(speeds) / r1.model(speeds):.2f}x",
                      f"{r8['dd-restore'].model(speeds) / r8['restore1'].model(speeds):.2f}x"))
    rows8.append(("restore of a used stick: written", f"{fmt_b(r2.written)} for {fmt_b(differing)}",
                  f"{fmt_b(r8['restore2'].written)} for {fmt_b(e8.differing)}"))
    rows8.append(("restore of a used stick: exact", str(exact2), str(e8.exact2)))
    for label, speeds in (("USB2", USB2), ("USB3", USB3)):
        rows8.append((f"restore of a used stick vs dd {label}", f"{ddr.model(speeds) / r2.model(speeds):.2f}x",
                      f"{r8['dd-restore'].model(speeds) / r8['restore2'].model(speeds):.2f}x"))
    rows8.append(("dd restore exact (sanity)", str(exact_dd), str(e8.exact_dd)))
    for name, a, c in rows8:
        print(f"{name:<38}{a:<30}{c:<30}")
    ok8 = e8.exact1 and e8.exact2 and e8.exact_dd and r8["restore2"].written <= 1.2 * e8.differing + MIB
    print(f"ESXi 8.0: exact restores and a restore of a used stick writing what differs: {'PASS' if ok8 else 'FAIL'}")
    print(f"total benchmark time {time.monotonic() - t_start:.0f} s")
    return 0 if all(ok is not False for *_, ok in bars) and exact1h and verify1h and ok8 else 1


if __name__ == "__main__":
    raise SystemExit(main())
