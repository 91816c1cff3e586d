"""Child processes that must not outlive labctl (QEMU started in its own session, so a terminal's
Ctrl-C reaches labctl first and labctl decides how the VM stops)."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when the thread that started it ends (a crash or
    ``kill -9`` of labctl included), so no QEMU is left behind with nobody to stop it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
