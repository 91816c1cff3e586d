"""A minimal .vmx reader/writer of its own (not labctl's: the shim must not share labctl's mistakes)."""

from __future__ import annotations

import re
from pathlib import Path

_LINE = re.compile(r'^\s*([^#=\s][^=]*?)\s*=\s*"(.*)"\s*$')


def _decode(value: str) -> str:
    return re.sub(r"\|([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


def load(path: Path) -> dict[str, str]:
    """Keys lower-cased (VMware's keys are case-insensitive); later lines win."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _LINE.match(line)
        if m:
            out[m.group(1).strip().lower()] = _decode(m.group(2))
    return out


def true(cfg: dict[str, str], key: str, default: bool = False) -> bool:
    v = cfg.get(key.lower())
    if v is None:
        return default
    return v.strip().lower() in ("true", "yes", "1")


def set_keys(path: Path, values: dict[str, str]) -> None:
    """Rewrite some keys in place (others untouched), appending the missing ones."""
    lines = path.read_text(encoding="utf-8").splitlines()
    todo = {k.lower(): (k, v) for k, v in values.items()}
    for i, line in enumerate(lines):
        m = _LINE.match(line)
        if m and m.group(1).strip().lower() in todo:
            _, value = todo.pop(m.group(1).strip().lower())
            lines[i] = f'{m.group(1).strip()} = "{value}"'
    lines += [f'{k} = "{v}"' for k, v in todo.values()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
