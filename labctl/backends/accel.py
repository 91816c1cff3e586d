"""Choose KVM or TCG by a short real boot, never by the presence of /dev/kvm.

On the machines this project was measured on, ``/dev/kvm`` exists but KVM fails at the first
instruction ("KVM internal error. Suberror: 1 ... emulation failure"); QEMU then stays alive with the
VM paused in ``internal-error``. The probe boots OVMF with no media under ``-accel kvm`` for a couple of
seconds and accepts KVM only when QEMU is alive, QMP says ``running`` and stderr has no KVM error.
The verdict is cached per host boot (keyed by the kernel's boot id, the QEMU binary and the firmware)
in a small JSON file, so one run — or a whole classroom — probes once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from labctl.backends.children import die_with_parent
from labctl.backends.qemu_argv import Accel

log = logging.getLogger(__name__)

PROBE_SECONDS = 2.5


@dataclass(frozen=True)
class AccelVerdict:
    accel: Accel
    reason: str
    cached: bool = False
    seconds: float = 0.0


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _cache_key(binary: str, ovmf_code: Path) -> str:
    resolved = shutil.which(binary) or binary
    try:
        mtime = os.stat(resolved).st_mtime_ns
    except OSError:
        mtime = 0
    return f"{_boot_id()}|{resolved}|{mtime}|{ovmf_code}"


def default_cache_file() -> Path:
    """``$LABCTL_CACHE_DIR/accel.json``, else ``$XDG_CACHE_HOME/labctl/accel.json`` (~/.cache)."""
    if os.environ.get("LABCTL_CACHE_DIR"):
        return Path(os.environ["LABCTL_CACHE_DIR"]) / "accel.json"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labctl" / "accel.json"


def choose_accel(
    wanted: str,
    binary: str,
    ovmf_code: Path,
    ovmf_vars: Path,
    cache_file: Path | None = None,
) -> AccelVerdict:
    """'kvm' and 'tcg' are taken as given; 'auto' probes (or reads the cached verdict)."""
    if wanted in ("kvm", "tcg"):
        return AccelVerdict(wanted, "set in the lab (qemu.accel)")  # type: ignore[arg-type]
    cache_file = cache_file or default_cache_file()
    key = _cache_key(binary, ovmf_code)
    try:
        cached = json.loads(cache_file.read_text())
        if cached.get("key") == key and cached.get("accel") in ("kvm", "tcg"):
            return AccelVerdict(cached["accel"], str(cached.get("reason", "")), cached=True)
    except (OSError, ValueError, AttributeError):
        pass
    verdict = probe_kvm(binary, ovmf_code, ovmf_vars)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "accel": verdict.accel, "reason": verdict.reason}))
        tmp.replace(cache_file)
    except OSError as exc:
        log.debug("cannot cache the accelerator verdict: %s", exc)
    return verdict


def probe_kvm(binary: str, ovmf_code: Path, ovmf_vars: Path, seconds: float = PROBE_SECONDS) -> AccelVerdict:
    """Boot OVMF with no media under KVM for ``seconds``; KVM only when it really runs."""
    start = time.monotonic()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return AccelVerdict("tcg", "/dev/kvm is missing or not accessible", seconds=time.monotonic() - start)
    from labctl.backends.qmp import Qmp, QmpError  # qemu.qmp only when probing

    with tempfile.TemporaryDirectory(prefix="labctl-kvm-") as tmp:
        d = Path(tmp)
        vars_copy = d / "vars.fd"
        shutil.copyfile(ovmf_vars, vars_copy)
        qmp_path = d / "qmp.sock"
        argv = [
            binary, "-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "kvm", "-cpu", "host",
            "-m", "256", "-display", "none", "-device", "VGA",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={ovmf_code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
            "-chardev", f"socket,id=qmp,path={qmp_path},server=on,wait=off", "-mon", "chardev=qmp,mode=control",
        ]
        err_path = d / "stderr"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(die_with_parent(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, start_new_session=True)
        status = "?"
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            if proc.poll() is None and qmp_path.exists():
                try:
                    with Qmp(qmp_path, nickname="kvm-probe", timeout=3.0) as qmp:
                        status = str(qmp.execute("query-status", timeout=3.0).get("status"))
                except QmpError as exc:
                    status = f"no QMP answer ({exc})"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        stderr = err_path.read_text(errors="replace")
    took = time.monotonic() - start
    if "KVM internal error" in stderr or "emulation failure" in stderr:
        return AccelVerdict("tcg", "KVM failed a real boot (KVM internal error)", seconds=took)
    if proc.returncode not in (None, -signal.SIGKILL) and status == "?":
        line = stderr.strip().splitlines()[-1:] or ["no message"]
        return AccelVerdict("tcg", f"QEMU with KVM exited: {line[0][:200]}", seconds=took)
    if status != "running":
        return AccelVerdict("tcg", f"KVM test VM status {status!r}, not running", seconds=took)
    return AccelVerdict("kvm", f"KVM booted OVMF for {seconds:g} s", seconds=took)
