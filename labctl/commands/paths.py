"""Where commands write and what they read: checked up front, so a wrong path is one line and
exit 2 (the option named) instead of an OSError halfway through."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from labctl.errors import InputError


def output_folder(path: str, option: str) -> Path:
    """A folder to write into: existing, or creatable (its nearest existing parent is a folder)."""
    p = Path(path)
    parent = p
    while True:  # the nearest part of the path that exists (a link loop is an answer too, not an OSError)
        try:
            st = os.stat(parent)
            break
        except FileNotFoundError:
            parent = parent.parent
        except OSError as exc:
            raise InputError(f"{option} {path}: {parent}: {_why(exc)}") from None
    if parent == p and not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{option} {path}: exists and is not a folder")
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{option} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{option} {path}: {parent} is not writable")
    return p


def _why(exc: OSError) -> str:
    return "a loop of symbolic links" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))


def output_file(path: str, option: str) -> Path:
    """A file to (over)write: not a folder, in an existing, writable folder."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{option} {path}: is a folder; give a file name")
    if p.exists() and not stat.S_ISREG(p.stat().st_mode):
        raise InputError(f"{option} {path}: exists and is not a regular file")
    from labctl.stick.blockdev import in_kernel_folder

    if not p.exists() and in_kernel_folder(str(p)):  # -o /dev/sdb with the stick unplugged: no file in /dev
        raise InputError(f"{option} {path}: no such device, and labctl makes no new file in /dev, /proc or /sys")
    folder = p.parent
    if not folder.is_dir():
        raise InputError(f"{option} {path}: no such folder {folder}")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(f"{option} {path}: not writable")
    return p


def input_file(path: str, option: str, max_bytes: int = 1 << 20) -> Path:
    """A small text file to read (a kickstart): a regular file, not a pipe or a device."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise InputError(f"{option} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{option} {path}: not a regular file")
    if st.st_size > max_bytes:
        raise InputError(f"{option} {path}: {st.st_size} bytes, more than {max_bytes // 1024} KiB")
    return p
