"""Every scenario of the seed as a shipped lab, run end to end with ``labctl up`` on QEMU and the simulator:
the 16 GB stick (6 partitions), the 1 GB stick (5), a 10 GB hard disk and no stick (8), a stick host that
gains a datastore (scratch on its .locker), and the unattended kickstart install (no key at the installer).
Each run folder must hold its report and the layout proven inside ESXi (layout-proof.txt / .json).

The labs are copied from labs/ into the test's folder (sticks, state and runs stay there); the simulator ISO
is built once per session into the session's LABCTL_CACHE_DIR and reused by every run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labctl import layouts

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 1500

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists(), reason="needs ovmf"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86"),
    pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract-ocr"),
]


def copy_lab(name: str, dest: Path, **replace: str) -> Path:
    text = (REPO / "labs" / f"{name}.yaml").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    (dest / f"{name}.yaml").write_text(text)
    shutil.copytree(REPO / "labs" / "ks", dest / "ks", dirs_exist_ok=True)
    return dest / f"{name}.yaml"


def labctl(*args: str, timeout: float = TIMEOUT) -> tuple[int, dict[str, Any] | None, str]:
    proc = subprocess.Popen([sys.executable, "-m", "labctl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"labctl {' '.join(args)} did not finish within {timeout} s:\n{err[-3000:]}")
    doc = json.loads(out) if out.strip().startswith("{") else None
    return proc.returncode, doc, err


def up_ok(lab: Path, *extra: str) -> dict[str, Any]:
    code, doc, err = labctl("up", str(lab), "--json", *extra)
    assert code == 0, err[-4000:]
    assert doc is not None and doc["ok"] is True, err[-3000:]
    seat = doc["seats"][0]
    assert seat["ok"] and seat["report"] and Path(seat["report"]).is_file()
    assert os.environ["LAB_ROOT_PASSWORD"] not in (Path(seat["run_dir"]) / "events.jsonl").read_text() + err
    return dict(seat)


def proof(seat: dict[str, Any]) -> dict[str, Any]:
    run = Path(seat["run_dir"])
    text = (run / "layout-proof.txt").read_text()
    assert "verdict: matches ESXi's documented 6.x" in text, text
    return dict(json.loads((run / "layout-proof.json").read_text()))


def events(seat: dict[str, Any]) -> list[dict[str, Any]]:
    lines = (Path(seat["run_dir"]) / "events.jsonl").read_text().splitlines()
    return [json.loads(ln) for ln in lines if ln.strip()]


def no_qemu_for(lab: Path) -> bool:
    marker = str(lab.parent).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmd and marker in cmd:
                return False
    return True


def test_usb_install_sim_16g_stick_then_down_and_existing_stop(tmp_path: Path) -> None:
    """The seed lab with prove-layout: 6 partitions in the guest; --keep leaves it running, down releases it;
    a second up with install.existing: stop meets 'ESXi Found', stops, and leaves the stick as it was."""
    lab = copy_lab("usb-install-sim", tmp_path)
    seat = up_ok(lab, "--keep")
    doc = proof(seat)
    assert doc["partitions_seen"] == "1 5 6 7 8 9" and doc["scratch"] == "/tmp/scratch"
    assert doc["disk"] == "mpx.vmhba32:C0:T0:L0"
    code, status, err = labctl("status", str(lab), "--json", timeout=60)
    assert code == 0 and status is not None, err
    assert status["seats"][0]["power_state"] == "running"
    assert status["seats"][0]["stick_image"] == str(tmp_path / "sticks" / "usb-install-sim.img")

    code, _, err = labctl("down", str(lab), timeout=120)
    assert code == 0, err
    code, status, err = labctl("status", str(lab), "--json", timeout=60)
    assert status is not None and status["seats"][0]["power_state"] == "off", err
    assert no_qemu_for(lab)

    stick = tmp_path / "sticks" / "usb-install-sim.img"
    before = layouts.read_gpt(str(stick)).to_dict()
    stop = copy_lab("usb-install-sim", tmp_path, **{"  root_password: {env: LAB_ROOT_PASSWORD}":
                                                    "  root_password: {env: LAB_ROOT_PASSWORD}\n  existing: stop"})
    code, doc2, err = labctl("up", str(stop), "--json")
    assert code == 1, err[-3000:]
    assert doc2 is not None and doc2["seats"][0]["step"] == "install playbook esxi-6.7-interactive"
    assert "the stick already holds ESXi and install.existing is stop" in doc2["seats"][0]["message"]
    assert layouts.read_gpt(str(stick)).to_dict() == before  # nothing written
    assert no_qemu_for(lab)


def test_usb_1gb_sim_five_partitions(tmp_path: Path) -> None:
    seat = up_ok(copy_lab("usb-1gb-sim", tmp_path))
    doc = proof(seat)
    assert doc["partitions_seen"] == "1 5 6 7 8" and doc["size_gib"] == 1.0
    assert all(r["host_gpt"] != "absent" for r in doc["rows"])  # the host-side GPT beside it


def test_hdd_install_sim_eight_partitions_no_stick(tmp_path: Path) -> None:
    lab = copy_lab("hdd-install-sim", tmp_path)
    seat = up_ok(lab)
    doc = proof(seat)
    assert doc["partitions_seen"] == "1 5 6 7 8 9 2 3" and doc["media"] == "hdd"
    assert doc["disk"] == "mpx.vmhba0:C0:T0:L0"
    assert seat["stick_image"] is None
    code, status, err = labctl("status", str(lab), "--json", timeout=60)
    assert code == 0 and status is not None, err
    disk = status["seats"][0]["disk_image"]
    assert disk and Path(disk).is_file() and Path(disk).stat().st_size == 10 << 30
    assert layouts.compare(layouts.read_gpt(disk), layouts.expected_layout(20971520, "hdd")) == []


def test_scratch_sim_moves_to_the_datastore(tmp_path: Path) -> None:
    seat = up_ok(copy_lab("scratch-sim", tmp_path))
    doc = proof(seat)
    assert doc["partitions_seen"] == "1 5 6 7 8 9"
    assert doc["scratch"].startswith("/vmfs/volumes/") and doc["scratch"].endswith("/.locker")
    evs = {e["step"]: e for e in events(seat) if e.get("result") == "ok"}
    assert "scratch -> /tmp/scratch" in evs["scratch is on the RAM disk"]["matched"]
    assert "Successfully created new volume" in evs["create the datastore"]["matched"]
    disk = Path(seat["run_dir"]).parents[1] / ".labctl"
    images = list(disk.rglob("disk.img"))
    assert len(images) == 1
    gpt = layouts.read_gpt(str(images[0]))
    assert [(p.number, p.first_lba, p.type_name) for p in gpt.partitions] == [(1, 2048, "vmfs")]


def test_kickstart_sim_no_key_at_the_installer(tmp_path: Path) -> None:
    seat = up_ok(copy_lab("kickstart-sim", tmp_path))
    proof(seat)
    evs = events(seat)
    kick = next(e for e in evs if e["step"] == "kickstart ISO" and "iso" in e)
    assert "-ks-" in Path(kick["iso"]).name
    started = next(i for i, e in enumerate(evs) if e["step"] == "start VM" and e.get("phase") == "start")
    installed = next(i for i, e in enumerate(evs) if e["step"].startswith("post-install playbook"))
    typed = [e for e in evs[started:installed] if e.get("action") in ("keys", "type", "select")]
    assert typed == [], typed
    assert any(e["step"] == "installation complete" and e.get("result") == "ok" for e in evs[started:installed])


def test_kickstart_sim_a_script_error_fails_the_run_with_it(tmp_path: Path) -> None:
    lab = copy_lab("kickstart-sim", tmp_path, **{"kickstart: ks/usb.cfg": "kickstart: ks/bad.cfg"})
    (tmp_path / "ks" / "bad.cfg").write_text("vmaccepteula\ninstall --firstdisk=usb --novmfsondisk\nreboot\n")
    code, doc, err = labctl("up", str(lab), "--json")
    assert code == 1, err[-3000:]
    assert doc is not None
    message = doc["seats"][0]["message"]
    assert "the installer refuses the installation script" in message
    assert re.search(r"rootpw command|error has occurred", message, re.I), message
