"""One way to hide a secret: the mask string and the scrubber every output path uses.

A secret (the root password, the VNC password, a literal a playbook marks ``secret: true``) must
never reach a log, an event, a report, an error message or a screenshot's name. Messages show a
secret in more than its raw form: a wait's pattern holds it regex-escaped (``re.escape``) and an
excerpt of output holds it repr'd (``'...'`` with backslashes doubled), or both. ``Secrets``
replaces every one of those forms with ``MASK``, longest first, so a short secret inside a longer
one never leaves a piece of the longer one behind.

Use ``Secrets`` where secrets accumulate during a run (a run folder, a console), and ``scrub``
for a one-off message. Both hide exactly the same forms.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator

MASK = "*****"


def forms(secret: str) -> set[str]:
    """The ways a message can show ``secret``: raw, regex-escaped, repr'd, and repr'd after escaping."""
    escaped = re.escape(secret)
    return {secret, escaped, repr(secret)[1:-1], repr(escaped)[1:-1]}


class Secrets:
    """A growing set of secrets and the scrubber for them (safe to share between threads)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._raw: list[str] = []
        self._forms: list[str] = []
        self._lock = threading.Lock()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Remember each non-empty secret (an empty one would mask every gap between characters)."""
        with self._lock:
            for s in secrets:
                if not s or s in self._raw:
                    continue
                self._raw.append(s)
                self._forms.extend(f for f in forms(s) if f not in self._forms)
            self._forms.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``MASK``."""
        with self._lock:
            found = list(self._forms)
        for form in found:
            text = text.replace(form, MASK)
        return text

    def __call__(self, text: str) -> str:
        return self.scrub(text)

    def shows(self, text: str) -> bool:
        """Whether ``text`` holds a secret in any of its forms (so it must not be shown as is)."""
        with self._lock:
            return any(form in text for form in self._forms)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._raw))

    def __len__(self) -> int:
        with self._lock:
            return len(self._raw)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """A one-off scrub of ``text`` against ``secrets`` (the same forms as ``Secrets.scrub``)."""
    return Secrets(secrets).scrub(text)
