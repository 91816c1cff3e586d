"""A stand-in for ``labctl`` that speaks the ``--json`` envelope, for the labctl_lab Ansible module's tests.

Run as ``python fake_labctl.py [-q] ACTION LAB [--json] [--seats S] [--runs DIR] [--parallel K]``. It keeps
per-lab state in ``<lab dir>/.fake-labctl-state.json`` (which seats are installed, which are running), so
an ``up`` of an installed seat is no change and a ``down`` changes only running seats, as labctl's do.

The lab file is YAML with a few keys of its own that steer it:

    name: demo
    seats: 2              # a count
    fail_step: verify     # every seat's up fails at this step (exit 1)
    fail_seats: [2]       # ... only these seats
    invalid: "vm.memory_mb: 2048 MB: too little"   # validate/up/... refuse the lab (exit 2)
    running: true         # status reports the seats running (power_state "on")
    not_json: true        # print human lines on stdout instead of the envelope (a labctl without --json)
    sleep: 30             # sleep before answering (timeouts)
    leak_password: true   # put the password into the seat message (the module must mask it)

Every call is appended as one JSON line to $FAKE_LABCTL_LOG: argv, cwd and whether $LAB_ROOT_PASSWORD was set.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

PNG = bytes.fromhex(  # a 1x1 PNG: a real image a browser can load
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db40000000049454e44ae426082")


def log(argv: list[str]) -> None:
    path = os.environ.get("FAKE_LABCTL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"argv": argv, "cwd": os.getcwd(),
                                 "password_set": bool(os.environ.get("LAB_ROOT_PASSWORD"))}) + "\n")


def main(argv: list[str]) -> int:
    log(argv)
    args = [a for a in argv if a != "-q"]
    action, lab_path = args[0], Path(args[1]).resolve()
    opts = {args[i]: args[i + 1] for i in range(2, len(args) - 1) if args[i].startswith("--") and args[i] != "--json"}
    want_json = "--json" in args
    lab: dict[str, Any] = yaml.safe_load(lab_path.read_text()) or {}
    time.sleep(float(lab.get("sleep", 0)))
    name = str(lab.get("name", lab_path.stem))
    if lab.get("invalid"):
        message = f"{lab_path}:3:1: {lab['invalid']}"
        print(message, file=sys.stderr)
        if want_json:
            print(json.dumps({"lab": name, "action": action, "ok": False, "changed": False, "error": message,
                              "seats": []}))
        return 2
    if action == "validate":
        print("ok")
        return 0
    count = int(lab.get("seats", 1))
    chosen = list(range(1, count + 1))
    if "--seats" in opts:
        lo, _, hi = opts["--seats"].partition("-")
        chosen = [int(s) for s in opts["--seats"].split(",")] if "," in opts["--seats"] else \
            list(range(int(lo), int(hi or lo) + 1))
    state_file = lab_path.parent / ".fake-labctl-state.json"
    state: dict[str, Any] = json.loads(state_file.read_text()) if state_file.exists() else {"installed": []}
    runs = Path(opts.get("--runs", lab_path.parent / "runs"))
    seats = []
    failed = 0
    for index in chosen:
        seat_name = f"seat{index}"
        row: dict[str, Any] = {"seat": index, "name": seat_name, "ok": True, "changed": False, "step": None,
                               "message": "", "run_dir": None, "report": None,
                               "power_state": "on" if lab.get("running") else "off", "backend": "qemu",
                               "vnc": None, "stick_image": str(lab_path.parent / "sticks" / f"{seat_name}.img"),
                               "disk_image": None}
        if action == "up":
            run_dir = runs / f"20261201-100000-{seat_name}"
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "0001-boot.png").write_bytes(PNG)
            (run_dir / "report.html").write_text(f"<!doctype html><title>{seat_name}</title><p>{seat_name}</p>")
            row.update(run_dir=str(run_dir), report=str(run_dir / "report.html"))
            if not os.environ.get("LAB_ROOT_PASSWORD"):
                message = "install.root_password: LAB_ROOT_PASSWORD is not set"
                print(f"labctl: {message}", file=sys.stderr)
                print(json.dumps({"lab": name, "action": action, "ok": False, "changed": False,
                                  "error": message, "seats": []}))
                return 2
            if lab.get("fail_step") and index in lab.get("fail_seats", chosen):
                step = str(lab["fail_step"])
                (run_dir / "0002-failure.png").write_bytes(PNG)
                (run_dir / "result.json").write_text(json.dumps({"ok": False, "step": step,
                                                                 "screenshot": str(run_dir / "0002-failure.png")}))
                message = f"seat {index} ({seat_name}): step '{step}' failed: waited 60 s for 'Welcome'"
                if lab.get("leak_password"):
                    message += f" (typed {os.environ['LAB_ROOT_PASSWORD']})"
                row.update(ok=False, step=step, message=message)
                failed += 1
            elif index in state["installed"]:
                row.update(message="already installed and verified")
            else:
                state["installed"].append(index)
                row.update(changed=True, message="installed and verified")
        elif action == "down":
            row.update(changed=bool(lab.get("running")), message="stopped" if lab.get("running") else "not running")
        elif action == "reset":
            if index in state["installed"]:
                state["installed"].remove(index)
            row.update(changed=True, message="stick recreated blank")
        elif action == "status":
            row.update(message="installed" if index in state["installed"] else "blank")
        seats.append(row)
    state_file.write_text(json.dumps(state))
    for row in seats:
        print(f"seat {row['seat']} ({row['name']}): {row['message']}", file=sys.stderr)
    if lab.get("not_json") or not want_json:
        for row in seats:
            print(f"seat {row['seat']}: {row['message']}")
    else:
        print(json.dumps({"lab": name, "action": action, "ok": failed == 0,
                          "changed": any(r["changed"] for r in seats), "seats": seats}))
    if failed:
        print(f"labctl: {failed} of {len(seats)} seats failed (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
