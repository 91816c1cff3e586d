"""``labctl up`` end to end: the ESXi 6.7 installer simulator onto a 16 GB stick image on QEMU (TCG),
through the interactive playbook with no fixed sleeps, then ESXi's 6-partition USB layout on the stick.

Also the fault tests: the VNC connection dropped mid-install (the TCP connection is aborted by the
kernel with ``ss -K``, as a network drop would) -> the run recovers and finishes; QEMU killed mid-install
-> exit 1 with a clear message and no QEMU left; a wait that never matches -> exit 1 within its timeout,
naming the step, with its screenshot in the run folder and its report (checked in headless Chromium).

The labs come from labctl's pytest plugin: ``@pytest.mark.lab(...)`` names the shipped simulator lab (with keys
overridden), ``lab_file`` is its copy writing under the test's artifacts folder, ``lab_backend`` skips a test
when QEMU or OVMF is missing, and ``lab_seat`` boots a seat with the console verbs.
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
import yaml

from labctl import layouts
from labctl.backends.qemu import QemuBackend, Runtime
from labctl.pytest_plugin import LabSeat
from labctl.spec import load_lab

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract-ocr"),
]

# the shipped simulator lab, without its post-install playbooks (this file is about the install)
SIM_LAB = "labs/usb-install-sim.yaml"
INSTALL = pytest.mark.lab(SIM_LAB, post_install=[])
SCREEN_ONLY = pytest.mark.lab(SIM_LAB, post_install=[], console={"serial": False})
INSTALL_GOLDEN = pytest.mark.lab(SIM_LAB, post_install=[], reset="after-install")

INSTALL_TIMEOUT = 1500


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


def seat_backend(lab_path: Path, index: int = 0) -> QemuBackend:
    lab = load_lab(lab_path)
    return QemuBackend(lab, lab.seat_list()[index])


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


def assert_esxi_usb_layout(lab_path: Path) -> None:
    lab = load_lab(lab_path)
    image = lab.seat_list()[0].stick_image(lab)
    assert image is not None
    gpt = layouts.read_gpt(str(image))
    assert gpt.size == 16 * 2**30
    assert layouts.compare(gpt, layouts.expected_layout(gpt.size // 512, "usb")) == []
    assert len(gpt.partitions) == 6


def runs_of(lab_path: Path) -> Path:
    return lab_path.parent / "runs"


@pytest.mark.parametrize("serial", [pytest.param(False, marks=SCREEN_ONLY), pytest.param(True, marks=INSTALL_GOLDEN)],
                         ids=["screen-only", "with-serial"])
def test_up_installs_esxi_layout_on_the_stick(lab_file: Path, lab_backend: str, serial: bool) -> None:
    t0 = time.monotonic()
    code, out, err = finish(up(lab_file), INSTALL_TIMEOUT)
    took = time.monotonic() - t0
    assert code == 0, err[-3000:]
    assert "ok, the stick has ESXi's esxi6 usb layout" in out
    assert_esxi_usb_layout(lab_file)
    run_dir = next(runs_of(lab_file).iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["ok"] is True and result["layout"] == "ok"
    assert (run_dir / "stick-layout.txt").read_text().strip()
    assert os.environ["LAB_ROOT_PASSWORD"] not in (run_dir / "events.jsonl").read_text() + out + err
    assert os.environ["LAB_ROOT_PASSWORD"] not in (run_dir / "report.html").read_text()
    if not serial:
        assert not (run_dir / "serial.log").exists() or not (run_dir / "serial.log").read_text().strip()
    b = seat_backend(lab_file)
    assert qemu_left(b) == [] and not b.files.runtime.exists()
    print(f"\nup ({'serial' if serial else 'screen only'}): {took:.1f} s")
    if serial:  # reset: after-install: up again of the installed, unchanged seat is not a change
        t0 = time.monotonic()
        code, out, err = finish(up(lab_file, "--json"), 300)
        assert code == 0, err[-3000:]
        envelope = json.loads(out)
        assert envelope["changed"] is False and envelope["ok"] is True, envelope
        assert envelope["seats"][0]["message"] == "already installed and verified (stick equals its golden copy)"
        assert [p.name for p in runs_of(lab_file).iterdir()] == [run_dir.name]  # nothing ran
        print(f"up again (no change): {time.monotonic() - t0:.1f} s")


@SCREEN_ONLY
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ss") is None, reason="needs root and ss (iproute2)")
def test_vnc_connection_dropped_mid_install_recovers(lab_file: Path, lab_backend: str) -> None:
    proc = up(lab_file)
    # after F11 went (the guest then scans for disks with no key to come): a reset drops no key on its way
    wait_event(runs_of(lab_file), "accept the EULA", proc, 600)
    rt = Runtime.load(seat_backend(lab_file).files.runtime)
    assert rt is not None and rt.vnc_port
    # abort both ends of every TCP connection to the seat's VNC port (the kernel resets them)
    for side in ("dport", "sport"):
        subprocess.run(["ss", "-K", "-t", side, "=", f":{rt.vnc_port}"], capture_output=True, timeout=10, check=False)
    code, _, err = finish(proc, INSTALL_TIMEOUT)
    assert code == 0, err[-3000:]
    assert "reconnect" in err.lower()
    assert_esxi_usb_layout(lab_file)


@INSTALL
def test_qemu_killed_mid_install_fails_clearly(lab_file: Path, lab_backend: str) -> None:
    proc = up(lab_file)
    wait_event(runs_of(lab_file), "disk list", proc, 600)
    b = seat_backend(lab_file)
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


def use_playbook(lab_file: Path, name: str, text: str) -> None:
    """Point the test's lab at a playbook of its own (in the playbooks folder beside its lab file)."""
    (lab_file.parent / "playbooks").mkdir(exist_ok=True)
    (lab_file.parent / "playbooks" / f"{name}.yaml").write_text(text)
    data = yaml.safe_load(lab_file.read_text())
    data["install"]["playbook"] = name
    lab_file.write_text(yaml.safe_dump(data, sort_keys=False))


@SCREEN_ONLY
def test_wait_that_never_matches_fails_within_its_timeout_and_reports_it(
        lab_file: Path, lab_backend: str, tmp_path: Path) -> None:
    """A deliberately failing run: exit 1 within the wait's timeout, naming the step; its report shows the
    failing step and its screenshot first and passes the Chromium check (rendered, images load, no errors)."""
    from harness.browser import check_page, chromium_available

    use_playbook(lab_file, "never", NEVER)
    proc = up(lab_file)
    wait_event(runs_of(lab_file), "boot loader", proc, 300)
    t0 = time.monotonic()
    code, _, err = finish(proc, 120)
    assert code == 1, err[-3000:]
    assert time.monotonic() - t0 < 8 + 40  # the timeout plus stopping QEMU, far below the 120 s bound
    assert "a text that never shows" in err
    shots = re.findall(r"screenshot: (\S+\.png)", err)
    assert shots, err
    run_dir = next(runs_of(lab_file).iterdir())
    for shot in shots:
        assert Path(shot).is_file() and Path(shot).resolve().is_relative_to(run_dir.resolve())
    assert qemu_left(seat_backend(lab_file)) == []

    html = (run_dir / "report.html").read_text()
    failure, timeline = html.index('id="failure"'), html.index("<h2>Timeline</h2>")
    assert failure < timeline and "Failed step: a text that never shows" in html[failure:timeline]
    shown = re.search(r'<img src="([^"]+)" alt="the screen when step a text that never shows failed"',
                      html[failure:timeline])
    assert shown and (run_dir / shown.group(1)).resolve() == Path(shots[0]).resolve()
    assert "What OCR read on that screen" in html[failure:timeline]
    junit = (run_dir / "junit.xml").read_text()
    assert junit.count("<testcase ") >= 5 and "a text that never shows" in junit
    assert (run_dir / "run.webp").stat().st_size > 0
    reason = chromium_available()
    if reason:
        pytest.skip(reason)
    page = check_page(run_dir / "report.html", artifacts=tmp_path / "artifacts")
    assert page.text.index("Failed step: a text that never shows") < page.text.index("Timeline")
    assert page.images >= 3


@INSTALL
def test_ctrl_c_mid_install_exits_130_and_leaves_no_qemu(lab_file: Path, lab_backend: str) -> None:
    proc = up(lab_file)
    wait_event(runs_of(lab_file), "EULA", proc, 600)
    b = seat_backend(lab_file)
    assert b.load_runtime() is not None
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, 60)
    assert code == 130, err[-3000:]
    assert time.monotonic() - t0 < 20
    assert "interrupted" in err and "Traceback" not in err
    assert qemu_left(b) == [] and not b.files.runtime.exists()
    result = json.loads(next(runs_of(lab_file).glob("*/result.json")).read_text())
    assert result["ok"] is False and result["interrupted"] is True


@pytest.mark.lab(SIM_LAB, post_install=[], seats=2)
def test_sigterm_during_parallel_seats_cleans_up_records_and_exits_143(lab_file: Path, lab_backend: str) -> None:
    """With --parallel, SIGTERM once killed labctl at once (no result, no report, a stale runtime record).
    Every seat stops, records "interrupted", and labctl exits 143."""
    backends = [seat_backend(lab_file, i) for i in range(2)]
    proc = up(lab_file, "--parallel", "2")
    try:
        wait_event(runs_of(lab_file), "EULA", proc, 900)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code, _, err = finish(proc, 90)
        assert code == 143, err[-3000:]
        assert time.monotonic() - t0 < 30
        assert "Traceback" not in err
        for b in backends:
            assert qemu_left(b) == [] and not b.files.runtime.exists(), b.seat.name
        results = [json.loads(p.read_text()) for p in sorted(runs_of(lab_file).glob("*/result.json"))]
        assert len(results) == 2 and all(r["ok"] is False and r["interrupted"] is True for r in results), results
        assert len(list(runs_of(lab_file).glob("*/report.html"))) == 2
    finally:
        if proc.poll() is None:
            proc.kill()


@INSTALL
def test_down_presses_the_power_button_and_the_installer_powers_off(lab_file: Path, lab_seat: LabSeat) -> None:
    """The plugin's lab_seat boots the installer and drives it with the console verbs; `labctl down` then
    stops it softly (ACPI power button -> the guest powers off) instead of waiting out its timeout and killing
    QEMU."""
    lab_seat.wait("Welcome to the VMware ESXi", timeout=240)
    lab_seat.send("<enter>")
    lab_seat.wait("End User License Agreement", timeout=60)
    shot = lab_seat.screenshot("eula")
    assert shot.is_file() and shot.is_relative_to(lab_seat.run.path)
    b = seat_backend(lab_file)
    assert qemu_left(b)
    r = subprocess.run([sys.executable, "-m", "labctl", "down", str(lab_file), "--timeout", "20"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r"stopped QEMU pid \d+ \(soft, \d+\.\d s\)", r.stdout), r.stdout
    assert not qemu_left(b)
