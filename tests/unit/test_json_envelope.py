"""``labctl up|down|reset|status LAB --json``: exactly one JSON object on stdout, in the agreed shape,
with human lines on stderr and no secret in it (seats that are not running: no VM is started here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.cli import main
from labctl.interrupts import Terminated
from labctl.runner import Context, UpStep

LAB = """\
name: env
backend: qemu
iso: installer.iso
seats: 2
stick:
  image: sticks/{seat}.img
  size: 1G
install:
  root_password: {env: LAB_ROOT_PASSWORD}
"""

SEAT_KEYS = {"seat", "name", "ok", "changed", "step", "message", "run_dir", "report", "power_state", "backend", "vnc",
             "stick_image", "disk_image"}


@pytest.fixture
def lab_path(tmp_path: Path) -> Path:
    (tmp_path / "installer.iso").write_bytes(b"\0" * 2048)
    path = tmp_path / "lab.yaml"
    path.write_text(LAB)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out), err  # json.loads: stdout is one JSON document and nothing else


def test_status_json_envelope(lab_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, env, _ = run(capsys, "status", str(lab_path), "--json")
    assert code == 0
    assert {k: env[k] for k in ("lab", "action", "ok", "changed")} == {
        "lab": "env", "action": "status", "ok": True, "changed": False}
    seats = env["seats"]
    assert isinstance(seats, list) and [s["seat"] for s in seats] == [1, 2]
    s1 = seats[0]
    assert set(s1) >= SEAT_KEYS
    assert s1["name"] == "env-1" and s1["backend"] == "qemu" and s1["power_state"] == "off" and s1["vnc"] is None
    assert s1["stick_image"] == str(lab_path.parent / "sticks" / "env-1.img") and s1["disk_image"] is None
    assert s1["stage"] == "not run yet" and s1["last_result"] is None and s1["run_dir"] is None
    assert s1["backend_reason"] == f"backend: qemu in {lab_path}"


def test_status_lists_the_fields_for_people(lab_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(lab_path)]) == 0
    out = capsys.readouterr().out
    assert "seat 1 (env-1): qemu off, not run yet" in out
    assert f"stick: {lab_path.parent / 'sticks' / 'env-1.img'}" in out and "last run: -" in out
    assert "backend: backend: qemu in" in out


def test_show_password_is_never_json(lab_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, env, err = run(capsys, "status", str(lab_path), "--json", "--show-password")
    assert code == 2 and env["ok"] is False and env["seats"] == [] and env["action"] == "status"
    assert "the JSON never holds a secret" in str(env["error"]) and "the JSON never holds a secret" in err


def test_bad_input_is_an_error_envelope_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\nstick: 3\n")
    code, env, err = run(capsys, "up", str(bad), "--json")
    assert code == 2
    assert env == {"lab": "broken", "action": "up", "ok": False, "changed": False, "error": env["error"], "seats": []}
    assert str(env["error"]).startswith(f"{bad}:2:") and str(env["error"]) in err


def test_down_json_of_seats_that_are_not_running(lab_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, env, err = run(capsys, "down", str(lab_path), "--json", "--seats", "2")
    assert code == 0 and env["action"] == "down" and env["changed"] is False
    seats = env["seats"]
    assert isinstance(seats, list) and len(seats) == 1
    s = seats[0]
    assert s["seat"] == 2 and s["message"] == "not running" and s["changed"] is False and s["ok"] is True
    assert "seat 2 (env-2): not running" in err  # the human line went to stderr


def test_reset_json(lab_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, env, _ = run(capsys, "reset", str(lab_path), "--json")
    assert code == 0 and env["action"] == "reset" and env["ok"] is True and env["changed"] is True
    seats = env["seats"]
    assert isinstance(seats, list) and len(seats) == 2
    assert all(set(s) >= SEAT_KEYS and "UEFI variables reset" in s["message"] for s in seats)
    assert (lab_path.parent / "sticks" / "env-1.img").stat().st_size == 2**30  # reset left a blank image


def test_the_vnc_password_stays_out_of_the_json(lab_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["reset", str(lab_path)])  # defines the seats: each now has a VNC password file
    capsys.readouterr()
    state = lab_path.parent / ".labctl" / "env"
    passwords = [p.read_text().strip() for p in state.rglob("vnc.pass")]
    assert passwords
    code = main(["status", str(lab_path), "--json"])
    out = capsys.readouterr().out
    assert code == 0 and not any(pw in out for pw in passwords)


class _StopsSeat2(UpStep):
    """Seat 1 passes; seat 2 is interrupted in this step (as Ctrl-C or SIGTERM would); seat 3 never starts."""

    name = "install playbook"

    def __init__(self, interrupt: type[BaseException]) -> None:
        self.interrupt = interrupt

    def run(self, ctx: Context) -> None:
        if ctx.seat.index == 2:
            raise self.interrupt()


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, Terminated])
def test_an_interrupted_up_still_prints_the_envelope(lab_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     interrupt: type[BaseException]) -> None:
    lab_path.write_text(LAB.replace("seats: 2", "seats: 3"))
    monkeypatch.setenv("LAB_ROOT_PASSWORD", "VMware1!lab")
    monkeypatch.setattr("labctl.runner.build_steps", lambda lab, options: [_StopsSeat2(interrupt)])
    argv = ["up", str(lab_path), "--json", "--parallel", "1", "--runs", str(lab_path.parent / "runs")]
    if interrupt is Terminated:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 143
    else:
        assert main(argv) == 130
    out, _ = capsys.readouterr()
    env = json.loads(out)
    assert {k: env[k] for k in ("lab", "action", "ok", "changed")} == {
        "lab": "env", "action": "up", "ok": False, "changed": True}
    s1, s2, s3 = env["seats"]
    assert set(s1) >= SEAT_KEYS and (s1["ok"], s1["step"]) == (True, None)
    assert (s2["ok"], s2["step"], s2["message"]) == (False, "install playbook", "interrupted during step "
                                                     "'install playbook'")
    assert s2["run_dir"] and json.loads((Path(s2["run_dir"]) / "result.json").read_text())["interrupted"] is True
    assert (s3["ok"], s3["changed"], s3["run_dir"], s3["message"]) == (False, False, None,
                                                                       "interrupted before it started")
