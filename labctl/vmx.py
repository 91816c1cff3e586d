""".vmx files: a reader/writer that keeps a user's edits, and rendering from the lab.

A .vmx is ``key = "value"`` lines; keys are case-insensitive and values always quoted. ``VmxFile``
keeps every line it did not change byte for byte (comments, order, spacing, unknown keys), so a
trainer's hand edits survive a re-render. Rendering fills ``vmx_templates/esxi-usb.vmx.j2``.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from labctl.errors import InputError, RunFailed
from labctl.private import vnc_password, write_private
from labctl.resources import data_path

if TYPE_CHECKING:
    from labctl.spec import Lab, Seat

_LINE_RE = re.compile(r'^(?P<lead>\s*)(?P<key>[^=#\s][^=]*?)(?P<sep>\s*=\s*)(?P<value>.*?)(?P<trail>\s*)$')
TEMPLATE_DIR = data_path("vmx_templates")
VNC_PORTS = range(5901, 6000)


_ESCAPE_RE = re.compile(r"\|([0-9A-Fa-f]{2})")


MAX_VMX_BYTES = 1 << 20
_ENCODING_RE = re.compile(rb'^\s*\.encoding\s*=\s*"([^"]*)"', re.MULTILINE | re.IGNORECASE)


def read_vmx_text(path: Path) -> str:
    """The text of an existing .vmx (see :meth:`VmxFile.load`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path} is a symbolic link; labctl reads and writes the .vmx itself (remove the "
                             "link, or give the real file)") from None
        raise InputError(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: not a regular file")
        raw = f.read(MAX_VMX_BYTES + 1)
    if len(raw) > MAX_VMX_BYTES:
        raise InputError(f"{path}: more than {MAX_VMX_BYTES // 1024} KiB, not a .vmx")
    m = _ENCODING_RE.search(raw)
    name = m.group(1).decode("ascii", "replace") if m else "UTF-8"
    try:
        codec = codecs.lookup(name)
    except LookupError:
        raise InputError(f"{path}: .encoding = {name!r} is not an encoding labctl knows") from None
    if not getattr(codec, "_is_text_encoding", True):  # rot13, base64, zlib: codecs that do not make text
        _not_text(path, name)
    try:
        return raw.decode(codec.name).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid {name} text (the file's .encoding)") from None
    except UnicodeError:  # the 'undefined' codec refuses everything
        _not_text(path, name)


def _not_text(path: Path, name: str) -> NoReturn:
    raise InputError(f"{path}: .encoding = {name!r} is not a text encoding (a .vmx names one like UTF-8 or "
                     "windows-1252)")


def check_vmx_target(path: Path) -> None:
    """A .vmx path render may write: new, or a regular file it can read (not a link, not a folder)."""
    if os.path.lexists(path) or os.path.islink(path):
        read_vmx_text(path)


def _unquote(raw: str) -> str:
    """A value as written in the file -> its text (quotes off, VMware's |XX escapes decoded)."""
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    return _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), raw)


def quote(value: str) -> str:
    """A .vmx value: always quoted; quotes, '|' and control characters as VMware's |XX escapes."""
    return '"' + "".join(f"|{ord(c):02X}" if c in '"|' or ord(c) < 0x20 or c == "\x7f" else c for c in value) + '"'


@dataclass
class _Entry:
    raw: str
    key: str | None = None
    value: str | None = None


class VmxFile:
    """An ordered, case-insensitive, round-tripping view of a .vmx file."""

    def __init__(self, entries: list[_Entry] | None = None, newline: str = "\n") -> None:
        self._entries: list[_Entry] = entries or []
        self._newline = newline

    @classmethod
    def parse(cls, text: str) -> VmxFile:
        newline = "\r\n" if "\r\n" in text else "\n"
        lines = text.split(newline)
        if lines and lines[-1] == "":
            lines.pop()
        entries = []
        for line in lines:
            m = _LINE_RE.match(line)
            if m and not line.lstrip().startswith("#"):
                entries.append(_Entry(line, m.group("key"), _unquote(m.group("value"))))
            else:
                entries.append(_Entry(line))
        return cls(entries, newline)

    @classmethod
    def load(cls, path: Path) -> VmxFile:
        """Read a .vmx in the encoding its own ``.encoding`` key names (Workstation also writes
        windows-1252 and others; UTF-8 when the key is absent). InputError (one line) when it is not a
        readable .vmx: a link or not a regular file, too large, or text its encoding cannot decode."""
        return cls.parse(read_vmx_text(path))

    def _find(self, key: str) -> _Entry | None:
        lk = key.lower()
        for e in self._entries:
            if e.key is not None and e.key.lower() == lk:
                return e
        return None

    def get(self, key: str, default: str | None = None) -> str | None:
        e = self._find(key)
        return e.value if e is not None else default

    def __getitem__(self, key: str) -> str:
        e = self._find(key)
        if e is None or e.value is None:
            raise KeyError(key)
        return e.value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._find(key) is not None

    def set(self, key: str, value: str) -> None:
        """Change a value in place (keeping the key's spelling and position) or append it."""
        e = self._find(key)
        if e is None:
            self._entries.append(_Entry(f"{key} = {quote(value)}", key, value))
        elif e.value != value:
            assert e.key is not None
            e.value = value
            e.raw = f"{e.key} = {quote(value)}"

    def remove(self, key: str) -> bool:
        e = self._find(key)
        if e is None:
            return False
        self._entries.remove(e)
        return True

    def keys(self) -> list[str]:
        return [e.key for e in self._entries if e.key is not None]

    def items(self) -> list[tuple[str, str]]:
        return [(e.key, e.value or "") for e in self._entries if e.key is not None]

    def merge(self, other: VmxFile) -> None:
        """Take every key of ``other`` (rendered values win; the user's other keys stay)."""
        for key, value in other.items():
            self.set(key, value)

    def text(self) -> str:
        return "".join(e.raw + self._newline for e in self._entries)


# -- per-seat VNC credentials ----------------------------------------------------------------------


@dataclass(frozen=True)
class VncCredentials:
    port: int
    password: str

    def __repr__(self) -> str:
        return f"VncCredentials(port={self.port}, password=***)"


def vnc_credentials(seat: Seat, taken: set[int] | None = None) -> VncCredentials:
    """The seat's VNC port and password, created once and kept (0600) in its state folder.

    VNC passwords are at most 8 characters (the RFB DES scheme); a random one per seat keeps
    anyone on the classroom network from typing into the console.
    """
    path = seat.state_dir / "vnc.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return VncCredentials(int(data["port"]), str(data["password"]))
        except (ValueError, KeyError, TypeError, RecursionError, OSError):
            pass  # a damaged file is replaced below
    from labctl.backends.vncports import reserve_vnc_port  # the one VNC port allocator

    try:
        with reserve_vnc_port(exclude=set(taken or ()), ports=VNC_PORTS) as port:
            creds = VncCredentials(port, vnc_password())
            write_private(path, json.dumps({"port": creds.port, "password": creds.password}))
    except RunFailed as exc:
        raise InputError(str(exc)) from None
    return creds


# -- rendering -------------------------------------------------------------------------------------


def usb_autoconnect(lab: Lab, seat: Seat) -> str | None:
    """The usb.autoConnect.device0 value (KB 1648) for a host stick; None for an image stick."""
    usb = seat.stick.usb
    if usb is None:
        return None
    if usb.path is not None:
        return f"path:{usb.path} autoclean:1"
    assert usb.vendor_id is not None and usb.product_id is not None
    return f"vid:0x{usb.vendor_id:04x} pid:0x{usb.product_id:04x} autoclean:1"


def seat_vmx(seat: Seat) -> Path:
    """The .vmx VMware runs for a seat (``labctl render`` writes it too): ``vm/<seat>.vmx`` in its state
    folder, beside the nvram and vmware.log VMware keeps there."""
    return seat.state_dir / "vm" / f"{seat.name}.vmx"


SUN_PATH_MAX = 100  # bytes of a unix socket path that fit in sun_path on every host


def serial_pipe(lab: Lab, seat: Seat, windows: bool | None = None) -> str:
    """serial0's pipe, the one name render and the VMware backend use: a named pipe
    ``\\\\.\\pipe\\labctl-<lab>-<seat>`` on Windows (``windows``, default: this host), else a unix socket in
    the seat's state folder (or, when that path is too long for a socket, in a short private folder
    of ``$TMPDIR/labctl-UID`` that the backend creates)."""
    if (os.name == "nt") if windows is None else windows:
        return rf"\\.\pipe\labctl-{lab.name}-{seat.name}"
    state_dir = seat.state_dir.resolve()
    path = state_dir / "serial.pipe"
    if len(str(path)) > SUN_PATH_MAX:  # a unix socket's path must fit sun_path: a short folder in $TMPDIR
        from labctl.backends.tmpdirs import user_temp_root

        digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
        path = user_temp_root() / digest / "serial.pipe"
    return str(path)


def check_renderable(seat: Seat) -> None:
    """A .vmx passes a host stick through: InputError for a seat with an image stick."""
    if seat.stick.usb is None:
        raise InputError(
            f"seat {seat.name}: VMware passes a host stick through; set stick.usb "
            "(vendor_id/product_id or path) — image sticks are for the qemu backend"
        )


def render_vmx(lab: Lab, seat: Seat, vnc: VncCredentials) -> str:
    """The seat's .vmx text. Deterministic for a given lab, seat and VNC credentials."""
    import jinja2

    from labctl.spec import GUEST_OS

    check_renderable(seat)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = quote
    iso = lab.iso_path(seat)
    return env.get_template("esxi-usb.vmx.j2").render(
        lab=lab,
        seat=seat,
        vm=lab.vm,
        guest_os=GUEST_OS[lab.esxi],
        iso=str(iso) if iso else "",
        usb_autoconnect=usb_autoconnect(lab, seat),
        vnc_port=vnc.port,
        vnc_password=vnc.password,
        serial_pipe=serial_pipe(lab, seat),
        nvram=f"{seat.name}.nvram",
    )


def write_vmx(path: Path, rendered: str) -> None:
    """Write a rendered .vmx, keeping any keys a user added to an existing file at that path.

    The file holds the VNC password, so it is created 0600. An existing file is read in its own
    encoding and written as UTF-8 (the rendered ``.encoding`` wins); a symbolic link is refused, never
    merged with its target.
    """
    new = VmxFile.parse(rendered)
    if os.path.lexists(path):
        merged = VmxFile.load(path)
        merged.merge(new)
        text = merged.text()
    else:
        text = new.text()
    write_private(path, text)
