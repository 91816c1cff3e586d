"""SIGTERM handled like Ctrl-C, for every command that runs cleanups.

``labctl up`` and the stick commands stop the same way whether the user presses Ctrl-C or a service
manager (Ansible, systemd, ``timeout``) sends SIGTERM: the work stops at its next safe point, the
cleanups run (VMs stopped, temporary files removed), and labctl exits 130 for Ctrl-C or 143 for
SIGTERM. ``Terminated`` is a ``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` that already
cleans up handles it too; ``isinstance(exc, Terminated)`` tells the two apart for the exit code.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process SIGTERM ended


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: handled like Ctrl-C, but the exit code is 143."""


@contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` in the main thread as Ctrl-C raises KeyboardInterrupt.

    Only the main thread can set a signal handler; elsewhere this does nothing. The previous handler
    is put back on the way out, so the process is left as it was found."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
