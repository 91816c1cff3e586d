"""The boot_command grammar: Packer compatibility, shifted keysyms, holds and waits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labctl.console import keys
from labctl.console.keys import SHIFT_L, KeyEvent, KeySpecError, Pause


def syms(spec: str) -> list[tuple[int, bool]]:
    return [(a.keysym, a.down) for a in keys.parse(spec) if isinstance(a, KeyEvent)]


def test_shift_o_is_shift_held_with_uppercase_keysym() -> None:
    expected = [(SHIFT_L, True), (ord("O"), True), (ord("O"), False), (SHIFT_L, False)]
    assert syms("<leftShiftOn>O<leftShiftOff>") == expected
    assert syms("O") == expected  # a bare uppercase letter gets Shift too
    # a lowercase letter inside a shift hold is sent as the shifted keysym (QEMU would drop the shift)
    assert syms("<leftShiftOn>o<leftShiftOff>") == expected


def test_special_names_case_insensitive() -> None:
    assert syms("<ENTER>") == syms("<enter>") == syms("<Return>") == [(0xFF0D, True), (0xFF0D, False)]
    assert syms("<pageUp>") == syms("<PAGEUP>")
    assert syms("<f11>") == [(0xFFC8, True), (0xFFC8, False)]
    assert syms("<f1>")[0] == (0xFFBE, True) and syms("<f12>")[0] == (0xFFC9, True)
    assert syms("<spacebar>") == syms(" ")


def test_alt_f1_combo() -> None:
    alt, f1 = 0xFFE9, 0xFFBE
    assert syms("<leftAltOn><f1><leftAltOff>") == [(alt, True), (f1, True), (f1, False), (alt, False)]


def test_held_modifier_released_at_end() -> None:
    assert syms("<leftCtrlOn>c") == [(0xFFE3, True), (ord("c"), True), (ord("c"), False), (0xFFE3, False)]


def test_waits() -> None:
    acts = keys.parse("<wait><wait5><wait10><wait1m30s><WAIT2s>")
    assert acts == [Pause(1.0), Pause(5.0), Pause(10.0), Pause(90.0), Pause(2.0)]


def test_packer_esxi_recipe() -> None:
    acts = keys.parse("<enter><wait><leftShiftOn>O<leftShiftOff><wait> ks=http://10.0.0.1/ks.cfg<enter>")
    assert keys.describe(acts) == "<enter><wait 1s><leftshiftOn>O<leftshiftOff><wait 1s> ks=http://10.0.0.1/ks.cfg<enter>"
    assert keys.press_count(acts) == 2 + 1 + len(" ks=http://10.0.0.1/ks.cfg")


def test_shifted_symbols() -> None:
    assert syms(":") == [(SHIFT_L, True), (ord(":"), True), (ord(":"), False), (SHIFT_L, False)]
    assert syms("=") == [(ord("="), True), (ord("="), False)]


def test_unknown_name_is_an_error_with_hint() -> None:
    with pytest.raises(KeySpecError, match=r"<entr>.*did you mean <enter>"):
        keys.parse("<entr>")


def test_literal_angle_brackets() -> None:
    assert keys.describe(keys.parse("a < b <lt>x<gt> <3")) == "a < b <x> <3"
    assert keys.describe(keys.text("<enter>")) == "<enter>"  # text() never interprets names
    assert keys.press_count(keys.text("<enter>")) == 7


def test_non_ascii_refused() -> None:
    with pytest.raises(KeySpecError):
        keys.parse("é")


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60))
def test_text_roundtrip(s: str) -> None:
    """Printable ASCII: one press per character, balanced events, no stuck keys."""
    evs = keys.text(s)
    presses = [e for e in evs if e.is_press]
    assert [chr(e.keysym) for e in presses] == list(s)
    down: set[int] = set()
    for e in evs:
        if e.down:
            assert e.keysym not in down
            down.add(e.keysym)
        else:
            assert e.keysym in down
            down.discard(e.keysym)
    assert not down
    # shift is down exactly around the shifted characters
    shift = False
    for e in evs:
        if e.keysym == SHIFT_L:
            shift = e.down
        elif e.is_press:
            assert shift == (chr(e.keysym) in keys.SHIFTED)


@given(st.lists(st.sampled_from(["<enter>", "<f11>", "<leftShiftOn>", "<leftShiftOff>", "<leftAltOn>",
                                 "<leftAltOff>", "a", "O", "<down>", "<wait>"]), max_size=30))
def test_any_spec_leaves_nothing_held(parts: list[str]) -> None:
    held: set[int] = set()
    for a in keys.parse("".join(parts)):
        if isinstance(a, KeyEvent):
            (held.add if a.down else held.discard)(a.keysym)
    assert not held


@pytest.mark.parametrize("spec", ["<leftShiftOn", "x <enter", "<F11 then", "<wait5", "<leftAltOff"])
def test_an_unclosed_key_name_is_an_error_not_text(spec: str) -> None:
    with pytest.raises(KeySpecError, match="no closing '>'"):
        keys.parse(spec)


def test_pauses_are_bounded() -> None:
    assert keys.parse("<wait1h>") == [keys.Pause(3600.0)]
    for spec in ("<wait3601>", "<wait99999999999999999999999>", "<wait2h>"):
        with pytest.raises(KeySpecError, match="at most 1 hour"):
            keys.parse(spec)


@pytest.mark.parametrize(("spec", "key"), [("< enter >", "enter"), ("<f11 >", "f11"), ("x< leftAltOn>", "leftAltOn"),
                                           ("< wait5 >", "wait5")])
def test_a_key_name_with_spaces_inside_is_an_error_not_text(spec: str, key: str) -> None:
    with pytest.raises(KeySpecError, match=f"did you mean <{key}>"):
        keys.parse(spec)


def test_angle_brackets_around_other_words_stay_text() -> None:
    assert keys.describe(keys.parse("a < b > c < hello >")) == "a < b > c < hello >"
