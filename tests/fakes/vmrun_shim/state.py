"""The shim's state folder: which VMs run (one record per VM), the call log, socket folders."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def root() -> Path:
    p = Path(os.environ.get("VMRUN_SHIM_STATE") or Path(tempfile.gettempdir()) / f"vmrun-shim-{os.getuid()}")
    p.mkdir(parents=True, exist_ok=True)
    return p


def key(vmx: Path) -> str:
    return hashlib.sha256(str(vmx.resolve()).encode()).hexdigest()[:12]


def run_dir(vmx: Path) -> Path:
    d = root() / "vms" / key(vmx)
    d.mkdir(parents=True, exist_ok=True)
    return d


def socket_dir(vmx: Path) -> Path:
    """Short enough for a unix socket path."""
    digest = hashlib.sha256(f"{root()}|{vmx.resolve()}".encode()).hexdigest()[:12]
    d = Path(tempfile.gettempdir()) / f"vmrs-{digest}"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def record_call(argv: list[str]) -> None:
    with open(root() / "calls.jsonl", "a") as f:
        f.write(json.dumps({"t": time.time(), "argv": argv}) + "\n")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


@dataclass
class Running:
    vmx: str  # as it was given to 'start' (vmrun lists it so)
    pid: int  # the supervisor
    qemu_pid: int
    qmp: str
    started: float
    folder: Path

    @classmethod
    def load(cls, vmx: Path) -> Running | None:
        path = run_dir(vmx) / "run.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        rec = cls(data["vmx"], data["pid"], data["qemu_pid"], data["qmp"], data["started"], path.parent)
        if not _alive(rec.pid):
            path.unlink(missing_ok=True)
            return None
        return rec

    def save(self) -> None:
        data = {k: v for k, v in self.__dict__.items() if k != "folder"}
        tmp = self.folder / "run.json.tmp"
        tmp.write_text(json.dumps(data))
        tmp.replace(self.folder / "run.json")


def all_running() -> list[Running]:
    out = []
    base = root() / "vms"
    if not base.is_dir():
        return out
    for d in sorted(base.iterdir()):
        try:
            data = json.loads((d / "run.json").read_text())
        except (OSError, ValueError):
            continue
        rec = Running.load(Path(data["vmx"]))
        if rec is not None:
            out.append(rec)
    return sorted(out, key=lambda r: r.started)


def faults() -> dict[str, Any]:
    text = os.environ.get("VMRUN_SHIM_FAULTS", "")
    if not text:
        return {}
    data: dict[str, Any] = json.loads(text)
    return data


def alive(pid: int) -> bool:
    return _alive(pid)
