"""Secret-bearing files are 0600 from the start and replaced atomically; VNC passwords fit RFB."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from labctl.private import vnc_password, write_private


def test_private_file_is_owner_only_even_under_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        p = tmp_path / "state" / "vnc.json"
        write_private(p, "first")
        write_private(p, "second")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert p.read_text() == "second"
    assert [q.name for q in p.parent.iterdir()] == ["vnc.json"]  # no temporary left behind


def test_vnc_passwords_are_8_random_alphanumerics() -> None:
    seen = {vnc_password() for _ in range(200)}
    assert len(seen) == 200
    assert all(len(s) == 8 and s.isalnum() and s.isascii() for s in seen)


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    p = tmp_path / "vnc.json"
    (tmp_path / f".vnc.json.{os.getpid()}.tmp").symlink_to(victim)
    write_private(p, "secret")
    assert victim.read_text() == "untouched" and p.read_text() == "secret"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["victim", "vnc.json"]


def test_no_temporary_copy_of_a_secret_survives_a_failed_rename(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        write_private(tmp_path / "vnc.json", "secret")
    assert list(tmp_path.iterdir()) == []
