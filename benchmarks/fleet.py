"""Ansible's cost for a classroom: classroom.yml's wall time for `up` on two local PCs against the same two
labs run by `labctl up` directly, one after the other and both at once, in the same run.

    LAB_ROOT_PASSWORD=... flock /tmp/labctl-e2e.lock python benchmarks/fleet.py

Prints:
- `labctl up` of each lab alone, and of both in parallel (the parallel speed-up),
- the play's `up` on both PCs and Ansible's overhead over the same parallel work (bar: under 15 s per play),
- the play's `status` on one PC and on two (lab work near zero), which splits Ansible's time into a fixed
  part and a per-PC part, and from those how the wall time grows with N PCs (each PC its own machine, so
  the install itself does not grow; forks >= N).

Both "PCs" are this machine (ansible_connection=local) with their own labctl_workdir, so their two installs
share its cores, as `labctl up` in parallel does.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAY = REPO / "deploy" / "ansible" / "classroom.yml"
LAB = REPO / "labs" / "usb-install-sim.yaml"
BIN = Path(sys.executable).parent
BAR_OVERHEAD = 15.0
SITE_PACKAGES = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))


def lab_copy(workdir: Path) -> Path:
    """The lab as the play lays it out on a PC: the lab file with its playbooks/ beside it."""
    workdir.mkdir(parents=True)
    shutil.copy2(LAB, workdir / LAB.name)
    shutil.copytree(LAB.parent / "playbooks", workdir / "playbooks")
    return workdir / LAB.name


def labctl_up(lab: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "labctl"), "-q", "up", str(lab)], cwd=lab.parent, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen[str], what: str) -> None:
    out, _ = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"fleet: {what} failed (exit {proc.returncode}):\n{out[-3000:]}")


def timed_up(labs: list[Path], parallel: bool) -> float:
    t0 = time.monotonic()
    if parallel:
        procs = [labctl_up(lab) for lab in labs]
        for proc, lab in zip(procs, labs, strict=True):
            finish(proc, f"labctl up {lab}")
    else:
        for lab in labs:
            finish(labctl_up(lab), f"labctl up {lab}")
    return time.monotonic() - t0


def reusable_venv(path: Path) -> Path:
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(path)
    (site,) = path.glob("lib/python*/site-packages")
    (site / "labctl-deps.pth").write_text(f"{SITE_PACKAGES}\n")
    return path


def inventory(tmp: Path, name: str, hosts: list[str]) -> Path:
    lines = ["[bench_pcs]"]
    for host in hosts:
        work = tmp / name / host
        lines.append(f"{host} ansible_connection=local labctl_workdir={work} "
                     f"labctl_venv={reusable_venv(work / 'venv')}")
    lines += ["[bench_pcs:vars]", "labctl_venv_reuse=true", "labctl_packages_become=false",
              "labctl_apt_cache_valid_time=0", f"ansible_python_interpreter={sys.executable}"]
    path = tmp / f"{name}.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed_play(tmp: Path, inv: Path, action: str, wheel: Path | None) -> float:
    argv = [str(BIN / "ansible-playbook"), "-i", str(inv), str(PLAY), "-e", f"labctl_action={action}",
            "-e", f"labctl_lab={LAB}", "-e", f"labctl_report_root={tmp / ('report-' + inv.stem)}"]
    if wheel is not None:
        argv += ["-e", f"labctl_wheel={wheel}"]
    env = {**os.environ, "PWD": str(REPO), "ANSIBLE_CONFIG": str(PLAY.parent / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    t0 = time.monotonic()
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"fleet: the play's {action} failed (exit {r.returncode}):\n{(r.stdout + r.stderr)[-4000:]}")
    return seconds


def main() -> int:
    if not os.environ.get("LAB_ROOT_PASSWORD"):
        print("fleet: set LAB_ROOT_PASSWORD (the lab's root password) first", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="labctl-fleet-bench-"))
    os.environ.setdefault("LABCTL_CACHE_DIR", str(tmp / "cache"))
    from labctl.sim.build import build_iso

    build_iso("fast")  # not timed: every run below finds it in the cache
    try:
        print("fleet: 2 labs of labs/usb-install-sim.yaml (QEMU + simulator), each in its own folder")
        alone = [timed_up([lab_copy(tmp / f"seq{i}")], parallel=False) for i in (1, 2)]
        seq = sum(alone)
        par = timed_up([lab_copy(tmp / f"par{i}") for i in (1, 2)], parallel=True)
        print(f"  labctl up, one after the other      {seq:7.1f} s  ({alone[0]:.1f} + {alone[1]:.1f})")
        print(f"  labctl up, both at once             {par:7.1f} s  speed-up {seq / par:.2f}x on "
              f"{os.cpu_count()} cores")

        play_up_full = timed_play(tmp, inventory(tmp, "play-up", ["pc1", "pc2"]), "up", None)
        overhead_up = play_up_full - par
        print(f"  classroom.yml up on 2 PCs           {play_up_full:7.1f} s  (its wheel built, venvs reused)")
        print(f"  Ansible's overhead over the same parallel work: {overhead_up:.1f} s per play "
              f"(bar: under {BAR_OVERHEAD:.0f} s) -> {'ok' if overhead_up < BAR_OVERHEAD else 'OVER THE BAR'}")

        wheel_dir = tmp / "wheel"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(REPO)],
                       check=True, timeout=300, env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"})
        wheel = next(wheel_dir.glob("labctl-*.whl"))
        one_inv, two_inv = inventory(tmp, "status-1", ["pc1"]), inventory(tmp, "status-2", ["pc1", "pc2"])
        timed_play(tmp, one_inv, "status", wheel)  # first runs install the wheel into the PCs' venvs
        timed_play(tmp, two_inv, "status", wheel)
        one = statistics.median(timed_play(tmp, one_inv, "status", wheel) for _ in range(3))
        two = statistics.median(timed_play(tmp, two_inv, "status", wheel) for _ in range(3))
        per_pc = max(two - one, 0.0)
        fixed = one - per_pc
        print(f"  classroom.yml status, 1 PC / 2 PCs  {one:7.1f} s / {two:.1f} s (median of 3; PCs prepared)")
        print(f"  -> fixed {fixed:.1f} s + {per_pc:.1f} s per PC on this controller "
              f"(the two local PCs also share its 2 cores)")
        install = min(alone)
        build = max(overhead_up - two, 0.0)
        print(f"  wall time for N PCs, each its own machine, forks >= N: fixed {fixed:.1f} s + {per_pc:.1f} s x N"
              f" + one install ({install:.0f} s) + the wheel build and first-run setup ({build:.1f} s)")
        for n in (1, 2, 5, 10, 20, 30):
            total = fixed + per_pc * n + install + build
            print(f"    N = {n:2d}: {total:7.1f} s   (labctl alone: {install:.0f} s; one after the other by hand: "
                  f"{install * n:.0f} s)")
    finally:
        for lab in tmp.glob("*/**/*.yaml"):
            if lab.name == LAB.name:
                subprocess.run([str(BIN / "labctl"), "-q", "down", str(lab)], capture_output=True, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
