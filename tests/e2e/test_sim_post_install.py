"""``labctl up`` with the seed's post-install playbooks on the simulator: esxi-6.7-interactive, then
enable-esxi-shell (eject, reboot into the stick, DCUI, Enable ESXi Shell, Alt+F1 login) and
persist-usb-settings (the two esxcli commands, reboot, module and kernel lists checked), with the console
on the screen only (OCR, no serial), as with VMware Workstation. Afterwards the stick's bootbank holds
the settings (mtools on the host)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness.installed_fixtures import state_cfg

from labctl.spec import load_lab

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists(), reason="needs ovmf"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86"),
    pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract-ocr"),
    pytest.mark.skipif(shutil.which("mtype") is None, reason="needs mtools"),
]

LAB = """\
name: post-install-sim
backend: qemu
esxi: "6.7"
iso: sim
vm: {cpus: 2, memory_mb: 8192, disk: none}
stick:
  image: sticks/{seat}.img
  size: 16G
install:
  playbook: esxi-6.7-interactive
  boot_options: preferVMklinux=TRUE
  root_password: {env: LAB_ROOT_PASSWORD}
post_install: [enable-esxi-shell, persist-usb-settings]
verify: {layout: esxi6, media: usb}
console: {serial: false}
"""

TIMEOUT = 1200


def test_up_with_post_install_playbooks_screen_only(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB)
    proc = subprocess.run([sys.executable, "-m", "labctl", "up", str(lab), "--runs", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = load_lab(lab)
    stick = spec.seat_list()[0].stick_image(spec)
    assert stick is not None
    state = state_cfg(stick)
    assert state["kernel.preferVmklinux"] == "FALSE"
    assert state["module.vmkusb.enabled"] == "FALSE"
    assert state["shell.enabled"] == "TRUE"
    events = next((tmp_path / "runs").rglob("events.jsonl")).read_text()
    for step in ("enable the shell", "vmkusb stays disabled", "preferVmklinux is FALSE at runtime"):
        assert f'"step": "{step}"' in events, step
