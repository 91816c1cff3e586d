"""The one VNC port allocator for every backend: a free 127.0.0.1 port in 5900-5999, reserved by a
file lock per port (as Packer does) until the caller's VM has bound it.

Two seats starting at once (threads of one ``labctl up --parallel``, or two labctl processes) must not
pick the same port: a bind test alone races, so each candidate port is first locked with ``flock`` on
``/tmp/labctl-UID/vnc-ports/PORT.lock`` (released by the kernel when the holder ends, so never stale),
then test-bound. The caller starts its VM inside the ``with`` block::

    with reserve_vnc_port(prefer=last_port) as port:
        start_the_vm(vnc_port=port)       # QEMU -vnc 127.0.0.1:N, or RemoteDisplay.vnc.port for VMware

A VMware seat whose port is written into its .vmx keeps that port and reserves it at each power-on
with ``prefer=``; ``exclude`` skips ports the caller knows are taken (ones that failed to bind).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
from collections.abc import Collection, Iterator

from labctl.backends.tmpdirs import private_dir, user_temp_root
from labctl.errors import RunFailed

VNC_PORTS = range(5900, 6000)
"""The ports labctl hands out (display :0 to :99), 127.0.0.1 only."""


def _free(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def reserve_vnc_port(exclude: Collection[int] = (), prefer: int | None = None, host: str = "127.0.0.1",
                     ports: range = VNC_PORTS) -> Iterator[int]:
    """A free VNC port, locked against every other labctl until the block ends. ``prefer`` (the seat's
    previous port) is tried first, the others from a random start so parallel seats rarely collide.
    RunFailed when every port is taken."""
    lock_dir = private_dir(user_temp_root() / "vnc-ports")
    order = list(ports)
    start = random.randrange(len(order))
    order = order[start:] + order[:start]
    if prefer is not None and prefer in ports:
        order.insert(0, prefer)
    for port in order:
        if port in exclude:
            continue
        fd = os.open(lock_dir / f"{port}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # another seat holds it right now
            if not _free(port, host):
                continue
            yield port
            return
        finally:
            os.close(fd)  # releases the lock
    raise RunFailed(f"no free VNC port in {ports.start}-{ports.stop - 1} on {host}")
