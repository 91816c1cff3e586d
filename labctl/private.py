"""Files that hold secrets (VNC passwords, .vmx files that carry them) and the VNC password itself.

One place, so that every backend creates them the same way: mode 0600 from the first byte (never a
world-readable moment between create and chmod), written under a temporary name and renamed, so a
reader sees the old file or the new one, never half of it.
"""

from __future__ import annotations

import contextlib
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
    """Write ``text`` to ``path`` readable by its owner only, atomically.

    The temporary file is created with O_EXCL|O_NOFOLLOW (a link planted at its name is never
    followed, a stale one of a killed run is removed first) and removed again when anything fails,
    the rename included: no copy of a secret is left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                fd = -1
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        finally:
            if fd >= 0:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
