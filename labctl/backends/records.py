"""The small JSON file in a seat's state folder that says which VM a backend started.

Another labctl process (``down``, ``status``, ``send``) reads it to find the running VM, so it is
written atomically and read defensively: a file that is missing, half-written by an older labctl
or of another shape counts as no record at all.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Self


@dataclass(frozen=True)
class SeatRecord:
    """Base of a backend's record: subclasses are frozen dataclasses whose fields are JSON values."""

    @classmethod
    def load(cls, path: Path) -> Self | None:
        """The record in ``path``, or None when there is none that fits this class."""
        try:
            data = json.loads(path.read_text())
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        """Write the record atomically (a reader never sees half of it)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)
