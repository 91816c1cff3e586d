"""Reading the screen: OCR with fuzzy matching, needles, change and stillness.

Pure functions on frames (numpy RGB arrays) plus the ``Ocr`` engine. The waiting loops live in the
``Console`` facade, which combines these with the VNC frame source and the serial console.

OCR (tesseract 5, ``OMP_THREAD_LIMIT=1``: ~0.15 s per call instead of ~0.7 s) never sees a full frame
when it can be helped: the frame is cut into text-line bands (rows that differ from their own
background), each band is normalised to dark text on a light background (so highlighted, inverted rows
read too) and cached by its pixels; only bands not seen before go to tesseract, stacked in one image,
and its TSV output maps words back to bands. A countdown that changes one digit costs one small band.

Matching is fuzzy against what tesseract confuses on console fonts: O/0, l/1/I/i/|/[/], u/v/Y, case and
spacing —
both the OCR text and the literal parts of the regex are canonicalised the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labctl.errors import InputError

Frame = NDArray[np.uint8]
Region = tuple[int, int, int, int]  # x, y, width, height

# --- fuzzy text ------------------------------------------------------------------------------------
_CANON = str.maketrans({"0": "o", "O": "o", "1": "l", "I": "l", "i": "l", "|": "l", "!": "l", "L": "l",
                        "[": "l", "]": "l", "U": "v", "u": "v", "Y": "v"})
_QUANT = re.compile(r"[*+?]|\{\d*,?\d*\}")


def canon(text: str) -> str:
    """Canonical form for fuzzy comparison: confusables folded, whitespace dropped, lower case."""
    return re.sub(r"\s+", "", text.translate(_CANON)).lower()


def fuzzy_regex(pattern: str) -> re.Pattern[str]:
    """Rewrite a regex so it matches ``canon(text)``: literals canonicalised, whitespace dropped."""
    out: list[str] = []
    i, n = 0, len(pattern)

    def skip_quantifier(j: int) -> int:
        m = _QUANT.match(pattern, j)
        if m:
            j = m.end()
            if j < n and pattern[j] == "?":
                j += 1
        return j

    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            i += 2
            if e in "sb":  # whitespace and word boundaries do not exist in canonical text
                i = skip_quantifier(i) if e == "s" else i
            elif e == "d":
                out.append(r"[\dol]")
            elif e.isalnum():
                out.append("\\" + e)
            else:
                lit = canon(e)
                out.append(re.escape(lit) if lit else "")
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            body = pattern[i + 1:j].lower()
            neg = body.startswith("^")
            extra = ""
            if not neg and (re.search(r"0|1|l|i|o|\|", body) or re.search(r"\d-\d", body)):
                extra = "ol"
            out.append("[" + body + extra + "]")
            i = j + 1
        elif c == "(" and pattern.startswith("(?", i):
            m = re.match(r"\(\?(?:P<\w+>|[:=!]|<[=!]|[aiLmsux-]+\)|[aiLmsux-]+:)", pattern[i:])
            if m and m.group(0).endswith(")"):  # a global flag group like (?i): drop, we are case-blind
                i += len(m.group(0))
            elif m:
                out.append(m.group(0))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        elif c in ".()|*+?^${}":
            if c == "{" and not re.match(r"\{\d*,?\d*\}", pattern[i:]):
                out.append(re.escape("{"))
            else:
                out.append(c)
            i += 1
        elif c.isspace():
            i = skip_quantifier(i + 1)
        else:
            lit = canon(c)
            out.append(re.escape(lit) if lit else "")
            i += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class TextMatch:
    text: str  # what matched (raw OCR text for an exact match, canonical text for a fuzzy one)
    fuzzy: bool


def find_text(pattern: str, text: str) -> TextMatch | None:
    """Exact regex first (case-insensitive), then the fuzzy rewrite on canonical text."""
    try:
        m = re.search(pattern, text, re.IGNORECASE)
    except re.error as exc:
        raise InputError(f"bad regular expression {pattern!r}: {exc}") from None
    if m:
        return TextMatch(m.group(0), False)
    try:
        fm = fuzzy_regex(pattern).search(canon(text))
    except re.error:
        return None
    return TextMatch(fm.group(0), True) if fm else None


# --- frames ----------------------------------------------------------------------------------------
def gray(frame: Frame) -> NDArray[np.uint8]:
    if frame.ndim == 2:
        return frame
    f = frame.astype(np.uint16)
    out: NDArray[np.uint8] = ((f[..., 0] * 77 + f[..., 1] * 150 + f[..., 2] * 29) >> 8).astype(np.uint8)
    return out


def crop(frame: Frame, region: Region | None) -> Frame:
    if region is None:
        return frame
    x, y, w, h = region
    return frame[max(0, y):max(0, y + h), max(0, x):max(0, x + w)]


def frame_hash(frame: Frame) -> str:
    return hashlib.blake2b(np.ascontiguousarray(frame).tobytes(), digest_size=12).hexdigest()


def _row_modes(g: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The most common grey level of each row (its background)."""
    h = g.shape[0]
    idx = (np.arange(h, dtype=np.int64)[:, None] * 256 + g).ravel()
    counts = np.bincount(idx, minlength=h * 256).reshape(h, 256)
    modes: NDArray[np.uint8] = counts.argmax(axis=1).astype(np.uint8)
    return modes


def text_bands(g: NDArray[np.uint8], pad: int = 3, gap: int = 2, min_edges: int = 10) -> list[tuple[int, int]]:
    """Horizontal bands that hold text: (y0, y1) in the grey image, padded.

    A text row has many sharp left/right transitions (glyph strokes); a row of a dialog, a bar or the
    screen background has only the few at the box borders."""
    if g.size == 0:
        return []
    edges = (np.abs(np.diff(g.astype(np.int16), axis=1)) > 40).sum(axis=1)
    active = edges >= min_edges
    bands: list[tuple[int, int]] = []
    y = 0
    h = g.shape[0]
    while y < h:
        if not active[y]:
            y += 1
            continue
        y0 = y
        while y < h and (active[y] or (y + gap < h and active[y + 1:y + 1 + gap].any())):
            y += 1
        if y - y0 >= 4:  # thinner than 4 px: a rule line or noise, not text
            bands.append((max(0, y0 - pad), min(h, y + pad)))
    return bands


def _local_background(b: NDArray[np.uint8], window: int = 25) -> NDArray[np.int16]:
    """Per column, the grey level that covers most of a (band height x ``window``) neighbourhood:
    the dialog's grey inside a dialog, the bar's colour inside a highlight bar, black on the screen."""
    q = (b // 16).astype(np.int16)
    levels = np.unique(q)
    counts = np.stack([(q == lv).sum(axis=0) for lv in levels]).astype(np.int32)  # L x W
    c = np.pad(counts, ((0, 0), (window // 2 + 1, window // 2)), mode="edge").cumsum(axis=1)
    boxed = c[:, window:] - c[:, :-window]
    best = levels[boxed.argmax(axis=0)]
    # representative grey of each chosen level: the median of the band pixels at that level
    rep = {int(lv): int(np.median(b[q == lv])) for lv in levels}
    return np.array([rep[int(v)] for v in best], dtype=np.int16)


def _normalise_band(b: NDArray[np.uint8], bars: Sequence[Region] = ()) -> NDArray[np.uint8]:
    """Dark text on white against the local background (inverted bars and dialogs read the same way),
    cropped to the columns that hold text. ``bars`` (band coordinates) are highlight bars: inside them
    the background is the bar's own colour. Box borders (full-height vertical lines) are dropped."""
    bg = np.repeat(_local_background(b)[None, :], b.shape[0], axis=0)
    for x, y, w, h in bars:
        y0, y1, x0, x1 = max(0, y), min(b.shape[0], y + h), max(0, x), min(b.shape[1], x + w)
        if y1 > y0 and x1 > x0:
            inside = b[y0:y1, x0:x1]
            bg[y0:y1, x0:x1] = int(np.bincount(inside.ravel(), minlength=256).argmax())
    ink = np.abs(b.astype(np.int16) - bg) > 40
    ink[:, ink.all(axis=0)] = False
    cols = np.flatnonzero(ink.any(axis=0))
    if cols.size == 0:
        return np.full((b.shape[0], 1), 255, dtype=np.uint8)
    x0, x1 = max(0, int(cols[0]) - 6), min(b.shape[1], int(cols[-1]) + 7)
    out: NDArray[np.uint8] = np.where(ink[:, x0:x1], 0, 255).astype(np.uint8)
    return out


@dataclass
class Ocr:
    """Tesseract with a per-band cache. ``calls`` and ``seconds`` are for benchmarks.

    A Console reads from its own thread and its OCR worker at once: each reading builds its text from its
    own results, so the cache (only ever added to, or replaced whole) is never needed for correctness."""

    scale: int = 2
    second_scale: int = 4  # a second reading, used only when the first did not match
    timeout: float = 30.0
    cache: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    seconds: float = 0.0

    def read(self, frame: Frame, region: Region | None = None, second: bool = False) -> str:
        """OCR text of the frame (or region), one line per text line. ``second``: read at the other
        scale (tesseract's mistakes differ between scales; a wait tries it before giving up on a frame)."""
        import time

        g = gray(crop(frame, region))
        bands = text_bands(g)
        bars = highlighted_rows(crop(frame, region)) if bands else []
        keyed: list[tuple[str, NDArray[np.uint8]]] = []
        for y0, y1 in bands:
            b = _normalise_band(g[y0:y1], [(x, y - y0, w, h) for x, y, w, h in bars if y < y1 and y + h > y0])
            if b.shape[1] <= 1:
                continue
            tag = bytes(f"{b.shape}{self.second_scale if second else self.scale}", "ascii")
            keyed.append((hashlib.blake2b(b.tobytes() + tag, digest_size=12).hexdigest(), b))
        cache = self.cache
        found = {k: cache[k] for k, _ in keyed if k in cache}
        todo = list({k: b for k, b in keyed if k not in found}.items())  # identical lines: OCR once
        if todo:
            t = time.monotonic()
            found.update(self._recognise(todo, self.second_scale if second else self.scale))
            self.calls += 1
            self.seconds += time.monotonic() - t
        cache.update(found)
        if len(cache) > 5000:
            self.cache = dict(found)
        return "\n".join(found.get(k, "") for k, _ in keyed)

    def _recognise(self, todo: list[tuple[str, NDArray[np.uint8]]], scale: int) -> dict[str, str]:
        """Each band's text, by key (nothing for any when tesseract ran out of time)."""
        from PIL import Image

        gap = 12
        width = max(b.shape[1] for _, b in todo) + 2 * gap
        height = sum(b.shape[0] + gap for _, b in todo) + gap
        canvas = np.full((height, width), 255, dtype=np.uint8)
        spans: list[tuple[str, int, int]] = []
        y = gap
        for k, b in todo:
            canvas[y:y + b.shape[0], gap:gap + b.shape[1]] = b
            spans.append((k, y, y + b.shape[0]))
            y += b.shape[0] + gap
        img = Image.fromarray(canvas)
        if scale != 1:
            img = img.resize((img.width * scale, img.height * scale), Image.Resampling.LANCZOS)
        import io

        buf = io.BytesIO()
        img.save(buf, "PNG", compress_level=1)
        env = dict(os.environ, OMP_THREAD_LIMIT="1")
        try:
            proc = subprocess.run(
                ["tesseract", "stdin", "stdout", "--psm", "6", "-c", "load_system_dawg=0",
                 "-c", "load_freq_dawg=0", "tsv"],
                input=buf.getvalue(), capture_output=True, timeout=self.timeout, env=env, check=False)
        except FileNotFoundError:
            raise InputError("tesseract is not installed (apt-get install tesseract-ocr)") from None
        except subprocess.TimeoutExpired:
            return {}
        # words in tesseract's reading order, grouped into its lines, assigned to bands by position
        lines: dict[str, dict[tuple[str, str, str], list[str]]] = {k: {} for k, _, _ in spans}
        for line in proc.stdout.decode("utf-8", "replace").splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
                continue
            top, hgt = int(cols[7]), int(cols[9])
            mid = (top + hgt / 2) / scale
            for k, y0, y1 in spans:
                if y0 - gap / 2 <= mid < y1 + gap / 2:
                    lines[k].setdefault((cols[2], cols[3], cols[4]), []).append(cols[11])
                    break
        return {k: "\n".join(" ".join(ws) for ws in lines[k].values()) for k, _, _ in spans}


# --- change and stillness ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    pixels: int
    box: Region | None  # x, y, w, h of the changed pixels
    blink: bool  # small and solid (a cursor toggling): not a change of what the screen says

    @property
    def significant(self) -> bool:
        return self.pixels > 0 and not self.blink


def compare(a: Frame, b: Frame, tolerance: int = 32, cell: tuple[int, int] = (16, 24)) -> Change:
    """What differs between two frames. A change no bigger than one character cell whose old pixels
    are one colour and new pixels one colour (a cursor or a blinking block) is a blink."""
    if a.shape != b.shape:
        h, w = b.shape[:2]
        return Change(h * w, (0, 0, w, h), False)
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mask = (d.max(axis=2) if d.ndim == 3 else d) > tolerance
    count = int(mask.sum())
    if not count:
        return Change(0, None, False)
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    box = (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    blink = False
    if box[2] <= cell[0] and box[3] <= cell[1]:
        old = a[mask].reshape(count, -1)
        new = b[mask].reshape(count, -1)
        blink = bool((old == old[0]).all() and (new == new[0]).all())
    return Change(count, box, blink)


# --- needles -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Area:
    x: int
    y: int
    w: int
    h: int
    type: str = "match"
    match: float = 96.0
    margin: int = 50


@dataclass(frozen=True)
class Needle:
    name: str
    image: NDArray[np.uint8]  # grey
    areas: tuple[Area, ...]

    @property
    def matches(self) -> list[Area]:
        return [a for a in self.areas if a.type == "match"]

    @property
    def excludes(self) -> list[Area]:
        return [a for a in self.areas if a.type == "exclude"]


def load_needle(path_json: Path) -> Needle:
    """openQA-style needle: NAME.json ``{"area": [{xpos, ypos, width, height, type, match}]}`` + NAME.png."""
    from PIL import Image

    try:
        data: Any = json.loads(path_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path_json}: no such needle") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path_json}:{exc.lineno}:{exc.colno}: {exc.msg}") from None
    raw_areas = data.get("area") if isinstance(data, dict) else None
    if not isinstance(raw_areas, list) or not raw_areas:
        raise InputError(f"{path_json}: a needle needs a non-empty 'area' list")
    areas = []
    for i, a in enumerate(raw_areas):
        try:
            areas.append(Area(int(a["xpos"]), int(a["ypos"]), int(a["width"]), int(a["height"]),
                              str(a.get("type", "match")), float(a.get("match", 96)), int(a.get("margin", 50))))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path_json}: area[{i}] needs integer xpos, ypos, width, height ({exc})") from None
        if areas[-1].type not in ("match", "exclude", "ocr"):
            raise InputError(f"{path_json}: area[{i}].type must be match, exclude or ocr")
    png = path_json.with_suffix(".png")
    if not png.exists():
        raise InputError(f"{png}: the needle's image is missing")
    image = gray(np.array(Image.open(png).convert("RGB"), dtype=np.uint8))
    needle = Needle(path_json.stem, image, tuple(areas))
    if not needle.matches:
        raise InputError(f"{path_json}: a needle needs at least one area of type 'match'")
    return needle


def _ncc_map(search: NDArray[np.float64], tmpl: NDArray[np.float64]) -> NDArray[np.float64]:
    """Normalised cross-correlation of ``tmpl`` at every valid offset in ``search`` (FFT + integral images)."""
    h, w = tmpl.shape
    sh, sw = search.shape
    t = tmpl - tmpl.mean()
    tnorm = float(np.sqrt((t * t).sum()))
    fshape = (sh + h, sw + w)
    corr = np.fft.irfft2(np.fft.rfft2(search, fshape) * np.conj(np.fft.rfft2(t, fshape)), fshape)
    num = corr[: sh - h + 1, : sw - w + 1]
    n = h * w
    ii = np.pad(search, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    ii2 = np.pad(search * search, ((1, 0), (1, 0))).cumsum(0).cumsum(1)

    def window(a: NDArray[np.float64]) -> NDArray[np.float64]:
        return a[h:, w:] - a[:-h, w:] - a[h:, :-w] + a[:-h, :-w]

    s1, s2 = window(ii), window(ii2)
    var = np.maximum(s2 - s1 * s1 / n, 0.0)
    denom = np.sqrt(var) * tnorm
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 1e-6, num / denom, 0.0)
    return np.asarray(out)


def similarity(a: NDArray[np.uint8], b: NDArray[np.uint8], mask: NDArray[np.bool_] | None = None) -> float:
    """0..1: normalised cross-correlation over the mask; for flat areas 1 - mean absolute difference."""
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    if mask is not None:
        x, y = x[mask], y[mask]
    if x.size == 0:
        return 1.0
    xs, ys = x - x.mean(), y - y.mean()
    nx, ny = float(np.sqrt((xs * xs).sum())), float(np.sqrt((ys * ys).sum()))
    flat_x, flat_y = nx < 1e-3 * x.size, ny < 1e-3 * y.size
    if flat_x and flat_y:
        return 1.0 - float(np.abs(x - y).mean()) / 255.0
    if flat_x or flat_y:  # text against an empty area
        return 0.0
    return max(0.0, float((xs * ys).sum() / (nx * ny)))


@dataclass(frozen=True)
class NeedleHit:
    name: str
    similarity: float  # lowest over the match areas, 0..100
    offset: tuple[int, int]


def match_needle(frame: Frame, needle: Needle) -> tuple[NeedleHit | None, float]:
    """All match areas must match within their margins; each prefers the hit nearest its recorded
    position. Returns the hit (or None) and the best similarity seen (0..100, for error messages)."""
    g = gray(frame)
    worst = 100.0
    first_offset: tuple[int, int] | None = None
    for area in needle.matches:
        tmpl = needle.image[area.y:area.y + area.h, area.x:area.x + area.w]
        mask = np.ones(tmpl.shape, dtype=bool)
        for ex in needle.excludes:
            ey, ex_ = ex.y - area.y, ex.x - area.x
            mask[max(0, ey):max(0, ey + ex.h), max(0, ex_):max(0, ex_ + ex.w)] = False
        need = area.match / 100.0
        # fast path: the recorded position
        here = g[area.y:area.y + area.h, area.x:area.x + area.w]
        if here.shape == tmpl.shape and similarity(here, tmpl, mask) >= need:
            score, off = similarity(here, tmpl, mask), (0, 0)
        else:
            m = area.margin
            sx0, sy0 = max(0, area.x - m), max(0, area.y - m)
            sx1, sy1 = min(g.shape[1], area.x + area.w + m), min(g.shape[0], area.y + area.h + m)
            search = g[sy0:sy1, sx0:sx1].astype(np.float64)
            if search.shape[0] < tmpl.shape[0] or search.shape[1] < tmpl.shape[1]:
                return None, 0.0
            t = tmpl.astype(np.float64)
            t = np.where(mask, t, t[mask].mean() if mask.any() else 0)
            ncc = _ncc_map(search, t)
            # exact check of the best candidates, nearest to the recorded position first
            flat = np.argsort(ncc.ravel())[::-1][:8]
            cands = []
            for idx in flat:
                cy, cx = divmod(int(idx), ncc.shape[1])
                win = g[sy0 + cy:sy0 + cy + area.h, sx0 + cx:sx0 + cx + area.w]
                s = similarity(win, tmpl, mask)
                dx, dy = sx0 + cx - area.x, sy0 + cy - area.y
                cands.append((s, dx, dy))
            good = [c for c in cands if c[0] >= need]
            if good:
                score, dx, dy = min(good, key=lambda c: (c[1] ** 2 + c[2] ** 2, -c[0]))
            else:
                score, dx, dy = max(cands) if cands else (0.0, 0, 0)
            off = (dx, dy)
        worst = min(worst, score * 100)
        if score < need:
            return None, worst
        if first_offset is None:
            first_offset = off
    return NeedleHit(needle.name, worst, first_offset or (0, 0)), worst


def _uniform_runs(mask: NDArray[np.bool_], min_len: int, max_gap: int) -> list[tuple[int, int]]:
    """[start, end) runs of True in a 1-D mask, gaps up to ``max_gap`` bridged, at least ``min_len`` long."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[tuple[int, int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= max_gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [(a, b) for a, b in merged if b - a >= min_len]


def highlighted_rows(frame: Frame, region: Region | None = None, min_width: int = 64,
                     line: tuple[int, int] = (10, 32)) -> list[Region]:
    """Bars one text line tall drawn on another background: the highlight of a list.

    Found from their edges: a horizontal edge where, over at least ``min_width`` columns, one uniform
    colour above turns into another uniform colour below, and a matching edge back to the first colour
    ``line`` pixels further down over the same columns (a rectangle: both edges equally wide). Works
    whatever the colours are (inverted, a coloured bar in a grey dialog, a grey bar on black), and
    ignores text, tall dialogs and rule lines.
    Returns (x, y, w, h) in frame coordinates, widest first."""
    ox, oy = (region[0], region[1]) if region else (0, 0)
    q = (gray(crop(frame, region)) // 24).astype(np.int16)
    if q.shape[0] < 3:
        return []
    edges: list[tuple[int, int, int, int, int]] = []  # y, x0, x1, colour above, colour below
    for y in range(1, q.shape[0]):
        a, b = q[y - 1], q[y]
        same_a = np.concatenate(([True], a[1:] == a[:-1]))
        same_b = np.concatenate(([True], b[1:] == b[:-1]))
        mask = (a != b) & same_a & same_b
        if mask.sum() < min_width:
            continue
        for x0, x1 in _uniform_runs(mask, min_width, 16):
            seg_a, seg_b = a[x0:x1], b[x0:x1]
            ca, cb = int(np.bincount(seg_a).argmax()), int(np.bincount(seg_b).argmax())
            if ca != cb:
                edges.append((y, x0, x1, ca, cb))
    bars: list[Region] = []
    for y0, x0, x1, ca, cb in edges:
        for y1, u0, u1, da, db in edges:
            if not (line[0] <= y1 - y0 <= line[1]) or da != cb or db != ca:
                continue
            overlap = min(x1, u1) - max(x0, u0)
            # a bar is a rectangle: its top and bottom edges span the same columns
            if overlap > 0 and abs(x0 - u0) <= 8 and abs(x1 - u1) <= 8:
                bars.append((max(x0, u0) + ox, y0 + oy, overlap, y1 - y0))
                break
    bars.sort(key=lambda r: -r[2])
    # one bar per line: drop bars overlapping a wider one
    out: list[Region] = []
    for r in bars:
        if all(r[1] >= o[1] + o[3] or r[1] + r[3] <= o[1] for o in out):
            out.append(r)
    return out
