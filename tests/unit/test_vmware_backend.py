"""The VMware backend without VMware and without booting: vmrun answered by a fake runner (or the shim for
commands that need no VM), the .vmx edited only while off, stop's rules, the ISO's power-off fallback,
Player's limits, Windows names and path matching, the stick's host view, vmware.log's USB failure."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from labctl.backends import vmrun as vr
from labctl.backends.base import PowerState, Unsupported
from labctl.backends.vmware import VmRecord, VmwareBackend
from labctl.errors import InputError
from labctl.spec import load_lab
from labctl.vmx import VmxFile

SHIM = Path(__file__).resolve().parent.parent / "fakes" / "vmrun"
LAB = """\
name: vmw
backend: vmware
esxi: "6.7"
iso: {iso}
stick: {{usb: {{vendor_id: 0x0781, product_id: 0x5567}}}}
install: {{root_password: {{env: LAB_ROOT_PASSWORD}}}}
{extra}
"""


class Fake:
    """vmrun's answers by command; records every argv."""

    def __init__(self, running: list[str] | None = None) -> None:
        self.running = running or []
        self.argv: list[list[str]] = []
        self.answers: dict[str, tuple[int, str]] = {}

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.argv.append(argv[1:])
        command = argv[3]
        if command in self.answers:
            code, out = self.answers[command]
            return subprocess.CompletedProcess(argv, code, out, "")
        if command == "list":
            return subprocess.CompletedProcess(argv, 0, "\n".join([f"Total running VMs: {len(self.running)}",
                                                                    *self.running]) + "\n", "")
        if command == "stop":
            self.running = []
        return subprocess.CompletedProcess(argv, 0, "", "")

    def commands(self) -> list[str]:
        return [a[2] for a in self.argv]


def backend(tmp_path: Path, fake: Fake | None = None, extra: str = "", host: vr.Host | None = None,
            product: vr.Product = "ws") -> VmwareBackend:
    iso = tmp_path / "installer.iso"
    iso.write_bytes(b"")
    (tmp_path / "lab.yaml").write_text(LAB.format(iso=iso, extra=extra))
    lab = load_lab(tmp_path / "lab.yaml")
    b = VmwareBackend(lab, lab.seat_list()[0], host=host)
    if fake is not None:
        b.product = product
        b._vmrun = vr.Vmrun("vmrun", product, runner=fake)
    return b


def test_define_renders_the_vmx_with_iso_pipe_and_keeps_user_keys(tmp_path: Path) -> None:
    fake = Fake()
    b = backend(tmp_path, fake)
    b.define()
    vmx = VmxFile.load(b.vmx)
    assert vmx["sata0:1.fileName"] == str(tmp_path / "installer.iso")
    assert vmx["sata0:1.startConnected"] == "TRUE"
    assert vmx["serial0.fileName"] == b.serial_path() and len(b.serial_path()) <= 100
    assert vmx["RemoteDisplay.vnc.ip"] == "127.0.0.1" and len(vmx["RemoteDisplay.vnc.password"]) == 8
    assert oct(b.vmx.stat().st_mode & 0o777) == "0o600"
    b.vmx.write_text(b.vmx.read_text() + 'trainer.note = "keep me"\n')
    b.reset_definition()
    assert VmxFile.load(b.vmx)["trainer.note"] == "keep me"


def test_the_vmx_is_not_edited_while_the_vm_runs(tmp_path: Path) -> None:
    fake = Fake()
    b = backend(tmp_path, fake)
    b.define()
    fake.running = [str(b.vmx)]
    before = b.vmx.read_text()
    with pytest.raises(InputError, match="edited only while the VM is off"):
        b._render(5999)
    with pytest.raises(InputError, match="is running"):
        b.reset_definition()
    assert b.vmx.read_text() == before


def test_stop_of_a_vm_that_is_off_is_not_running_without_a_stop_call(tmp_path: Path) -> None:
    fake = Fake()
    b = backend(tmp_path, fake)
    b.define()
    assert b.stop("soft").how == "not running"
    assert "stop" not in fake.commands()


def test_not_powered_on_on_stop_counts_as_stopped(tmp_path: Path) -> None:
    fake = Fake()
    b = backend(tmp_path, fake)
    b.define()
    fake.running = [str(b.vmx)]
    fake.answers["stop"] = (255, f"Error: The virtual machine is not powered on: {b.vmx}\n")

    def list_then_off(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        res = Fake.__call__(fake, argv, **kw)
        if argv[3] == "stop":
            fake.running = []
        return res

    b._vmrun = vr.Vmrun("vmrun", "ws", runner=list_then_off)
    assert b.stop("soft").how == "soft"


def test_soft_stop_that_times_out_goes_hard(tmp_path: Path) -> None:
    fake = Fake()
    b = backend(tmp_path, fake)
    b.define()
    fake.running = [str(b.vmx)]
    seen: list[tuple[list[str], float]] = []

    def runner(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        seen.append((argv[3:], kw["timeout"]))
        if argv[3:5] == ["stop", str(b.vmx)] and argv[5] == "soft":
            raise subprocess.TimeoutExpired(argv, kw["timeout"])
        return fake(argv, **kw)

    b._vmrun = vr.Vmrun("vmrun", "ws", runner=runner)
    res = b.stop("soft", timeout=15)
    assert res.how == "hard"
    assert (["stop", str(b.vmx), "soft"], 15) in seen and ["stop", str(b.vmx), "hard"] in [a for a, _ in seen]


def test_eject_uses_disconnect_named_device_and_falls_back_to_power_off(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Fake()
    b = backend(tmp_path, fake)
    b.define()
    fake.running = [str(b.vmx)]
    b.eject_cdrom()
    assert fake.argv[-1] == ["-T", "ws", "disconnectNamedDevice", str(b.vmx), "sata0:1"]
    fake.answers["disconnectNamedDevice"] = (255, "Error: The operation is not supported for the specified "
                                                  "parameters\n")
    started: list[str | None] = []
    monkeypatch.setattr(b, "start", lambda: started.append(VmxFile.load(b.vmx).get("sata0:1.startConnected")))
    b.eject_cdrom()
    assert "stop" in fake.commands() and started == ["FALSE"]
    assert b._ejected  # the next power-on's render keeps the CD out


def test_player_has_no_snapshots_and_says_so_without_asking_vmrun(tmp_path: Path) -> None:
    fake = Fake()
    b = backend(tmp_path, fake, product="player")
    assert not b.capabilities.snapshots and not b.capabilities.clone
    assert b.snapshots() == []
    with pytest.raises(Unsupported, match="re-renders the VM"):
        b.snapshot("golden")
    with pytest.raises(Unsupported):
        b.clone(tmp_path / "c.vmx")
    assert fake.argv == []


def test_windows_pipe_and_list_paths_matched_case_insensitively(tmp_path: Path) -> None:
    win = vr.Host(platform="win32", env={}, which=lambda n: None, is_file=lambda p: False,
                  registry=lambda k, v: None)
    fake = Fake()
    b = backend(tmp_path, fake, host=win)
    assert b.serial_path() == r"\\.\pipe\labctl-vmw-vmw"
    fake.running = [str(b.vmx).upper().replace("/", "\\")]
    assert b.power_state() is PowerState.OFF  # no .vmx yet
    b.define()
    assert b.power_state() is PowerState.RUNNING
    (tmp_path / "l").mkdir()
    linux = backend(tmp_path / "l", Fake())
    linux.define()
    assert linux._vmrun is not None
    linux._vmrun.runner = Fake([str(linux.vmx).upper()])
    assert linux.power_state() is PowerState.OFF  # Linux paths are case-sensitive


def test_render_and_backend_name_the_same_serial_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'labctl render' and the backend write one serial0.fileName: \\\\.\\pipe\\labctl-<lab>-<seat> on Windows,
    the seat's socket elsewhere."""
    from labctl import vmx
    from labctl.vmx import render_vmx, vnc_credentials

    win = vr.Host(platform="win32", env={}, which=lambda n: None, is_file=lambda p: False,
                  registry=lambda k, v: None)
    b = backend(tmp_path, Fake(), host=win)
    assert vmx.serial_pipe(b.lab, b.seat, windows=True) == r"\\.\pipe\labctl-vmw-vmw" == b.serial_path()
    monkeypatch.setattr(vmx, "os", SimpleNamespace(**{**vars(os), "name": "nt"}))  # render on a Windows host
    rendered = VmxFile.parse(render_vmx(b.lab, b.seat, vnc_credentials(b.seat)))
    monkeypatch.undo()
    assert rendered.get("serial0.fileName") == b.serial_path()
    linux = backend(tmp_path, Fake())
    rendered = VmxFile.parse(render_vmx(linux.lab, linux.seat, vnc_credentials(linux.seat)))
    assert rendered.get("serial0.fileName") == linux.serial_path()
    if len(str(linux.state_dir / "serial.pipe")) <= 100:  # short enough for a socket: in the state folder
        assert linux.serial_path() == str(linux.state_dir / "serial.pipe")


@pytest.mark.parametrize("depth", [1, 12])
def test_render_and_backend_agree_on_the_socket_however_deep_the_state_folder(tmp_path: Path, depth: int) -> None:
    """A state folder too deep for a unix socket's path moves the socket to a short private folder: render
    writes the same serial0.fileName the backend opens, and the path fits sun_path."""
    from labctl.vmx import SUN_PATH_MAX, render_vmx, vnc_credentials

    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * depth)
    deep.mkdir(parents=True)
    b = backend(deep, Fake())
    rendered = VmxFile.parse(render_vmx(b.lab, b.seat, vnc_credentials(b.seat)))
    assert rendered.get("serial0.fileName") == b.serial_path()
    assert len(b.serial_path()) <= SUN_PATH_MAX
    assert Path(b.serial_path()).parent.is_dir()


def test_usable_and_missing_vmrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_VMRUN", str(SHIM))
    b = backend(tmp_path)
    assert VmwareBackend.usable(b.lab) == (True, f"vmrun at {SHIM}")
    monkeypatch.delenv("LABCTL_VMRUN")
    monkeypatch.setenv("PATH", str(tmp_path))
    ok, why = VmwareBackend.usable(b.lab)
    assert not ok and "vmrun not found" in why


def test_product_probed_on_a_player_host_through_the_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_VMRUN", str(SHIM))
    monkeypatch.setenv("VMRUN_SHIM_STATE", str(tmp_path / "shim"))
    monkeypatch.setenv("VMRUN_SHIM_FAULTS", '{"player_only": true}')
    b = backend(tmp_path)
    facts = b.prepare()
    assert facts["product"] == "player" and not b.capabilities.snapshots
    assert "VIX_SERVICEPROVIDER_VMWARE_WORKSTATION" in str(facts["product_probe"])
    b2 = backend(tmp_path, extra="vmware: {product: ws}")
    assert b2.prepare()["product"] == "ws"  # named in the lab: not probed


def test_linked_clone_through_the_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_VMRUN", str(SHIM))
    monkeypatch.setenv("VMRUN_SHIM_STATE", str(tmp_path / "shim"))
    monkeypatch.delenv("VMRUN_SHIM_FAULTS", raising=False)
    b = backend(tmp_path, extra="vmware: {product: ws}")
    b.define()
    dest = b.clone(tmp_path / "seat2" / "seat2.vmx")
    vmx = VmxFile.load(dest)
    assert vmx["uuid.action"] == "create" and vmx["msg.autoanswer"] == "TRUE" and vmx["displayName"] == "seat2"
    assert b.snapshots() == ["labctl-clone"]
    b.revert("labctl-clone")


def test_stick_view_while_running_and_after(tmp_path: Path) -> None:
    fake = Fake()
    b = backend(tmp_path, fake)
    b.define()
    fake.running = [str(b.vmx)]
    with b.stick_view() as view:
        assert view.path is None and "passed through to the running VMware VM" in view.reason
    fake.running = []
    b._listed_at = 0.0
    with b.stick_view() as view:  # this host has no such USB device
        assert view.path is None and "0781:5567" in view.reason


def test_usb_connect_failure_in_vmware_log_is_a_death_with_its_words(tmp_path: Path) -> None:
    fake = Fake()
    b = backend(tmp_path, fake)
    b.define()
    fake.running = [str(b.vmx)]
    from labctl.backends import vmwarelog

    b._started_here = True
    b._record = VmRecord(str(b.vmx), "ws", 5901, b.serial_path(), os.getpid(), False, 0.0)
    b._watch = vmwarelog.LogWatcher(b.log_path)
    assert not b.died()
    line = ('[msg.usb.connectFailed] The connection for the USB device "SanDisk Cruzer Blade" was unsuccessful. '
            "Driver error.")
    b.log_path.write_text(f"2026-12-01T09:00:01.000Z| vmx| I005: {line}\n")
    assert b.died()
    assert line in b.death_message() and "0781:5567" in b.death_message()


def test_attach_to_a_vm_started_outside_labctl_reads_a_windows_written_vmx(tmp_path: Path) -> None:
    fake = Fake()
    b = backend(tmp_path, fake)
    b.vm_dir.mkdir(parents=True)
    b.vmx.write_bytes(b'.encoding = "UTF-8"\r\nREMOTEDISPLAY.VNC.PORT = "5933"\r\nDisplayName = "vmw"\r\n'
                      b'remotedisplay.vnc.Password = "Tr41ner!"\r\n')
    fake.running = [str(b.vmx)]
    assert b.attach_running()
    assert b.vnc_display() == "127.0.0.1 port 5933 (display :33)"
    assert b.vnc_endpoint().password == "Tr41ner!"


def test_a_failed_hard_stop_of_a_vm_that_is_gone_counts_as_stopped(tmp_path: Path) -> None:
    fake = Fake()
    b = backend(tmp_path, fake)
    b.define()
    fake.running = [str(b.vmx)]
    fake.answers["stop"] = (255, "Error: Cannot connect to the virtual machine\n")

    def gone_after_stop(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        res = fake(argv, **kw)
        if argv[3] == "stop":
            fake.running = []
        return res

    b._vmrun = vr.Vmrun("vmrun", "ws", runner=gone_after_stop)
    assert b.stop("hard").how == "hard"
    fake.running = [str(b.vmx)]

    def still_there(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return fake(argv, **kw)

    b._vmrun = vr.Vmrun("vmrun", "ws", runner=still_there)
    with pytest.raises(vr.VmrunFailed, match="Cannot connect to the virtual machine"):
        b.stop("hard")


def _shim_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: str | None) -> None:
    monkeypatch.setenv("LABCTL_VMRUN", str(SHIM))
    monkeypatch.setenv("VMRUN_SHIM_STATE", str(tmp_path / "shim"))
    if faults:
        monkeypatch.setenv("VMRUN_SHIM_FAULTS", faults)
    else:
        monkeypatch.delenv("VMRUN_SHIM_FAULTS", raising=False)


@pytest.mark.parametrize("disks", [[], ["/dev/sdx", "/dev/sdy"]], ids=["no-stick", "two-sticks"])
def test_reset_of_a_player_seat_skips_a_host_stick_it_cannot_prove_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], disks: list[str]) -> None:
    """'labctl reset' re-renders a Player seat's VM; with no single disk of the stick's vid:pid on the host the
    stick step is skipped with the reason (nothing written), and the seat is not ok (exit 1)."""
    import json

    from labctl.cli import main
    from labctl.stick import blockdev

    _shim_env(tmp_path, monkeypatch, '{"player_only": true}')
    b = backend(tmp_path)
    b.define()
    nvram = b.vm_dir / "vmw.nvram"
    nvram.write_bytes(b"vars")
    seen = [SimpleNamespace(path=d, usb_id="0781:5567") for d in disks]
    monkeypatch.setattr(blockdev, "probe", lambda device=None: seen)
    monkeypatch.setattr("labctl.classroom._stick_verb", lambda *a, **k: pytest.fail("a stick verb ran"))
    assert main(["reset", str(tmp_path / "lab.yaml"), "--json", "--yes"]) == 1
    out = json.loads(capsys.readouterr().out)
    seat = out["seats"][0]
    assert not out["ok"] and not seat["ok"] and seat["changed"]
    assert "UEFI variables (nvram) removed" in seat["message"] and "vmw.vmx re-rendered" in seat["message"]
    assert f"host stick not reset: seat 1 (vmw): {len(disks)} disks are USB 0781:5567" in seat["message"]
    assert "the stick is emptied" not in seat["message"]
    assert not nvram.exists() and b.vmx.is_file()


def test_golden_copy_of_a_workstation_seat_is_an_image_of_the_host_stick(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A VM snapshot does not hold a passed-through stick: after-install keeps the stick's image, not a snapshot."""
    from labctl import classroom
    from labctl.runner import UpOptions

    _shim_env(tmp_path, monkeypatch, None)
    b = backend(tmp_path, extra="vmware: {product: ws}")
    b.define()
    kept: list[tuple[str | None, float]] = []
    monkeypatch.setattr(classroom, "keep_host_golden",
                        lambda lab, seat, device=None, wait=0.0: kept.append((device, wait)) or "image kept")
    assert classroom.keep_golden(b.lab, b.seat, UpOptions(backend="vmware")) == "image kept"
    assert kept == [(None, classroom.STICK_BACK)] and b.snapshots() == []


def test_start_does_not_fail_on_the_previous_power_ons_usb_failure(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """vmware.log still holds the last power-on's connectFailed (the stick was unplugged then) and VMware begins
    the new log late: the start succeeds, and only the new log's lines count."""
    from labctl.backends import vmware

    monkeypatch.setattr(vmware, "_vnc_answers", lambda port, timeout=2.0: True)
    monkeypatch.setattr(vmware, "NEW_LOG_WAIT", 0.2)
    monkeypatch.setattr(vmware, "USB_SETTLE", 0.3)
    fake = Fake()
    b = backend(tmp_path, fake)
    b.define()
    b.log_path.write_text('2026-12-01T09:00:00.000Z| vmx| I005: [msg.usb.connectFailed] The connection for the USB '
                          'device "SanDisk" was unsuccessful. The VMware USB Arbitrator returned error code 4.\n')
    b.start()
    assert "start" in fake.commands() and not b.died()
    with open(b.log_path, "a") as f:
        f.write('2026-12-01T09:00:09.000Z| vmx| I005: [msg.usb.connectFailed] The connection for the USB device '
                '"SanDisk" was unsuccessful. The VMware USB Arbitrator returned error code 4.\n')
    assert b.died() and "error code 4" in b.death_message()


def test_owner_check_never_signals_a_process_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.kill(pid, 0) terminates the process on Windows: 'labctl down' from a second shell would kill the up."""
    from labctl.backends import vmware

    asked: list[int] = []
    monkeypatch.setattr(vmware.os, "kill", lambda pid, sig: pytest.fail(f"os.kill({pid}, {sig})"))
    monkeypatch.setattr(vmware, "_windows_pid_alive", lambda pid: asked.append(pid) or True)
    assert vmware._pid_alive(4242, platform="win32") and asked == [4242]
    monkeypatch.undo()
    assert vmware._pid_alive(os.getpid()) and not vmware._pid_alive(2**22 + 12345)


def test_status_names_the_probed_product(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _shim_env(tmp_path, monkeypatch, '{"player_only": true}')
    b = backend(tmp_path)
    b.define()
    assert VmwareBackend(b.lab, b.seat).status_details()["product"] == "player"


def test_render_writes_the_vmx_the_backend_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """'labctl render', a trainer's edit, then the backend's own render at power-on: one file, the edit kept."""
    from labctl.cli import main

    b = backend(tmp_path, Fake())
    assert main(["render", str(tmp_path / "lab.yaml")]) == 0
    assert capsys.readouterr().out.split() == [str(b.vmx)]
    b.vmx.write_text(b.vmx.read_text() + 'trainer.note = "mine"\n')
    b._render(5999)
    assert VmxFile.load(b.vmx)["trainer.note"] == "mine" and VmxFile.load(b.vmx)["RemoteDisplay.vnc.port"] == "5999"


def test_render_refuses_the_vmx_of_a_running_vm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labctl.cli import main

    b = backend(tmp_path, Fake())
    b.define()
    before = b.vmx.read_text()
    (b.vm_dir / "vmw.vmx.lck").mkdir()
    (b.vm_dir / "vmw.nvram.lck").mkdir()  # VMware's locks while the VM runs
    assert main(["render", str(tmp_path / "lab.yaml")]) == 2
    err = capsys.readouterr().err
    assert "VMware holds" in err and "vmw.nvram.lck" in err and "'labctl down' it first" in err
    assert b.vmx.read_text() == before
    (b.vm_dir / "vmw.nvram.lck").rmdir()  # off again: a lone .vmx.lck stays behind and is harmless
    assert main(["render", str(tmp_path / "lab.yaml")]) == 0


def test_reset_of_a_workstation_seat_never_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """No .vmx yet: nothing to list snapshots of; reset renders the seat's VM (the stick step: no golden copy)."""
    from labctl.cli import main

    _shim_env(tmp_path, monkeypatch, None)
    b = backend(tmp_path, extra="vmware: {product: ws}\nreset: after-install")
    assert b.snapshots() == []
    assert main(["reset", str(tmp_path / "lab.yaml")]) == 0
    out = capsys.readouterr().out
    assert "host stick left as it is (no golden copy yet" in out and "vmw.vmx re-rendered" in out
    assert b.vmx.is_file()
