"""A VNC session for one seat: keys at a bounded rate, frames as numpy arrays, reconnects.

Built on vncdotool's Twisted client, but not on its blocking proxy: the proxy shares one result queue
per client, so a call that times out leaves its late answer for the next call. Here every call from the
caller's thread to the reactor thread has its own Future and its own timeout (nothing blocks forever).

Frames: after connecting we keep one incremental FramebufferUpdateRequest outstanding at all times
(re-armed after each update), so the client's copy of the screen is always current and the server
only talks when something changes. A waiting thread sleeps on a Condition until the frame counter
moves (no polling of the network, near-zero CPU on a still screen). QEMU's server looks for changes less
and less often while the screen is still (up to every 3 s); an endpoint with ``refresh_nudge`` gets an
empty ClientCutText that often, which brings QEMU back to every 30 ms and reaches no guest.

VMware's VNC server sends single-pixel updates on alternate replies; vncdotool's ``VMWareFactory`` that
filters them crashes on 1.4.2 (a misspelt attribute), so we use the plain client: a 1x1 update is valid
RFB and is simply pasted, and the canvas is created at the server's size before the first rectangle lands.

Reconnects: a dropped connection (socket closed, or a call or frame that times out) is detected, a new
connection is made (bounded), and the current action goes on from the last point where no key was
held, so a step is not lost. The password comes from the VncEndpoint and is never logged.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from labctl.backends.base import VncEndpoint
from labctl.console.kbdflow import KeyboardFlow
from labctl.console.keys import Action, KeyEvent, Pause
from labctl.console.waiting import Deadline, WaitExpired, poll_until
from labctl.errors import RunFailed

log = logging.getLogger(__name__)

Frame = NDArray[np.uint8]  # H x W x 3, RGB
T = TypeVar("T")
FLOW_WAIT = 5.0  # seconds a key waits for the guest to read its keyboard before typing goes on at a fixed pace

# Twisted's reactor is one per process, and vncdotool starts it inside api.connect() when it sees
# ``not reactor.running``. Two seats connecting at once both see it stopped and both start it: the
# second thread dies with ReactorAlreadyRunning. This lock (process-wide, like the reactor it guards)
# makes the first connect start the reactor and wait until it runs before anyone else looks.
_REACTOR_START = threading.Lock()


class VncLost(Exception):
    """The connection dropped (internal: triggers a reconnect)."""


def _make_classes(nudge: float | None = None) -> tuple[type[Any], type[Any]]:
    """Define the Twisted client/factory lazily, so importing labctl never imports Twisted.

    ``nudge``: send an empty ClientCutText this often (seconds), for a server that slows its refresh on
    a still screen until a client message comes (the endpoint's ``refresh_nudge``)."""
    import warnings

    from PIL import Image
    from vncdotool.client import VNCDoToolClient, VNCDoToolFactory

    logging.getLogger("twisted").setLevel(logging.WARNING)  # the reactor's chatter is not our log
    warnings.filterwarnings("ignore", category=FutureWarning, module=__name__)
    warnings.filterwarnings("ignore", message="TripleDES has been moved")  # VNC auth is DES by definition

    class FrameClient(VNCDoToolClient):  # type: ignore[misc]
        def vncConnectionMade(self) -> None:
            super().vncConnectionMade()
            self.screen = Image.new("RGB", (self.width, self.height), "black")
            self.framebufferUpdateRequest(incremental=False)
            self._nudger: Any = None
            if nudge:
                from twisted.internet import task

                self._nudger = task.LoopingCall(self._nudge)
                self._nudger.start(nudge, now=False)

        def _nudge(self) -> None:
            if self.transport is not None and not getattr(self.transport, "disconnecting", False):
                self.clientCutText("")  # no text: nothing reaches the guest, the server just looks sooner

        def updateRectangle(self, x: int, y: int, width: int, height: int, data: bytes) -> None:
            if self.screen is None:
                self.screen = Image.new("RGB", (self.width, self.height), "black")
            super().updateRectangle(x, y, width, height, data)

        def commitUpdate(self, rectangles: Any = None) -> None:
            factory = self.factory
            # VMware answers every request, often with a single-pixel update: not a screen change, and
            # re-asking at once would ping-pong at network speed, so ask again a little later
            dummy = not rectangles or all(r[2] * r[3] <= 1 for r in rectangles)
            if not dummy:
                with factory.cond:
                    factory.frame_no += 1
                    factory.times.append((factory.frame_no, time.monotonic()))
                    factory.cond.notify_all()
            # keep one incremental request outstanding: the server answers when something changes
            if dummy:
                from twisted.internet import reactor

                reactor.callLater(0.05, self._ask)  # type: ignore[arg-type]  # zope interface typing
            else:
                self._ask()

        def _ask(self) -> None:
            if self.transport is not None and not getattr(self.transport, "disconnecting", False):
                self.framebufferUpdateRequest(incremental=True)

        def connectionLost(self, reason: Any) -> None:
            nudger = getattr(self, "_nudger", None)
            if nudger is not None and nudger.running:
                nudger.stop()
            with self.factory.cond:
                self.factory.lost = True
                self.factory.cond.notify_all()
            super().connectionLost(reason)

    class FrameFactory(VNCDoToolFactory):  # type: ignore[misc]
        protocol = FrameClient

        def __init__(self) -> None:
            super().__init__()
            self.cond = threading.Condition()
            self.frame_no = 0
            self.times: deque[tuple[int, float]] = deque(maxlen=2000)  # (frame number, arrival time)
            self.lost = False

        def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
            with self.cond:
                self.lost = True
                self.cond.notify_all()
            if not self.deferred.called:
                self.deferred.errback(reason)

    return FrameClient, FrameFactory


def _key_event(a: KeyEvent) -> Callable[[Any], None]:
    return lambda p: p.keyEvent(a.keysym, a.down)


class VncSession:
    """One connection (re-made when it drops) to one seat's VNC server, used from one thread."""

    def __init__(self, endpoint: VncEndpoint, key_rate: float = 10.0, call_timeout: float = 10.0,
                 reconnect_timeout: float = 60.0) -> None:
        if key_rate <= 0:
            raise ValueError("key_rate must be positive")
        self.endpoint = endpoint
        self.key_rate = key_rate
        self.call_timeout = call_timeout
        self.reconnect_timeout = reconnect_timeout
        self.reconnects = 0
        self._factory: Any = None
        self._protocol: Any = None
        self._last_press = 0.0
        self._last_event = 0.0
        self._flow = KeyboardFlow(endpoint.keyboard_trace) if endpoint.keyboard_trace else None
        self._reactor: Any = None
        self._aborted: str | None = None

    def abort(self, reason: str) -> None:
        """From any thread: the VM is gone. Every later call (and a wait in progress) fails at once
        with ``reason`` instead of spending the reconnect budget."""
        self._aborted = reason
        self.reconnect_timeout = 0.0
        factory = self._factory
        if factory is not None:
            with factory.cond:
                factory.cond.notify_all()

    def _check_aborted(self) -> None:
        if self._aborted:
            raise RunFailed(f"the VNC console is gone: {self._aborted}")

    # -- connection ---------------------------------------------------------------------------------
    def connect(self, alive: Callable[[], bool] | None = None) -> None:
        """Connect, retrying until ``reconnect_timeout`` (a VM that is still starting its VNC server),
        or until ``alive`` says the VM is gone (no point waiting out the budget for a dead QEMU)."""
        deadline = Deadline(self.reconnect_timeout)

        def once() -> bool:
            self._check_aborted()
            if alive is not None and not alive():
                raise RunFailed("the VM stopped while its VNC console was being opened")
            self._connect_once(deadline.slice(self.call_timeout, least=1.0))
            return True

        try:  # 0.5 s: a bounded retry interval, not a synchronisation sleep
            poll_until(once, self.reconnect_timeout, 0.5, "VNC connection",
                       retry_on=(OSError, TimeoutError, VncLost, FutureTimeout))
        except WaitExpired as exc:
            where = self.endpoint.socket_path or f"{self.endpoint.host}:{self.endpoint.port}"
            raise RunFailed(f"cannot connect to VNC at {where}: {exc.last}") from None

    def _connect_once(self, timeout: float) -> None:
        from twisted.internet import reactor
        from vncdotool import api

        _client_cls, factory_cls = _make_classes(self.endpoint.refresh_nudge)
        ep = self.endpoint
        server = str(ep.socket_path) if ep.socket_path else f"{ep.host}::{ep.port}"
        with _REACTOR_START:
            proxy = api.connect(server, password=ep.password, factory_class=factory_cls, timeout=timeout)
            running = threading.Event()
            reactor.callFromThread(running.set)  # runs once the reactor loop turns: proof it is up
            running.wait(timeout)
        self._reactor = reactor
        factory = proxy.factory
        fut: Future[Any] = Future()

        def ok(p: Any) -> Any:
            fut.set_result(p)
            return p

        def failed(f: Any) -> None:
            fut.set_exception(VncLost(f.getErrorMessage()))

        def hook() -> None:
            factory.deferred.addCallbacks(ok, failed)

        reactor.callFromThread(hook)
        try:
            protocol = fut.result(timeout=timeout)
        except FutureTimeout:
            reactor.callFromThread(lambda: factory.deferred.addCallback(lambda p: p.transport.loseConnection()))
            raise
        self._factory, self._protocol = factory, protocol
        # the first full frame
        with factory.cond:
            factory.cond.wait_for(lambda: factory.frame_no > 0 or factory.lost, timeout=timeout)
            if factory.lost:
                raise VncLost("connection closed during the first frame")
        log.debug("vnc: connected to %r", ep)

    def close(self) -> None:
        if self._flow is not None:
            self._flow.close()  # reopened (and read again from the start) if the session is used again
        self._drop()

    def _drop(self) -> None:
        protocol, self._protocol, self._factory = self._protocol, None, None
        if protocol is not None and self._reactor is not None:
            with contextlib.suppress(Exception):  # the reactor may be gone at process exit
                self._reactor.callFromThread(protocol.transport.loseConnection)

    def _reconnect(self, why: str) -> None:
        log.warning("vnc: connection lost (%s); reconnecting", why)
        self._drop()
        self.reconnects += 1
        self.connect()

    @property
    def connected(self) -> bool:
        return self._protocol is not None and not self._factory.lost

    def _call(self, fn: Callable[[Any], T], timeout: float | None = None) -> T:
        """Run ``fn(protocol)`` on the reactor thread; raise VncLost when the link is gone or silent."""
        if not self.connected:
            raise VncLost("not connected")
        fut: Future[T] = Future()
        protocol = self._protocol

        def run() -> None:
            try:
                fut.set_result(fn(protocol))
            except BaseException as exc:  # delivered to the caller's thread
                fut.set_exception(exc)

        self._reactor.callFromThread(run)
        try:
            return fut.result(timeout=timeout or self.call_timeout)
        except FutureTimeout:
            raise VncLost("the reactor did not answer in time") from None

    def _with_reconnect(self, fn: Callable[[], T]) -> T:
        for attempt in range(3):
            self._check_aborted()
            try:
                if not self.connected:
                    raise VncLost("not connected")
                return fn()
            except VncLost as exc:
                if attempt == 2:
                    raise RunFailed(f"VNC connection keeps dropping: {exc}") from None
                self._reconnect(str(exc))
        raise AssertionError("unreachable")

    # -- keys ---------------------------------------------------------------------------------------
    @property
    def paced_by_guest(self) -> bool:
        """True when each key event waits for room in the guest's keyboard (``labctl.console.kbdflow``)."""
        return self._flow is not None and self._flow.live

    def send(self, actions: Sequence[Action], sleep: Callable[[float], None] = time.sleep) -> None:
        """Send key events at ``key_rate`` presses/s at the most, each when the guest's keyboard has room
        for it (the endpoint's ``keyboard_trace``), or else no two closer than its ``key_event_gap``. On a
        dropped connection, reconnect and go on from the last point where no key was held (the keys before
        it were delivered)."""
        interval = 1.0 / self.key_rate
        flow = self._flow if self.paced_by_guest else None
        gap = 0.0 if flow else self.endpoint.key_event_gap
        i = 0
        safe = 0  # index after which nothing is held
        held: set[int] = set()
        drops, dropped_at = 0, -1  # drops in a row with no progress in between: bounded
        while i < len(actions):
            a = actions[i]
            if isinstance(a, Pause):
                sleep(a.seconds)  # Packer <waitN> compatibility: the user asked for it
                i += 1
                safe = i if not held else safe
                continue
            assert isinstance(a, KeyEvent)
            if flow is not None and not flow.wait_room(a.keysym, FLOW_WAIT, lambda: self._aborted is not None):
                if self._aborted is not None:
                    raise RunFailed(self._aborted)
                log.warning("the guest has not read its keyboard for %g s: typing on at a fixed pace", FLOW_WAIT)
                flow, gap = None, self.endpoint.key_event_gap
            now = time.monotonic()
            delay = max(self._last_press + interval - now if a.is_press else 0.0, self._last_event + gap - now)
            if delay > 0:
                sleep(delay)  # rate limit, not synchronisation
            if a.is_press:
                self._last_press = time.monotonic()
            try:
                if not self.connected:
                    raise VncLost("not connected")
                self._call(_key_event(a))
                self._last_event = time.monotonic()
                if self._flow is not None:
                    self._flow.sent_one(a.keysym)
            except VncLost as exc:
                drops = drops + 1 if safe <= dropped_at else 1
                dropped_at = safe
                if drops >= 3:
                    raise RunFailed(f"VNC connection keeps dropping while typing: {exc}") from None
                self._reconnect(str(exc))
                i, held = safe, set()
                continue
            (held.add if a.down else held.discard)(a.keysym)
            i += 1
            if not held:
                safe = i
        # a drop noticed right after the last event: re-make the link for the next action
        if not self.connected:
            self._reconnect("dropped at the end of a key sequence")

    # -- frames -------------------------------------------------------------------------------------
    @property
    def frame_no(self) -> int:
        return int(self._factory.frame_no) if self._factory is not None else -1

    def first_frame_after(self, t: float) -> float | None:
        """Arrival time of the first screen update at or after monotonic time ``t`` (for latency figures)."""
        if self._factory is None:
            return None
        with self._factory.cond:
            return next((ft for _, ft in self._factory.times if ft >= t), None)

    def frame(self) -> Frame:
        """The current screen as an RGB array (a copy, taken on the reactor thread)."""

        def grab() -> Frame:
            def snap(p: Any) -> Frame:
                return np.array(p.screen.convert("RGB"), dtype=np.uint8)

            return self._call(snap)

        return self._with_reconnect(grab)

    def fresh_frame(self, timeout: float = 5.0) -> Frame:
        """Ask for a full update and return the screen once it landed (a screenshot that is not stale)."""

        def grab() -> Frame:
            factory = self._factory
            before = factory.frame_no
            self._call(lambda p: p.framebufferUpdateRequest(incremental=False))
            with factory.cond:
                factory.cond.wait_for(lambda: factory.frame_no > before or factory.lost, timeout=timeout)
            if factory.lost:
                raise VncLost("dropped while waiting for a frame")
            return self.frame()

        return self._with_reconnect(grab)

    def wait_frame(self, after: int, timeout: float) -> int:
        """Sleep until a frame newer than ``after`` arrives or ``timeout`` passes; return the frame number.
        A dropped connection is re-made here (so a wait survives it)."""
        self._check_aborted()
        if not self.connected:
            self._with_reconnect(lambda: None)
            return self.frame_no
        factory = self._factory
        with factory.cond:
            factory.cond.wait_for(lambda: factory.frame_no != after or factory.lost or bool(self._aborted),
                                  timeout=max(0.0, timeout))
        self._check_aborted()
        if factory.lost:
            self._with_reconnect(lambda: None)
        return self.frame_no

    def save_png(self, frame: Frame, path: Path) -> Path:
        from PIL import Image

        Image.fromarray(frame).save(path, optimize=False, compress_level=1)
        return path


def stop_event_loop() -> None:
    """End vncdotool's reactor thread (at the end of a short-lived process; it cannot be restarted)."""
    from vncdotool import api

    api.shutdown()
