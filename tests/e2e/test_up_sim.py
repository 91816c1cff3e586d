"""``labctl up`` end to end: the ESXi 6.7 installer simulator onto a 16 GB stick image on QEMU (TCG),
through the interactive playbook with no fixed sleeps, then ESXi's 6-partition USB layout on the stick.

Also the fault tests: the VNC connection dropped mid-install (the TCP connection is aborted by the
kernel with ``ss -K``, as a network drop would) -> the run recovers and finishes; QEMU killed mid-install
-> exit 1 with a clear message and no QEMU left; a wait that never matches -> exit 1 within its timeout,
naming the step, with its screenshot in the run folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl import layouts
from labctl.backends.qemu import QemuBackend, Runtime
from labctl.spec import load_lab

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists(), reason="needs ovmf"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86"),
    pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract-ocr"),
]

LAB = """\
name: upsim
backend: qemu
esxi: "6.7"
iso: sim
vm: {{cpus: 2, memory_mb: 8192, disk: none}}
stick:
  image: sticks/{{seat}}.img
  size: 16G
install:
  playbook: {playbook}
  boot_options: preferVMklinux=TRUE
  root_password: {{env: LAB_ROOT_PASSWORD}}
verify: {{layout: esxi6, media: usb}}
console: {{serial: {serial}}}
"""

INSTALL_TIMEOUT = 1500


def write_lab(tmp_path: Path, serial: bool = True, playbook: str = "esxi-6.7-interactive") -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(playbook=playbook, serial=str(serial).lower()))
    return path


def up(lab: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "labctl", "up", str(lab), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"labctl up did not finish within {timeout} s:\n{err[-3000:]}")
    return proc.returncode, out, err


def seat_backend(lab_path: Path) -> QemuBackend:
    lab = load_lab(lab_path)
    return QemuBackend(lab, lab.seat_list()[0])


def qemu_left(backend: QemuBackend) -> list[int]:
    marker = f"path={backend.files.qmp},".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes() and ") Z " not in (entry / "stat").read_text():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def wait_event(runs: Path, step: str, proc: subprocess.Popen[str], timeout: float) -> dict[str, object]:
    """Wait until the run folder records ``step`` as done (result ok)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for events in runs.glob("*/events.jsonl"):
            for line in events.read_text().splitlines():
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("step") == step and ev.get("result") == "ok":
                    return dict(ev)
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"labctl up ended (exit {proc.returncode}) before step {step!r}:\n{err[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"no step {step!r} within {timeout} s")


def assert_esxi_usb_layout(tmp_path: Path) -> None:
    gpt = layouts.read_gpt(str(tmp_path / "sticks" / "upsim.img"))
    assert gpt.size == 16 * 2**30
    assert layouts.compare(gpt, layouts.expected_layout(gpt.size // 512, "usb")) == []
    assert len(gpt.partitions) == 6


@pytest.fixture
def cleanup_qemu(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield
    lab = tmp_path / "lab.yaml"
    if lab.exists():
        b = seat_backend(lab)
        for pid in qemu_left(b):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("serial", [False, True], ids=["screen-only", "with-serial"])
def test_up_installs_esxi_layout_on_the_stick(tmp_path: Path, serial: bool, cleanup_qemu: None) -> None:
    lab = write_lab(tmp_path, serial=serial)
    t0 = time.monotonic()
    code, out, err = finish(up(lab), INSTALL_TIMEOUT)
    took = time.monotonic() - t0
    assert code == 0, err[-3000:]
    assert "ok, the stick has ESXi's esxi6 usb layout" in out
    assert_esxi_usb_layout(tmp_path)
    run_dir = next((tmp_path / "runs").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["ok"] is True and result["layout"] == "ok"
    assert (run_dir / "stick-layout.txt").read_text().strip()
    assert os.environ["LAB_ROOT_PASSWORD"] not in (run_dir / "events.jsonl").read_text() + out + err
    if not serial:
        assert not (run_dir / "serial.log").exists() or not (run_dir / "serial.log").read_text().strip()
    b = seat_backend(lab)
    assert qemu_left(b) == [] and not b.files.runtime.exists()
    print(f"\nup ({'serial' if serial else 'screen only'}): {took:.1f} s")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ss") is None, reason="needs root and ss (iproute2)")
def test_vnc_connection_dropped_mid_install_recovers(tmp_path: Path, cleanup_qemu: None) -> None:
    lab = write_lab(tmp_path, serial=False)
    proc = up(lab)
    wait_event(tmp_path / "runs", "EULA", proc, 600)
    rt = Runtime.load(seat_backend(lab).files.runtime)
    assert rt is not None and rt.vnc_port
    # abort both ends of every TCP connection to the seat's VNC port (the kernel resets them)
    for side in ("dport", "sport"):
        subprocess.run(["ss", "-K", "-t", side, "=", f":{rt.vnc_port}"], capture_output=True, timeout=10, check=False)
    code, _, err = finish(proc, INSTALL_TIMEOUT)
    assert code == 0, err[-3000:]
    assert "reconnect" in err.lower()
    assert_esxi_usb_layout(tmp_path)


def test_qemu_killed_mid_install_fails_clearly(tmp_path: Path, cleanup_qemu: None) -> None:
    lab = write_lab(tmp_path, serial=True)
    proc = up(lab)
    wait_event(tmp_path / "runs", "disk list", proc, 600)
    b = seat_backend(lab)
    rt = Runtime.load(b.files.runtime)
    assert rt is not None
    t0 = time.monotonic()
    os.kill(rt.pid, signal.SIGKILL)
    code, _, err = finish(proc, 120)
    assert code == 1, err[-3000:]
    assert time.monotonic() - t0 < 30
    assert "step 'install playbook esxi-6.7-interactive' failed" in err
    assert "QEMU" in err and "exited unexpectedly (killed by signal 9)" in err
    assert "Traceback" not in err
    assert qemu_left(b) == [] and not b.files.runtime.exists()


NEVER = """\
name: never
steps:
  - name: boot loader
    wait: {text: 'SHIFT\\+O: Edit boot options|Automatic boot in', timeout: 300}
  - name: a text that never shows
    wait: {text: 'This text never appears', timeout: 8}
"""


def test_wait_that_never_matches_fails_within_its_timeout(tmp_path: Path, cleanup_qemu: None) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "never.yaml").write_text(NEVER)
    lab = write_lab(tmp_path, serial=False, playbook="never")
    proc = up(lab)
    wait_event(tmp_path / "runs", "boot loader", proc, 300)
    t0 = time.monotonic()
    code, _, err = finish(proc, 120)
    assert code == 1, err[-3000:]
    assert time.monotonic() - t0 < 8 + 15  # the timeout, plus stopping QEMU
    assert "a text that never shows" in err
    shots = re.findall(r"screenshot: (\S+\.png)", err)
    assert shots, err
    run_dir = next((tmp_path / "runs").iterdir())
    for shot in shots:
        assert Path(shot).is_file() and Path(shot).resolve().is_relative_to(run_dir.resolve())
    assert qemu_left(seat_backend(lab)) == []


def test_ctrl_c_mid_install_exits_130_and_leaves_no_qemu(tmp_path: Path, cleanup_qemu: None) -> None:
    lab = write_lab(tmp_path, serial=True)
    proc = up(lab)
    wait_event(tmp_path / "runs", "EULA", proc, 600)
    b = seat_backend(lab)
    assert b.load_runtime() is not None
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, 60)
    assert code == 130, err[-3000:]
    assert time.monotonic() - t0 < 20
    assert "interrupted" in err and "Traceback" not in err
    assert qemu_left(b) == [] and not b.files.runtime.exists()
    result = json.loads(next((tmp_path / "runs").glob("*/result.json")).read_text())
    assert result["ok"] is False and result["interrupted"] is True


def test_sigterm_during_parallel_seats_cleans_up_records_and_exits_143(tmp_path: Path) -> None:
    """Found by a review: with --parallel, SIGTERM killed labctl at once (no result, no report, a
    stale runtime record). Now every seat stops, records "interrupted", and labctl exits 143."""
    lab = write_lab(tmp_path, serial=True)
    lab.write_text(lab.read_text() + "seats: 2\n")
    backends = [QemuBackend(load_lab(lab), s) for s in load_lab(lab).seat_list()]
    proc = up(lab, "--parallel", "2")
    try:
        wait_event(tmp_path / "runs", "EULA", proc, 900)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code, _, err = finish(proc, 90)
        assert code == 143, err[-3000:]
        assert time.monotonic() - t0 < 30
        assert "Traceback" not in err
        for b in backends:
            assert qemu_left(b) == [] and not b.files.runtime.exists(), b.seat.name
        results = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").glob("*/result.json"))]
        assert len(results) == 2 and all(r["ok"] is False and r["interrupted"] is True for r in results), results
        assert len(list((tmp_path / "runs").glob("*/report.html"))) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
        for b in backends:
            for pid in qemu_left(b):
                os.kill(pid, signal.SIGKILL)


def test_down_presses_the_power_button_and_the_installer_powers_off(tmp_path: Path, cleanup_qemu: None) -> None:
    """`up --boot-only` leaves the installer running; `labctl wait` sees its Welcome screen; `labctl down` stops
    it softly (ACPI power button -> the guest powers off) instead of waiting out its timeout and killing QEMU."""
    lab = write_lab(tmp_path)
    env = {**os.environ, "LAB_ROOT_PASSWORD": "VMware1!lab"}

    def labctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True,
                              timeout=timeout, env=env)

    r = labctl("up", str(lab), "--boot-only")
    assert r.returncode == 0, r.stderr[-3000:]
    r = labctl("wait", str(lab), "--text", "Welcome to the VMware ESXi", "--timeout", "240")
    assert r.returncode == 0, r.stderr[-3000:]
    b = seat_backend(lab)
    assert qemu_left(b)
    r = labctl("down", str(lab), "--timeout", "20")
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r"stopped QEMU pid \d+ \(soft, \d+\.\d s\)", r.stdout), r.stdout
    assert not qemu_left(b)
