"""The shim's vmware-vmx: one powered-on VM. Owns QEMU, writes vmware.log, holds the lock folders,
relays serial0's pipe, and at power-off writes back what changed while it ran (as VMware does)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from vmrun_shim import qmp, render, state, vmx

PR_SET_PDEATHSIG = 1


class Log:
    """vmware.log beside the .vmx; the previous power-on's log becomes vmware-0.log (and so on)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "vmware.log"
        for i in (2, 1, 0):
            older = folder / (f"vmware-{i - 1}.log" if i else "vmware.log")
            if older.exists():
                older.replace(folder / f"vmware-{i}.log")
        self._lock = threading.Lock()

    def write(self, text: str, thread: str = "vmx") -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            for line in text.splitlines() or [""]:
                f.write(f"{stamp}| {thread}| I005: {line}\n")


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def relay_serial(pipe: Path, source: Path, stop: threading.Event) -> None:
    """A unix socket server at ``pipe``; a client gets what the guest writes from the moment it connects."""
    with contextlib.suppress(FileNotFoundError):
        pipe.unlink()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(pipe))
    srv.listen(1)
    srv.settimeout(0.5)
    try:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn, open(source, "rb") as f:
                f.seek(0, os.SEEK_END)
                conn.settimeout(5.0)
                try:
                    while not stop.is_set():
                        data = f.read(65536)
                        if data:
                            conn.sendall(data)
                        else:
                            time.sleep(0.05)
                except OSError:
                    continue
    finally:
        srv.close()
        with contextlib.suppress(FileNotFoundError):
            pipe.unlink()


def main(vmx_arg: str) -> int:
    vmx_path = Path(vmx_arg)
    cfg = vmx.load(vmx_path)
    run = state.run_dir(vmx_path)
    sockets = state.socket_dir(vmx_path)
    for name in ("qmp.sock",):
        with contextlib.suppress(FileNotFoundError):
            (sockets / name).unlink()
    log = Log(vmx_path.parent)
    log.write(f"Log for VMware Workstation pid={os.getpid()} version=17.5.0 build-24995812 (vmrun shim on QEMU)")
    plan = render.build(cfg, vmx_path, run, sockets)
    for line in plan.log:
        log.write(line)
    (run / "argv.json").write_text(json.dumps(plan.argv))
    for lock in plan.locks:
        lock.mkdir(exist_ok=True)
    with open(run / "qemu.stderr", "wb") as stderr:
        proc = subprocess.Popen(plan.argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                preexec_fn=_die_with_parent)
    signal.signal(signal.SIGTERM, lambda *_: proc.kill())
    qmp_path = sockets / "qmp.sock"
    deadline = time.monotonic() + 60
    ready = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            qmp.execute(qmp_path, "query-status", timeout=2.0)
            ready = True
            break
        except qmp.QmpError:
            time.sleep(0.05)
    stop = threading.Event()
    if ready:
        state.Running(str(vmx_path), os.getpid(), proc.pid, str(qmp_path), time.time(), run).save()
        log.write("Transitioned vmx/execState/val to poweredOn")
        if plan.serial_pipe is not None and plan.serial_out is not None:
            threading.Thread(target=relay_serial, args=(plan.serial_pipe, plan.serial_out, stop), daemon=True).start()
        time.sleep(1.0)  # USB devices connect a moment after power-on
        for line in plan.usb_log:
            log.write(line, "vmx")
        code = proc.wait()
    else:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        code = proc.wait()
        err = (run / "qemu.stderr").read_text(errors="replace").strip().splitlines()[-5:]
        log.write("Msg_Post: Error")
        log.write("[msg.vmx.poweron.failed] Failed to start the virtual machine.")
        for line in err:
            log.write(line)
        log.write("----------------------------------------")
        (run / "failed").write_text("\n".join(err) + "\n")
    stop.set()
    log.write("Transitioned vmx/execState/val to poweredOff")
    disconnected = run / "disconnected.json"
    if disconnected.exists():
        devs = json.loads(disconnected.read_text())
        vmx.set_keys(vmx_path, {f"{d}.startConnected": "FALSE" for d in devs})
        disconnected.unlink()
    (run / "run.json").unlink(missing_ok=True)
    for lock in reversed(plan.locks):
        time.sleep(0.3)  # VMware lets go of its locks a moment after the process is gone
        with contextlib.suppress(OSError):
            lock.rmdir()
    log.write(f"VMX exit ({0 if ready else 1}).")
    del code
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
