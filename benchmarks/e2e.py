"""The whole usb-install-sim exercise, timed: labctl's harness overhead beside a Packer-style run.

    python benchmarks/e2e.py        # ~15 minutes on 2 cores (QEMU/TCG); run it under the e2e lock

1. ``labctl up`` of labs/usb-install-sim.yaml with the simulator at real speed (``iso: sim:real``: its delays
   are those of a real install in a VM): install, enable the ESXi Shell, prove the layout, persist the USB
   settings and reboot, verify. Wall time, and the simulator's own delays, summed from the lines a real-speed
   simulator prints on its serial port (``labctl-sim: delay <ms> ms``, the UART only). The harness overhead
   is wall time minus those delays: what labctl adds (QEMU and firmware start, waits noticing a screen,
   typing, OCR).                                          bar: overhead at most 15 % of the wall time and under 20 s
2. The same steps Packer-style: the same keys, each followed by a fixed sleep long enough for the real-speed
   simulator to be ready (a Packer ``boot_command`` with ``<waitNs>``), driven through labctl's own VM and
   console steps; timed in the same run, its result checked on the stick afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labctl import layouts
from labctl.runner import (
    BuildSimulator,
    Context,
    OpenConsole,
    Prepare,
    StartVm,
    UpOptions,
    UpStep,
    playbook_variables,
    run_seat,
)
from labctl.spec import load_lab

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "VMware1!lab"
DELAY = re.compile(rb"labctl-sim: delay (\d+) ms")
BAR_SHARE, BAR_SECONDS = 0.15, 20.0

ALT_F1, ALT_F2 = "<leftAltOn><f1><leftAltOff>", "<leftAltOn><f2><leftAltOff>"
# (keys, fixed sleep after, seconds): the exercise as a Packer user writes it. The sleeps cover the
# real-speed simulator's delays plus QEMU/TCG's own time, with the margin such a script needs to pass.
# "eject" is the backend's CD eject (Packer: a VM setting), not a key.
PACKER: list[tuple[str, float]] = [
    ("", 6.0),  # boot_wait: the boot loader shows ~6 s after power-on and boots by itself 5 s later
    ("<leftShiftOn>O<leftShiftOff>", 2.0),
    (" preferVMklinux=TRUE<enter>", 60.0),  # 10 modules at 1.2 s, 15 s starting services, TCG
    ("<enter>", 3.0),  # welcome -> EULA
    ("<f11>", 15.0),  # device scan (4 s) -> disk list
    ("<enter>", 10.0),  # the only disk (the stick) -> keyboard
    ("<enter>", 3.0),  # US Default -> password
    (f"{PASSWORD}<down>{PASSWORD}<enter>", 15.0),  # system scan (5 s) -> Confirm Install
    ("<f11>", 150.0),  # the install (about 80 s at real speed)
    ("eject", 1.0),
    ("<enter>", 80.0),  # reboot: firmware, countdown, 9 files at 0.8 s, 9 modules at 2 s
    ("<f2>", 3.0),  # Authentication Required
    (f"{PASSWORD}<enter>", 5.0),  # System Customization
    ("<down>" * 8, 2.0),  # ... to Troubleshooting Options
    ("<enter>", 3.0),
    ("<enter>", 3.0),  # Enable ESXi Shell
    ("<esc>", 2.0),
    ("<esc>", 2.0),
    (ALT_F1, 3.0),
    ("root<enter>", 2.0),
    (f"{PASSWORD}<enter>", 4.0),
    ("partedUtil getptbl /dev/disks/mpx.vmhba32:C0:T0:L0<enter>", 4.0),
    ("ls -lh /<enter>", 4.0),
    ("esxcli system settings kernel set -s preferVmklinux -v FALSE<enter>", 4.0),
    ("esxcli system module set --enabled=false -m vmkusb<enter>", 4.0),
    ("esxcli system settings kernel list -o preferVmklinux<enter>", 4.0),
    ("reboot<enter>", 90.0),  # saving, 5 s, then the whole boot again
    (ALT_F1, 3.0),
    ("root<enter>", 2.0),
    (f"{PASSWORD}<enter>", 4.0),
    ("esxcli system module list | grep vmkusb<enter>", 4.0),
    ("esxcli system settings kernel list -o preferVmklinux<enter>", 4.0),
    ("exit<enter>", 2.0),
    (ALT_F2, 2.0),
]


class PackerStyle(UpStep):
    """The install and post-install as keys and fixed sleeps (the baseline this benchmark measures against)."""

    name = "packer-style keys and sleeps"

    def run(self, ctx: Context) -> None:
        for keys, sleep in PACKER:
            if keys == "eject":
                assert ctx.backend is not None
                ctx.backend.eject_cdrom()
            elif keys:
                ctx.console.send_keys(keys)
            time.sleep(sleep)  # Packer-style on purpose: this is the baseline being measured
        # where it ended, for the report of a run whose sleeps were too short
        ctx.result["final_screen"] = " | ".join(ln for ln in ctx.console.read_screen().splitlines() if ln.strip())


def lab_copy(work: Path) -> Path:
    text = (REPO / "labs" / "usb-install-sim.yaml").read_text().replace("iso: sim\n", "iso: sim:real\n")
    assert "iso: sim:real" in text
    path = work / "usb-install-sim.yaml"
    path.write_text(text)
    return path


def sim_delays(folder: Path) -> tuple[float, int]:
    """Seconds of the simulator's own delays and how many, from the serial logs under ``folder``."""
    total, count = 0, 0
    for log in folder.rglob("serial.log"):
        found = [int(m) for m in DELAY.findall(log.read_bytes())]
        if len(found) > count:  # the run folder's copy and the state folder's are the same stream
            total, count = sum(found), len(found)
    return total / 1000.0, count


def run_labctl(work: Path) -> dict[str, Any]:
    lab = lab_copy(work / "labctl")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "labctl", "up", str(lab), "--json"], capture_output=True, text=True,
                          timeout=3600, env={**os.environ, "LAB_ROOT_PASSWORD": PASSWORD}, cwd=REPO)
    wall = time.monotonic() - t0
    doc = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    delays, n = sim_delays(lab.parent)
    return {"wall": wall, "delays": delays, "n": n, "ok": proc.returncode == 0 and bool(doc.get("ok")),
            "err": proc.stderr[-1500:], "stages": stages(lab.parent)}


def stages(folder: Path) -> list[tuple[str, float]]:
    """The runner's stages and their durations (events.jsonl), where the wall time went."""
    out: list[tuple[str, float]] = []
    for events in folder.rglob("events.jsonl"):
        for line in events.read_text().splitlines():
            ev = json.loads(line)
            if ev.get("phase") == "end" and "duration" in ev:
                out.append((str(ev["step"]), float(ev["duration"])))
    return out


def run_packer(work: Path) -> dict[str, Any]:
    lab_path = lab_copy(work / "packer")
    lab = load_lab(lab_path)
    seat = lab.seat_list()[0]
    os.environ["LAB_ROOT_PASSWORD"] = PASSWORD
    steps: list[UpStep] = [Prepare(), BuildSimulator(), StartVm(), OpenConsole(), PackerStyle()]
    t0 = time.monotonic()
    ok = True
    try:
        run_seat(lab, seat, UpOptions(runs_dir=lab_path.parent / "runs"), [PASSWORD],
                 playbook_variables(lab, seat, PASSWORD), steps=steps)
    except Exception as exc:  # the baseline may fail; that is a figure too
        ok, err = False, str(exc)[-800:]
    else:
        err = ""
    wall = time.monotonic() - t0
    delays, n = sim_delays(lab_path.parent)
    for result in lab_path.parent.rglob("result.json"):
        err = (err + " final screen: " + str(json.loads(result.read_text()).get("final_screen", "")))[-1200:]
    stick = seat.stick_image(lab)
    passed = ok and stick is not None and result_on_stick(stick)
    return {"wall": wall, "delays": delays, "n": n, "ok": passed, "err": err}


def result_on_stick(stick: Path) -> bool:
    """ESXi's 6-partition USB layout and the two USB settings saved in the bootbank's state.cfg."""
    try:
        gpt = layouts.read_gpt(str(stick))
    except layouts.GptError:
        return False
    if layouts.compare(gpt, layouts.expected_layout(gpt.total_sectors, "usb")):
        return False
    out = subprocess.run(["mtype", "-i", f"{stick}@@{8224 * 512}", "::/state.cfg"], capture_output=True, text=True,
                         timeout=30, check=False).stdout
    return bool(re.search(r"^module\.vmkusb\.enabled=FALSE", out, re.M)) and bool(
        re.search(r"^kernel\.preferVmklinux=FALSE", out, re.M))


def row(what: str, value: str, baseline: str, ok: bool | None = None) -> None:
    mark = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"{what:<58} {value:>12}   {baseline}{mark}", flush=True)


def main() -> int:
    if shutil.which("qemu-system-x86_64") is None:
        print("needs qemu-system-x86_64 and OVMF (scripts/setup)", file=sys.stderr)
        return 2
    from labctl.sim.build import build_iso

    print("labctl e2e benchmark: the usb-install-sim exercise at the simulator's real speed (QEMU/TCG, 2 cores)")
    build_iso("real")  # built before the clocks start (cached)
    with tempfile.TemporaryDirectory(prefix="labctl-e2e-bench-") as tmp:
        work = Path(tmp)
        (work / "labctl").mkdir()
        (work / "packer").mkdir()
        a = run_labctl(work)
        b = run_packer(work)
    overhead = a["wall"] - a["delays"]
    share = overhead / a["wall"] if a["wall"] else 1.0
    row("labctl up (evidence waits): wall time", f"{a['wall']:.1f} s", f"completed: {a['ok']}", a["ok"])
    row(f"   the simulator's own delays (serial, {a['n']})", f"{a['delays']:.1f} s", "")
    row("   harness overhead = wall - delays", f"{overhead:.1f} s", f"< {BAR_SECONDS:.0f} s", overhead < BAR_SECONDS)
    row("   overhead share of the wall time", f"{100 * share:.1f} %", f"<= {100 * BAR_SHARE:.0f} %",
        share <= BAR_SHARE)
    staged = 0.0
    for name, seconds in a["stages"]:
        staged += seconds
        row(f"   stage: {name}", f"{seconds:.1f} s", "")
    row("   after the stages (report, animation, exit)", f"{a['wall'] - staged:.1f} s", "")
    row("Packer-style (fixed sleeps): wall time", f"{b['wall']:.1f} s", f"completed: {b['ok']}", None)
    row(f"   the simulator's own delays (serial, {b['n']})", f"{b['delays']:.1f} s", "")
    row("   time not spent in the simulator's delays", f"{b['wall'] - b['delays']:.1f} s", "")
    row("labctl vs Packer-style", f"{a['wall'] - b['wall']:+.1f} s", "labctl faster when negative",
        a["wall"] < b["wall"])
    if not a["ok"]:
        print("labctl up failed:\n" + a["err"], file=sys.stderr)
    if not b["ok"]:
        print("Packer-style run failed:\n" + b["err"], file=sys.stderr)
    return 0 if a["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
