"""The labctl_lab Ansible module against a fake labctl that prints the agreed --json envelope
(tests/fakes/fake_labctl.py): changed only when something changed, labctl's one-line message on failure,
the password only in the environment, check mode, timeouts, and the run-folder archive."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "deploy" / "ansible" / "library"
FAKE = REPO / "tests" / "fakes" / "fake_labctl.py"
PASSWORD = "S3cret!pw-for-the-test"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("labctl_lab", LIBRARY / "labctl_lab.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


labctl_lab = _load()


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executable 'labctl' that runs the fake with this interpreter; its calls go to tmp_path/calls.jsonl."""
    exe = tmp_path / "bin" / "labctl"
    exe.parent.mkdir()
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    exe.chmod(0o755)
    monkeypatch.setenv("FAKE_LABCTL_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.delenv("LAB_ROOT_PASSWORD", raising=False)
    return exe


def lab(tmp_path: Path, **keys: Any) -> Path:
    path = tmp_path / "lab" / "demo.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"name": "demo", **keys}))  # JSON is YAML
    return path


def params(exe: Path, lab_path: Path, action: str, **more: Any) -> dict[str, Any]:
    base = {spec: opts.get("default") for spec, opts in labctl_lab.ARGUMENT_SPEC.items()}
    return {**base, "labctl": str(exe), "lab": str(lab_path), "action": action, "root_password": PASSWORD, **more}


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_argv_never_holds_the_password_and_asks_for_json() -> None:
    p = {"labctl": "/venv/bin/labctl", "lab": "/w/lab.yaml", "action": "up", "seats": "1-2", "runs": "/w/runs",
         "parallel": 2, "root_password": PASSWORD}
    assert labctl_lab.command(p) == ["/venv/bin/labctl", "-q", "up", "/w/lab.yaml", "--json", "--seats", "1-2",
                                     "--runs", "/w/runs", "--parallel", "2"]
    assert labctl_lab.command(p, "status") == ["/venv/bin/labctl", "-q", "status", "/w/lab.yaml", "--json"]
    assert labctl_lab.command(p, "validate") == ["/venv/bin/labctl", "-q", "validate", "/w/lab.yaml"]
    assert PASSWORD not in " ".join(labctl_lab.command(p, "down"))
    assert labctl_lab.command({**p, "force": True})[-1] == "--force"  # up installs again, already installed or not
    assert "--force" not in labctl_lab.command({**p, "force": True}, "reset")


def test_up_changes_once_then_is_no_change(fake: Path, tmp_path: Path) -> None:
    lab_path = lab(tmp_path, seats=2)
    first = labctl_lab.act(params(fake, lab_path, "up"))
    assert first["changed"] is True and first["ok"] is True and "failed" not in first
    assert [s["name"] for s in first["seats"]] == ["seat1", "seat2"]
    assert first["seats"][0]["last_screen"] == "0001-boot.png"
    assert Path(first["seats"][0]["report"]).is_file()
    again = labctl_lab.act(params(fake, lab_path, "up"))
    assert again["changed"] is False and again["ok"] is True
    assert [s["message"] for s in again["seats"]] == ["already installed and verified"] * 2


def test_password_reaches_labctl_only_through_the_environment(fake: Path, tmp_path: Path) -> None:
    lab_path = lab(tmp_path)
    result = labctl_lab.act(params(fake, lab_path, "up"))
    (call,) = calls(tmp_path)
    assert call["password_set"] is True
    assert PASSWORD not in json.dumps(call["argv"]) and PASSWORD not in json.dumps(result)
    assert "LAB_ROOT_PASSWORD" not in os.environ  # the module's own process environment is left alone


def test_no_password_is_labctls_refusal(fake: Path, tmp_path: Path) -> None:
    result = labctl_lab.act(params(fake, lab(tmp_path), "up", root_password=None))
    assert result["failed"] is True and result["rc"] == 2
    assert result["msg"] == "install.root_password: LAB_ROOT_PASSWORD is not set"


def test_a_leaked_password_is_masked(fake: Path, tmp_path: Path) -> None:
    result = labctl_lab.act(params(fake, lab(tmp_path, fail_step="install", leak_password=True), "up"))
    assert result["failed"] is True
    assert PASSWORD not in json.dumps(result)
    assert labctl_lab.MASK in result["msg"]


def test_a_failing_seat_fails_with_labctls_one_line_message(fake: Path, tmp_path: Path) -> None:
    result = labctl_lab.act(params(fake, lab(tmp_path, seats=2, fail_step="wait-welcome", fail_seats=[2]), "up"))
    assert result["failed"] is True and result["rc"] == 1 and result["ok"] is False
    assert result["msg"] == "seat 2 (seat2): step 'wait-welcome' failed: waited 60 s for 'Welcome'"
    ok, bad = result["seats"]
    assert ok["ok"] is True and ok["step"] is None
    assert bad["ok"] is False and bad["step"] == "wait-welcome"
    assert bad["last_screen"] == "0002-failure.png"  # result.json's screenshot, not merely the newest PNG
    assert result["changed"] is True  # seat 1 was installed


def test_bad_input_is_the_envelopes_error(fake: Path, tmp_path: Path) -> None:
    lab_path = lab(tmp_path, invalid="vm.memory_mb: 2048 MB: too little")
    for action in ("up", "validate"):
        result = labctl_lab.act(params(fake, lab_path, action))
        assert result["failed"] is True and result["rc"] == 2 and result["changed"] is False
        assert result["msg"] == f"{lab_path}:3:1: vm.memory_mb: 2048 MB: too little"


def test_validate_ok_is_no_change(fake: Path, tmp_path: Path) -> None:
    result = labctl_lab.act(params(fake, lab(tmp_path), "validate"))
    assert result == {**result, "ok": True, "changed": False, "rc": 0}
    assert "failed" not in result


def test_output_without_the_envelope_is_a_clean_failure(fake: Path, tmp_path: Path) -> None:
    result = labctl_lab.act(params(fake, lab(tmp_path, not_json=True), "status"))
    assert result["failed"] is True
    assert result["msg"] == "labctl status --json printed something that is not one JSON object " \
                            "(Expecting value at line 1)"


def test_a_missing_lab_or_labctl_is_one_line(fake: Path, tmp_path: Path) -> None:
    missing = labctl_lab.act(params(fake, tmp_path / "nope.yaml", "up"))
    assert missing["failed"] is True
    assert missing["msg"].endswith("nope.yaml: no such lab file on " + os.uname().nodename)
    no_exe = labctl_lab.act(params(tmp_path / "no-labctl", lab(tmp_path), "status"))
    assert no_exe["failed"] is True and no_exe["rc"] == 127
    assert no_exe["msg"].startswith(f"cannot run {tmp_path / 'no-labctl'}: ")


def test_down_and_reset_report_labctls_changed(fake: Path, tmp_path: Path) -> None:
    assert labctl_lab.act(params(fake, lab(tmp_path), "down"))["changed"] is False
    assert labctl_lab.act(params(fake, lab(tmp_path, running=True), "down"))["changed"] is True
    assert labctl_lab.act(params(fake, lab(tmp_path), "reset"))["changed"] is True
    status = labctl_lab.act(params(fake, lab(tmp_path), "status"))
    assert status["changed"] is False and status["ok"] is True


def test_status_keeps_only_the_chosen_seats(fake: Path, tmp_path: Path) -> None:
    result = labctl_lab.act(params(fake, lab(tmp_path, seats=4), "status", seats="2-3"))
    assert [s["seat"] for s in result["seats"]] == [2, 3]
    assert "--seats" not in calls(tmp_path)[-1]["argv"]


def test_check_mode_never_runs_the_action(fake: Path, tmp_path: Path) -> None:
    lab_path = lab(tmp_path, seats=2)
    up = labctl_lab.act(params(fake, lab_path, "up"), check_mode=True)
    assert up["changed"] is True and "failed" not in up
    assert [c["argv"][1] for c in calls(tmp_path)] == ["validate", "status"]
    assert not (lab_path.parent / "runs").exists()
    assert labctl_lab.act(params(fake, lab_path, "down"), check_mode=True)["changed"] is False
    running = lab(tmp_path, seats=2, running=True)
    assert labctl_lab.act(params(fake, running, "down"), check_mode=True)["changed"] is True
    bad = labctl_lab.act(params(fake, lab(tmp_path, invalid="name: missing"), "reset"), check_mode=True)
    assert bad["failed"] is True and bad["msg"].endswith("name: missing")


def test_timeout_stops_labctl_and_fails(fake: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    result = labctl_lab.act(params(fake, lab(tmp_path, sleep=30), "status", timeout=1))
    assert time.monotonic() - t0 < 10
    assert result["failed"] is True
    assert result["msg"].startswith("labctl status did not finish within 1 s")


def test_archive_holds_every_seats_run_folder(fake: Path, tmp_path: Path) -> None:
    archive = tmp_path / "out" / "evidence.tar.gz"
    result = labctl_lab.act(params(fake, lab(tmp_path, seats=2), "up", archive=str(archive)))
    assert result["archive"] == str(archive)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    for seat in ("seat1", "seat2"):
        assert f"{seat}/20261201-100000-{seat}/report.html" in names
        assert f"{seat}/20261201-100000-{seat}/0001-boot.png" in names
    assert not list(archive.parent.glob(".labctl-archive-*"))


def test_in_seats_follows_labctls_grammar() -> None:
    assert [i for i in range(1, 6) if labctl_lab.in_seats(i, "1,3-4")] == [1, 3, 4]
    assert all(labctl_lab.in_seats(i, None) for i in range(1, 4))


def test_through_ansible_no_log_and_changed(fake: Path, tmp_path: Path) -> None:
    """The module as Ansible runs it (argument spec, no_log, exit/fail JSON), from an ad-hoc call."""
    ansible = Path(sys.executable).parent / "ansible"
    if not ansible.exists():
        pytest.skip("ansible-core is not installed in this venv")
    lab_path = lab(tmp_path, seats=1)
    env = {**os.environ, "ANSIBLE_LIBRARY": str(LIBRARY), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}

    def adhoc(action: str) -> tuple[int, dict[str, Any], str]:
        args = json.dumps({"action": action, "lab": str(lab_path), "labctl": str(fake),
                           "root_password": "{{ pw }}"})
        r = subprocess.run([str(ansible), "localhost", "-c", "local", "-m", "labctl_lab", "-a", args,
                            "-e", json.dumps({"pw": PASSWORD, "ansible_python_interpreter": sys.executable}),
                            "-vvv"], capture_output=True, text=True, timeout=120, env=env)
        out = json.loads(r.stdout[r.stdout.index("{"):])
        return r.returncode, out["plays"][0]["tasks"][0]["hosts"]["localhost"], r.stdout + r.stderr

    rc, host, text = adhoc("up")
    assert rc == 0, text
    assert host["changed"] is True and host["seats"][0]["ok"] is True
    assert PASSWORD not in text
    rc, host, text = adhoc("up")
    assert rc == 0 and host["changed"] is False, text
    lab_path.write_text(json.dumps({"name": "demo", "fail_step": "verify"}))
    rc, host, text = adhoc("up")
    assert rc != 0 and host["failed"] is True, text
    assert host["msg"] == "seat 1 (seat1): step 'verify' failed: waited 60 s for 'Welcome'"


def test_documentation_matches_the_argument_spec() -> None:
    """ansible-doc reads the module's DOCUMENTATION; every option is documented with the spec's type and default."""
    doc_exe = Path(sys.executable).parent / "ansible-doc"
    if not doc_exe.exists():
        pytest.skip("ansible-core is not installed in this venv")
    r = subprocess.run([str(doc_exe), "-M", str(LIBRARY), "-t", "module", "--json", "labctl_lab"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)["labctl_lab"]["doc"]
    assert set(doc["options"]) == set(labctl_lab.ARGUMENT_SPEC)
    for name, spec in labctl_lab.ARGUMENT_SPEC.items():
        assert doc["options"][name]["type"] == spec["type"], name
        assert doc["options"][name].get("default") == spec.get("default"), name
        assert doc["options"][name].get("choices") == spec.get("choices"), name
