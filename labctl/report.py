"""The run folder: events.jsonl, a PNG at every screen change, screenshots, report.html.

Everything written here passes through ``scrub``: any secret string (the root password, the VNC
password) is replaced by ``*****`` in events, logs and the report. Frames are deduplicated (an
unchanged screen is never saved twice) and throttled (at most one every ``frame_interval`` seconds
unless forced), which is the openQA video idea without a video encoder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labctl.secrets import MASK


class RunFolder:
    def __init__(self, path: Path | str, secrets: Iterable[str] = (), frame_interval: float = 0.5) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "frames").mkdir(exist_ok=True)
        self._secrets: list[str] = []
        self.add_secrets(secrets)
        self.frame_interval = frame_interval
        self._lock = threading.Lock()
        self._last_hash: str | None = None
        self._last_frame_at = 0.0
        self._frame_count = 0
        self.last_frame_path: Path | None = None  # the newest saved screen (the step's thumbnail)
        self.started = time.time()
        self.events_path = self.path / "events.jsonl"

    # -- secrets ------------------------------------------------------------------------------------
    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Each secret and the forms messages show it in: regex-escaped (a wait's pattern), repr'd
        (an output excerpt), and both."""
        for s in secrets:
            if not s:
                continue
            for form in {s, re.escape(s), repr(s)[1:-1], repr(re.escape(s))[1:-1]}:
                if form not in self._secrets:
                    self._secrets.append(form)
        self._secrets.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, MASK)
        return text

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

    # -- events -------------------------------------------------------------------------------------
    def event(self, step: str, **fields: Any) -> dict[str, Any]:
        rec = {"step": step, "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), **fields}
        rec = dict(self._scrub_any(rec))
        with self._lock, self.events_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return rec

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        out = []
        for line in self.events_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

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
        _save_png(frame, path)
        return path

    def screenshot(self, frame: NDArray[np.uint8], name: str) -> Path:
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
        """Write report.html: one row per step with its result, duration, evidence and screenshot."""
        rows = []
        for ev in self.events():
            if "result" not in ev:
                continue
            shot = ev.get("screenshot")
            thumb = ""
            if shot:
                try:
                    rel = Path(str(shot)).relative_to(self.path)
                except ValueError:
                    rel = Path(Path(str(shot)).name)
                thumb = f'<a href="{html.escape(str(rel))}"><img src="{html.escape(str(rel))}" width="240"></a>'
            detail = {k: v for k, v in ev.items() if k not in ("step", "time", "result", "duration", "screenshot")}
            cls = "ok" if ev["result"] in ("ok", "skipped") else "fail"
            rows.append(
                f'<tr class="{cls}"><td>{html.escape(str(ev["step"]))}</td><td>{html.escape(str(ev["result"]))}</td>'
                f'<td>{float(ev.get("duration", 0)):.2f}s</td>'
                f"<td><code>{html.escape(json.dumps(detail, ensure_ascii=False))[:600]}</code></td>"
                f"<td>{thumb}</td></tr>")
        frames = sorted((self.path / "frames").glob("*.png"))
        strip = "".join(f'<a href="frames/{p.name}"><img src="frames/{p.name}" width="120"></a>' for p in frames[-60:])
        doc = f"""<!doctype html><meta charset="utf-8"><title>labctl run {html.escape(self.path.name)}</title>
<style>body{{font-family:sans-serif;margin:1em}}td{{vertical-align:top;padding:4px;border-bottom:1px solid #ddd}}
tr.fail{{background:#fdd}}tr.ok td:nth-child(2){{color:#070}}code{{font-size:85%;white-space:pre-wrap}}</style>
<h1>{html.escape(self.path.name)}: {html.escape(result)}</h1><p>{html.escape(self.scrub(message))}</p>
<p>started {dt.datetime.fromtimestamp(self.started, dt.UTC).isoformat(timespec="seconds")},
{time.time() - self.started:.1f} s, {len(frames)} screen changes saved</p>
<table><tr><th>step</th><th>result</th><th>time</th><th>evidence</th><th>screen</th></tr>{"".join(rows)}</table>
<h2>Screen changes (last 60)</h2><div>{strip}</div>
"""
        out = self.path / "report.html"
        out.write_text(self.scrub(doc), encoding="utf-8")
        return out


def _save_png(frame: NDArray[np.uint8], path: Path) -> None:
    from PIL import Image

    Image.fromarray(frame).save(path, compress_level=1)
