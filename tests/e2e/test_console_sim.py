"""The console engine against the simulator on QEMU/TCG: keys (Shift+O), waits, reconnects, timeouts,
and the interactive playbook end to end with 200 typed characters read back exactly from the stick.

Screen evidence only in the install test (serial=None): the real boot loader and installer print
nothing on serial, so the playbook must pass without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl import layouts
from labctl.backends.qemu import QemuBackend
from labctl.console import Console, WaitTimeout
from labctl.console.screen import find_text
from labctl.console.vnc import VncSession
from labctl.playbook import run_playbook
from labctl.report import RunFolder
from labctl.spec import load_lab

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists(), reason="needs ovmf"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86"),
    pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract-ocr"),
]

PASSWORD = "Console-Test1!"
LAB = """\
name: consoletest
backend: qemu
esxi: "6.7"
iso: sim
vm: {{cpus: 2, memory_mb: 8192, disk: none}}
stick: {{image: {stick}, size: 16G}}
install: {{playbook: esxi-6.7-interactive, boot_options: preferVMklinux=TRUE, root_password: {{env: CONSOLE_TEST_PW}}}}
"""


@pytest.fixture
def seat(tmp_path: Path, sim_iso: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[QemuBackend]:
    monkeypatch.setenv("CONSOLE_TEST_PW", PASSWORD)
    (tmp_path / "lab.yaml").write_text(LAB.format(stick=tmp_path / "stick.img"))
    lab = load_lab(tmp_path / "lab.yaml")
    backend = QemuBackend(lab, lab.seat_list()[0], iso=sim_iso)
    try:
        backend.define()
        backend.choose_accel()
        backend.start()
        yield backend
    finally:
        backend.stop("hard")


def open_console(backend: QemuBackend, run: RunFolder, serial: bool = False) -> Console:
    return Console.open(backend.vnc_endpoint(), backend.serial_endpoint() if serial else None, run,
                        key_rate=QemuBackend.default_key_rate, secrets=[PASSWORD])


def test_boot_loader_shift_o_fast_wait_and_timeout(seat: QemuBackend, tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    with open_console(seat, run) as c:
        c.step = "boot loader"
        ev = c.wait_text(r"SHIFT\+O: Edit boot options", 120, serial=False)
        assert ev.source == "screen"
        # the countdown is 5 s: Shift+O (Shift held + keysym 'O') must open the editor
        c.send_keys("<leftShiftOn>O<leftShiftOff>")
        ev = c.wait_text("ESC: Cancel", 10, serial=False)
        assert ev.seconds < 5, ev  # within the countdown
        # a blinking/idle editor is still; typing is a change
        c.wait_still(10, 0.5)
        c.wait_change(lambda: c.type_string(" abc"), 5)
        # a wait that never matches: bounded, names the step, leaves its screenshot and what OCR read
        c.step = "never"
        t0 = time.monotonic()
        with pytest.raises(WaitTimeout) as exc:
            c.wait_text("Installation Complete", 3, serial=False)
        assert time.monotonic() - t0 < 8
        assert "step 'never'" in str(exc.value) and exc.value.screenshot and exc.value.screenshot.exists()
        assert "Cancel" in exc.value.ocr_text


def test_vnc_drop_during_a_wait_reconnects(seat: QemuBackend, tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    with open_console(seat, run) as c:
        vnc = c.vnc
        assert isinstance(vnc, VncSession)
        c.wait_text(r"SHIFT\+O|Automatic boot in", 120, serial=False)
        c.send_keys("<leftShiftOn>O<leftShiftOff>")
        c.wait_text("ESC: Cancel", 10, serial=False)
        # drop the connection under the session (as a network drop would), then keep using it
        proto = vnc._protocol
        vnc._reactor.callFromThread(proto.transport.abortConnection)
        deadline = time.monotonic() + 5
        while vnc.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        c.type_string(" after-drop")
        c.wait_text("after-drop", 15, serial=False)
        assert vnc.reconnects >= 1


def _kernelopt(stick: Path) -> str:
    out = subprocess.run(["mtype", "-i", f"{stick}@@{8224 * 512}", "::/BOOT.CFG"], capture_output=True, text=True,
                         timeout=30, check=False).stdout
    m = re.search(r"^kernelopt=(.*)$", out, re.M)
    return m.group(1).rstrip() if m else ""


@pytest.mark.skipif(shutil.which("mtype") is None, reason="needs mtools")
def test_interactive_playbook_screen_only_with_200_typed_chars(seat: QemuBackend, tmp_path: Path) -> None:
    # 199 characters of boot options after the playbook's leading space: 200 keys, shifted ones included
    words = ["preferVMklinux=TRUE", "Ab:C+d", "x_Y%z!", "Q@w#E*r", "0O1lI|i", "ks-not", "UPPER", "lower"]
    options = " ".join(words)
    options += " " + "".join("AbC+12:z"[i % 8] for i in range(199 - len(options) - 1))
    assert len(options) == 199
    run = RunFolder(tmp_path / "run", secrets=[PASSWORD])
    with open_console(seat, run, serial=False) as c:
        run_playbook("esxi-6.7-interactive", c, seat, {"boot_options": options, "root_password": PASSWORD,
                                                       "keyboard": "US Default"}, run, [PASSWORD])
    seat.stop("hard")  # flush the stick image
    stick = seat.seat.stick_image(seat.lab)
    assert stick is not None
    assert _kernelopt(stick) == options  # every one of the 200 keys arrived, in order
    gpt = layouts.read_gpt(str(stick))
    assert layouts.compare(gpt, layouts.expected_layout(gpt.size // 512, "usb")) == []
    # no secret anywhere in the run folder; a PNG at screen changes; a report
    for p in run.path.rglob("*"):
        if p.is_file() and p.suffix in (".jsonl", ".html", ".log"):
            assert PASSWORD not in p.read_text(errors="replace"), p
    assert len(list((run.path / "frames").glob("*.png"))) >= 5
    assert os.path.exists(run.finish("ok"))


def test_post_install_shell_run_steps(seat: QemuBackend, tmp_path: Path) -> None:
    """Install, reboot from the stick, enable the shell in the DCUI (select on its menus), log in at
    Alt+F1, then 'run' steps whose output is read back (serial when there is one)."""
    playbook = tmp_path / "usb-settings.yaml"
    playbook.write_text("""\
name: usb-settings
steps:
  - run: {command: 'esxcli system settings kernel set -s preferVmklinux -v FALSE'}
  - run: {command: 'esxcli system settings kernel list -o preferVmklinux', as: kernel,
          expect: 'preferVmklinux\\s+Bool\\s+FALSE'}
""")
    run = RunFolder(tmp_path / "run", secrets=[PASSWORD])
    variables: dict[str, object] = {"boot_options": "preferVMklinux=TRUE", "root_password": PASSWORD,
                                    "keyboard": "US Default"}
    with open_console(seat, run, serial=True) as c:
        run_playbook("esxi-6.7-interactive", c, seat, variables, run, [PASSWORD])
        run_playbook("enable-esxi-shell", c, seat, variables, run, [PASSWORD])
        run_playbook(str(playbook), c, seat, variables, run, [PASSWORD])
        # the same through the screen only (OCR read-back), as on a real host without a serial console
        serial, c.serial = c.serial, None
        try:
            out = c.run_command("esxcli system settings kernel list -o preferVmklinux", r"\[root@localhost:~\]", 30)
        finally:
            c.serial = serial
        events = run.events()
    outputs = [e for e in events if e["step"].startswith("run command=esxcli system settings kernel list")]
    assert outputs and "FALSE" in outputs[-1]["matched"]
    assert PASSWORD not in (run.path / "events.jsonl").read_text()
    assert find_text(r"preferVmklinux\s+Bool\s+FALSE", out), out
