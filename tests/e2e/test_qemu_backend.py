"""The QEMU backend against a real QEMU (TCG: KVM is broken on the CI machines), OVMF, no OS.

Kept lean for 2 shared cores: one VM per test, 4 GiB (lazy) RAM, a few seconds each; every test
kills its QEMU in teardown, and checks that no QEMU of its seat is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.backends.base import PowerState
from labctl.backends.qemu import QemuBackend, Runtime
from labctl.backends.qemu_argv import StickDrive
from labctl.errors import RunFailed
from labctl.runner import Context, OpenConsole, Prepare, StartVm, UpOptions, UpStep, run_seat
from labctl.spec import Lab, load_lab

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists(), reason="needs ovmf"),
    pytest.mark.skipif(subprocess.run(["which", "qemu-system-x86_64"], capture_output=True).returncode != 0,
                       reason="needs qemu-system-x86"),
]

LAB = """\
name: qb
backend: qemu
iso: {iso}
vm: {{cpus: 2, memory_mb: 4096, network: none}}
stick:
  image: sticks/{{seat}}.img
  size: 16G
install:
  root_password: {{env: LAB_ROOT_PASSWORD}}
qemu: {{accel: tcg}}
"""


def write_lab(tmp_path: Path, iso: str = "cd.iso") -> Path:
    (tmp_path / "cd.iso").write_bytes(b"\0" * 64 * 1024)  # a medium that boots nothing
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(iso=iso))
    return path


def qemu_pids_of(backend: QemuBackend) -> list[int]:
    marker = f"path={backend.files.qmp},".encode()
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            stat = (entry / "stat").read_text() if (entry / "stat").exists() else ""
            if marker in cmd and ") Z " not in stat:
                out.append(int(entry.name))
    return out


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return load_lab(write_lab(tmp_path))


@pytest.fixture
def backend(lab: Lab) -> Iterator[QemuBackend]:
    b = QemuBackend(lab, lab.seat_list()[0])
    try:
        yield b
    finally:
        b.kill()
        for pid in qemu_pids_of(b):
            os.kill(pid, signal.SIGKILL)


def read_serial(path: Path, pattern: bytes, timeout: float) -> bytes:
    """The serial port is a file QEMU appends to: read it until ``pattern`` shows (bounded)."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline and pattern not in data:
        time.sleep(0.2)
        data = path.read_bytes() if path.is_file() else b""
    return data


def test_start_qmp_screendump_serial_eject_reset_stop(backend: QemuBackend, tmp_path: Path) -> None:
    backend.start()
    assert backend.start_seconds is not None and backend.start_seconds < 15
    assert backend.power_state() is PowerState.RUNNING
    rt = Runtime.load(backend.files.runtime)
    assert rt is not None and rt.alive() and rt.accel == "tcg"

    # VNC on 127.0.0.1 asks for a password (security type 2 = VNC authentication only)
    vnc = backend.vnc_endpoint()
    assert vnc.host == "127.0.0.1" and 5900 <= vnc.port < 6000 and vnc.password
    assert vnc.password not in repr(vnc)
    with socket.create_connection((vnc.host, vnc.port), timeout=5) as s:
        assert s.recv(12) == b"RFB 003.008\n"
        s.sendall(b"RFB 003.008\n")
        n = s.recv(1)[0]
        assert list(s.recv(n)) == [2]

    # the serial port's file carries what OVMF prints (its shell, with no bootable media)
    serial = backend.serial_endpoint()
    assert serial is not None
    out = read_serial(serial.path, b"Shell", timeout=60)
    assert b"Shell" in out, out[-500:]

    png = backend.screendump(tmp_path / "shot.png")
    from PIL import Image

    with Image.open(png) as im:
        assert im.format == "PNG" and im.width >= 640 and im.height >= 400
        import numpy as np

        assert len(np.unique(np.asarray(im.convert("L")))) > 1  # not a blank frame: the shell's text

    assert backend.cdrom_inserted()
    backend.eject_cdrom()
    assert not backend.cdrom_inserted()

    backend.reset()
    assert backend.qemu_status() == "running"

    t0 = time.monotonic()
    backend.stop("soft", timeout=2)  # OVMF has no ACPI OS: the power button is ignored -> hard
    assert time.monotonic() - t0 < 15
    assert not backend.alive() and not backend.soft_stopped
    assert not backend.files.runtime.exists()
    assert not any(p.exists() for p in backend.files.sockets())
    assert qemu_pids_of(backend) == []
    assert backend.power_state() is PowerState.OFF

    # power on again (a playbook's 'power: on'): same VNC port, so a console can reconnect
    backend.start()
    assert backend.vnc_endpoint().port == vnc.port
    backend.start()  # already running: nothing to do
    backend.stop("hard")
    assert qemu_pids_of(backend) == []


def test_stick_snapshot_and_revert(backend: QemuBackend, lab: Lab) -> None:
    backend.define()
    image = lab.seat_list()[0].stick_image(lab)
    assert image is not None
    with open(image, "r+b") as f:
        f.write(b"BLANK-STICK")
    backend.snapshot("blank")
    drive = backend.stick_drive()
    assert drive is not None and drive.format == "qcow2"
    # QEMU runs on the overlay: writes from the guest side land there, not in the raw image
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x41 0 512", str(drive.path)], check=True,
                   capture_output=True, timeout=30)
    with backend.stick_raw_view() as view, open(view, "rb") as f:
        assert f.read(4) == b"AAAA"
    with open(image, "rb") as f:
        assert f.read(11) == b"BLANK-STICK"
    backend.revert("blank")
    with backend.stick_raw_view() as view, open(view, "rb") as f:
        assert f.read(11) == b"BLANK-STICK"
    # and QEMU boots with the overlay as its stick
    backend.start()
    assert any("format=qcow2" in a and "active.qcow2" in a for a in backend.argv(backend_vnc(backend)))
    backend.stop("hard")


def backend_vnc(backend: QemuBackend) -> object:
    from labctl.backends.qemu_argv import VncListen

    return VncListen(port=5999)


class KillQemu(UpStep):
    """Kill QEMU from outside, then wait on the console for a text that never comes (up to 60 s)."""

    name = "install"

    def __init__(self, sig: int) -> None:
        self.sig = sig
        self.killed_at = 0.0

    def run(self, ctx: Context) -> None:
        assert ctx.backend is not None and ctx.console is not None
        pid = ctx.backend.status_details()["pid"]
        assert isinstance(pid, int)
        self.killed_at = time.monotonic()
        os.kill(pid, self.sig)
        ctx.console.wait_text("a text this screen never shows", 60)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_qemu_dying_mid_step_is_a_clear_failure(lab: Lab, tmp_path: Path, sig: int) -> None:
    seat = lab.seat_list()[0]
    kill = KillQemu(sig)
    with pytest.raises(RunFailed) as info:
        run_seat(lab, seat, UpOptions(runs_dir=tmp_path / "runs"), [], {},
                 steps=[Prepare(), StartVm(), OpenConsole(), kill])
    took = time.monotonic() - kill.killed_at
    message = str(info.value)
    assert kill.killed_at > 0 and took < 20, "the supervisor ends the 60 s console wait at once"
    assert "step 'install' failed" in message and "QEMU" in message and "exited unexpectedly" in message
    if sig == signal.SIGKILL:
        assert "killed by signal 9" in message
    else:  # QEMU says why on stderr: its tail is in the message
        assert "terminating on signal 15" in message
    b = QemuBackend(lab, seat)
    assert qemu_pids_of(b) == [] and not b.files.runtime.exists()
    result = json.loads(next((tmp_path / "runs").glob("*/result.json")).read_text())
    assert result["ok"] is False and result["step"] == "install"


SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from labctl.runner import Prepare, StartVm, UpStep, UpOptions, run_seat
    from labctl.spec import load_lab

    class Wait(UpStep):
        name = "install"
        def run(self, ctx):
            print(ctx.backend.pid(), flush=True)
            time.sleep(120)

    lab = load_lab(sys.argv[1])
    try:
        run_seat(lab, lab.seat_list()[0], UpOptions(runs_dir=Path(sys.argv[2])), [], {},
                 steps=[Prepare(), StartVm(), Wait()])
    except KeyboardInterrupt:
        sys.exit(130)
""")


def _start_script(lab_path: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(lab_path), str(tmp_path / "runs")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, int(line)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if ") Z " in stat:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_orphan_qemu_when_labctl_is_interrupted_or_killed(tmp_path: Path, sig: int) -> None:
    lab_path = write_lab(tmp_path)
    proc, qemu_pid = _start_script(lab_path, tmp_path)
    try:
        proc.send_signal(sig)
        code = proc.wait(30)
        assert _gone(qemu_pid), "QEMU outlived labctl"
        if sig == signal.SIGINT:
            assert code == 130
        elif sig == signal.SIGTERM:
            assert code == 143
    finally:
        proc.kill()
        proc.wait(10)
        if not _gone(qemu_pid, 0.1):
            os.kill(qemu_pid, signal.SIGKILL)


def labctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def test_cli_status_json_down_and_stale_cleanup(tmp_path: Path) -> None:
    lab_path = write_lab(tmp_path)
    lab = load_lab(lab_path)
    b = QemuBackend(lab, lab.seat_list()[0])
    try:
        up = json.loads(labctl("up", str(lab_path), "--boot-only", "--json").stdout)
        assert up["action"] == "up" and up["ok"] is True and up["changed"] is True
        assert up["seats"][0]["power_state"] == "running" and up["seats"][0]["step"] is None
        envelope = json.loads(labctl("status", str(lab_path), "--json").stdout)
        assert envelope["action"] == "status" and envelope["ok"] is True and envelope["changed"] is False
        rows = envelope["seats"]
        assert len(rows) == 1
        row = rows[0]
        assert row["seat"] == 1 and row["name"] == "qb" and row["backend"] == "qemu"
        assert row["power_state"] == "running" and row["stage"] == "booted (boot-only run); left running"
        port = int(row["vnc"].removeprefix("vnc://127.0.0.1:"))
        assert row["vnc"] == f"vnc://127.0.0.1:{port}" and 5900 <= port < 6000
        assert row["stick_image"] == str(tmp_path / "sticks" / "qb.img")
        assert Path(row["serial"]).is_absolute() and Path(row["run_dir"]).is_dir()
        assert row["last_result"]["ok"] is True
        password = b.files.vnc_password.read_text()
        assert password not in json.dumps(envelope) and password not in labctl("status", str(lab_path)).stdout
        shown = labctl("status", str(lab_path), "--show-password").stdout
        assert f"VNC: vnc://127.0.0.1:{port} password {password}" in shown

        # a second up on a running seat is refused and leaves the VM alone
        again = labctl("up", str(lab_path), "--boot-only", check=False)
        assert again.returncode == 2 and "already running" in again.stderr
        assert json.loads(labctl("status", str(lab_path), "--json").stdout)["seats"][0]["power_state"] == "running"

        # a crash: QEMU dies without anyone cleaning up
        rt = Runtime.load(b.files.runtime)
        assert rt is not None
        os.kill(rt.pid, signal.SIGKILL)
        assert _gone(rt.pid)
        assert b.files.runtime.exists()
        row = json.loads(labctl("status", str(lab_path), "--json").stdout)["seats"][0]
        assert row["power_state"] == "off" and row["stale_files"] is True and row["vnc"] is None
        out = labctl("down", str(lab_path)).stdout
        assert "not running" in out and "removed stale" in out and "qemu.json" in out
        assert not b.files.runtime.exists() and not b.files.qmp.exists()

        # down stops a running seat: soft (ignored by OVMF) then hard
        labctl("up", str(lab_path), "--boot-only")
        out = labctl("down", str(lab_path), "--timeout", "1").stdout
        assert "stopped QEMU pid" in out and "then hard" in out
        assert qemu_pids_of(b) == [] and not b.files.runtime.exists()
    finally:
        labctl("down", str(lab_path), "--hard", check=False)
        for pid in qemu_pids_of(b):
            os.kill(pid, signal.SIGKILL)


def test_cli_reset_is_honest(tmp_path: Path) -> None:
    lab_path = write_lab(tmp_path)
    lab = load_lab(lab_path)
    b = QemuBackend(lab, lab.seat_list()[0])
    b.define()
    image = tmp_path / "sticks" / "qb.img"
    with open(image, "r+b") as f:
        f.write(b"INSTALLED")
    out = labctl("reset", str(lab_path)).stdout
    assert "recreated blank" in out and "UEFI variables reset" in out
    assert image.stat().st_size == 16 * 2**30 and image.stat().st_blocks == 0

    with open(image, "r+b") as f:
        f.write(b"INSTALLED")
    b.snapshot("after-install")  # the golden copy a successful up keeps
    drive = b.stick_drive()
    assert drive is not None
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 512", str(drive.path)], check=True,
                   capture_output=True, timeout=30)
    out = labctl("reset", str(lab_path), "--to", "after-install").stdout
    assert "reverted to its snapshot 'after-install'" in out
    with b.stick_raw_view() as view, open(view, "rb") as f:
        assert f.read(9) == b"INSTALLED"
    row = json.loads(labctl("status", str(lab_path), "--json").stdout)["seats"][0]
    assert row["stick_snapshots"] == ["after-install"] and row["power_state"] == "off"


def test_vnc_on_a_unix_socket(lab: Lab) -> None:
    b = QemuBackend(lab, lab.seat_list()[0], iso=None, vnc_unix=True)
    try:
        b.start()
        vnc = b.vnc_endpoint()
        assert vnc.socket_path is not None and vnc.socket_path.is_socket()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(vnc.socket_path))
            assert s.recv(12) == b"RFB 003.008\n"
        assert not any("127.0.0.1:" in a for a in Path(f"/proc/{b.pid()}/cmdline").read_bytes().decode().split("\0"))
    finally:
        b.stop("hard")
    assert qemu_pids_of(b) == []


def test_stick_clone_full_and_linked(backend: QemuBackend, lab: Lab, tmp_path: Path) -> None:
    backend.define()
    image = lab.seat_list()[0].stick_image(lab)
    assert image is not None
    with open(image, "r+b") as f:
        f.write(b"GOLDEN")
    full = backend.clone(tmp_path / "full.img", linked=False)
    assert full.stat().st_size == image.stat().st_size and full.stat().st_blocks < 1024  # sparse
    with open(full, "rb") as f:
        assert f.read(6) == b"GOLDEN"
    linked = backend.clone(tmp_path / "linked.qcow2", linked=True)
    info = subprocess.run(["qemu-img", "info", "--output=json", str(linked)], capture_output=True, text=True,
                          check=True, timeout=30)
    assert json.loads(info.stdout)["backing-filename"] == str(image)
    assert backend.snapshots()[-1].startswith("clone-")  # the base is frozen for the linked clone


def test_qemu_gets_the_stick_file_that_was_checked_not_its_path(backend: QemuBackend, lab: Lab,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The stick's name is given to another file right after labctl checked and opened it: QEMU holds
    the checked file (an inherited descriptor in an fd set) and never opens the one now at the path."""
    image = lab.seat_list()[0].stick_image(lab)
    assert image is not None
    checked = image.with_name("checked.img")
    opened = backend._open_images

    def open_then_swap(stick: StickDrive | None) -> dict[str, int]:
        fds = opened(stick)
        os.rename(image, checked)
        image.write_bytes(b"\0" * (1 << 20))
        return fds

    monkeypatch.setattr(backend, "_open_images", open_then_swap)
    backend.start()
    pid = backend.pid()
    assert pid is not None
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            st = os.stat(fd)
            held.add((st.st_dev, st.st_ino))
    assert (os.stat(checked).st_dev, os.stat(checked).st_ino) in held
    assert (os.stat(image).st_dev, os.stat(image).st_ino) not in held
    assert b"/dev/fdset/" in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert not any(fd for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == str(checked))
    backend.stop("hard")
