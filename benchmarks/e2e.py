"""The whole usb-install-sim exercise, timed: labctl's harness overhead beside a Packer-style run.

    python benchmarks/e2e.py        # ~15 minutes on 2 cores (QEMU/TCG); run it under the e2e lock
    python benchmarks/e2e.py --labctl-only   # ~4 minutes: part 1 alone (no baseline: not the figures)

1. ``labctl up`` of labs/usb-install-sim.yaml with the simulator at real speed (``iso: sim:real``: its delays
   are those of a real install in a VM): install, enable the ESXi Shell, prove the layout, persist the USB
   settings and reboot, verify. Wall time, and the simulator's own delays, summed from the lines a real-speed
   simulator prints on its serial port (``labctl-sim: delay <ms> ms``, the UART only). The harness overhead
   is wall time minus those delays: what labctl adds (QEMU and firmware start, waits noticing a screen,
   typing, OCR).                                          bar: overhead at most 15 % of the wall time and under 20 s
   The boot loader's countdown, when it runs out by itself, is the machine's own wait and is announced as a delay
   too. The breakdown below the figures splits the overhead (serial lines stamped by the host as they appear,
   and labctl's events.jsonl): QEMU start, firmware per boot, the installer's partition writes, typing at the key
   rate, shell commands, each wait's latency (the last delay's end to labctl's match) — so the part that is
   labctl's own is the overhead less firmware, typing and the guest's work. LABCTL_BENCH_KEEP=DIR keeps the
   labctl run's folder (no images) for a closer look.
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
import threading
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
NOTE = re.compile(rb"labctl-sim: (delay (\d+) ms( \(boot loader countdown\))?|writing a partition|partition written)")
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


class SerialClock(threading.Thread):
    """Stamps each ``labctl-sim: delay`` line with the host's clock as QEMU writes it to the seat's serial log.

    The serial log carries no time of its own; a reader that polls it every 10 ms knows, to within that, when
    each of the simulator's delays began, so a wait's latency (the delay's end to labctl's match) is
    measurable.
    """

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.marks: list[tuple[float, float]] = []  # (host time.time() the line appeared, delay seconds)
        self.countdowns: list[float] = []  # when the boot loader's countdown ran out by itself
        self.writes: list[tuple[float, float]] = []  # the installer writing each partition: (began, ended)
        self.done = threading.Event()

    def run(self) -> None:
        log: Path | None = None
        seen, tail = 0, b""
        while not self.done.is_set():
            if log is None:
                log = next((p for p in self.folder.rglob("serial.log") if "runs" not in p.parts), None)
            if log is not None and log.exists():
                data = log.read_bytes()
                if len(data) < seen:  # a new power-on truncated it
                    seen, tail = 0, b""
                now = time.time()
                chunk, seen = tail + data[seen:], len(data)
                last = chunk.rfind(b"\n")
                tail = chunk[last + 1:] if last >= 0 else chunk
                for m in NOTE.finditer(chunk[:last + 1] if last >= 0 else b""):
                    if m.group(2) is not None:
                        self.marks.append((now, int(m.group(2)) / 1000.0))
                        if m.group(3):
                            self.countdowns.append(now)
                    elif m.group(1) == b"writing a partition":
                        self.writes.append((now, now))
                    elif self.writes:
                        self.writes[-1] = (self.writes[-1][0], now)
            time.sleep(0.01)


def firmware_boot(work: Path, iso: Path) -> float:
    """Seconds from starting QEMU by hand (no labctl: the seed's VM, OVMF, the simulator's CD) to OVMF
    starting the CD's EFI application (its ``BdsDxe: starting`` line on serial): the floor of one power-on."""
    from labctl.backends.qemu_argv import OVMF_CODE, OVMF_VARS

    vars_copy, log = work / "vars.fd", work / "fw-serial.log"
    shutil.copy(OVMF_VARS, vars_copy)
    log.unlink(missing_ok=True)
    argv = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg",
            "-smp", "2", "-m", "8192",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}", "-device", "VGA", "-display", "none",
            "-drive", f"if=none,id=cdrom,media=cdrom,readonly=on,format=raw,file={iso}",
            "-device", "ide-cd,bus=ide.0,drive=cdrom,id=cd0,bootindex=0", "-device", "qemu-xhci,id=usb",
            "-nic", "none", "-chardev", f"file,id=s0,path={log}", "-serial", "chardev:s0"]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - t0 < 120:
            if log.exists() and b"BdsDxe: starting" in log.read_bytes():
                return time.monotonic() - t0
            time.sleep(0.01)
        raise RuntimeError("OVMF did not start the simulator within 120 s")
    finally:
        proc.kill()
        proc.wait(10)


def run_labctl(work: Path) -> dict[str, Any]:
    lab = lab_copy(work / "labctl")
    clock = SerialClock(lab.parent)
    clock.start()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "labctl", "up", str(lab), "--json"], capture_output=True, text=True,
                          timeout=3600, env={**os.environ, "LAB_ROOT_PASSWORD": PASSWORD}, cwd=REPO)
    wall = time.monotonic() - t0
    clock.done.set()
    clock.join(5)
    doc = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    delays, n = sim_delays(lab.parent)
    keep = os.environ.get("LABCTL_BENCH_KEEP")
    if keep:
        shutil.copytree(lab.parent, Path(keep) / f"labctl-{int(time.time())}", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.img", "*.iso", "*.fd"))
    return {"wall": wall, "delays": delays, "n": n, "ok": proc.returncode == 0 and bool(doc.get("ok")),
            "err": proc.stderr[-1500:], "stages": stages(lab.parent), "events": all_events(lab.parent),
            "marks": clock.marks, "countdowns": clock.countdowns, "writes": clock.writes}


def all_events(folder: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for events in folder.rglob("events.jsonl"):
        out.extend(json.loads(line) for line in events.read_text().splitlines())
    return out


def run_commands() -> dict[str, str]:
    """Each ``run`` step's command by step name, from the lab's playbooks (to time the typing of it)."""
    import yaml

    out: dict[str, str] = {}
    for book in (REPO / "labs" / "playbooks").glob("*.yaml"):
        doc = yaml.safe_load(book.read_text())
        for step in doc.get("steps", []) if isinstance(doc, dict) else []:
            if isinstance(step, dict) and isinstance(step.get("run"), dict) and "command" in step["run"]:
                command = str(step["run"]["command"]).replace("{usb_disk}", "mpx.vmhba32:C0:T0:L0")
                out.setdefault(str(step.get("name", "")), command)
    return out


def breakdown(a: dict[str, Any]) -> None:
    """Where labctl's wall time went, from its event log and the host-stamped serial delays.

    The actions of the playbooks are sequential, so their durations add up; the simulator's delays happen
    inside them (mostly inside waits). Each wait's latency is the time from the end of the last delay that ended
    within the wait to the wait's match: the guest drawing the screen under TCG plus labctl noticing it.
    """
    events: list[dict[str, Any]] = a["events"]
    marks: list[tuple[float, float]] = a["marks"]
    acts: dict[str, float] = {}
    for ev in events:
        if "action" in ev and "duration" in ev:
            acts[str(ev["action"])] = acts.get(str(ev["action"]), 0.0) + float(ev["duration"])
    stage_total = {name: sec for name, sec in a["stages"]}
    waits = [ev for ev in events if ev.get("action") == "wait" and "start" in ev and "duration" in ev]
    rows: list[tuple[float, float, float, str]] = []  # latency, delays inside, duration, step
    for ev in waits:
        start, end = float(ev["start"]), float(ev["start"]) + float(ev["duration"])
        inside = [(t, d) for t, d in marks if start - 0.05 <= t <= end]
        in_delay = sum(min(t + d, end) - max(t, start) for t, d in inside if t + d > start)
        last_end = max((t + d for t, d in inside if t + d <= end + 0.05), default=start)
        rows.append((max(0.0, end - max(last_end, start)), in_delay, float(ev["duration"]), str(ev["step"])))
    typing = acts.get("type", 0.0) + acts.get("keys", 0.0) + acts.get("select", 0.0)
    rate = next((float(ev["key_rate"]) for ev in events if "key_rate" in ev), 30.0)
    commands = run_commands()
    runs = [ev for ev in events if ev.get("action") == "run" and ev.get("result") != "skipped"]
    # the seconds each command line took to type, as the run step recorded them
    run_typing = sum(float(ev["typed"]) if "typed" in ev else (len(commands.get(str(ev["step"]), "")) + 1) / rate
                     for ev in runs)
    in_waits = sum(r[1] for r in rows)
    row("   breakdown (events.jsonl, serial stamped by the host):", "", "")
    row("     simulator delays inside labctl's waits", f"{in_waits:.1f} s", f"of {a['delays']:.1f} s announced")
    row("     simulator delays elsewhere (during keys, commands)", f"{a['delays'] - in_waits:.1f} s", "")
    row("     QEMU start -> VNC + open console (per power-on)",
        f"{stage_total.get('start VM', 0.0) + stage_total.get('open console', 0.0):.1f} s", "")
    boots = [r for r in rows if "boot loader" in r[3]]
    for i, r in enumerate(boots, 1):
        row(f"     power-on {i}: firmware to the boot loader (+ noticing)", f"{r[0]:.1f} s", f"wait {r[2]:.1f} s")
    reboots: list[float] = []
    for i, ran_out in enumerate(a["countdowns"], 2):
        # the countdown's line comes when it ran out; it began 5 s earlier; the guest's previous delay ended
        # where the reboot began (the installer's or the shell's last delay before it reset)
        began = ran_out - 5.0
        before = max((t + d for t, d in marks if t + d <= began - 0.05), default=began)
        reboots.append(began - before)
        row(f"     reboot {i}: reset + firmware to the boot loader", f"{began - before:.1f} s",
            "guest under TCG (the countdown itself is a delay)")
    writes = a["writes"]
    row(f"     installer writing {len(writes)} partitions (guest, TCG)", f"{sum(e - b for b, e in writes):.1f} s",
        "serial-stamped, inside the install wait")
    row(f"     typing and keys (type/keys/select; {rate:g} keys/s, as the guest's keyboard has room)",
        f"{typing:.1f} s",
        f"of which select {acts.get('select', 0.0):.1f} s")
    row(f"     {len(runs)} shell commands: typing them", f"{run_typing:.1f} s", "as each run step timed it")
    row("     ... the rest of those commands (output, prompt, reading it)",
        f"{acts.get('run', 0.0) - run_typing:.1f} s", "")
    lat = sum(r[0] for r in rows if "boot loader" not in r[3])
    row(f"     wait latency, other {len(rows) - len(boots)} waits (delay end -> match)", f"{lat:.1f} s",
        "guest drawing under TCG + labctl noticing")
    rest = sum(r[2] - r[1] - r[0] for r in rows)
    row("     rest of the waits (guest work between delays)", f"{rest:.1f} s", "")
    firmware = sum(r[0] for r in boots) + sum(reboots)
    keys_only = typing - acts.get("select", 0.0)
    not_harness = firmware + keys_only + run_typing + (rest - sum(reboots))
    overhead = a["wall"] - a["delays"]
    row("   the overhead that is not the harness's:", "", "")
    row("     firmware boots + typing at the key rate + guest work between delays", f"{not_harness:.1f} s",
        f"{firmware:.1f} + {keys_only + run_typing:.1f} + {rest - sum(reboots):.1f}")
    row("     labctl's own (overhead - that)", f"{overhead - not_harness:.1f} s",
        f"{100 * (overhead - not_harness) / a['wall']:.1f} % of the wall time")
    for lat_s, _, dur, step in sorted(rows, reverse=True)[:8]:
        row(f"       slowest latency: {step[:36]}", f"{lat_s:.2f} s", f"wait {dur:.1f} s")


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


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labctl-only", action="store_true",
                        help="run part 1 only (a quick look while working; the figures need the baseline)")
    args = parser.parse_args(argv)
    if shutil.which("qemu-system-x86_64") is None:
        print("needs qemu-system-x86_64 and OVMF (scripts/setup)", file=sys.stderr)
        return 2
    from labctl.sim.build import build_iso

    print("labctl e2e benchmark: the usb-install-sim exercise at the simulator's real speed (QEMU/TCG, 2 cores)")
    iso = build_iso("real")  # built before the clocks start (cached)
    with tempfile.TemporaryDirectory(prefix="labctl-e2e-bench-") as tmp:
        work = Path(tmp)
        (work / "labctl").mkdir()
        (work / "packer").mkdir()
        boots = [firmware_boot(work, iso) for _ in range(3)]
        a = run_labctl(work)
        none: dict[str, Any] = {"wall": 0.0, "delays": 0.0, "n": 0, "ok": False, "err": ""}
        b = none if args.labctl_only else run_packer(work)
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
    breakdown(a)
    floor = sum(boots)
    row("   floor: 3 power-ons started by hand, QEMU to the EFI app", f"{floor:.1f} s",
        " + ".join(f"{b:.1f}" for b in boots) + " (no labctl)")
    from labctl.console import keys as keyspec

    typed = sum(1 for spec, _ in PACKER if spec and spec != "eject" for a in keyspec.parse(spec)
                if isinstance(a, keyspec.KeyEvent) and a.is_press)
    row("   what is left of the 20 s bar after that floor", f"{BAR_SECONDS - floor:.1f} s",
        f"for typing ~{typed} keys and noticing ~30 screens")
    if args.labctl_only:
        if not a["ok"]:
            print("labctl up failed:\n" + a["err"], file=sys.stderr)
        return 0 if a["ok"] else 1
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
    sys.exit(main(sys.argv[1:]))
