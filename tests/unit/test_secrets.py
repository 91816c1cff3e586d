"""One mask for every secret: the raw, regex-escaped and repr'd forms, longest first."""

from __future__ import annotations

import re
import threading

from labctl.secrets import MASK, Secrets, scrub

PW = 'Ab1\\<b>&"x.$'


def test_every_form_is_masked_with_the_one_mask() -> None:
    s = Secrets([PW])
    for shown in (PW, re.escape(PW), repr(PW), repr(re.escape(PW)), f"/{re.escape(PW)}/ {PW!r}"):
        out = s.scrub(shown)
        assert "Ab1" not in out and MASK in out, shown
    assert scrub(f"pw={PW}", [PW]) == f"pw={MASK}"


def test_a_secret_inside_a_longer_one_leaves_nothing_of_either() -> None:
    s = Secrets(["abc", "xxabcyy"])
    assert s.scrub("xxabcyy and abc") == f"{MASK} and {MASK}"


def test_empty_secrets_are_ignored_and_shows_sees_escaped_forms() -> None:
    s = Secrets(["", "p.w"])
    assert s.scrub("a b") == "a b" and len(s) == 1 and list(s) == ["p.w"]
    assert s.shows(r"wait /p\.w/") and not s.shows("p-w")


def test_secrets_added_from_threads_are_all_kept() -> None:
    s = Secrets()
    threads = [threading.Thread(target=s.add, args=([f"secret-{i:03d}"],)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(s) == 50 and "secret-" not in s.scrub(" ".join(f"secret-{i:03d}" for i in range(50)))


def test_a_failed_seat_message_uses_the_same_mask_and_forms() -> None:
    from labctl import runner

    assert runner._scrub(f"step 'x': no text /{re.escape(PW)}/", [PW]) == f"step 'x': no text /{MASK}/"
