"""vmrun's command line: ``vmrun [-T ws|player|fusion] COMMAND ARGS``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from vmrun_shim import qmp, state, vmx

VERSION = "vmrun version 1.17.0 build-24995812"
USAGE = f"""

{VERSION}

Usage: vmrun [AUTHENTICATION-FLAGS] COMMAND [PARAMETERS]

AUTHENTICATION-FLAGS
  -T <hostType> (ws|fusion|player)

POWER COMMANDS           PARAMETERS
  start                  Path to vmx file [gui|nogui]
  stop                   Path to vmx file [hard|soft]
  reset                  Path to vmx file [hard|soft]
  list                   List all running VMs
"""


class Fail(Exception):
    """An ``Error:`` line for stdout, and the exit code (255 like vmrun on Linux)."""

    def __init__(self, text: str, code: int = 255) -> None:
        super().__init__(text)
        self.code = code


def _vmx(args: list[str], n: int = 0) -> Path:
    if len(args) <= n:
        raise Fail("Error: One of the parameters was invalid")
    p = Path(args[n])
    if not p.is_file():
        raise Fail(f"Error: Cannot open VM: {args[n]}, The virtual machine cannot be found")
    return p


def _running(p: Path) -> state.Running:
    rec = state.Running.load(p)
    if rec is None:
        raise Fail(f"Error: The virtual machine is not powered on: {p}")
    return rec


def _wait_gone(rec: state.Running, timeout: float) -> bool:
    """Until the VM is off (its record gone); like vmrun, this returns before VMware drops its lock files."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not state.alive(rec.pid) or not (rec.folder / "run.json").exists():
            return True
        time.sleep(0.1)
    return False


def cmd_list(args: list[str], product: str) -> int:
    recs = state.all_running()
    print(f"Total running VMs: {len(recs)}")
    for r in recs:
        print(r.vmx)
    return 0


def cmd_start(args: list[str], product: str) -> int:
    p = _vmx(args)
    mode = args[1] if len(args) > 1 else "gui"
    if mode not in ("gui", "nogui"):
        raise Fail("Error: One of the parameters was invalid")
    if state.Running.load(p) is not None:
        return 0
    run = state.run_dir(p)
    (run / "failed").unlink(missing_ok=True)
    here = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(here)}
    with open(run / "vmx.stderr", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "vmrun_shim.vmxproc", str(p)], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                cwd=str(p.parent))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if state.Running.load(p) is not None:
            return 0
        if proc.poll() is not None:
            raise Fail("Error: Unknown error")
        time.sleep(0.05)
    proc.kill()
    raise Fail("Error: Unknown error")


def cmd_stop(args: list[str], product: str) -> int:
    p = _vmx(args)
    mode = args[1] if len(args) > 1 else "soft"
    if mode not in ("hard", "soft"):
        raise Fail("Error: One of the parameters was invalid")
    rec = _running(p)
    if mode == "soft":
        with contextlib.suppress(qmp.QmpError):
            qmp.execute(Path(rec.qmp), "system_powerdown")
        if _wait_gone(rec, 300):
            return 0
        raise Fail("Error: The operation was canceled")
    with contextlib.suppress(qmp.QmpError):
        qmp.execute(Path(rec.qmp), "quit", timeout=5)
    if not _wait_gone(rec, 20):
        os.kill(rec.qemu_pid, signal.SIGKILL)
        _wait_gone(rec, 20)
    return 0


def cmd_reset(args: list[str], product: str) -> int:
    p = _vmx(args)
    rec = _running(p)
    mode = args[1] if len(args) > 1 else "soft"
    if mode == "hard":
        qmp.execute(Path(rec.qmp), "system_reset")
    else:
        keys = [{"type": "qcode", "data": k} for k in ("ctrl", "alt", "delete")]
        qmp.execute(Path(rec.qmp), "send-key", {"keys": keys})
    return 0


def _cd(rec: state.Running, p: Path, device: str) -> str:
    argv = json.loads((rec.folder / "argv.json").read_text())
    y = device.split(":")[1] if device.lower().startswith("sata0:") and ":" in device else None
    if y is None or not any(f"id=cd{y}" in a for a in argv):
        raise Fail("Error: One of the parameters was invalid")
    return f"cd{y}"


def cmd_disconnect(args: list[str], product: str) -> int:
    p = _vmx(args)
    rec = _running(p)
    if len(args) < 2:
        raise Fail("Error: One of the parameters was invalid")
    cd = _cd(rec, p, args[1])
    try:
        qmp.execute(Path(rec.qmp), "eject", {"id": cd, "force": True})
    except qmp.QmpError as exc:
        if "not inserted" not in str(exc).lower() and "no medium" not in str(exc).lower():
            raise Fail("Error: Unknown error") from None
    f = rec.folder / "disconnected.json"
    devs = json.loads(f.read_text()) if f.exists() else []
    f.write_text(json.dumps(sorted({*devs, args[1]})))
    return 0


def cmd_connect(args: list[str], product: str) -> int:
    p = _vmx(args)
    rec = _running(p)
    if len(args) < 2:
        raise Fail("Error: One of the parameters was invalid")
    cd = _cd(rec, p, args[1])
    cfg = vmx.load(p)
    file = cfg.get(f"{args[1].lower()}.filename", "")
    qmp.execute(Path(rec.qmp), "blockdev-change-medium", {"id": cd, "filename": file, "format": "raw"})
    f = rec.folder / "disconnected.json"
    if f.exists():
        f.write_text(json.dumps([d for d in json.loads(f.read_text()) if d != args[1]]))
    return 0


# -- snapshots: the .vmx and nvram of a powered-off VM, in <stem>.vmsd + <stem>-snapshots/ ---------------


def _snap_names(p: Path) -> list[str]:
    f = p.with_suffix(".vmsd")
    return json.loads(f.read_text()) if f.exists() else []


def _snap_save(p: Path, names: list[str]) -> None:
    p.with_suffix(".vmsd").write_text(json.dumps(names))


def _no_player(product: str) -> None:
    if product == "player":
        raise Fail("Error: The operation is not supported")


def _snap_dir(p: Path, name: str) -> Path:
    return p.parent / f"{p.stem}-snapshots" / str(_snap_names(p).index(name))


def cmd_snapshot(args: list[str], product: str) -> int:
    _no_player(product)
    p = _vmx(args)
    if len(args) < 2:
        raise Fail("Error: One of the parameters was invalid")
    if state.Running.load(p) is not None:  # the shim cannot save a running VM's memory
        raise Fail("Error: The operation is not supported for the specified parameters")
    names = _snap_names(p)
    if args[1] in names:
        raise Fail("Error: A snapshot with the name already exists")
    names.append(args[1])
    _snap_save(p, names)
    d = _snap_dir(p, args[1])
    d.mkdir(parents=True, exist_ok=True)
    nvram = p.parent / vmx.load(p).get("nvram", p.stem + ".nvram")
    for f in (p, nvram):
        if f.is_file():
            shutil.copy2(f, d / f.name)
    return 0


def cmd_revert(args: list[str], product: str) -> int:
    _no_player(product)
    p = _vmx(args)
    if len(args) < 2:
        raise Fail("Error: One of the parameters was invalid")
    if args[1] not in _snap_names(p) or _snap_names(p).count(args[1]) != 1:
        raise Fail("Error: The name does not uniquely identify one snapshot")
    rec = state.Running.load(p)
    if rec is not None:  # reverting to a powered-off snapshot powers the VM off
        cmd_stop([str(p), "hard"], product)
    for f in _snap_dir(p, args[1]).iterdir():
        shutil.copy2(f, p.parent / f.name)
    return 0


def cmd_delete_snapshot(args: list[str], product: str) -> int:
    _no_player(product)
    p = _vmx(args)
    if len(args) < 2:
        raise Fail("Error: One of the parameters was invalid")
    names = _snap_names(p)
    if names.count(args[1]) != 1:
        raise Fail("Error: The name does not uniquely identify one snapshot")
    shutil.rmtree(_snap_dir(p, args[1]), ignore_errors=True)
    names[names.index(args[1])] = ""  # keep the other snapshots' folder numbers
    _snap_save(p, names)
    return 0


def cmd_list_snapshots(args: list[str], product: str) -> int:
    _no_player(product)
    p = _vmx(args)
    names = [n for n in _snap_names(p) if n]
    print(f"Total snapshots: {len(names)}")
    for n in names:
        print(n)
    return 0


def cmd_clone(args: list[str], product: str) -> int:
    _no_player(product)
    p = _vmx(args)
    if len(args) < 3 or args[2] not in ("full", "linked"):
        raise Fail("Error: One of the parameters was invalid")
    dest = Path(args[1])
    snap = name = None
    rest = args[3:]
    i = 0
    while i < len(rest):
        a = rest[i]
        for opt in ("-snapshot", "-cloneName"):
            if a.startswith(opt + "="):
                val = a.split("=", 1)[1]
            elif a == opt and i + 1 < len(rest):
                val = rest[i + 1]
                i += 1
            else:
                continue
            if opt == "-snapshot":
                snap = val
            else:
                name = val
        i += 1
    if snap is not None and snap not in _snap_names(p):
        raise Fail("Error: The name does not uniquely identify one snapshot")
    if dest.exists():
        raise Fail(f"Error: The virtual machine already exists: {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = _snap_dir(p, snap) / p.name if snap is not None else p
    shutil.copyfile(source, dest)
    vmx.set_keys(dest, {"displayName": name or dest.stem, "nvram": f"{dest.stem}.nvram",
                        "uuid.action": "create"})
    return 0


def cmd_tools(args: list[str], product: str) -> int:
    p = _vmx(args)
    _running(p)
    raise Fail(f"Error: The VMware Tools are not running in the virtual machine: {p}")


def cmd_pause(args: list[str], product: str) -> int:
    _no_player(product)
    rec = _running(_vmx(args))
    qmp.execute(Path(rec.qmp), "stop")
    return 0


def cmd_unpause(args: list[str], product: str) -> int:
    _no_player(product)
    rec = _running(_vmx(args))
    qmp.execute(Path(rec.qmp), "cont")
    return 0


COMMANDS: dict[str, Callable[[list[str], str], int]] = {
    "list": cmd_list, "start": cmd_start, "stop": cmd_stop, "reset": cmd_reset,
    "disconnectnameddevice": cmd_disconnect, "connectnameddevice": cmd_connect,
    "snapshot": cmd_snapshot, "reverttosnapshot": cmd_revert, "deletesnapshot": cmd_delete_snapshot,
    "listsnapshots": cmd_list_snapshots, "clone": cmd_clone, "pause": cmd_pause, "unpause": cmd_unpause,
    "getguestipaddress": cmd_tools, "capturescreen": cmd_tools,
}


def _cancel(args: list[str]) -> None:
    """The 'operation was canceled' fault: vmware.log gets VMware's Msg_Post block."""
    if args and Path(args[0]).is_file():
        from vmrun_shim.vmxproc import Log

        log = Log(Path(args[0]).parent)
        log.write("Msg_Post: Error")
        log.write("[msg.device.startdisconnected] Virtual device 'sata0:1' will start disconnected.")
        log.write("[msg.vmx.poweron.failed] Failed to start the virtual machine.")
        log.write("----------------------------------------")
        log.write("VMX exit (1).")
    raise Fail("Error: The operation was canceled")


def main(argv: list[str]) -> int:
    state.record_call(argv)
    product = "ws"
    args = list(argv)
    if len(args) >= 2 and args[0] == "-T":
        product = args[1].lower()
        args = args[2:]
    if not args:
        print(USAGE, end="")
        return 255
    faults = state.faults()
    command, rest = args[0], args[1:]
    try:
        if product not in ("ws", "player", "fusion"):
            raise Fail("Error: One of the parameters was invalid")
        if faults.get("player_only") and product != "player":
            print("Unable to connect to host.")
            service = "WORKSTATION" if product == "ws" else "FUSION"
            print(f"Error: Service type VIX_SERVICEPROVIDER_VMWARE_{service} was specified, but not installed")
            return 255
        fault = faults.get(command) or {}
        if fault.get("hang"):
            time.sleep(3600)
        if fault.get("noise"):
            print(fault["noise"])
        if fault.get("cancel"):
            _cancel(rest)
        if fault.get("error"):
            raise Fail(str(fault["error"]), int(fault.get("exit", 255)))
        fn = COMMANDS.get(command.lower())
        if fn is None:
            raise Fail(f"Error: Unrecognized command: {command}")
        return fn(rest, product)
    except Fail as exc:
        print(str(exc))
        return exc.code
    except qmp.QmpError:
        print("Error: Cannot connect to the virtual machine")
        return 255
