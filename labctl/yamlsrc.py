"""YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with marks; we build plain Python data from them ourselves so that
duplicate keys are errors (PyYAML silently keeps the last one) and every path in the data maps to
the line and column of its key and value. Errors come out as ``SpecError`` (FILE:LINE:COL).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labctl.errors import SpecError

PathKey = tuple[str | int, ...]
SECRET_KEYS = ("root_password",)  # below these keys neither a value nor a key nor a tag reaches a message
MAX_BYTES = 1 << 20  # a lab file is a page of YAML; anything bigger is the wrong file
MAX_VALUES = 20_000  # values after alias expansion: stops "billion laughs" files early
MAX_DEPTH = 50  # nesting of mappings and lists; a lab file needs 5
_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class Located:
    """Data from a YAML file plus the position of each key and value, by data path."""

    data: Any
    file: str
    key_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    value_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: PathKey, prefer_key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) for a data path, falling back to the nearest parent."""
        p = tuple(path)
        while True:
            first, second = (self.key_marks, self.value_marks) if prefer_key else (self.value_marks, self.key_marks)
            if p in first:
                return first[p]
            if p in second:
                return second[p]
            if not p:
                return (1, 1)
            p = p[:-1]


_QUOTED_NAME_RE = re.compile(r" ?'[^'<][^']+'")  # 'name' of two or more characters; not '<scalar>' nor 'q'


def _secret(path: PathKey) -> bool:
    return any(part in SECRET_KEYS for part in path)


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def load_located(path: Path, display: str | None = None) -> Located:
    """Read a YAML file into plain data with positions; every problem is a one-line SpecError."""
    name = display or str(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise SpecError(name, 1, 1, "(file)", "is a folder, not a lab file")
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block, a device never end
            raise SpecError(name, 1, 1, "(file)", "not a regular file (a pipe or a device?)")
        if st.st_size > MAX_BYTES:
            raise SpecError(name, 1, 1, "(file)", f"{st.st_size} bytes: too large for a lab file "
                            f"(at most {MAX_BYTES // 1024} KiB)")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(name, 1, 1, "(file)", "no such file") from None
    except OSError as exc:
        raise SpecError(name, 1, 1, "(file)", f"cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = raw[: exc.start].decode("utf-8", "replace")
        line, col = _line_col(good, len(good))
        raise SpecError(name, line, col, "(file)", "not UTF-8 text (is this a binary file?)") from None
    if "\x00" in text:
        line, col = _line_col(text, text.index("\x00"))
        raise SpecError(name, line, col, "(file)", "contains NUL bytes (is this a binary file?)")
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise SpecError(name, 1, 1, "(lab)", "the file is empty; a lab needs at least name, iso, stick and install")
    return _compose(text, name)


def _compose(text: str, name: str) -> Located:
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line, col = _line_col(text, exc.position)
        raise SpecError(name, line, col, "(file)", f"character #x{exc.character:04x} is not allowed in YAML") from None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "YAML syntax error"
        if "\t" in problem or "'\\t'" in problem:
            problem = "a tab character; YAML indents with spaces only"
        elif "expected a single document" in str(exc.context or ""):
            problem = "more than one YAML document ('---'); a lab file holds one"
        else:  # an alias, anchor or tag name may be a password that starts with '*', '&' or '!': not quoted back
            problem = _QUOTED_NAME_RE.sub("", problem)
        raise SpecError(name, line, col, "(yaml)", problem) from None
    except yaml.reader.ReaderError as exc:
        line, col = _line_col(text, exc.position)
        raise SpecError(name, line, col, "(file)", f"character #x{exc.character:04x} is not allowed in YAML") from None
    except yaml.YAMLError as exc:
        raise SpecError(name, 1, 1, "(yaml)", str(exc).splitlines()[0]) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        mark = loader.get_mark()
        raise SpecError(name, mark.line + 1, mark.column + 1, "(yaml)",
                        f"nested too deeply (a lab file nests at most {MAX_DEPTH} levels)") from None
    finally:
        loader.dispose()
    if node is None:
        raise SpecError(name, 1, 1, "(lab)", "the file is empty; a lab needs at least name, iso, stick and install")
    located = Located(data=None, file=name)
    located.data = _Builder(located, loader).build(node, ())
    if not isinstance(located.data, dict):
        line, col = _pos(node)
        kind = "a list" if isinstance(located.data, list) else f"a single value ({located.data!r:.30})"
        raise SpecError(name, line, col, "(lab)", f"a lab file is a mapping of keys (name:, iso:, ...), not {kind}")
    return located


class _Builder:
    """Plain data from composed nodes, with positions; aliases are expanded, but a self-referring
    alias and an alias bomb are errors, and no value's text ever reaches a message (it may be a
    password)."""

    def __init__(self, loc: Located, loader: yaml.SafeLoader) -> None:
        self.loc, self.loader = loc, loader
        self.count = 0
        self.active: set[int] = set()  # ids of the collections being built (an alias cycle shows here)

    def fail(self, node: yaml.Node, path: PathKey, message: str) -> SpecError:
        line, col = _pos(node)
        if _secret(path):  # a key below a secret may be the secret itself ({S3cret!}: a mapping)
            path = path[: next(i for i, part in enumerate(path) if part in SECRET_KEYS) + 1]
        return SpecError(self.loc.file, line, col, _dotted(path) or "(lab)", message)

    def scalar(self, node: yaml.Node, path: PathKey) -> Any:
        try:
            return self.loader.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            problem = exc.problem or "cannot read this value"
            raise self.fail(node, path, _QUOTED_NAME_RE.sub("", problem) if _secret(path) else problem) from None
        except (yaml.YAMLError, ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError):
            # PyYAML's own constructors fail on odd text with IndexError (!!int '') or AttributeError
            # (!!timestamp x) as well as ValueError; the tag is one PyYAML knows (int, timestamp), never the user's
            tag = str(node.tag).rsplit(":", 1)[-1]
            raise self.fail(node, path, f"cannot read this value as {tag!r}") from None

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        loc = self.loc
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(node, path, f"more than {MAX_VALUES} values (aliases expanding without end?)")
        loc.value_marks.setdefault(path, _pos(node))
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return self.scalar(node, path)
        if len(path) >= MAX_DEPTH:
            raise self.fail(node, path[:1], f"nested too deeply (a lab file nests at most {MAX_DEPTH} levels)")
        if id(node) in self.active:
            raise self.fail(node, path, "an alias that contains itself")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, path, "a key must be a plain name")
                if key_node.tag == _MERGE:
                    raise self.fail(key_node, path, "merge keys ('<<') are not supported; write the keys out")
                key = str(self.scalar(key_node, path))
                if key in out:
                    first = loc.key_marks[(*path, key)][0]
                    raise self.fail(key_node, (*path, key), f"duplicate key (first set on line {first})")
                loc.key_marks[(*path, key)] = _pos(key_node)
                out[key] = self.build(value_node, (*path, key))
            return out
        finally:
            self.active.discard(id(node))


def _dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


dotted = _dotted
