"""Child processes that must not outlive labctl (QEMU started in its own session, so a terminal's
Ctrl-C reaches labctl first and labctl decides how the VM stops).

``PR_SET_PDEATHSIG`` is set by util-linux ``setpriv`` in front of the child's argv, not by a
``preexec_fn``: code between fork and exec in a process with threads (seats in parallel, the console's
readers) can deadlock on a lock another thread held at the fork.
"""

from __future__ import annotations

import logging
import shutil

log = logging.getLogger(__name__)


def die_with_parent(argv: list[str], signal_name: str = "TERM") -> list[str]:
    """``argv`` run so that the child gets SIGTERM when the thread that started it ends (a crash or
    ``kill -9`` of labctl included), so no QEMU is left behind with nobody to stop it. Without
    ``setpriv`` (not Linux, or util-linux missing) the argv is returned as it is."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.debug("setpriv not found: %s will not end with labctl", argv[0])
        return list(argv)
    return [setpriv, f"--pdeathsig={signal_name}", "--", *argv]
