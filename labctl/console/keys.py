"""Packer's boot_command grammar -> X11 keysym events (pure, no I/O).

Accepted (names case-insensitive, as in Packer):
  literal text                      each character typed as its keysym (US layout)
  <enter> <return> <esc> <tab> <bs> <del> <insert> <f1>..<f12> <up> <down> <left> <right>
  <home> <end> <pageUp> <pageDown> <spacebar>
  <leftShift> <rightShift> <leftAlt> <rightAlt> <leftCtrl> <rightCtrl> <leftSuper> <rightSuper>
  <xOn> / <xOff>                    hold / release any key above (e.g. <leftAltOn><f1><leftAltOff>)
  <wait> <wait5> <wait10> <wait1m30s>  pauses (Packer compatibility; playbooks wait on evidence instead)
  <lt> <gt>                         a literal '<' or '>' when it would otherwise look like a key name

Shifted characters (``O``, ``:``, ``+`` ...) are sent as Shift down, the *shifted* keysym, Shift up:
measured here, QEMU's VNC server turns ``shift`` + keysym ``o`` into a plain ``o``, while Shift held
with keysym ``O`` arrives as ``O`` (reference/measured-here.md). Inside ``<leftShiftOn>..Off>`` letters
and the US number row are likewise sent as their shifted keysyms. Modifiers still held at the end of a
spec are released, so a typo can never leave Alt stuck down on a seat.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from labctl.errors import InputError

SHIFT_L = 0xFFE1

# Packer's names (lower-cased) -> keysym.
SPECIAL: dict[str, int] = {
    "enter": 0xFF0D, "return": 0xFF0D, "esc": 0xFF1B, "tab": 0xFF09, "bs": 0xFF08, "del": 0xFFFF,
    "insert": 0xFF63, "up": 0xFF52, "down": 0xFF54, "left": 0xFF51, "right": 0xFF53, "home": 0xFF50,
    "end": 0xFF57, "pageup": 0xFF55, "pagedown": 0xFF56, "spacebar": 0x20, "menu": 0xFF67,
    "leftshift": SHIFT_L, "rightshift": 0xFFE2, "leftctrl": 0xFFE3, "rightctrl": 0xFFE4,
    "leftalt": 0xFFE9, "rightalt": 0xFFEA, "leftsuper": 0xFFEB, "rightsuper": 0xFFEC,
    **{f"f{i}": 0xFFBE + i - 1 for i in range(1, 13)},
}
MODIFIERS = {SHIFT_L, 0xFFE2, 0xFFE3, 0xFFE4, 0xFFE9, 0xFFEA, 0xFFEB, 0xFFEC}
_NAMES = {v: k for k, v in reversed(SPECIAL.items())}

# US layout: unshifted key -> shifted character.
_SHIFT_PAIRS = dict(zip("`1234567890-=[]\\;',./", '~!@#$%^&*()_+{}|:"<>?', strict=True))
SHIFTED = frozenset(_SHIFT_PAIRS.values()) | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CONTROL_CHARS = {"\n": 0xFF0D, "\r": 0xFF0D, "\t": 0xFF09}

_TOKEN = re.compile(r"<([A-Za-z][A-Za-z0-9]*)>")
_WAIT = re.compile(r"wait(?:(\d+)|((?:\d+h)?(?:\d+m)?(?:\d+s)?))?$", re.IGNORECASE)


class KeySpecError(InputError):
    """A key spec that cannot be typed (unknown <name>, non-ASCII text)."""


@dataclass(frozen=True)
class KeyEvent:
    """One key going down or up. ``label`` is for logs: a key name or the character."""

    keysym: int
    down: bool
    label: str

    @property
    def is_press(self) -> bool:
        """A non-modifier key going down: what a rate limit counts."""
        return self.down and self.keysym not in MODIFIERS


@dataclass(frozen=True)
class Pause:
    """``<wait>``-style pause from a Packer boot_command (seconds)."""

    seconds: float


Action = KeyEvent | Pause


def _char_keysym(ch: str) -> int:
    if ch in _CONTROL_CHARS:
        return _CONTROL_CHARS[ch]
    code = ord(ch)
    if 0x20 <= code <= 0x7E:
        return code
    raise KeySpecError(f"cannot type {ch!r}: only printable ASCII, newline and tab are supported")


def _shifted(ch: str) -> str:
    if "a" <= ch <= "z":
        return ch.upper()
    return _SHIFT_PAIRS.get(ch, ch)


def _parse_wait(m: re.Match[str], token: str) -> float:
    if m.group(1):
        return float(m.group(1))
    dur = m.group(2)
    if not dur:
        return 1.0
    total = 0.0
    for num, unit in re.findall(r"(\d+)([hms])", dur):
        total += int(num) * {"h": 3600, "m": 60, "s": 1}[unit]
    if total == 0 and dur:
        raise KeySpecError(f"<{token}>: not a duration (write <wait5>, <wait10s> or <wait1m30s>)")
    return total


MAX_PAUSE = 3600.0


def _pause(m: re.Match[str], token: str) -> float:
    seconds = float(m.group(1)) if m.group(1) else _parse_wait(m, token)
    if seconds > MAX_PAUSE:
        raise KeySpecError(f"<{token}>: a pause of at most 1 hour (<wait1h>); wait on the screen instead")
    return seconds


_UNCLOSED = re.compile(r"<([A-Za-z][A-Za-z0-9]*)(?![A-Za-z0-9>])")


_SPACED = re.compile(r"<\s*([A-Za-z][A-Za-z0-9]*)\s*>")


def _check_spaced(spec: str) -> None:
    """'< enter >' or '<f11 >' is a key written with spaces, not text to type at a boot loader."""
    for m in _SPACED.finditer(spec):
        if m.group(0) != f"<{m.group(1)}>" and _is_key_name(m.group(1)):
            raise KeySpecError(f"'{m.group(0)}' has spaces inside; did you mean <{m.group(1)}>? "
                               "(write <lt> for a literal '<')")


def _is_key_name(token: str) -> bool:
    name = token.lower()
    base = name[:-2] if name.endswith("on") else name[:-3] if name.endswith("off") else name
    return name in SPECIAL or base in SPECIAL or name in ("lt", "gt") or bool(_WAIT.match(name))


def _check_unclosed(text: str) -> None:
    """'<enter' or '<leftShiftOn' without '>' is a typo, not text to type at a boot loader."""
    for m in _UNCLOSED.finditer(text):
        if _is_key_name(m.group(1)):
            raise KeySpecError(f"'<{m.group(1)}' has no closing '>'; write <{m.group(1)}> for the key "
                               "or <lt> for a literal '<'")


def parse(spec: str) -> list[Action]:
    """Parse a Packer boot_command string into key events and pauses."""
    out: list[Action] = []
    held: list[tuple[int, str]] = []

    def shift_held() -> bool:
        return any(k in (SHIFT_L, 0xFFE2) for k, _ in held)

    def char(ch: str) -> None:
        keysym = _char_keysym(ch)
        label = ch if ch not in _CONTROL_CHARS else repr(ch)
        if shift_held() and ch not in _CONTROL_CHARS:
            ch = _shifted(ch)
            keysym = ord(ch)
            label = ch
        if ch in SHIFTED and not shift_held():
            out.extend([KeyEvent(SHIFT_L, True, "shift"), KeyEvent(keysym, True, label),
                        KeyEvent(keysym, False, label), KeyEvent(SHIFT_L, False, "shift")])
        else:
            out.extend([KeyEvent(keysym, True, label), KeyEvent(keysym, False, label)])

    pos = 0
    _check_spaced(spec)
    _check_unclosed(_TOKEN.sub("", spec))
    for m in _TOKEN.finditer(spec):
        for ch in spec[pos:m.start()]:
            char(ch)
        pos = m.end()
        token = m.group(1)
        name = token.lower()
        if name in ("lt", "gt"):
            char("<" if name == "lt" else ">")
            continue
        wait = _WAIT.match(token)
        if wait:
            out.append(Pause(_pause(wait, token)))
            continue
        hold = None
        if name.endswith("on") and name[:-2] in SPECIAL:
            hold, name = True, name[:-2]
        elif name.endswith("off") and name[:-3] in SPECIAL:
            hold, name = False, name[:-3]
        if name not in SPECIAL:
            close = difflib.get_close_matches(name, [*SPECIAL, "wait"], n=1)
            hint = f" (did you mean <{close[0]}>?)" if close else ""
            raise KeySpecError(f"unknown key <{token}>{hint}; write <lt> for a literal '<'")
        keysym = SPECIAL[name]
        if hold is True:
            if keysym not in [k for k, _ in held]:
                held.append((keysym, name))
            out.append(KeyEvent(keysym, True, name))
        elif hold is False:
            held = [(k, n) for k, n in held if k != keysym]
            out.append(KeyEvent(keysym, False, name))
        else:
            out.extend([KeyEvent(keysym, True, name), KeyEvent(keysym, False, name)])
    for ch in spec[pos:]:
        char(ch)
    for keysym, name in reversed(held):
        out.append(KeyEvent(keysym, False, name))
    return out


def text(text: str) -> list[KeyEvent]:
    """Literal text (no <names> interpreted): what ``type_string`` sends."""
    out: list[KeyEvent] = []
    for ch in text:
        for action in parse("<lt>" if ch == "<" else "<gt>" if ch == ">" else ch):
            assert isinstance(action, KeyEvent)
            out.append(action)
    return out


def describe(actions: list[Action]) -> str:
    """A readable rendering for logs: presses only, names in <>, text as text."""
    parts: list[str] = []
    for a in actions:
        if isinstance(a, Pause):
            parts.append(f"<wait {a.seconds:g}s>")
        elif a.is_press:
            parts.append(a.label if len(a.label) == 1 else f"<{a.label}>")
        elif a.keysym in MODIFIERS and a.label != "shift":  # "shift" = added for a shifted character
            parts.append(f"<{a.label}{'On' if a.down else 'Off'}>")
    return "".join(parts)


def press_count(actions: list[Action]) -> int:
    return sum(1 for a in actions if isinstance(a, KeyEvent) and a.is_press)


def keysym_name(keysym: int) -> str:
    return _NAMES.get(keysym, chr(keysym) if 0x20 <= keysym <= 0x7E else hex(keysym))
