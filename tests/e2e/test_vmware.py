"""``--backend vmware`` end to end through the vmrun shim (tests/fakes/vmrun), which runs the rendered .vmx
on QEMU by the meaning of its keys, with the ESXi 6.7 installer simulator as the ISO.

The lab is labs/usb-install.yaml with only ``iso: sim`` changed; the shim maps the lab's stick
(vid:pid 0781:5567) to a 16 GiB sparse image, which must end with ESXi's 16 GB USB layout. The fault
tests need no install: an ``Error:`` with exit 0, a USB connect failure (vmware.log's words, under 10 s),
a ``start`` that hangs, and a Player-only host whose ``labctl reset`` re-renders the VM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from labctl import layouts

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists(), reason="needs ovmf"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86"),
    pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract-ocr"),
]

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "tests" / "fakes" / "vmrun"
USB_FAILED = ('[msg.usb.connectFailed] The connection for the USB device "SanDisk Cruzer Blade" was unsuccessful. '
              "The VMware USB Arbitrator returned error code 4.")


class Seat:
    """A VMware lab in tmp_path: the seed's lab with iso: sim, a shim state folder and the host's USB devices."""

    def __init__(self, tmp_path: Path, connect_error: str | None = None, faults: dict[str, Any] | None = None) -> None:
        self.dir = tmp_path
        seed = yaml.safe_load((REPO / "labs" / "usb-install.yaml").read_text())
        seed["iso"] = "sim"
        self.lab = tmp_path / "usb-install.yaml"
        self.lab.write_text(yaml.safe_dump(seed, sort_keys=False))
        self.stick = tmp_path / "stick.img"
        with open(self.stick, "wb") as f:
            f.truncate(16 * 2**30)
        usb = [{"vid": "0x0781", "pid": "0x5567", "path": "1/3/2", "name": "SanDisk Cruzer Blade",
                "image": str(self.stick), **({"connect_error": connect_error} if connect_error else {})}]
        (tmp_path / "usb.json").write_text(json.dumps(usb))
        self.env = {**os.environ, "LABCTL_VMRUN": str(SHIM), "VMRUN_SHIM_STATE": str(tmp_path / "shim"),
                    "VMRUN_SHIM_USB": str(tmp_path / "usb.json"), "LAB_ROOT_PASSWORD": "VMware1!lab"}
        if faults:
            self.env["VMRUN_SHIM_FAULTS"] = json.dumps(faults)
        self.vmx = tmp_path / ".labctl" / "usb-install" / "seat1" / "vm" / "usb-install.vmx"

    def labctl(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True,
                              timeout=timeout, env={**self.env, **env}, cwd=self.dir)

    def vmrun(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in self.env.items() if k != "VMRUN_SHIM_FAULTS"}
        return subprocess.run([str(SHIM), *args], capture_output=True, text=True, timeout=60, env=env)

    def running(self) -> int:
        out = self.vmrun("-T", "player" if "player_only" in self.env.get("VMRUN_SHIM_FAULTS", "") else "ws", "list")
        m = re.match(r"Total running VMs: (\d+)", out.stdout)
        assert m, out.stdout
        return int(m.group(1))

    def calls(self) -> list[list[str]]:
        path = self.dir / "shim" / "calls.jsonl"
        return [json.loads(line)["argv"] for line in path.read_text().splitlines()] if path.exists() else []

    def stop_all(self) -> None:
        """Never leave a VM behind, whatever the test did."""
        for product in ("ws", "player"):
            out = self.vmrun("-T", product, "list").stdout.splitlines()[1:]
            for vmx in out:
                self.vmrun("-T", product, "stop", vmx, "hard")


@pytest.fixture
def seats(tmp_path: Path):  # type: ignore[no-untyped-def]
    made: list[Seat] = []

    def make(**kw: Any) -> Seat:
        s = Seat(tmp_path, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop_all()


def test_seed_install_with_backend_vmware_through_the_shim(seats: Any) -> None:
    seat = seats()
    t0 = time.monotonic()
    r = seat.labctl("up", str(seat.lab), "--backend", "vmware", timeout=1500)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    gpt = layouts.read_gpt(str(seat.stick))
    assert gpt.size == 16 * 2**30 and len(gpt.partitions) == 6
    assert layouts.compare(gpt, layouts.expected_layout(gpt.size // 512, "usb")) == []
    run_dir = next((seat.dir / "runs").iterdir())
    serial = (run_dir / "serial.log").read_text(errors="replace")  # serial0's pipe, relayed by the shim
    assert "Welcome to the VMware ESXi 6.7.0 Installation" in serial and "esxcli system settings kernel" in serial
    result = json.loads((run_dir / "result.json").read_text())
    assert result["ok"] is True
    assert "passed through to the running VMware VM" in result["layout"]  # the host did not read the stick
    cfg = seat.vmx.read_text()
    for key in ('firmware = "efi"', 'RemoteDisplay.vnc.ip = "127.0.0.1"', 'serial0.fileType = "pipe"',
                'usb.autoConnect.device0 = "vid:0x0781 pid:0x5567 autoclean:1"'):
        assert key in cfg
    assert seat.running() == 0
    calls = seat.calls()
    assert ["-T", "ws", "start", str(seat.vmx), "nogui"] in calls
    assert ["-T", "ws", "disconnectNamedDevice", str(seat.vmx), "sata0:1"] in calls
    assert "VMware1!lab" not in r.stdout + r.stderr
    print(f"\nvmware up through the shim: {took:.1f} s, {len(calls)} vmrun calls")


def test_status_shows_power_state_and_vnc_and_down_leaves_nothing_running(seats: Any) -> None:
    seat = seats()
    r = seat.labctl("up", str(seat.lab), "--boot-only")
    assert r.returncode == 0, r.stderr[-3000:]
    r = seat.labctl("status", str(seat.lab), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads(r.stdout)["seats"][0]
    assert rec["backend"] == "vmware" and rec["power_state"] == "running"
    assert re.fullmatch(r"vnc://127\.0\.0\.1:59\d\d", rec["vnc"]), rec
    text = seat.labctl("status", str(seat.lab)).stdout
    assert "vmware running" in text and rec["vnc"] in text
    assert seat.running() == 1
    r = seat.labctl("down", str(seat.lab), "--timeout", "5")
    assert r.returncode == 0, r.stderr[-3000:]
    assert seat.running() == 0
    assert json.loads(seat.labctl("status", str(seat.lab), "--json").stdout)["seats"][0]["power_state"] == "off"


@pytest.mark.parametrize("noise", [None, "2026-12-01T09:00:00.000| vmrun| VixHost_ConnectEx: connected"],
                         ids=["error-exit-0", "noise-line-first"])
def test_error_with_exit_0_fails_the_run_with_vmruns_words(seats: Any, noise: str | None) -> None:
    words = "Error: Insufficient permissions in host operating system"
    fault: dict[str, Any] = {"error": words, "exit": 0, **({"noise": noise} if noise else {})}
    seat = seats(faults={"start": fault})
    r = seat.labctl("up", str(seat.lab))
    assert r.returncode == 1, r.stderr[-3000:]
    assert "step 'start VM' failed" in r.stderr and f"vmrun start failed: {words}" in r.stderr
    assert "Traceback" not in r.stderr
    assert seat.running() == 0


def test_operation_canceled_shows_vmware_logs_msg_post_block(seats: Any) -> None:
    seat = seats(faults={"start": {"cancel": True}})
    r = seat.labctl("up", str(seat.lab))
    assert r.returncode == 1, r.stderr[-3000:]
    assert "vmrun start failed: Error: The operation was canceled" in r.stderr
    assert "vmware.log" in r.stderr and "[msg.vmx.poweron.failed] Failed to start the virtual machine." in r.stderr
    assert "-----" not in r.stderr


def test_usb_connect_failure_is_reported_in_seconds_with_vmware_logs_words(seats: Any) -> None:
    seat = seats(connect_error="4")
    r = seat.labctl("up", str(seat.lab))
    assert r.returncode == 1, r.stderr[-3000:]
    assert USB_FAILED in r.stderr and "step 'start VM' failed" in r.stderr
    events = [json.loads(x) for x in next((seat.dir / "runs").glob("*/events.jsonl")).read_text().splitlines()]
    failed = [e for e in events if e.get("step") == "start VM" and e.get("result") == "failed"]
    assert failed and failed[0]["duration"] < 10, failed
    assert seat.running() == 0


def test_hanging_start_times_out_with_a_clear_message(seats: Any) -> None:
    seat = seats(faults={"start": {"hang": True}})
    t0 = time.monotonic()
    r = seat.labctl("up", str(seat.lab), LABCTL_VMRUN_START_TIMEOUT="3")
    assert r.returncode == 1, r.stderr[-3000:]
    assert time.monotonic() - t0 < 60
    assert "vmrun start did not return within 3 s (killed it)" in r.stderr
    assert "Traceback" not in r.stderr


def test_player_host_resets_by_re_rendering(seats: Any) -> None:
    """'labctl reset' on a Player-only host: the running VM stopped, nothing asks for snapshots, the VM
    re-rendered (fresh nvram, a trainer's keys kept). The shim's stick image is no disk of this host, so the
    stick step is skipped with that reason and the seat is not ok; the re-rendered VM powers on again."""
    seat = seats(faults={"player_only": True})
    r = seat.labctl("up", str(seat.lab), "--boot-only")
    assert r.returncode == 0, r.stderr[-3000:]
    assert seat.running() == 1
    nvram = seat.vmx.with_suffix(".nvram")
    assert nvram.exists()
    with seat.vmx.open("a") as f:  # while the VM runs; VMware keeps unknown keys when it rewrites the file
        f.write('trainer.note = "kept"\n')
    r = seat.labctl("reset", str(seat.lab), "--json", "--yes", timeout=120)
    assert r.returncode == 1, r.stderr[-3000:]
    rec = json.loads(r.stdout)["seats"][0]
    assert not rec["ok"] and rec["changed"] and rec["power_state"] == "off" and seat.running() == 0
    said = rec["message"]
    assert "stopped the running VM" in said and "UEFI variables (nvram) removed" in said, said
    assert f"{seat.vmx.name} re-rendered" in said, said
    assert "host stick not reset: seat 1 (usb-install): 0 disks are USB 0781:5567 (none plugged in)" in said, said
    assert not nvram.exists() and 'firmware = "efi"' in seat.vmx.read_text() and "trainer.note" in seat.vmx.read_text()
    used = seat.calls()
    assert ["-T", "player", "start", str(seat.vmx), "nogui"] in used
    assert ["-T", "player", "stop", str(seat.vmx), "hard"] in used
    assert not [c for c in used if c[2] in ("snapshot", "revertToSnapshot", "listSnapshots")], used
    r = seat.labctl("up", str(seat.lab), "--boot-only")  # the re-rendered VM powers on again
    assert r.returncode == 0, r.stderr[-3000:]
    assert seat.running() == 1 and nvram.exists()
