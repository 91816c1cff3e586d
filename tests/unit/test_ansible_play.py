"""deploy/ansible without a lab run: classroom.yml passes --syntax-check and ansible-lint (the Windows
tasks included), and the report tasks turn per-host results into index.html and junit.xml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "ansible"
BIN = Path(sys.executable).parent

needs_ansible = pytest.mark.skipif(not (BIN / "ansible-playbook").exists(), reason="ansible-core is not installed")


def _env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_LOCALHOST_WARNING": "0"}


@needs_ansible
def test_syntax_check_with_the_example_inventory() -> None:
    r = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(DEPLOY / "inventory.example.ini"),
                        str(DEPLOY / "classroom.yml"), "-e", "labctl_lab=labs/usb-install.yaml"],
                       capture_output=True, text=True, timeout=120, env=_env(), cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_ansible
def test_ansible_lint_passes_the_production_profile() -> None:
    lint = BIN / "ansible-lint"
    if not lint.exists():
        pytest.skip("ansible-lint is not installed")
    r = subprocess.run([str(lint), "--nocolor", "classroom.yml"], capture_output=True, text=True, timeout=600,
                       env=_env(), cwd=DEPLOY)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in r.stdout + r.stderr


@needs_ansible
def test_ansible_lint_checks_the_windows_tasks() -> None:
    """Linted on their own too, so a rule that the play's run skips for them cannot hide a problem."""
    lint = BIN / "ansible-lint"
    if not lint.exists():
        pytest.skip("ansible-lint is not installed")
    tasks = DEPLOY / "roles" / "labctl_host" / "tasks" / "windows.yml"
    assert "ansible.windows.win_command" in tasks.read_text()
    r = subprocess.run([str(lint), "--nocolor", str(tasks), str(DEPLOY / "tasks" / "run-windows.yml")],
                       capture_output=True, text=True, timeout=600, env=_env(), cwd=DEPLOY)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "2 files processed" in r.stdout + r.stderr, r.stdout + r.stderr


HOSTS = {
    "pc01": {"action": "up", "ok": True, "failed": False, "changed": True, "msg": "up: 1 seat(s) ok", "seats": [
        {"seat": 1, "name": "seat1", "ok": True, "changed": True, "step": None, "message": "ok, installed",
         "run_dir": "/home/student/labctl-lab/runs/20261201-100000-seat1",
         "report": "/home/student/labctl-lab/runs/20261201-100000-seat1/report.html", "last_screen": "0001.png"}]},
    "pc02": {"action": "up", "ok": False, "failed": True, "changed": False,
             "msg": "seat 1 (seat1): step 'wait-welcome' failed: <Welcome> & more", "seats": [
                 {"seat": 1, "name": "seat1", "ok": False, "changed": False, "step": "wait-welcome",
                  "message": "seat 1 (seat1): step 'wait-welcome' failed: <Welcome> & more\nlast screenshot: x",
                  "run_dir": "C:\\Users\\student\\labctl-lab\\runs\\20261201-100000-seat1",
                  "report": None, "last_screen": None}]},
    "pc03": None,  # unreachable: no result at all
}

REPORT_PLAY = """
- name: Results as the PCs would have them
  hosts: pcs
  gather_facts: false
  vars:
    labctl_action: up
    labctl_lab_src: /srv/labs/usb-install.yaml
    labctl_report_root_abs: {root}
    labctl_report_dir: "{{{{ labctl_report_root_abs }}}}/{{{{ inventory_hostname }}}}"
  tasks:
    - name: Set the result
      ansible.builtin.set_fact:
        labctl_result: "{{{{ results[inventory_hostname] }}}}"
      when: results[inventory_hostname] is not none
    - name: The play's report role
      ansible.builtin.include_role:
        name: {role}
"""


@needs_ansible
def test_report_lists_every_host_and_seat(tmp_path: Path) -> None:
    root = tmp_path / "report"
    seat_dir = root / "pc01" / "seat1" / "20261201-100000-seat1"
    seat_dir.mkdir(parents=True)
    (seat_dir / "report.html").write_text("<!doctype html><title>seat1</title><p>seat1</p>")
    (seat_dir / "0001.png").write_bytes(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db40000000049454e44ae426082"))
    (tmp_path / "play.yml").write_text(REPORT_PLAY.format(root=root, role=DEPLOY / "roles" / "labctl_report"))
    (tmp_path / "inv.ini").write_text("[pcs]\n" + "".join(
        f"{h} ansible_connection=local ansible_python_interpreter={sys.executable}\n" for h in HOSTS))
    (tmp_path / "results.json").write_text(json.dumps({"results": HOSTS}))
    r = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inv.ini"), str(tmp_path / "play.yml"),
                        "-e", f"@{tmp_path / 'results.json'}"], capture_output=True, text=True, timeout=180,
                       env=_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]

    suite = ET.parse(root / "junit.xml").getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert set(cases) == {("pc01", "seat1"), ("pc02", "seat1"), ("pc03", "up")}
    assert suite.get("tests") == "3" and suite.get("failures") == "2"
    failure = cases[("pc02", "seat1")].find("failure")
    assert failure is not None and failure.get("type") == "wait-welcome"
    assert failure.get("message") == "seat 1 (seat1): step 'wait-welcome' failed: <Welcome> & more"
    assert cases[("pc01", "seat1")].find("failure") is None

    html = (root / "index.html").read_text()
    assert 'src="pc01/seat1/20261201-100000-seat1/0001.png"' in html
    assert 'href="pc01/seat1/20261201-100000-seat1/report.html"' in html
    assert "&lt;Welcome&gt; &amp; more" in html and "<Welcome>" not in html
    assert 'href="pc02/seat1/20261201-100000-seat1/"' in html  # a Windows run folder, by its last name
    assert "pc03" in html and "not reached" in html

    sys.path.insert(0, str(REPO / "tests"))
    from harness.browser import check_page, chromium_available

    if chromium_available() is None:
        page = check_page(root / "index.html", artifacts=tmp_path / "artifacts")
        assert page.images == 1
        assert "3 PCs, 3 seats: 1 passed, 2 failed." in page.text


LAB_PLAY = """
- name: Each PC's lab as the labctl_host role works it out
  hosts: pcs
  gather_facts: false
  vars:
    labctl_wheel: /srv/build/labctl-0.1.0-py3-none-any.whl
  tasks:
    - name: The role's lab tasks
      ansible.builtin.include_role:
        name: {role}
        tasks_from: lab
        public: true
    - name: Keep what it made
      ansible.builtin.copy:
        content: >-
          {{{{ {{'final': labctl_lab_final, 'data': labctl_lab_data, 'members': labctl_lab_members}} | to_json }}}}
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        mode: "0644"
"""


@needs_ansible
def test_each_pc_gets_its_stick_overrides_and_vmrun(tmp_path: Path) -> None:
    usb, sim = REPO / "labs" / "usb-install.yaml", REPO / "labs" / "usb-install-sim.yaml"
    stick = '\'{"vendor_id": 2352, "product_id": 25856}\''
    hosts = {
        "usb": f"labctl_lab_src={usb} labctl_stick_usb={stick}",
        "sim": f"labctl_lab_src={sim} labctl_stick_usb={stick}",
        "win": f"labctl_lab_src={usb} labctl_windows=true labctl_vmrun_path='D:\\VMware\\vmrun.exe'",
        "over": f"""labctl_lab_src={sim} labctl_lab_overrides='{{"seats": 2, "vm": {{"memory_mb": 4096}}}}'""",
    }
    (tmp_path / "inv.ini").write_text("[pcs]\n" + "".join(
        f"{h} ansible_connection=local ansible_python_interpreter={sys.executable} {v}\n" for h, v in hosts.items()))
    (tmp_path / "play.yml").write_text(LAB_PLAY.format(role=DEPLOY / "roles" / "labctl_host", out=tmp_path))
    r = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inv.ini"), str(tmp_path / "play.yml")],
                       capture_output=True, text=True, timeout=180, env=_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    got = {h: json.loads((tmp_path / f"{h}.json").read_text()) for h in hosts}

    assert got["usb"]["final"]["stick"] == {**got["usb"]["data"]["stick"],
                                            "usb": {"vendor_id": 2352, "product_id": 25856}}
    assert "vmware" not in got["usb"]["final"] or got["usb"]["final"]["vmware"] == got["usb"]["data"].get("vmware")
    assert got["sim"]["final"] == got["sim"]["data"]  # an image-file stick: the ids do not apply
    assert got["win"]["final"]["vmware"]["vmrun"] == "D:\\VMware\\vmrun.exe"
    over = got["over"]["final"]
    assert over["seats"] == 2 and over["vm"]["memory_mb"] == 4096
    assert over["vm"]["cpus"] == got["over"]["data"]["vm"]["cpus"]  # merged, not replaced
    assert got["over"]["members"] == ["playbooks"]
