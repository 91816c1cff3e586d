"""Stick commands under Ctrl-C and SIGTERM, in real labctl processes: the signal arrives mid-backup or
mid-unpack of a compressed image; the command stops, says what state things are in (exit 130 / 143)
and leaves no temporary file. A later run removes temporary files that a killed run left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from labctl.cli import main
from labctl.stick import imaging

MIB = 1 << 20
SIZE = 320 * MIB  # random data: long enough (about a second or more) to be caught in the middle


def _random_file(path: Path, size: int = SIZE) -> Path:
    with open(path, "wb") as f:
        for pos in range(0, size, 16 * MIB):
            f.write(os.urandom(min(16 * MIB, size - pos)))
    return path


def _labctl(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "labctl", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, CI="true", **(env or {})))


def _signal_when(proc: subprocess.Popen[str], seen: Callable[[], bool], sig: int) -> tuple[int, str]:
    """Send ``sig`` as soon as ``seen()`` (the temporary file exists); the exit code and stderr."""
    deadline = time.monotonic() + 60
    while not seen():
        assert proc.poll() is None, f"labctl ended before the signal: {proc.communicate()}"
        assert time.monotonic() < deadline, "the temporary file never appeared"
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=150)
    return proc.returncode, err


SIGNALS = [pytest.param(signal.SIGINT, 130, "interrupted", id="SIGINT"),
           pytest.param(signal.SIGTERM, 143, "terminated", id="SIGTERM")]


@pytest.mark.parametrize(("sig", "code", "word"), SIGNALS)
def test_backup_stopped_by_a_signal_leaves_no_temporary_file(tmp_path: Path, sig: int, code: int,
                                                             word: str) -> None:
    src = _random_file(tmp_path / "src.raw")
    out = tmp_path / "out"
    out.mkdir()
    proc = _labctl("stick", "backup", str(src), str(out / "s.img"))
    rc, err = _signal_when(proc, lambda: any(out.iterdir()), sig)
    assert rc == code, err
    assert f"labctl: {word}" in err
    assert "no image written (the temporary file was removed)" in err  # the worker's final state
    assert list(out.iterdir()) == []


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("zimg")
    src = _random_file(folder / "src.raw")
    img = folder / "s.img.zst"
    assert main(["stick", "backup", str(src), str(img), "--compress", "--full"]) == 0
    src.unlink()
    return img


@pytest.mark.parametrize(("sig", "code", "word"), SIGNALS)
def test_compressed_restore_stopped_while_unpacking_leaves_no_copy(compressed: Path, tmp_path: Path, sig: int,
                                                                   code: int, word: str) -> None:
    unpack = tmp_path / "unpack"
    unpack.mkdir()
    target = tmp_path / "target.raw"
    proc = _labctl("stick", "restore", str(compressed), str(target), "--yes", env={"LABCTL_TMP": str(unpack)})
    rc, err = _signal_when(proc, lambda: any(unpack.iterdir()), sig)
    assert rc == code, err
    assert f"labctl: {word}" in err and "no target written" in err
    assert list(unpack.iterdir()) == []
    assert not target.exists()


def test_a_later_run_removes_what_a_killed_run_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Temporary names carry pid and process start time: a dead maker's files go, a live one's stay."""
    src = _random_file(tmp_path / "src.raw", 4 * MIB)
    img = tmp_path / "s.img"
    dead = f"{os.getpid()}.1"  # this pid, but another start time: a process that is gone
    left = [tmp_path / f".s.img.partial-{dead}", tmp_path / f".s.img.partial-{dead}-manifest"]
    other = subprocess.Popen(["sleep", "60"])  # a backup still running in another process
    try:
        live = tmp_path / f".s.img.partial-{imaging.temp_tag(other.pid)}"
        for p in [*left, live]:
            p.write_bytes(b"x")
        assert main(["stick", "backup", str(src), str(img)]) == 0
        assert not any(p.exists() for p in left) and live.exists()
    finally:
        other.kill()
        other.wait()
    unpack = tmp_path / "unpack"
    unpack.mkdir()
    stale = unpack / f"{imaging.UNPACK_PREFIX}{dead}-abc.raw"
    stale.write_bytes(b"x")
    monkeypatch.setenv("LABCTL_TMP", str(unpack))
    zimg = tmp_path / "z.img"
    assert main(["stick", "backup", str(src), str(zimg), "--compress"]) == 0
    assert main(["stick", "restore", str(zimg), str(tmp_path / "t.raw"), "--yes"]) == 0
    assert list(unpack.iterdir()) == []
