"""Secret-bearing files are 0600 from the start and replaced atomically; VNC passwords fit RFB."""

from __future__ import annotations

import os
import stat
from pathlib import Path

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
