"""A synchronous QMP client for one QEMU process, over ``qemu.qmp``'s asyncio ``QMPClient``.

``qemu.qmp`` is asyncio-only (its ``legacy`` shim takes over the calling thread's event loop). labctl's
callers are synchronous and may run in any thread next to vncdotool's Twisted reactor, so each
``Qmp`` owns a private event loop in a daemon thread and every call is a bounded
``run_coroutine_threadsafe``. The end of the connection when QEMU quits or dies (``EOFError`` in the
reader task, measured) is expected and kept out of the user's output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from qemu.qmp import QMPClient  # type: ignore[import-untyped]

from labctl.errors import RunFailed

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class QmpError(RunFailed):
    """A QMP command failed or QEMU's monitor went away."""


class _QuietUnlessDebug(logging.Filter):
    """qemu.qmp logs the reader's end-of-file (normal after ``quit``) and tracebacks: debug only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return logging.getLogger("labctl").isEnabledFor(logging.DEBUG)


class Qmp:
    """One QMP session on a unix socket. Use as a context manager or call ``close()``."""

    def __init__(self, socket_path: Path, nickname: str = "qemu", timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"qmp-{nickname}", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self._client: Any = self._call(self._make_client(nickname), timeout)
            self._call(self._client.connect(str(socket_path)), timeout)
        except TimeoutError:
            self._stop_loop()
            raise QmpError(f"QMP at {socket_path}: no greeting within {timeout:g} s (another client?)") from None
        except Exception as exc:  # ConnectError (no socket, refused), ...
            self._stop_loop()
            raise QmpError(f"QMP at {socket_path}: cannot connect: {exc}") from None
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _make_client(nickname: str) -> Any:
        client = QMPClient(nickname)
        for logger in (client.logger, logging.getLogger("qemu.qmp.protocol").getChild(nickname)):
            # loggers live as long as the process and a run makes thousands of QMP calls: one filter each
            if not any(isinstance(f, _QuietUnlessDebug) for f in logger.filters):
                logger.addFilter(_QuietUnlessDebug())
        return client

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        fut = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self._loop)
        try:
            return fut.result(timeout + 1.0)
        except BaseException:
            fut.cancel()
            raise

    def execute(self, command: str, arguments: dict[str, object] | None = None, timeout: float = 10.0) -> Any:
        """Run a QMP command; its return value. QMP errors and timeouts raise ``QmpError``."""
        if self._closed:
            raise QmpError(f"QMP {command}: the session is closed")
        try:
            return self._call(self._client.execute(command, arguments), timeout)
        except TimeoutError:
            raise QmpError(f"QMP {command}: QEMU did not answer within {timeout:g} s") from None
        except Exception as exc:  # ExecuteError, StateError (disconnected), EOFError...
            raise QmpError(f"QMP {command}: {type(exc).__name__}: {exc}") from None

    def quit(self, timeout: float = 5.0) -> None:
        """Ask QEMU to exit now (clean for the disk images). The connection ends; that is expected."""
        try:
            self._call(self._client.execute("quit"), timeout)
        except Exception as exc:  # the reply can be lost when QEMU closes first: fine
            log.debug("QMP quit: %s", type(exc).__name__)
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._disconnect(), 5.0)
        except Exception as exc:  # an EOFError from the reader task after quit/kill: expected
            log.debug("QMP disconnect: %s", type(exc).__name__)
        self._stop_loop()

    async def _disconnect(self) -> None:
        with contextlib.suppress(EOFError, ConnectionError, OSError):
            await self._client.disconnect()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
