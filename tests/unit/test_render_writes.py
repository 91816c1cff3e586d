"""``labctl render -o DIR`` writes the .vmx files into DIR and the VNC credentials into the state folder
the lab names, and nothing else: not beside the lab, not in the working folder, not in HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labctl.cli import main

LAB = """\
name: rtest
backend: vmware
iso: installer.iso
stick: {usb: {vendor_id: 0x0781, product_id: 0x5567}}
install: {root_password: {env: LAB_ROOT_PASSWORD}}
state_dir: state/{name}
seats: 2
"""


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_render_writes_only_into_the_output_and_state_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    labdir, out, cwd, home, tmp = (tmp_path / n for n in ("lab", "out", "cwd", "home", "tmp"))
    for d in (labdir, cwd, home, tmp):
        d.mkdir()
    (labdir / "lab.yaml").write_text(LAB)
    (labdir / "installer.iso").write_bytes(b"\0" * 2048)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)  # TMPDIR is read again
    before = _files(tmp_path)

    assert main(["render", str(labdir / "lab.yaml"), "-o", str(out)]) == 0

    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "rtest-1.vmx"), str(out / "rtest-2.vmx")]
    state = labdir / "state" / "rtest"
    new = _files(tmp_path) - before
    vmx = {out / "rtest-1.vmx", out / "rtest-2.vmx"}
    creds = {state / "seat1" / "vnc.json", state / "seat2" / "vnc.json"}
    # the VNC port allocator's lock files (one per port tried) live in labctl's per-user temp folder
    locks = {p for p in new if p.parent == tmp / f"labctl-{os.getuid()}" / "vnc-ports" and p.suffix == ".lock"}
    assert new - locks == vmx | creds
    assert all(p.stat().st_mode & 0o077 == 0 for p in vmx | creds)  # both hold the VNC password
    assert not list(state.rglob("*.vmx"))  # -o means the .vmx is not also written to the state folder
