"""Screen reading on synthetic frames: OCR fuzz, needles, change/still with a blinking cursor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from labctl.console.screen import (
    Ocr,
    canon,
    compare,
    find_text,
    fuzzy_regex,
    highlighted_rows,
    load_needle,
    match_needle,
)

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


def font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT_PATH, 16)
    except OSError:
        return ImageFont.load_default()


def screen(lines: dict[int, str], size: tuple[int, int] = (800, 480), fg: tuple[int, int, int] = (200, 200, 200),
           bg: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    for y, text in lines.items():
        d.text((40, y), text, fill=fg, font=font())
    return np.array(img)


# -- fuzzy text (pure) -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("pattern", "ocr"), [
    (r"SHIFT\+O: Edit boot options", "<SHIFT+0: Edit boot options>"),
    ("Select a Disk to Install or Upgrade", "Se1ect a Disk  to lnstall or Upgrade"),
    (r"mpx\.vmhba32", "(mpx.vmhba32:C0:T0:L0)"),
    (r"Automatic boot in \d seconds", "Automatic boot in 5 seconds..."),
    ("Passwords match", "Passwords  match."),
    ("US Default", "US Defau1t"),
])
def test_fuzzy_matches(pattern: str, ocr: str) -> None:
    assert find_text(pattern, ocr)


@pytest.mark.parametrize(("pattern", "ocr"), [
    ("Passwords match", "Passwords do not match."),
    ("Installation Complete", "Installing ESXi 6.7.0"),
    (r"ESXi Found", "VMFS Found"),
])
def test_fuzzy_does_not_overmatch(pattern: str, ocr: str) -> None:
    assert not find_text(pattern, ocr)


def test_fuzzy_regex_keeps_structure() -> None:
    assert fuzzy_regex(r"(?P<a>ESXi Found)|Confirm Disk").pattern == "(?P<a>esxlfovnd)|conflrmdlsk"
    assert fuzzy_regex(r"[0-9]+ seconds?").search(canon("in 10 seconds"))
    assert canon("O0 Il1|") == "oolll" + "l"


# -- OCR (tesseract) -------------------------------------------------------------------------------------
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")


@needs_tesseract
def test_ocr_reads_console_text_and_caches_bands() -> None:
    frame = screen({40: "Loading ESXi installer", 80: "<ENTER: Boot>  <SHIFT+O: Edit boot options>",
                    120: "Automatic boot in 5 seconds..."})
    ocr = Ocr()
    text = ocr.read(frame)
    assert find_text(r"SHIFT\+O: Edit boot options", text), text
    assert find_text("Loading ESXi installer", text), text
    calls = ocr.calls
    frame2 = screen({40: "Loading ESXi installer", 80: "<ENTER: Boot>  <SHIFT+O: Edit boot options>",
                     120: "Automatic boot in 4 seconds..."})
    text2 = ocr.read(frame2)
    assert ocr.calls == calls + 1 and find_text(r"boot in 4 seconds", text2), text2
    ocr.read(frame2)
    assert ocr.calls == calls + 1  # nothing new: no tesseract at all


@needs_tesseract
def test_ocr_reads_inverted_highlight_and_region() -> None:
    img = Image.new("RGB", (800, 300), (0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rectangle((30, 60, 700, 220), fill=(170, 170, 170))
    d.text((50, 80), "ATA VMware Virtual SATA (t10.ATA)   10.00 GiB", fill=(0, 0, 0), font=font())
    d.rectangle((40, 100, 690, 120), fill=(0, 0, 0))
    d.text((50, 102), "SanDisk Cruzer Blade (mpx.vmhba32:C0:T0:L0)  16.00 GiB", fill=(255, 255, 0), font=font())
    d.text((50, 124), "Local: (none)", fill=(0, 0, 0), font=font())
    frame = np.array(img)
    bars = highlighted_rows(frame)
    assert len(bars) == 1 and abs(bars[0][1] - 100) <= 1, bars
    text = Ocr().read(frame, bars[0])
    assert find_text(r"mpx\.vmhba32", text) and not find_text("VMware Virtual", text), text


# -- change / still --------------------------------------------------------------------------------------
def test_blinking_cursor_is_not_a_change() -> None:
    a = screen({40: "Root password: "})
    b = a.copy()
    b[57:59, 200:208] = 255  # an underline cursor toggled on
    ch = compare(a, b)
    assert ch.pixels == 16 and ch.blink and not ch.significant
    c = screen({40: "Root password: *"})
    assert compare(a, c).significant  # a typed character is
    d = screen({40: "Automatic boot in 4 seconds"})
    e = screen({40: "Automatic boot in 3 seconds"})
    assert compare(d, e).significant  # a countdown digit is (two colours change)
    assert not compare(a, a).pixels


# -- needles ---------------------------------------------------------------------------------------------
def _needle(tmp: Path, frame: np.ndarray, areas: list[dict[str, object]]) -> Path:
    Image.fromarray(frame).save(tmp / "n.png")
    (tmp / "n.json").write_text(json.dumps({"area": areas, "tags": ["n"]}))
    return tmp / "n.json"


def test_needle_found_shifted_and_excluded_area_ignored(tmp_path: Path) -> None:
    base = screen({100: "Welcome to the VMware ESXi 6.7.0 Installation", 140: "clock 12:00"})
    needle = load_needle(_needle(tmp_path, base, [
        {"xpos": 30, "ypos": 90, "width": 500, "height": 70, "type": "match", "match": 95},
        {"xpos": 30, "ypos": 135, "width": 200, "height": 25, "type": "exclude"},
    ]))
    hit, _ = match_needle(base, needle)
    assert hit and hit.offset == (0, 0)
    moved = np.roll(np.roll(screen({100: "Welcome to the VMware ESXi 6.7.0 Installation", 140: "clock 12:01"}),
                            23, axis=0), -17, axis=1)
    hit, _ = match_needle(moved, needle)
    assert hit and hit.offset == (-17, 23), hit
    other = screen({100: "End User License Agreement (EULA)"})
    hit, score = match_needle(other, needle)
    assert hit is None and score < 95
    far = np.roll(base, 120, axis=0)  # beyond the 50 px margin
    assert match_needle(far, needle)[0] is None


def test_needle_json_errors(tmp_path: Path) -> None:
    from labctl.errors import InputError

    (tmp_path / "bad.json").write_text('{"area": [{"xpos": 1}]}')
    with pytest.raises(InputError, match="area\\[0\\]"):
        load_needle(tmp_path / "bad.json")


# -- properties ------------------------------------------------------------------------------------------
printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)


@settings(max_examples=300)
@given(printable, printable, printable)
def test_escaped_text_always_finds_itself_fuzzily(before: str, s: str, after: str) -> None:
    """Any literal text (escaped as a regex) is found in a screen holding it, also after the OCR
    confusions and spacing changes the fuzzy matcher is built for."""
    import re

    screen_text = before + s + after
    assert find_text(re.escape(s), screen_text)
    garbled = s.replace("O", "0").replace("l", "1").replace(" ", "  ")
    if s.strip():
        assert find_text(re.escape(s), before + garbled + after)
