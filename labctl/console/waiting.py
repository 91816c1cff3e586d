"""Bounded waits: one deadline and one polling loop for every "until X, at most T seconds".

Every wait in labctl has a timeout (a VM that never shows a screen must not hang a classroom), and
every wait that ends without its evidence says what it waited for and for how long. Two pieces cover
the cases:

``Deadline``
    A point in monotonic time. ``left()`` is what remains (never negative), ``expired()`` says
    whether it has passed, ``elapsed()`` how long since it was set, and ``slice(most)`` the length of
    the next sleep or blocking call: at most ``most`` seconds and never past the deadline. Use it
    when the loop blocks on something of its own (a condition variable, the next VNC frame).

``poll_until(check, timeout, interval, what)``
    Calls ``check()`` every ``interval`` seconds until it returns something other than ``None`` and
    returns that. Exceptions listed in ``retry_on`` count as "not yet" (a socket the VM has not
    created); once the time is up, ``WaitExpired`` names ``what``, the timeout and the last such
    error. Use it when there is nothing to block on but a retry.

``WaitExpired`` is a ``TimeoutError`` (hence an ``OSError``), so callers that already turn I/O errors
into one-line messages handle it without a new branch. The Console's ``WaitTimeout`` (with the
screenshot and what OCR read) is built on top, where there is a screen to show.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
Clock = Callable[[], float]


class WaitExpired(TimeoutError):
    """A bounded wait ran out of time without its result."""

    def __init__(self, what: str, timeout: float, last: BaseException | None = None) -> None:
        self.what, self.timeout, self.last = what, timeout, last
        detail = f" (last: {last})" if last is not None else ""
        super().__init__(f"no {what} within {timeout:g}s{detail}")


class Deadline:
    """``seconds`` from now on ``clock``; a value of 0 is already expired."""

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self.seconds = max(0.0, seconds)
        self._clock = clock
        self.start = clock()
        self.at = self.start + self.seconds

    def left(self) -> float:
        return max(0.0, self.at - self._clock())

    def expired(self) -> bool:
        return self._clock() >= self.at

    def elapsed(self) -> float:
        return self._clock() - self.start

    def slice(self, most: float, least: float = 0.0) -> float:
        """The next blocking call's length: ``most`` at the most, what is left otherwise, at least ``least``."""
        return max(least, min(most, self.left()))


def poll_until(check: Callable[[], T | None], timeout: float, interval: float, what: str,
               retry_on: tuple[type[BaseException], ...] = (), sleep: Callable[[float], None] = time.sleep,
               clock: Clock = time.monotonic) -> T:
    """``check()``'s first result that is not None, trying every ``interval`` s for ``timeout`` s.

    ``check`` runs at least once, and once more at the deadline, so a result that arrives just in
    time is not missed. Raises ``WaitExpired`` after the last try."""
    if interval <= 0:
        raise ValueError("poll_until needs an interval above 0")
    deadline = Deadline(timeout, clock)
    last: BaseException | None = None
    while True:
        try:
            result = check()
        except retry_on as exc:
            last, result = exc, None
        if result is not None:
            return result
        if deadline.expired():
            raise WaitExpired(what, timeout, last)
        sleep(deadline.slice(interval))
