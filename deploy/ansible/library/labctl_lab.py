#!/usr/bin/python
"""Ansible module labctl_lab: run one labctl action on a classroom PC and return its JSON result."""

# ruff: noqa: E402  (Ansible reads DOCUMENTATION, EXAMPLES and RETURN from before the imports)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: labctl_lab
short_description: Run a labctl lab action (validate, up, reset, down, status) on a classroom PC
description:
  - Runs C(labctl ACTION LAB --json) on the target and returns labctl's result per seat
    (ok, the failing step, labctl's one-line message, the run folder, its report and its last screenshot).
  - C(changed) is what labctl says changed (an C(up) of a seat that is already installed and verified is no
    change; C(status) and C(validate) never change anything).
  - A failing lab fails the task with labctl's own one-line message.
  - The root password reaches labctl as an environment variable, never on its command line, and is
    kept out of the results.
  - Linux and macOS targets (the module is Python); Windows PCs run the same labctl command through
    ansible.windows (see the labctl_host role).
options:
  action:
    description: What to do with the lab.
    type: str
    required: true
    choices: [validate, up, reset, down, status]
  lab:
    description: The lab file (YAML) on the target.
    type: path
    required: true
  seats:
    description: Seats to act on, C(3), C(1-4) or C(1,3); all when omitted.
    type: str
  labctl:
    description: The labctl executable on the target (for example the one in the venv the labctl_host role made).
    type: path
    default: labctl
  chdir:
    description: Folder labctl runs in; the lab file's folder when omitted.
    type: path
  runs:
    description: Where C(up) writes its run folders (labctl's C(--runs)); the lab's C(runs_dir) when omitted.
    type: path
  parallel:
    description: Seats C(up) runs at once (labctl's C(--parallel)); all when omitted.
    type: int
  force:
    description:
      - C(up) installs every seat again (labctl's C(--force)), even one already installed and verified whose stick
        equals its golden copy (a lab whose C(reset) is C(after-install)), otherwise left as it is and not a change.
    type: bool
    default: false
  root_password:
    description:
      - The ESXi root password, handed to labctl in the environment variable O(password_env).
      - Never on labctl's command line; it is masked in everything the module returns.
    type: str
  password_env:
    description: "The environment variable the lab file's C(install.root_password) names (C({env: VAR}))."
    type: str
    default: LAB_ROOT_PASSWORD
  timeout:
    description:
      - Seconds labctl may take. Past them it gets SIGTERM (it stops every seat and runs their cleanups),
        30 s later SIGKILL, and the task fails.
    type: int
    default: 3600
  archive:
    description:
      - When given, the seats' run folders are packed into this .tar.gz (members
        C(<seat name>/<run folder name>/...)) so that a play can fetch all the evidence as one file.
      - Writing the archive is not counted as a change.
    type: path
attributes:
  check_mode:
    support: partial
    details:
      - C(validate) and C(status) run as usual.
      - C(up), C(reset) and C(down) only validate the lab and read its status, and report what would change
        (C(down) changes only running seats; C(up) and C(reset) are reported as changes).
author: labctl
"""

EXAMPLES = r"""
- name: Install ESXi onto every seat's stick
  labctl_lab:
    action: up
    lab: ~/labctl-lab/usb-install-sim.yaml
    labctl: ~/labctl-lab/venv/bin/labctl
    root_password: "{{ labctl_root_password }}"
    archive: ~/labctl-lab/evidence.tar.gz
  no_log: false
  register: labctl_result

- name: Which seats are running
  labctl_lab:
    action: status
    lab: ~/labctl-lab/usb-install-sim.yaml
"""

RETURN = r"""
lab:
  description: The lab's name.
  type: str
  returned: when labctl ran
action:
  description: The action that ran.
  type: str
  returned: always
ok:
  description: Whether every seat succeeded.
  type: bool
  returned: always
seats:
  description: One entry per seat, as labctl's C(--json) reports it, plus C(last_screen).
  type: list
  elements: dict
  returned: always
  contains:
    seat: {description: The seat's number., type: int}
    name: {description: The seat's name., type: str}
    ok: {description: Whether the seat succeeded., type: bool}
    changed: {description: Whether labctl changed this seat., type: bool}
    step: {description: The failing step's name (null when ok)., type: str}
    message: {description: labctl's one-line message for the seat., type: str}
    run_dir: {description: The seat's run folder on the target., type: str}
    report: {description: The run's report.html on the target., type: str}
    last_screen: {description: The run's last screenshot, relative to run_dir (null when none)., type: str}
error:
  description: labctl's one-line message when it refused the input (exit 2).
  type: str
  returned: on bad input
rc:
  description: labctl's exit code (0 ok, 1 a seat failed, 2 bad input, 130 interrupted).
  type: int
  returned: when labctl ran
cmd:
  description: The command that ran (it never holds the password).
  type: list
  elements: str
  returned: always
archive:
  description: The .tar.gz of the run folders (null when there were none or O(archive) was not given).
  type: str
  returned: always
stderr_lines:
  description: labctl's human-readable lines (secrets masked).
  type: list
  elements: str
  returned: when labctl ran
"""

import json
import os
import signal
import subprocess
import tarfile
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule

MASK = "********"
ENVELOPE_ACTIONS = ("up", "reset", "down", "status")
KILL_GRACE = 30.0

ARGUMENT_SPEC: dict[str, Any] = {
    "action": {"type": "str", "required": True, "choices": ["validate", "up", "reset", "down", "status"]},
    "lab": {"type": "path", "required": True},
    "seats": {"type": "str"},
    "labctl": {"type": "path", "default": "labctl"},
    "chdir": {"type": "path"},
    "runs": {"type": "path"},
    "parallel": {"type": "int"},
    "force": {"type": "bool", "default": False},
    "root_password": {"type": "str", "no_log": True},
    "password_env": {"type": "str", "default": "LAB_ROOT_PASSWORD", "no_log": False},
    "timeout": {"type": "int", "default": 3600},
    "archive": {"type": "path"},
}


def command(params: dict[str, Any], action: str | None = None) -> list[str]:
    """labctl's argument list for an action. The password is never part of it."""
    action = action or params["action"]
    argv = [params["labctl"], "-q", action, params["lab"]]
    if action in ENVELOPE_ACTIONS:
        argv.append("--json")
    if params.get("seats") and action in ("up", "reset", "down"):
        argv += ["--seats", str(params["seats"])]
    if action == "up":
        if params.get("runs"):
            argv += ["--runs", params["runs"]]
        if params.get("parallel"):
            argv += ["--parallel", str(params["parallel"])]
        if params.get("force"):
            argv.append("--force")
    return argv


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def scrub_value(value: Any, secrets: list[str]) -> Any:
    """The same masking through a parsed JSON value (labctl never prints a secret; this makes sure)."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, list):
        return [scrub_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: scrub_value(v, secrets) for k, v in value.items()}
    return value


class Outcome:
    """What one labctl process did: exit code, its stdout and stderr, and whether it timed out."""

    def __init__(self, rc: int, stdout: str, stderr: str, timed_out: bool = False) -> None:
        self.rc, self.stdout, self.stderr, self.timed_out = rc, stdout, stderr, timed_out


def run(argv: list[str], cwd: str, env: dict[str, str], timeout: float) -> Outcome:
    """Run labctl in its own process group. On timeout: SIGTERM (labctl stops its seats and cleans up),
    then SIGKILL after KILL_GRACE seconds."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError as exc:
        return Outcome(127, "", f"cannot run {argv[0]}: {exc.strerror or exc}")
    try:
        out, err = proc.communicate(timeout=timeout)
        return Outcome(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return Outcome(proc.returncode, out, err, timed_out=True)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def parse_envelope(out: Outcome, action: str) -> dict[str, Any]:
    """labctl's one JSON object, or a ValueError saying why it is not there."""
    text = out.stdout.strip()
    if not text:
        raise ValueError("printed no JSON result")
    try:
        envelope = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"printed something that is not one JSON object ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("seats"), list):
        raise ValueError("printed JSON without a 'seats' list")
    if envelope.get("action", action) != action:
        raise ValueError(f"answered for action {envelope.get('action')!r}, not {action!r}")
    return envelope


def last_screen(run_dir: str | None, hint: Any = None) -> str | None:
    """The run's last screenshot relative to its folder: result.json's own 'screenshot' (a failure's),
    else the newest PNG in the folder."""
    if not run_dir or not os.path.isdir(run_dir):
        return None
    candidates: list[str] = []
    if isinstance(hint, str) and hint:
        candidates.append(hint)
    try:
        with open(os.path.join(run_dir, "result.json"), encoding="utf-8") as fh:
            shot = json.load(fh).get("screenshot")
        if isinstance(shot, str) and shot:
            candidates.append(shot)
    except (OSError, ValueError, AttributeError):
        pass
    for shot in candidates:
        path = shot if os.path.isabs(shot) else os.path.join(run_dir, shot)
        if os.path.isfile(path) and os.path.realpath(path).startswith(os.path.realpath(run_dir) + os.sep):
            return os.path.relpath(os.path.realpath(path), os.path.realpath(run_dir))
    newest: tuple[float, str] | None = None
    for root, _dirs, files in os.walk(run_dir):
        for name in files:
            if name.lower().endswith(".png"):
                path = os.path.join(root, name)
                mtime = os.stat(path).st_mtime
                if newest is None or (mtime, path) > newest:
                    newest = (mtime, path)
    return os.path.relpath(newest[1], run_dir) if newest else None


def in_seats(index: int, selection: str | None) -> bool:
    """labctl's --seats grammar ('3', '1-4', '1,3') for actions whose labctl verb has no --seats."""
    if not selection:
        return True
    for part in selection.split(","):
        lo, _, hi = part.strip().partition("-")
        if lo.strip().isdigit() and int(lo) <= index <= int(hi.strip() or lo):
            return True
    return False


def seat_rows(envelope: dict[str, Any], selection: str | None, filter_seats: bool) -> list[dict[str, Any]]:
    rows = []
    for seat in envelope["seats"]:
        if not isinstance(seat, dict):
            continue
        if filter_seats and isinstance(seat.get("seat"), int) and not in_seats(seat["seat"], selection):
            continue
        row = dict(seat)
        row.setdefault("ok", True)
        row.setdefault("changed", False)
        row.setdefault("step", None)
        row["last_screen"] = last_screen(row.get("run_dir"), row.get("last_screen"))
        rows.append(row)
    return rows


def failure_message(envelope: dict[str, Any], rows: list[dict[str, Any]], out: Outcome) -> str:
    """labctl's own one-line message: the envelope's error, else the failed seats' messages."""
    if envelope.get("error"):
        return str(envelope["error"]).splitlines()[0]
    failed = [r for r in rows if not r.get("ok")]
    lines = []
    for r in failed:
        text = str(r.get("message") or "").strip().splitlines()
        lines.append(text[0] if text else f"seat {r.get('seat')} ({r.get('name')}) failed")
    if lines:
        return lines[0] if len(lines) == 1 else f"{len(lines)} of {len(rows)} seats failed: " + "; ".join(lines)
    return last_line(out.stderr).removeprefix("labctl: ") or f"labctl exited {out.rc}"


def make_archive(path: str, rows: list[dict[str, Any]]) -> str | None:
    """Pack the seats' run folders as <seat name>/<run folder>/... into a .tar.gz (atomically)."""
    folders = [(str(r.get("name") or f"seat{r.get('seat')}"), r["run_dir"]) for r in rows
               if r.get("run_dir") and os.path.isdir(r["run_dir"])]
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".labctl-archive-", suffix=".tar.gz", dir=folder)
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
            for name, run_dir in folders:
                tar.add(run_dir, arcname=f"{name}/{os.path.basename(os.path.normpath(run_dir))}")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def labctl_env(params: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    if params.get("root_password") is not None:
        env[params["password_env"]] = params["root_password"]
    return env


def act(params: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    """The module's work without AnsibleModule: returns the result dict (with 'failed' and 'msg' on failure)."""
    action = params["action"]
    secrets = [params["root_password"]] if params.get("root_password") else []
    lab = params["lab"]
    cwd = params.get("chdir") or os.path.dirname(os.path.abspath(lab)) or "."
    env = labctl_env(params)
    result: dict[str, Any] = {"changed": False, "action": action, "ok": False, "seats": [], "archive": None}

    if not os.path.isfile(lab):
        result.update(failed=True, msg=f"{lab}: no such lab file on {os.uname().nodename}")
        result["cmd"] = command(params)
        return result

    if action == "validate" or (check_mode and action in ("up", "reset")):
        argv = command(params, "validate")
        out = run(argv, cwd, env, params["timeout"])
        result.update(cmd=argv, rc=out.rc, stderr_lines=scrub(out.stderr, secrets).splitlines())
        if out.rc != 0:
            said = scrub(last_line(out.stderr) or last_line(out.stdout) or f"labctl exited {out.rc}", secrets)
            result.update(failed=True, msg=said, error=said)
            return result
        if action == "validate":
            result.update(ok=True, msg=f"{lab}: ok")
            return result

    run_action = "status" if check_mode and action != "status" else action
    argv = command(params, run_action)
    result["cmd"] = argv
    out = run(argv, cwd, env, params["timeout"])
    result.update(rc=out.rc, stderr_lines=scrub(out.stderr, secrets).splitlines())
    if out.timed_out:
        result.update(failed=True, msg=f"labctl {run_action} did not finish within {params['timeout']} s "
                      "(stopped; its seats ran their cleanups)")
        return result
    try:
        envelope = scrub_value(parse_envelope(out, run_action), secrets)
    except ValueError as exc:
        said = scrub(last_line(out.stderr), secrets)
        msg = said.removeprefix("labctl: ") if out.rc != 0 and said else f"labctl {run_action} --json {exc}"
        result.update(failed=True, msg=msg)
        return result

    rows = seat_rows(envelope, params.get("seats"), filter_seats=run_action == "status")
    result.update(lab=envelope.get("lab"), seats=rows)
    if check_mode and run_action != action:
        running = [r for r in rows if r.get("power_state") not in (None, "off")]
        result.update(ok=True, changed=bool(running) if action == "down" else bool(rows),
                      msg=f"check mode: {action} would act on {len(rows)} seat(s)")
        return result
    if action != "status":
        result["changed"] = bool(envelope.get("changed")) or any(bool(r.get("changed")) for r in rows)
    if params.get("archive"):
        try:
            result["archive"] = make_archive(params["archive"], rows)
        except OSError as exc:
            result["archive_error"] = f"cannot write {params['archive']}: {exc.strerror or exc}"
    ok = out.rc == 0 and bool(envelope.get("ok", True)) and all(r.get("ok") for r in rows)
    result["ok"] = ok
    if envelope.get("error"):
        result["error"] = str(envelope["error"])
    if not ok:
        result.update(failed=True, msg=failure_message(envelope, rows, out))
    else:
        result["msg"] = f"{action}: {len(rows)} seat(s) ok"
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = act(module.params, check_mode=module.check_mode)
    if result.get("failed"):
        msg = result.pop("msg")
        result.pop("failed")
        module.fail_json(msg=msg, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
