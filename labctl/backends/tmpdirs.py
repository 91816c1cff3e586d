"""labctl's folders in the shared temp dir (``/tmp/labctl-UID/...``), checked before use.

``/tmp`` is writable by everyone: another user could create ``/tmp/labctl-0`` first (or a symlink by that
name) and so see or replace a seat's QMP socket or a VNC port's lock. Every folder labctl keeps there is
therefore created 0700 and, when it exists already, used only if it is a real folder (not a link), owned
by this user and not writable by others (a folder only readable by others is closed to 0700); anything
else is refused with one line.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from labctl.errors import RefusedError


def user_temp_root() -> Path:
    """``$TMPDIR/labctl-UID`` (not created here)."""
    return Path(tempfile.gettempdir()) / f"labctl-{os.getuid()}"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents below the temp dir) 0700, or check that it is this user's own
    private folder; RefusedError when it is a link, not a folder, someone else's, or open to others."""
    root = Path(tempfile.gettempdir())
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = None
    levels = [root.joinpath(*rel.parts[: i + 1]) for i in range(len(rel.parts))] if rel else [path]
    for level in levels:
        with contextlib.suppress(FileExistsError):
            os.mkdir(level, 0o700)
        _check_own(level)
    return path


def _check_own(path: Path) -> None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise RefusedError(f"temp folder {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise RefusedError(f"temp folder {path} is a symbolic link; labctl will not follow it (remove it)")
    if not stat.S_ISDIR(st.st_mode):
        raise RefusedError(f"temp folder {path} is not a folder (remove it)")
    if st.st_uid != os.geteuid():
        raise RefusedError(f"temp folder {path} belongs to uid {st.st_uid}, not to this user "
                           f"(uid {os.geteuid()}); remove it or set TMPDIR")
    if st.st_mode & 0o022:  # others could have put things in it
        raise RefusedError(f"temp folder {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                           "remove it")
    if st.st_mode & 0o077:  # readable by others, but ours and never writable by them: close it
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
