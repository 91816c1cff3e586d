"""The vmrun shim itself (no QEMU started): it talks like vmrun, renders a .vmx by the meaning of its keys,
and has the fault modes the VMware backend's tests need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FAKES = Path(__file__).resolve().parent.parent / "fakes"
SHIM = FAKES / "vmrun"
sys.path.insert(0, str(FAKES))

from vmrun_shim import render  # noqa: E402
from vmrun_shim import vmx as shim_vmx  # noqa: E402

VMX = """\
.encoding = "UTF-8"
displayName = "seat1"
firmware = "efi"
numvcpus = "2"
memsize = "8192"
nvram = "seat1.nvram"
usb.present = "TRUE"
ehci.present = "TRUE"
usb_xhci.present = "TRUE"
usb.autoConnect.device0 = "vid:0x0781 pid:0x5567 autoclean:1"
sata0.present = "TRUE"
sata0:1.present = "TRUE"
sata0:1.deviceType = "cdrom-image"
sata0:1.fileName = "{iso}"
sata0:1.startConnected = "TRUE"
RemoteDisplay.vnc.enabled = "TRUE"
RemoteDisplay.vnc.ip = "127.0.0.1"
RemoteDisplay.vnc.port = "5944"
RemoteDisplay.vnc.password = "pw|22x"
serial0.present = "TRUE"
serial0.fileType = "pipe"
serial0.fileName = "{pipe}"
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    stick = tmp_path / "stick.img"
    stick.write_bytes(b"")
    usb = tmp_path / "usb.json"
    usb.write_text(json.dumps([{"vid": "0x0781", "pid": "0x5567", "path": "1/3/2", "name": "SanDisk Cruzer Blade",
                                "image": str(stick)}]))
    e = {"VMRUN_SHIM_STATE": str(tmp_path / "shim"), "VMRUN_SHIM_USB": str(usb)}
    for k, v in e.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("VMRUN_SHIM_FAULTS", raising=False)
    return e


def vmrun(*args: str, faults: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if faults is not None:
        env["VMRUN_SHIM_FAULTS"] = json.dumps(faults)
    return subprocess.run([str(SHIM), *args], capture_output=True, text=True, timeout=30, env=env)


def make_vmx(tmp_path: Path, text: str = VMX) -> Path:
    iso = tmp_path / "sim.iso"
    iso.write_bytes(b"\0" * 2048)
    p = tmp_path / "vm" / "seat1.vmx"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text.format(iso=iso, pipe=tmp_path / "s.pipe"))
    return p


def test_bare_vmrun_prints_usage_with_the_version_on_line_3(env: dict[str, str]) -> None:
    r = vmrun()
    assert r.returncode == 255
    assert r.stdout.splitlines()[2] == "vmrun version 1.17.0 build-24995812"


def test_list_and_errors_on_stdout_with_exit_255(env: dict[str, str], tmp_path: Path) -> None:
    r = vmrun("-T", "ws", "list")
    assert (r.returncode, r.stdout) == (0, "Total running VMs: 0\n")
    vmx = make_vmx(tmp_path)
    r = vmrun("-T", "ws", "stop", str(vmx), "soft")
    assert (r.returncode, r.stdout) == (255, f"Error: The virtual machine is not powered on: {vmx}\n")
    r = vmrun("-T", "ws", "start", str(tmp_path / "nope.vmx"))
    assert r.returncode == 255 and r.stdout.startswith(f"Error: Cannot open VM: {tmp_path / 'nope.vmx'}")
    assert vmrun("-T", "ws", "frobnicate").stdout == "Error: Unrecognized command: frobnicate\n"
    assert vmrun("-T", "ws", "getGuestIPAddress", str(vmx)).stdout.startswith("Error: The virtual machine is not")
    calls = (Path(env["VMRUN_SHIM_STATE"]) / "calls.jsonl").read_text().splitlines()
    assert len(calls) == 5 and json.loads(calls[0])["argv"] == ["-T", "ws", "list"]


def test_snapshots_on_workstation_and_not_on_player(env: dict[str, str], tmp_path: Path) -> None:
    vmx = make_vmx(tmp_path)
    assert vmrun("-T", "ws", "listSnapshots", str(vmx)).stdout == "Total snapshots: 0\n"
    assert vmrun("-T", "ws", "snapshot", str(vmx), "installed").returncode == 0
    again = vmrun("-T", "ws", "snapshot", str(vmx), "installed")
    assert again.stdout == "Error: A snapshot with the name already exists\n"
    assert vmrun("-T", "ws", "listSnapshots", str(vmx)).stdout == "Total snapshots: 1\ninstalled\n"
    vmx.write_text(vmx.read_text() + 'user.key = "mine"\n')
    assert vmrun("-T", "ws", "revertToSnapshot", str(vmx), "installed").returncode == 0
    assert "user.key" not in vmx.read_text()
    bad = vmrun("-T", "ws", "revertToSnapshot", str(vmx), "nope")
    assert bad.stdout == "Error: The name does not uniquely identify one snapshot\n"
    r = vmrun("-T", "player", "snapshot", str(vmx), "x")
    assert (r.returncode, r.stdout) == (255, "Error: The operation is not supported\n")
    clone = tmp_path / "clone" / "seat2.vmx"
    r = vmrun("-T", "ws", "clone", str(vmx), str(clone), "linked", "-snapshot=installed", "-cloneName=seat2")
    assert r.returncode == 0, r.stdout
    cfg = shim_vmx.load(clone)
    assert cfg["displayname"] == "seat2" and cfg["nvram"] == "seat2.nvram"


def test_fault_modes(env: dict[str, str], tmp_path: Path) -> None:
    vmx = make_vmx(tmp_path)
    r = vmrun("-T", "ws", "start", str(vmx), faults={"start": {"error": "Error: Insufficient permissions", "exit": 0}})
    assert (r.returncode, r.stdout) == (0, "Error: Insufficient permissions\n")
    r = vmrun("-T", "ws", "list", faults={"list": {"noise": "2026-12-01T09:00:00| vmrun| log line",
                                                   "error": "Error: Cannot connect to the virtual machine"}})
    assert r.stdout.splitlines() == ["2026-12-01T09:00:00| vmrun| log line",
                                     "Error: Cannot connect to the virtual machine"]
    r = vmrun("-T", "ws", "list", faults={"player_only": True})
    assert r.returncode == 255 and r.stdout.splitlines() == [
        "Unable to connect to host.",
        "Error: Service type VIX_SERVICEPROVIDER_VMWARE_WORKSTATION was specified, but not installed"]
    assert vmrun("-T", "player", "list", faults={"player_only": True}).returncode == 0
    r = vmrun("-T", "ws", "start", str(vmx), "nogui", faults={"start": {"cancel": True}})
    assert (r.returncode, r.stdout) == (255, "Error: The operation was canceled\n")
    log = (vmx.parent / "vmware.log").read_text()
    assert "Msg_Post: Error" in log and "[msg.vmx.poweron.failed]" in log and "-----" in log
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([str(SHIM), "-T", "ws", "start", str(vmx)], timeout=1, capture_output=True,
                       env={**os.environ, "VMRUN_SHIM_FAULTS": json.dumps({"start": {"hang": True}})})


# -- the render: a .vmx's keys -> QEMU --------------------------------------------------------------


def build(tmp_path: Path, text: str) -> render.Plan:
    vmx = make_vmx(tmp_path, text)
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    return render.build(shim_vmx.load(vmx), vmx, run, tmp_path)


def test_efi_cpus_memory_cd_stick_vnc_serial(env: dict[str, str], tmp_path: Path) -> None:
    plan = build(tmp_path, VMX)
    argv = " ".join(plan.argv)
    assert "if=pflash" in argv and "OVMF_CODE_4M.fd" in argv and (tmp_path / "vm" / "seat1.nvram").is_file()
    assert "-smp 2" in argv and "-m 8192" in argv
    assert f"file={tmp_path / 'sim.iso'}" in argv and "ide-cd,bus=ide.1,drive=drv-cd1" in argv
    assert "usb-storage,bus=xhci.0" in argv and str(tmp_path / "stick.img") in argv
    assert "-vnc 127.0.0.1:44,password-secret=vncpass" in argv
    assert (tmp_path / "run" / "vnc.pass").read_text() == 'pw"x'  # |22 decoded
    assert plan.serial_pipe == tmp_path / "s.pipe"
    assert any("USB: Connecting device" in line for line in plan.usb_log)


def test_without_firmware_efi_it_boots_bios(env: dict[str, str], tmp_path: Path) -> None:
    plan = build(tmp_path, VMX.replace('firmware = "efi"\n', ""))
    assert "if=pflash" not in " ".join(plan.argv)
    assert "BIOS: firmware legacy BIOS" in plan.log


def test_cd_not_start_connected_is_empty(env: dict[str, str], tmp_path: Path) -> None:
    plan = build(tmp_path, VMX.replace('sata0:1.startConnected = "TRUE"', 'sata0:1.startConnected = "FALSE"'))
    argv = " ".join(plan.argv)
    assert "sim.iso" not in argv and "ide-cd,bus=ide.1,id=cd1" in argv


@pytest.mark.parametrize("rule", ["vid:0781 pid:5567 autoclean:0", "path:1/3/2 autoclean:1", "0x781:0x5567"])
def test_autoconnect_forms_match_the_declared_device(env: dict[str, str], tmp_path: Path, rule: str) -> None:
    plan = build(tmp_path, VMX.replace("vid:0x0781 pid:0x5567 autoclean:1", rule))
    assert "usb-storage" in " ".join(plan.argv)


def test_no_rule_match_or_no_controller_means_no_stick(env: dict[str, str], tmp_path: Path) -> None:
    plan = build(tmp_path, VMX.replace("pid:0x5567", "pid:0x5568"))
    assert "usb-storage" not in " ".join(plan.argv)
    assert any("matched no host device" in line for line in plan.usb_log)
    no_ctrl = VMX.replace('usb.present = "TRUE"\nehci.present = "TRUE"\nusb_xhci.present = "TRUE"\n', "")
    plan = build(tmp_path, no_ctrl)
    assert "usb-storage" not in " ".join(plan.argv)


def test_usb_connect_failure_logs_vmwares_line_and_attaches_nothing(env: dict[str, str], tmp_path: Path) -> None:
    usb = json.loads(Path(env["VMRUN_SHIM_USB"]).read_text())
    usb[0]["connect_error"] = "4"
    Path(env["VMRUN_SHIM_USB"]).write_text(json.dumps(usb))
    plan = build(tmp_path, VMX)
    assert "usb-storage" not in " ".join(plan.argv)
    assert ('[msg.usb.connectFailed] The connection for the USB device "SanDisk Cruzer Blade" was unsuccessful. '
            "The VMware USB Arbitrator returned error code 4.") in plan.usb_log
