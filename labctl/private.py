"""Files that hold secrets (VNC passwords, .vmx files that carry them) and the VNC password itself.

One place, so that every backend creates them the same way: mode 0600 from the first byte (never a
world-readable moment between create and chmod), written under a temporary name and renamed, so a
reader sees the old file or the new one, never half of it.
"""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

VNC_PASSWORD_LEN = 8  # RFB's DES challenge uses at most 8 characters; more would be silently cut
_ALPHABET = string.ascii_letters + string.digits


def vnc_password() -> str:
    """A random VNC password: 8 letters and digits (62^8, about 2^47)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(VNC_PASSWORD_LEN))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing tmp of another umask is fixed too
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
