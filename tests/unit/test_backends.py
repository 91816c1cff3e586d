"""Backend plumbing without a VM: the VNC port allocator, the private temp folders, and the proof that a
pid is the seat's QEMU before anything signals it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.backends.qemu import QemuBackend, Runtime, _proc_starttime, is_seat_qemu
from labctl.backends.qemu_argv import qmp_chardev
from labctl.backends.tmpdirs import private_dir, user_temp_root
from labctl.backends.vncports import reserve_vnc_port
from labctl.errors import RefusedError, RunFailed
from labctl.spec import Lab, load_lab

LAB = """\
name: be
backend: qemu
iso: installer.iso
stick:
  image: sticks/{seat}.img
  size: 1G
install:
  root_password: {env: LAB_ROOT_PASSWORD}
"""


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp dir of the test's own, as $TMPDIR."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    (tmp_path / "installer.iso").write_bytes(b"\0" * 2048)
    (tmp_path / "lab.yaml").write_text(LAB)
    return load_lab(tmp_path / "lab.yaml")


# -- temp folders -----------------------------------------------------------------------------------


def test_private_dir_is_created_0700_and_reused(private_tmp: Path) -> None:
    path = private_dir(user_temp_root() / "vnc-ports")
    assert path == private_tmp / f"labctl-{os.getuid()}" / "vnc-ports"
    for level in (path, path.parent):
        assert level.is_dir() and (level.stat().st_mode & 0o777) == 0o700
    assert private_dir(path) == path


def test_a_readable_own_folder_is_closed(private_tmp: Path) -> None:
    root = user_temp_root()
    root.mkdir(mode=0o755)
    root.chmod(0o755)  # as an older labctl left it
    private_dir(root / "x")
    assert (root.stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize("problem", ["symlink", "writable", "file", "other-owner"])
def test_a_temp_folder_that_is_not_ours_is_refused(private_tmp: Path, tmp_path: Path, problem: str) -> None:
    root = user_temp_root()
    if problem == "symlink":
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o700)
        root.symlink_to(target)
        expected = "symbolic link"
    elif problem == "writable":
        root.mkdir()
        root.chmod(0o777)
        expected = "writable by other users"
    elif problem == "file":
        root.write_text("")
        expected = "not a folder"
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to give a folder to another user")
        root.mkdir(mode=0o700)
        os.chown(root, 4321, 4321)
        expected = "belongs to uid 4321"
    with pytest.raises(RefusedError, match=expected):
        private_dir(root / "vnc-ports")
    assert not (tmp_path / "elsewhere" / "vnc-ports").exists()  # nothing was created through the link


# -- VNC ports ------------------------------------------------------------------------------------


def _free_ports(n: int) -> range:
    """n consecutive free ports (outside 5900-5999, where the team's VMs may be listening)."""
    for start in range(41000, 42000, n):
        ports = range(start, start + n)
        with contextlib.ExitStack() as stack:
            try:
                for p in ports:
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", p))
            except OSError:
                continue
        return ports
    raise AssertionError("no free port range")


def test_two_reservations_at_once_get_different_ports(private_tmp: Path) -> None:
    ports = _free_ports(4)
    got: list[int] = []
    inside = threading.Barrier(2, timeout=10)

    def take() -> None:
        with reserve_vnc_port(ports=ports) as port:
            got.append(port)
            inside.wait()  # both hold their port at the same time

    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert len(got) == 2 and len(set(got)) == 2 and set(got) <= set(ports)


def test_a_bound_port_is_skipped_and_prefer_is_first(private_tmp: Path) -> None:
    ports = _free_ports(2)
    first, second = ports
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", first))
        busy.listen()
        with reserve_vnc_port(ports=ports, prefer=first) as port:
            assert port == second
    with reserve_vnc_port(ports=ports, prefer=first) as port:
        assert port == first
    with (reserve_vnc_port(ports=ports) as a,
          pytest.raises(RunFailed, match=f"no free VNC port in {first}-{second}"),
          reserve_vnc_port(ports=ports, exclude={first, second} - {a})):
        pass


# -- the pid proof --------------------------------------------------------------------------------


@pytest.fixture
def fake_qemu(tmp_path: Path, lab: Lab) -> Iterator[subprocess.Popen[bytes]]:
    """A process that looks like the seat's QEMU in /proc: named qemu-..., opening the seat's QMP socket."""
    exe = tmp_path / "qemu-system-x86_64"
    exe.symlink_to(sys.executable)
    qmp = QemuBackend(lab, lab.seat_list()[0]).files.qmp
    proc = subprocess.Popen([str(exe), "-c", "import time; time.sleep(60)", "-chardev", qmp_chardev(qmp)])
    # Popen returns once exec has begun; the new argv shows in /proc a moment later
    assert _wait_until(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes() != b"")
    yield proc
    proc.kill()
    proc.wait(10)


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait(10)


def _record(backend: QemuBackend, pid: int) -> None:
    backend.files.state_dir.mkdir(parents=True, exist_ok=True)
    start = _proc_starttime(pid)
    assert start is not None
    Runtime(pid=pid, starttime=start, owner_pid=1, detached=True, accel="tcg", vnc_host="127.0.0.1", vnc_port=5901,
            vnc_socket=None, qmp=str(backend.files.qmp), serial=str(backend.files.serial_log), iso=None, stick=None,
            started_at=time.time()).save(backend.files.runtime)


def _wait_until(cond: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return True
        time.sleep(0.05)
    return False


def test_a_recorded_pid_that_is_not_the_seats_qemu_is_never_signalled(
        lab: Lab, other_process: subprocess.Popen[bytes]) -> None:
    """qemu.json names a pid (with its right start time) that some other program now has: down and reset
    treat the seat as not running, remove the stale record, and leave that process alone."""
    from labctl.classroom import down_seats

    seat = lab.seat_list()[0]
    b = QemuBackend(lab, seat)
    _record(b, other_process.pid)
    assert not is_seat_qemu(other_process.pid, b.files.qmp)
    assert QemuBackend(lab, seat).attach_running() is False
    [done] = down_seats(lab, [seat])
    assert done.stop is None and done.strays == [] and done.removed == ["qemu.json"]
    time.sleep(0.2)
    assert other_process.poll() is None  # still running: nobody signalled it


def test_the_seats_qemu_is_recognised_attached_and_stopped(lab: Lab, fake_qemu: subprocess.Popen[bytes]) -> None:
    seat = lab.seat_list()[0]
    b = QemuBackend(lab, seat)
    assert is_seat_qemu(fake_qemu.pid, b.files.qmp)
    assert not is_seat_qemu(fake_qemu.pid, b.files.qmp.with_name("other.sock"))  # another seat's socket
    _record(b, fake_qemu.pid)
    attached = QemuBackend(lab, seat)
    assert attached.attach_running() and not attached.started_here
    attached.kill()
    assert _wait_until(lambda: fake_qemu.poll() is not None)


def test_strays_are_only_processes_opening_the_seats_qmp_socket(
        lab: Lab, fake_qemu: subprocess.Popen[bytes], other_process: subprocess.Popen[bytes]) -> None:
    b = QemuBackend(lab, lab.seat_list()[0])
    assert b.stop_strays() == [fake_qemu.pid]
    assert _wait_until(lambda: fake_qemu.poll() is not None)
    assert other_process.poll() is None


# -- QEMU stick snapshots: delete keeps the stick as it is now -------------------------------------


def _write(b: QemuBackend, data: bytes) -> None:
    drive = b.stick_drive()
    assert drive is not None
    if drive.format == "raw":
        with drive.path.open("r+b") as f:
            f.write(data)
        return
    pattern = f"write -P {data[0]:#04x} 0 {len(data)}"
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", pattern, str(drive.path)], check=True, capture_output=True,
                   timeout=30)


def _first(b: QemuBackend, n: int) -> bytes:
    with b.stick_view() as view:
        assert view.path is not None
        with view.path.open("rb") as f:
            return f.read(n)


@pytest.mark.parametrize("order", [["s1", "s2"], ["s2", "s1"]])
def test_deleting_snapshots_keeps_the_current_stick(lab: Lab, order: list[str]) -> None:
    b = QemuBackend(lab, lab.seat_list()[0])
    b.define()
    _write(b, b"AAAA")
    b.snapshot("s1")
    _write(b, b"BBBB")
    b.snapshot("s2")
    _write(b, b"CCCC")
    b.delete_snapshot(order[0])
    assert _first(b, 4) == b"CCCC" and b.snapshots() == [order[1]]
    b.revert(order[1])  # what is left still holds its own state
    assert _first(b, 4) == (b"AAAA" if order[1] == "s1" else b"BBBB")
    _write(b, b"DDDD")
    b.snapshot("s3")
    b.delete_snapshot(order[1])
    b.delete_snapshot("s3")
    assert _first(b, 4) == b"DDDD" and b.snapshots() == []
    drive = b.stick_drive()
    assert drive is not None and drive.format == "raw"  # every overlay merged back into the image
    with drive.path.open("rb") as f:
        assert f.read(4) == b"DDDD"
