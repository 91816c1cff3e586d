"""A classroom of PCs driven by Ansible, without other machines: three inventory hosts with
ansible_connection=local and their own labctl_workdir. classroom.yml runs `up` of the simulator lab on
two of them at once (the third has a broken lab and fails alone), then `status`, `reset` and `down`;
each stick gets ESXi's layout, the run folders come back, index.html renders in Chromium and junit.xml
has a testcase per host and seat. One test: the installs cost minutes, the rest reuses them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from harness.browser import check_page, chromium_available
from harness.simvm import qemu_available

from labctl import layouts

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PLAY = REPO / "deploy" / "ansible" / "classroom.yml"
LAB = REPO / "labs" / "usb-install-sim.yaml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
SITE_PACKAGES = Path(next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)))


def reusable_venv(path: Path) -> Path:
    """A venv that sees this venv's packages (labctl's dependencies) but not its labctl: the role's
    labctl_venv_reuse path, which installs only the wheel (--no-deps), so CI fetches nothing."""
    import venv

    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(path)
    (site,) = path.glob("lib/python*/site-packages")
    (site / "labctl-deps.pth").write_text(f"{SITE_PACKAGES}\n")
    return path


def play(tmp: Path, inventory: Path, action: str, limit: str | None = None) -> tuple[int, str, float]:
    """classroom.yml with one wheel for every run (built as the play builds it, pip wheel --no-deps), so
    that a later run changes nothing on the PCs even while the checkout is being edited."""
    wheels = sorted((tmp / "wheel").glob("labctl-*.whl"))
    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(PLAY), "-e", f"labctl_action={action}",
            "-e", "labctl_lab=labs/usb-install-sim.yaml", "-e", f"labctl_report_root={tmp / 'report'}"]
    argv += ["-e", f"labctl_wheel={wheels[0]}"] if wheels else []
    if limit:
        argv += ["--limit", limit]
    env = {**os.environ, "PWD": str(REPO), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_CONFIG": str(PLAY.parent / "ansible.cfg")}
    t0 = time.monotonic()
    r = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    out = r.stdout + r.stderr
    (tmp / f"play-{action}.log").write_text(out)
    return r.returncode, out, time.monotonic() - t0


def recap(out: str) -> dict[str, dict[str, int]]:
    rows = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", out, re.M):
        rows[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return rows


def result(tmp: Path, host: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp / "report" / host / "result.json").read_text())
    return data


def stick_layout_diffs(workdir: Path) -> list[str]:
    (image,) = (workdir / "sticks").glob("*.img")
    try:
        gpt = layouts.read_gpt(str(image))
    except layouts.GptError as exc:
        return [str(exc)]
    return layouts.compare(gpt, layouts.expected_layout(gpt.size // 512, "usb"))


@pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 or OVMF is missing")
@pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-core is not installed in this venv")
def test_classroom_up_status_reset_down(tmp_path: Path) -> None:
    from labctl.sim.build import build_iso

    build_iso("fast")  # the lab's 'iso: sim', built once into the shared cache before both PCs need it
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheel"),
                        str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    hosts = {"pc1": "", "pc2": "", "pc3": """ labctl_lab_overrides='{"vm": {"memory_mb": 2048}}'"""}
    lines = ["[ci_pcs]"]
    for host, extra in hosts.items():
        venv_dir = reusable_venv(tmp_path / host / "venv")
        lines.append(f"{host} ansible_connection=local labctl_workdir={tmp_path / host} "
                     f"labctl_venv={venv_dir}{extra}")
    lines += ["[ci_pcs:vars]", "labctl_venv_reuse=true", "labctl_packages_become=false",
              "labctl_apt_cache_valid_time=0", f"ansible_python_interpreter={sys.executable}"]
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("\n".join(lines) + "\n")
    password = os.environ["LAB_ROOT_PASSWORD"]

    # up: pc1 and pc2 install at the same time; pc3's lab is refused and only pc3 fails
    rc, out, wall = play(tmp_path, inventory, "up")
    rows = recap(out)
    assert rc != 0, out[-3000:]
    assert rows["pc1"]["failed"] == 0 and rows["pc2"]["failed"] == 0, out[-5000:]
    assert rows["pc3"]["failed"] == 1, out[-5000:]
    bad = result(tmp_path, "pc3")
    assert bad["failed"] is True and bad["rc"] == 2
    assert re.fullmatch(r"\S+usb-install-sim\.yaml:\d+:\d+: vm\.memory_mb: 2048 MB: .+", bad["msg"]), bad["msg"]
    seconds = []
    for host in ("pc1", "pc2"):
        res = result(tmp_path, host)
        assert res["ok"] is True and res["changed"] is True, res
        (seat,) = res["seats"]
        assert seat["ok"] is True and seat["step"] is None
        assert stick_layout_diffs(tmp_path / host) == [], host
        run = tmp_path / "report" / host / seat["name"] / Path(seat["run_dir"]).name
        assert (run / "report.html").is_file() and (run / seat["last_screen"]).is_file(), run
        seconds.append(json.loads((run / "result.json").read_text())["seconds"])
    assert wall < sum(seconds), f"the two installs did not overlap: play {wall:.0f} s, seats {seconds}"
    assert password not in out
    for path in (tmp_path / "report").rglob("*"):
        if path.is_file() and path.suffix in (".html", ".json", ".xml", ".jsonl", ".txt", ".log"):
            assert password not in path.read_text(errors="replace"), path

    suite = ET.parse(tmp_path / "report" / "junit.xml").getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert set(cases) == {("pc1", "usb-install-sim"), ("pc2", "usb-install-sim"), ("pc3", "up")}
    assert cases[("pc3", "up")].find("failure") is not None
    assert cases[("pc1", "usb-install-sim")].find("failure") is None
    if (why := chromium_available()) is None:
        page = check_page(tmp_path / "report" / "index.html", artifacts=tmp_path / "artifacts")
        assert page.images == 2  # the last screens of pc1's and pc2's seats
        assert "pc3" in page.text and "vm.memory_mb" in page.text and "failed" in page.text
        seat_report = check_page(next((tmp_path / "report" / "pc1").rglob("report.html")))
        assert seat_report.images >= 1
    else:
        pytest.fail(f"cannot check the report in Chromium: {why}")

    # status: nothing changes, every seat is off with its last run
    rc, out, _ = play(tmp_path, inventory, "status", limit="pc1,pc2")
    assert rc == 0, out[-5000:]
    assert all(recap(out)[h]["changed"] == 0 for h in ("pc1", "pc2")), out[-5000:]
    for host in ("pc1", "pc2"):
        (seat,) = result(tmp_path, host)["seats"]
        assert seat["power_state"] == "off" and seat["run_dir"], seat

    # reset: the sticks go back to blank
    rc, out, _ = play(tmp_path, inventory, "reset", limit="pc1,pc2")
    assert rc == 0, out[-5000:]
    for host in ("pc1", "pc2"):
        assert result(tmp_path, host)["changed"] is True
        assert stick_layout_diffs(tmp_path / host) != [], f"{host}: the stick still has ESXi's layout"

    # down: nothing runs, so nothing changes
    rc, out, _ = play(tmp_path, inventory, "down", limit="pc1,pc2")
    assert rc == 0, out[-5000:]
    assert all(result(tmp_path, h)["changed"] is False for h in ("pc1", "pc2"))
    assert all(recap(out)[h]["changed"] == 0 for h in ("pc1", "pc2")), out[-5000:]
