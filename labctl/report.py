"""The run folder and its reports: events.jsonl, a PNG at every screen change, report.html, run.webp, junit.xml.

A run folder (``runs/<stamp>-<seat>/``) holds:

``events.jsonl``
    one JSON object per line, in the order things happened; the schema is ``labctl/templates/events.schema.json``
    (``events_schema()``). Every event has ``step`` (a runner stage such as ``start VM`` or
    ``install playbook esxi-6.7-interactive``, a playbook step's name, ``playbook`` for a playbook's start and
    end, or ``result`` for the run's verdict), ``time`` (UTC, ISO 8601) and ``t`` (seconds since the run
    started). An event that ends a step has ``result`` (``ok`` | ``skipped`` | ``failed``) and ``duration``;
    runner stages also have ``phase`` (``start`` | ``end``). A wait's evidence is ``source`` (``screen``,
    ``serial``, ``needle``, ``change``, ``still``), ``matched`` (what it saw) and ``fuzzy``; ``screenshot`` is
    the screen as it was when that evidence matched (or when the step failed); a failure adds ``error`` and,
    from a wait, ``ocr`` (what OCR read) and ``where`` (the playbook file and line). Other keys are details of
    a stage (``accel``, ``pid``, ``iso`` ...) and are shown as they are.
``frames/NNNNN.png`` + ``frames.jsonl``
    the screen at each change (deduplicated; at most one every ``frame_interval`` s unless a wait's evidence
    forces one), and when each was taken (``{"frame": "frames/00001.png", "t": 1.234}``).
``report.html``
    the failing step first with its screenshot, what OCR and the serial console read, then a timeline of every
    step (times relative to the start, durations, results, evidence in words, thumbnails that open the full
    screenshot), the partition table the run proved (``stick-layout.txt``, ``layout-proof.json``), and the
    animation. Rendered from Jinja2 templates in ``labctl/templates/``.
``run.webp``
    an animation of the whole run (every saved frame, shown for as long as it was on screen, capped).
``junit.xml``
    one testcase per step (a CI server shows the run as a test suite).

Everything written here passes through the run's ``Secrets``: a secret (the root password, the VNC password)
becomes ``*****`` in events, logs, reports and file names. A classroom (several seats) adds ``index.html``
and one junit file with a testcase per seat (``write_classroom``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labctl.secrets import MASK, Secrets

log = logging.getLogger(__name__)

__all__ = ["MASK", "RunFolder", "events_schema", "render_run", "write_classroom"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
THUMB_WIDTH = 320
ANIMATION_WIDTH = 640
ANIMATION_MAX_FRAMES = 300
STRIP_MAX = 120
LAYOUT_PROOF = "layout-proof.json"  # written by the prove-layout playbook's step, when a run has one


class RunFolder:
    def __init__(self, path: Path | str, secrets: Iterable[str] = (), frame_interval: float = 0.5) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "frames").mkdir(exist_ok=True)
        self.secrets = Secrets(secrets)
        self.frame_interval = frame_interval
        self._lock = threading.Lock()
        self._last_hash: str | None = None
        self._last_frame_at = 0.0
        self._frame_count = 0
        self.last_frame_path: Path | None = None  # the newest saved screen (the step's thumbnail)
        self.started = time.time()
        self.events_path = self.path / "events.jsonl"
        self.frames_index = self.path / "frames.jsonl"

    # -- secrets ------------------------------------------------------------------------------------
    def add_secrets(self, secrets: Iterable[str]) -> None:
        self.secrets.add(secrets)

    def scrub(self, text: str) -> str:
        return self.secrets.scrub(text)

    def _scrub_any(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(str(k)): self._scrub_any(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub_any(v) for v in value]
        if isinstance(value, Path):
            return self.scrub(str(value))
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.scrub(str(value))

    def _t(self) -> float:
        return round(time.time() - self.started, 3)

    # -- events -------------------------------------------------------------------------------------
    def event(self, step: str, **fields: Any) -> dict[str, Any]:
        rec = {"step": step, "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "t": self._t(),
               **fields}
        rec = dict(self._scrub_any(rec))
        with self._lock, self.events_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return rec

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.path)

    # -- frames -------------------------------------------------------------------------------------
    def frame(self, frame: NDArray[np.uint8], force: bool = False) -> Path | None:
        """Save a frame if it differs from the last saved one (and the throttle allows)."""
        h = hashlib.blake2b(np.ascontiguousarray(frame).tobytes(), digest_size=12).hexdigest()
        now = time.monotonic()
        with self._lock:
            if h == self._last_hash or (not force and now - self._last_frame_at < self.frame_interval):
                return None
            self._last_hash, self._last_frame_at = h, now
            self._frame_count += 1
            path = self.path / "frames" / f"{self._frame_count:05d}.png"
            self.last_frame_path = path
            with self.frames_index.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"frame": f"frames/{path.name}", "t": self._t()}) + "\n")
        _save_png(frame, path)
        return path

    def screenshot(self, frame: NDArray[np.uint8], name: str) -> Path:
        """A named screenshot (a failure, a playbook's screenshot step); also a screen change of the run."""
        self.frame(frame, force=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", self.scrub(name)).strip("-") or "screenshot"
        path = self.path / f"{safe}.png"
        n = 1
        while path.exists():
            n += 1
            path = self.path / f"{safe}-{n}.png"
        _save_png(frame, path)
        return path

    def log_path(self, name: str) -> Path:
        return self.path / name

    # -- report -------------------------------------------------------------------------------------
    def finish(self, result: str, message: str = "") -> Path:
        """Write report.html, run.webp and junit.xml; returns report.html's path."""
        return render_run(self.path, result, self.scrub(message), scrub=self.scrub).html


def _save_png(frame: NDArray[np.uint8], path: Path) -> None:
    from PIL import Image

    Image.fromarray(frame).save(path, compress_level=1)


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """The run's events (a torn last line, from a run killed while writing, is left out)."""
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "step" in rec:
            out.append(rec)
    return out


def events_schema() -> dict[str, Any]:
    """The JSON Schema of one line of events.jsonl."""
    schema: dict[str, Any] = json.loads((TEMPLATES / "events.schema.json").read_text(encoding="utf-8"))
    return schema


# -- the run's story, as the templates show it ---------------------------------------------------------------


@dataclass
class Shot:
    """A screenshot: the full PNG and its thumbnail, both relative to the page that shows them."""

    full: str
    thumb: str


@dataclass
class StepRow:
    name: str
    kind: str  # stage (a runner step) | step (a playbook step)
    result: str  # ok | skipped | failed | running
    start: float  # seconds since the run started
    duration: float
    playbook: str = ""
    action: str = ""
    evidence: str = ""  # in words
    details: list[str] = field(default_factory=list)  # a stage's facts, in words
    error: str = ""
    ocr: str = ""
    where: str = ""
    cleanup: bool = False
    shot: Shot | None = None


@dataclass
class RunReport:
    """What report.html, junit.xml and a classroom's index.html show of one run."""

    name: str
    result: str
    message: str
    started: str  # UTC, ISO 8601
    seconds: float
    steps: list[StepRow]
    failed: StepRow | None
    failure_shot: Shot | None
    serial_tail: str
    last_screen_text: str
    layout_text: str
    layout_proof: Any
    frames: list[tuple[float, Shot]]
    frame_count: int
    animation: str | None


@dataclass
class Rendered:
    html: Path
    junit: Path
    animation: Path | None


_HIDDEN = {"step", "time", "t", "phase", "result", "duration", "screenshot", "start", "action", "source", "matched",
           "fuzzy", "error", "ocr", "where", "reason", "cleanup", "playbook", "file"}


def _short_path(value: str) -> str:
    """An absolute path as its last two parts (the folder it is in tells enough in a report)."""
    return "/".join(Path(value).parts[-2:]) if value.startswith("/") and len(Path(value).parts) > 3 else value


def brief(text: str) -> str:
    """A failure message without the parts the report shows on their own: what OCR read, the screenshot's path
    and the run folder."""
    text = re.sub(r";? ?screen read: '.*?'(?=; screenshot:|$)", "", text, flags=re.S)
    text = re.sub(r";? ?(?:last )?screenshot: \S+", "", text)
    text = re.sub(r"\s*run folder: \S+", "", text)
    return text.strip(" ;\n")


def _words(key: str, value: Any) -> str:
    label = key.replace("_", " ")
    if isinstance(value, str):
        return f"{label}: {_short_path(value)}"
    if isinstance(value, bool):
        return f"{label}: {'yes' if value else 'no'}"
    if isinstance(value, float):
        return f"{label}: {value:g}"
    if isinstance(value, list):
        return f"{label}: {', '.join(str(v) for v in value) or 'none'}"
    if isinstance(value, dict):
        return f"{label}: " + ", ".join(f"{k} {v}" for k, v in value.items())
    return f"{label}: {value}"


def _evidence_words(ev: dict[str, Any]) -> str:
    source, matched = ev.get("source"), str(ev.get("matched", ""))
    took = f" after {float(ev.get('duration', 0)):.1f} s"
    if source == "screen":
        return f"read “{matched}” on the screen (OCR{', fuzzy match' if ev.get('fuzzy') else ''}){took}"
    if source == "serial":
        return f"read “{matched}” on the serial console{took}"
    if source == "needle":
        return f"found needle {matched}{took}"
    if source == "change":
        return f"the screen changed ({matched}){took}"
    if source == "still":
        return f"the screen stayed {matched}{took}"
    if source == "screenshot":
        return "saved a screenshot"
    action = ev.get("action")
    if ev.get("result") == "skipped":
        return f"skipped: {ev.get('reason', '')}".rstrip(": ")
    return {"keys": "sent keys", "type": "typed text", "power": "power action", "eject": "ejected the CD",
            "select": "moved the highlight", "assert": "the screen check held", "run": "ran a command",
            "steps": "ran its steps"}.get(str(action), "")


class _Shots:
    """Thumbnails (made once, in thumbs/) for screenshots inside a run folder."""

    def __init__(self, run_dir: Path, prefix: str = "") -> None:
        self.run_dir, self.prefix = run_dir, prefix
        self.thumbs = run_dir / "thumbs"

    def get(self, path: str | Path | None) -> Shot | None:
        if not path:
            return None
        p = Path(str(path))
        if not p.is_absolute():
            p = self.run_dir / p
        try:
            rel = p.resolve().relative_to(self.run_dir.resolve())
        except ValueError:
            return None  # a screenshot outside the run folder is not the report's to show
        if not p.is_file():
            return None
        thumb = self.thumbs / (str(rel).replace("/", "_"))
        if not thumb.exists() or thumb.stat().st_mtime < p.stat().st_mtime:
            try:
                from PIL import Image

                self.thumbs.mkdir(exist_ok=True)
                with Image.open(p) as src:
                    im = src.convert("RGB")
                im.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4))
                im.save(thumb, format="PNG", optimize=False, compress_level=3)
            except OSError as exc:
                log.debug("thumbnail of %s: %s", p, exc)
                return None
        return Shot(full=self.prefix + rel.as_posix(), thumb=self.prefix + thumb.relative_to(self.run_dir).as_posix())


def _rel_time(ev: dict[str, Any], t0: dt.datetime | None) -> float:
    if isinstance(ev.get("t"), int | float):
        return float(ev["t"])
    try:
        when = dt.datetime.fromisoformat(str(ev["time"]))
    except (KeyError, ValueError):
        return 0.0
    return max(0.0, (when - t0).total_seconds()) if t0 else 0.0


def _frames(run_dir: Path) -> list[tuple[float, Path]]:
    """Saved frames with the time each was taken (frames.jsonl; a folder without it: file times)."""
    out: list[tuple[float, Path]] = []
    index = run_dir / "frames.jsonl"
    if index.exists():
        for line in index.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                out.append((float(rec["t"]), run_dir / str(rec["frame"])))
            except (ValueError, KeyError, TypeError):
                continue
    else:
        pngs = sorted((run_dir / "frames").glob("*.png"))
        if pngs:
            first = pngs[0].stat().st_mtime
            out = [(p.stat().st_mtime - first, p) for p in pngs]
    return [(t, p) for t, p in out if p.is_file()]


def build_report(run_dir: Path, result: str | None = None, message: str = "") -> RunReport:
    """The run's story from its folder alone (``labctl report`` can redo it after the run)."""
    events = read_events(run_dir)
    shots = _Shots(run_dir)
    t0: dt.datetime | None = None
    if events:
        try:
            t0 = dt.datetime.fromisoformat(str(events[0]["time"])) - dt.timedelta(seconds=float(events[0].get("t", 0)))
        except (KeyError, ValueError):
            t0 = None
    frames = _frames(run_dir)

    def frame_at(t: float) -> Path | None:
        best = None
        for ft, p in frames:
            if ft <= t + 0.05:
                best = p
        return best

    steps: list[StepRow] = []
    open_stages: dict[str, StepRow] = {}
    playbook = ""
    verdict: dict[str, Any] = {}
    for ev in events:
        name, t = str(ev.get("step")), _rel_time(ev, t0)
        if name == "result":
            verdict = ev
            continue
        if name == "playbook":
            playbook = str(ev.get("playbook", playbook)) if ev.get("action") == "start" else playbook
            continue
        phase = ev.get("phase")
        if phase == "start":
            row = StepRow(name=name, kind="stage", result="running", start=t, duration=0.0)
            open_stages[name] = row
            steps.append(row)
            continue
        if name in open_stages and phase is None and "result" not in ev:
            open_stages[name].details += [_words(k, v) for k, v in ev.items() if k not in _HIDDEN and v is not None]
            continue
        if name in open_stages and (phase == "end" or "action" not in ev):
            row = open_stages.pop(name) if phase == "end" else open_stages[name]
            row.result = str(ev.get("result", row.result))
            row.duration = float(ev.get("duration", t - row.start))
            row.error = row.error or str(ev.get("error", ""))
            row.shot = row.shot or shots.get(ev.get("screenshot"))
            continue
        if "result" not in ev:
            continue
        duration = float(ev.get("duration", 0.0))
        start = float(ev["start"]) - t0.timestamp() if t0 and isinstance(ev.get("start"), int | float) else t - duration
        row = StepRow(name=name, kind="step", result=str(ev["result"]), start=max(0.0, start), duration=duration,
                      playbook=playbook, action=str(ev.get("action", "")), evidence=_evidence_words(ev),
                      error=str(ev.get("error", "")), ocr=str(ev.get("ocr", "")), where=str(ev.get("where", "")),
                      cleanup=bool(ev.get("cleanup")))
        row.shot = shots.get(ev.get("screenshot"))
        if row.shot is None and row.result != "skipped":
            row.shot = shots.get(frame_at(t))  # no evidence frame (keys, typing): the screen as the step ended
        steps.append(row)
    for row in open_stages.values():  # a stage that never ended: the run was stopped or killed in it
        if row.result == "running":
            row.result = "interrupted" if verdict.get("interrupted") else "failed"
    if result is None:
        result = "passed" if verdict.get("ok") else ("interrupted" if verdict.get("interrupted") else "failed")
    failed = next((s for s in steps if s.result == "failed" and s.kind == "step" and not s.cleanup), None) \
        or next((s for s in steps if s.result == "failed"), None)
    failure_shot = None
    if failed is not None:
        failure_shot = failed.shot or shots.get(run_dir / "failure.png") or shots.get(frame_at(1e12))
        if failed.shot is None:
            failed.shot = failure_shot
    serial = ""
    serial_path = run_dir / "serial.log"
    if serial_path.exists():
        serial = serial_path.read_text(encoding="utf-8", errors="replace")[-4000:]
    last_text = failed.ocr if failed and failed.ocr else ""
    layout_text = ""
    if (run_dir / "stick-layout.txt").exists():
        layout_text = (run_dir / "stick-layout.txt").read_text(encoding="utf-8", errors="replace")
    proof: Any = None
    if (run_dir / LAYOUT_PROOF).exists():
        try:
            proof = json.loads((run_dir / LAYOUT_PROOF).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            proof = None
    seconds = float(verdict.get("seconds") or (steps[-1].start + steps[-1].duration if steps else 0.0))
    if len(frames) > STRIP_MAX:  # evenly sampled, first and last kept
        picks = sorted({round(i * (len(frames) - 1) / (STRIP_MAX - 1)) for i in range(STRIP_MAX)})
        strip_src = [frames[i] for i in picks]
    else:
        strip_src = frames
    strip = [(t, s) for t, p in strip_src if (s := shots.get(p)) is not None]
    return RunReport(
        name=run_dir.name, result=result, message=message, seconds=seconds, steps=steps, failed=failed,
        started=t0.isoformat(timespec="seconds") if t0 else "", failure_shot=failure_shot, serial_tail=serial,
        last_screen_text=last_text, layout_text=layout_text, layout_proof=proof, frames=strip,
        frame_count=len(frames), animation=None)


def proof_table(proof: Any) -> tuple[list[str], list[list[str]]] | None:
    """Any layout-proof.json as a table: a list of objects, or an object holding one (its first list of
    objects), becomes columns and rows; None when it has no table in it."""
    rows: Any = None
    if isinstance(proof, list):
        rows = proof
    elif isinstance(proof, dict):
        rows = next((v for v in proof.values() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)),
                    None)
    if not rows or not all(isinstance(r, dict) for r in rows):
        return None
    cols: list[str] = []
    for r in rows:
        cols += [str(k) for k in r if str(k) not in cols]
    return cols, [[_cell(r.get(c)) for c in cols] for r in rows]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def proof_facts(proof: Any) -> list[tuple[str, str]]:
    """The one-line fields of a layout-proof.json object (its verdict, media, size ...), in words."""
    if not isinstance(proof, dict):
        return []
    return [(str(k).replace("_", " "), _cell(v)) for k, v in proof.items()
            if v is not None and not isinstance(v, list | dict) and "\n" not in str(v)]


def proof_notes(proof: Any) -> list[tuple[str, list[str] | str]]:
    """The rest of a layout-proof.json object: lists of lines (a diff) and multi-line texts (a table as read)."""
    if not isinstance(proof, dict):
        return []
    out: list[tuple[str, list[str] | str]] = []
    for k, v in proof.items():
        label = str(k).replace("_", " ")
        if isinstance(v, list) and v and all(not isinstance(x, dict | list) for x in v):
            out.append((label, [_cell(x) for x in v]))
        elif isinstance(v, str) and "\n" in v:
            out.append((label, v))
    return out


def _env() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "xml", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["secs"] = _secs
    env.filters["clock"] = _clock
    env.filters["brief"] = brief
    env.filters["short_path"] = _short_path
    env.globals.update(proof_table=proof_table, proof_facts=proof_facts, proof_notes=proof_notes)
    return env


def _secs(value: float) -> str:
    return f"{value:.1f} s" if value < 100 else f"{value / 60:.1f} min"


def _clock(value: float) -> str:
    """Seconds since the start as +M:SS.s (the timeline's time column)."""
    m, s = divmod(max(0.0, value), 60)
    return f"+{int(m)}:{s:04.1f}"


def render_run(run_dir: Path, result: str | None = None, message: str = "",
               scrub: Any = None) -> Rendered:
    """Write report.html, junit.xml and run.webp for a run folder (again: they are rebuilt from the folder)."""
    run_dir = Path(run_dir)
    rep = build_report(run_dir, result, message)
    anim = write_animation(run_dir)
    rep.animation = anim.name if anim else None
    env = _env()

    def clean(text: str) -> str:
        return str(scrub(text)) if scrub is not None else text

    html_path = run_dir / "report.html"
    html_path.write_text(clean(env.get_template("report.html.j2").render(r=rep)), encoding="utf-8")
    junit = run_dir / "junit.xml"
    junit.write_text(clean(env.get_template("junit.xml.j2").render(r=rep, suite=rep.name)), encoding="utf-8")
    return Rendered(html=html_path, junit=junit, animation=anim)


def write_animation(run_dir: Path, out_name: str = "run.webp") -> Path | None:
    """An animated WebP of the run's frames, each shown for as long as it was the screen (0.1-2 s)."""
    frames = _frames(run_dir)
    if not frames:
        return None
    if len(frames) > ANIMATION_MAX_FRAMES:
        step = len(frames) / ANIMATION_MAX_FRAMES
        frames = [frames[int(i * step)] for i in range(ANIMATION_MAX_FRAMES)] + [frames[-1]]
    from concurrent.futures import ThreadPoolExecutor

    images = []
    durations = []
    # decoding and scaling the PNGs is most of the work, and Pillow lets go of the GIL for it
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        thumbs = list(pool.map(_thumbnail, [p for _, p in frames]))
    for i, ((t, _), im) in enumerate(zip(frames, thumbs, strict=True)):
        if im is None:
            continue
        images.append(im)
        nxt = frames[i + 1][0] if i + 1 < len(frames) else t + 2.0
        durations.append(int(min(2.0, max(0.1, nxt - t)) * 1000))
    if not images:
        return None
    size = images[-1].size  # the screen's final mode; frames of other modes are letterboxed into it
    images = [im if im.size == size else _letterbox(im, size) for im in images]
    out = run_dir / out_name
    images[0].save(out, format="WEBP", save_all=True, append_images=images[1:], duration=durations, loop=0,
                   quality=60, method=0)
    return out


def _thumbnail(path: Path) -> Any:
    """A frame for the animation: RGB, at most ANIMATION_WIDTH wide (None when it cannot be read).
    Shrunk with a box filter (twice as fast as bicubic, and text stays as legible)."""
    from PIL import Image

    try:
        with Image.open(path) as src:
            im = src.convert("RGB")
    except OSError:
        return None
    if im.width <= ANIMATION_WIDTH:
        return im
    size = (ANIMATION_WIDTH, round(im.height * ANIMATION_WIDTH / im.width))
    return im.resize(size, Image.Resampling.BOX, reducing_gap=2.0)


def _letterbox(im: Any, size: tuple[int, int]) -> Any:
    from PIL import Image

    scale = min(size[0] / im.width, size[1] / im.height)
    fitted = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
    canvas = Image.new("RGB", size)
    canvas.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return canvas


# -- a classroom: several seats' runs ------------------------------------------------------------------------


@dataclass
class SeatRun:
    """One seat of a classroom run, as index.html and the classroom junit show it."""

    index: int
    name: str
    ok: bool
    seconds: float
    message: str
    run_dir: Path | None
    step: str | None = None


@dataclass
class _SeatView:
    seat: SeatRun
    report: str | None
    shot: Shot | None
    steps: int


def write_classroom(out_dir: Path, lab: str, seats: Sequence[SeatRun], scrub: Any = None) -> tuple[Path, Path]:
    """index.html (every seat, its result, its failing step and screenshot, a link to its report) and
    junit.xml with one testcase per seat, in ``out_dir``. Returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    views = []
    for s in seats:
        report = shot = None
        n = 0
        if s.run_dir is not None and s.run_dir.is_dir():
            prefix = _relpath(s.run_dir, out_dir)
            if (s.run_dir / "report.html").exists():
                report = prefix + "report.html"
            rep = build_report(s.run_dir)
            n = len(rep.steps)
            picked = rep.failure_shot or next((r.shot for r in reversed(rep.steps) if r.shot), None)
            if picked is not None:
                shot = Shot(full=prefix + picked.full, thumb=prefix + picked.thumb)
        views.append(_SeatView(s, report, shot, n))
    env = _env()
    failed = [v for v in views if not v.seat.ok]
    ctx = {"lab": lab, "seats": views, "failed": failed,
           "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}

    def clean(text: str) -> str:
        return str(scrub(text)) if scrub is not None else text

    index = out_dir / "index.html"
    index.write_text(clean(env.get_template("index.html.j2").render(**ctx)), encoding="utf-8")
    junit = out_dir / "junit.xml"
    junit.write_text(clean(env.get_template("classroom-junit.xml.j2").render(**ctx)), encoding="utf-8")
    return index, junit


def _relpath(target: Path, start: Path) -> str:
    import os

    rel = os.path.relpath(target.resolve(), start.resolve()).replace(os.sep, "/")
    return "" if rel == "." else rel + "/"
