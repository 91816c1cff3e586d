"""accel: auto decides by a real boot (here: fake QEMU binaries), caches the verdict per host boot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labctl.backends import accel
from labctl.backends.accel import choose_accel, probe_kvm

KVM_OK = os.access("/dev/kvm", os.R_OK | os.W_OK)


def fake_qemu(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-qemu"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def firmware(tmp_path: Path) -> tuple[Path, Path]:
    code, vars_ = tmp_path / "code.fd", tmp_path / "vars.fd"
    code.write_bytes(b"\0" * 16)
    vars_.write_bytes(b"\0" * 16)
    return code, vars_


def test_explicit_accel_is_not_probed(tmp_path: Path) -> None:
    code, vars_ = firmware(tmp_path)
    assert choose_accel("tcg", "/nonexistent", code, vars_).accel == "tcg"
    assert choose_accel("kvm", "/nonexistent", code, vars_).accel == "kvm"


@pytest.mark.skipif(not KVM_OK, reason="/dev/kvm not accessible: the probe answers TCG without booting")
def test_kvm_internal_error_means_tcg(tmp_path: Path) -> None:
    code, vars_ = firmware(tmp_path)
    binary = fake_qemu(tmp_path, 'echo "KVM internal error. Suberror: 1" >&2\nexec sleep 30\n')
    v = probe_kvm(binary, code, vars_, seconds=0.5)
    assert v.accel == "tcg" and "KVM internal error" in v.reason
    assert v.seconds < 10


@pytest.mark.skipif(not KVM_OK, reason="/dev/kvm not accessible: the probe answers TCG without booting")
def test_qemu_exiting_means_tcg(tmp_path: Path) -> None:
    code, vars_ = firmware(tmp_path)
    binary = fake_qemu(tmp_path, 'echo "qemu: could not access KVM kernel module" >&2\nexit 1\n')
    v = probe_kvm(binary, code, vars_, seconds=0.5)
    assert v.accel == "tcg" and "could not access KVM" in v.reason


def test_no_dev_kvm_means_tcg_without_booting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, vars_ = firmware(tmp_path)
    monkeypatch.setattr(accel.os, "access", lambda path, mode: False)
    v = probe_kvm("/nonexistent", code, vars_)
    assert v.accel == "tcg" and "/dev/kvm" in v.reason


def test_verdict_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, vars_ = firmware(tmp_path)
    calls = []

    def fake_probe(binary: str, c: Path, v: Path) -> accel.AccelVerdict:
        calls.append(binary)
        return accel.AccelVerdict("tcg", "probe said so", seconds=1.0)

    monkeypatch.setattr(accel, "probe_kvm", fake_probe)
    cache = tmp_path / "cache" / "accel.json"
    first = choose_accel("auto", "qemu-system-x86_64", code, vars_, cache_file=cache)
    second = choose_accel("auto", "qemu-system-x86_64", code, vars_, cache_file=cache)
    assert first.accel == second.accel == "tcg"
    assert not first.cached and second.cached and second.reason == "probe said so"
    assert len(calls) == 1
    choose_accel("auto", "qemu-system-x86_64", tmp_path / "other-code.fd", vars_, cache_file=cache)
    assert len(calls) == 2  # other firmware: probe again
