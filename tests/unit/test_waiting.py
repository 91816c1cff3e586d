"""The bounded-wait helpers: a deadline that never goes negative, a poll that ends with a clear error."""

from __future__ import annotations

import pytest

from labctl.console.waiting import Deadline, WaitExpired, poll_until


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def test_deadline_left_slice_and_expiry() -> None:
    clock = Clock()
    d = Deadline(5, clock)
    assert d.left() == 5 and d.slice(1.0) == 1.0 and not d.expired()
    clock.now += 4.5
    assert d.slice(1.0) == pytest.approx(0.5) and d.slice(1.0, least=2.0) == 2.0
    clock.now += 1
    assert d.expired() and d.left() == 0 and d.elapsed() == pytest.approx(5.5)


def test_poll_until_returns_the_first_result_and_retries_listed_errors() -> None:
    clock = Clock()
    tries = iter([OSError("not yet"), None, "ready"])

    def check() -> str | None:
        v = next(tries)
        if isinstance(v, Exception):
            raise v
        return v

    assert poll_until(check, 10, 0.5, "thing", retry_on=(OSError,), sleep=clock.sleep, clock=clock) == "ready"
    assert clock.now == pytest.approx(101.0)


def test_poll_until_times_out_naming_what_and_the_last_error() -> None:
    clock = Clock()
    calls = []

    def check() -> None:
        calls.append(clock.now)
        raise FileNotFoundError("no socket")

    with pytest.raises(WaitExpired) as exc:
        poll_until(check, 2, 0.5, "serial socket", retry_on=(OSError,), sleep=clock.sleep, clock=clock)
    assert str(exc.value) == "no serial socket within 2s (last: no socket)"
    assert isinstance(exc.value, TimeoutError) and calls[-1] == pytest.approx(102.0)  # tried at the deadline too


def test_an_error_not_listed_ends_the_poll_at_once() -> None:
    def check() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        poll_until(check, 10, 0.5, "x")
