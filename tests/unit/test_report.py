"""Run reports from a real runner + playbook run on a scripted screen: events that follow their schema,
report.html with the failing step and its screenshot first, junit.xml with a testcase per step, the
animation, secrets masked, a classroom's index, and the pages checked in headless Chromium."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from labctl.console import Console, keys
from labctl.errors import RunFailed
from labctl.report import RunFolder, SeatRun, events_schema, proof_table, read_events, render_run, write_classroom
from labctl.runner import Context, UpOptions, UpStep, run_seat
from labctl.spec import Lab, load_lab

SECRET = "Sup3r-Secret!"

LAB = """\
name: rep
backend: qemu
iso: sim
stick: {image: "sticks/{seat}.img", size: 16G}
install: {root_password: {env: LAB_ROOT_PASSWORD}}
"""

PLAYBOOK = """\
name: scripted
steps:
  - name: welcome
    wait: {text: 'Welcome to the installer', timeout: 5}
  - name: continue
    keys: '<enter>'
  - name: EULA
    wait: {text: 'End User License Agreement', timeout: 5}
  - name: password
    type: {text: '{root_password}', secret: true}
  - name: accept
    keys: '<f11>'
  - name: disk list
    wait: {text: 'Select a Disk to Install', timeout: 1}
"""

SCREENS = ["Welcome to the installer", "End User License Agreement", "Scanning for devices"]


def picture(text: str, shade: int) -> np.ndarray:
    img = Image.new("RGB", (320, 120), (shade, 20, 60))
    ImageDraw.Draw(img).text((10, 50), text, fill=(255, 255, 255))
    return np.array(img)


class ScriptedVnc:
    """A screen that moves to the next of SCREENS on every key press."""

    def __init__(self) -> None:
        self.i = 0
        self.frames = [picture(t, 40 * n) for n, t in enumerate(SCREENS)]

    @property
    def frame_no(self) -> int:
        return self.i

    def frame(self) -> np.ndarray:
        return self.frames[self.i]

    def fresh_frame(self, timeout: float = 5.0) -> np.ndarray:
        return self.frame()

    def wait_frame(self, after: int, timeout: float) -> int:
        time.sleep(min(timeout, 0.02))
        return self.i

    def send(self, actions: Sequence[keys.Action], sleep: Callable[[float], None] = time.sleep) -> None:
        if not _is_text(actions):
            self.i = min(self.i + 1, len(SCREENS) - 1)

    def close(self) -> None:
        pass


def _is_text(actions: Sequence[keys.Action]) -> bool:
    return len(actions) > 2  # typing the password: many keys, the screen stays


class TextOcr:
    """OCR that knows which scripted screen is shown (tesseract is not what these tests are about)."""

    def __init__(self, vnc: ScriptedVnc) -> None:
        self.vnc = vnc

    def read(self, frame: Any, region: Any = None, second: bool = False) -> str:
        for i, f in enumerate(self.vnc.frames):
            if np.array_equal(f, frame):
                return SCREENS[i]
        return ""


class PlaybookStep(UpStep):
    """The runner's install stage, with the console on the scripted screen."""

    name = "install playbook scripted"

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, ctx: Context) -> None:
        from labctl.playbook import run_playbook

        vnc = ScriptedVnc()
        console = Console(vnc, None, ctx.run, secrets=ctx.secrets, ocr=TextOcr(vnc))  # type: ignore[arg-type]
        (ctx.run.path / "serial.log").write_text(f"installer started\npassword {SECRET} set\nscanning\n")
        run_playbook(str(self.path), console, None, ctx.variables, ctx.run, ctx.secrets)


class Quick(UpStep):
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, ctx: Context) -> None:
        ctx.run.event(self.name, accel="tcg", pid=4242)


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    (tmp_path / "lab.yaml").write_text(LAB)
    return load_lab(tmp_path / "lab.yaml")


@pytest.fixture
def failed_run(lab: Lab, tmp_path: Path) -> Path:
    book = tmp_path / "scripted.yaml"
    book.write_text(PLAYBOOK)
    with pytest.raises(RunFailed, match="disk list"):
        run_seat(lab, lab.seat_list()[0], UpOptions(runs_dir=tmp_path / "runs"), [SECRET],
                 {"root_password": SECRET}, steps=[Quick("prepare"), Quick("start VM"), PlaybookStep(book)])
    return next((tmp_path / "runs").iterdir())


def test_events_follow_their_schema(failed_run: Path) -> None:
    import jsonschema

    events = read_events(failed_run)
    assert len(events) > 10
    validator = jsonschema.Draft202012Validator(events_schema())
    for ev in events:
        validator.validate(ev)
    ts = [ev["t"] for ev in events]
    assert ts == sorted(ts) and ts[0] < 1.0
    eula = next(e for e in events if e["step"] == "EULA" and "result" in e)
    assert eula["source"] == "screen" and eula["matched"] == "End User License Agreement"


def test_report_shows_the_failing_step_and_its_screenshot_first(failed_run: Path) -> None:
    html = (failed_run / "report.html").read_text()
    assert SECRET not in html and SECRET not in (failed_run / "junit.xml").read_text()
    failure = html.index('id="failure"')
    assert failure < html.index("<h2>Timeline</h2>")
    section = html[failure:html.index("<h2>Timeline</h2>")]
    assert "Failed step: disk list" in section
    assert "Scanning for devices" in section  # what OCR read
    assert "*****" in section  # the serial tail, scrubbed
    shot = re.search(r'<img src="([^"]+)" alt="the screen when step disk list failed"', section)
    assert shot, section
    full = failed_run / shot.group(1)
    assert np.array_equal(np.array(Image.open(full).convert("RGB")), picture(SCREENS[2], 80))
    # evidence in words, times relative to the start, not raw JSON
    assert "read “End User License Agreement” on the screen (OCR)" in html
    assert re.search(r'<td class="time">\+0:0\d\.\d</td>', html)
    assert '{"' not in html


def test_each_step_thumbnail_is_the_screen_its_evidence_matched(failed_run: Path) -> None:
    html = (failed_run / "report.html").read_text()
    by_step = {}
    for row in html.split('<tr class="step ')[1:]:
        name = re.search(r'<td class="step sub">([^<]+)</td>', row)
        link = re.search(r'<a href="([^"]+)"><img class="thumb" src="([^"]+)"', row.split("</tr>")[0])
        if name and link:
            by_step[name.group(1)] = (link.group(1), link.group(2))
    assert set(by_step) >= {"welcome", "EULA", "disk list"}
    for step, shade in (("welcome", 0), ("EULA", 40)):
        full, thumb = by_step[step]
        img = np.array(Image.open(failed_run / full).convert("RGB"))
        assert np.array_equal(img, picture(SCREENS[shade // 40], shade)), step
        assert Image.open(failed_run / thumb).width <= 320


def test_junit_has_one_testcase_per_step(failed_run: Path) -> None:
    root = ET.parse(failed_run / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    names = [c.get("name", "").split(" ", 1)[1] for c in cases]
    assert names == ["prepare", "start VM", "install playbook scripted", "welcome", "continue", "EULA", "password",
                     "accept", "disk list"]
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name", "").split(" ", 1)[1] for c in failed] == ["install playbook scripted", "disk list"]
    assert root.find("testsuite").get("failures") == "2"  # type: ignore[union-attr]


def test_animation_of_the_whole_run(failed_run: Path) -> None:
    anim = Image.open(failed_run / "run.webp")
    assert anim.format == "WEBP" and getattr(anim, "n_frames", 1) == 3


def test_report_is_rebuilt_from_the_folder_alone(failed_run: Path) -> None:
    (failed_run / "report.html").unlink()
    out = render_run(failed_run)
    assert "Failed step: disk list" in out.html.read_text() and out.junit.exists()


def test_layout_proof_is_shown_as_a_table(failed_run: Path) -> None:
    proof = {"verdict": "mismatch", "disk": "mpx.vmhba32:C0:T0:L0", "media": "usb", "scratch": None,
             "rows": [{"partition": 1, "start": 64, "type": "efi", "ok": True},
                      {"partition": 5, "start": 8224, "type": "linuxNative", "ok": False}],
             "diff": ["partition 5: start 8224, expected 8192"],
             "getptbl": "gpt\n1946 255 63 31277232\n1 64 8191 C12A7328 systemPartition 128"}
    (failed_run / "layout-proof.json").write_text(json.dumps(proof))
    html = render_run(failed_run).html.read_text()
    assert "Partition layout proven in the guest" in html
    assert "verdict: <strong>mismatch</strong>" in html and "scratch" not in html.split("verdict")[1][:200]
    assert "<th>partition</th><th>start</th><th>type</th><th>ok</th>" in html
    assert "<td>linuxNative</td><td>no</td>" in html
    assert "<li>partition 5: start 8224, expected 8192</li>" in html
    assert "<summary>getptbl</summary><pre>gpt\n1946 255 63" in html
    assert proof_table([{"a": 1}, {"b": 2}]) == (["a", "b"], [["1", ""], ["", "2"]])
    assert proof_table({"x": 1}) is None


def test_classroom_index_and_junit(failed_run: Path, tmp_path: Path) -> None:
    seats = [SeatRun(1, "rep-1", False, 12.0, "step 'disk list' failed", failed_run, "disk list"),
             SeatRun(2, "rep-2", True, 10.0, "ok", None)]
    index, junit = write_classroom(tmp_path / "runs" / "classroom", "rep", seats)
    html = index.read_text()
    assert "1 of 2 seats passed" in html and "Seat 1 (rep-1) failed at step disk list" in html
    href = re.search(r'<a href="([^"]+report\.html)">', html)
    assert href and (index.parent / href.group(1)).resolve() == (failed_run / "report.html").resolve()
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert [c.get("name") for c in cases] == ["seat 1 (rep-1)", "seat 2 (rep-2)"]
    assert cases[0].find("failure") is not None and cases[1].find("failure") is None


def test_pages_render_in_chromium(failed_run: Path, tmp_path: Path) -> None:
    from harness.browser import check_page, chromium_available

    reason = chromium_available()
    if reason:
        pytest.skip(reason)
    page = check_page(failed_run / "report.html", artifacts=tmp_path / "artifacts")
    assert page.images >= 6 and "Failed step: disk list" in page.text
    assert page.screenshot is not None and page.screenshot.stat().st_size > 1000
    index, _ = write_classroom(tmp_path / "classroom", "rep",
                               [SeatRun(1, "rep-1", False, 12.0, "failed", failed_run, "disk list")])
    assert check_page(index, artifacts=tmp_path / "artifacts").images == 2  # the failure section and the table


def test_secrets_in_frames_names_and_messages_are_masked(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run", secrets=[SECRET])
    run.event("start VM", phase="start")
    run.event("start VM", phase="end", result="failed", error=f"typed {re.escape(SECRET)}", duration=1.0)
    shot = run.screenshot(picture("x", 0), f"after {SECRET}")
    assert SECRET not in shot.name
    html = run.finish("failed", f"because {SECRET}").read_text()
    assert SECRET not in html and re.escape(SECRET) not in html and "*****" in html


def test_labctl_report_names_the_files_of_a_run_and_of_a_labs_last_runs(
        failed_run: Path, lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    from labctl.cli import main

    (failed_run / "report.html").unlink()  # a run killed before its report: rendered again
    assert main(["report", str(failed_run)]) == 0
    out = capsys.readouterr().out
    assert f"{failed_run.name}: failed at step 'disk list'" in out
    assert f"report:    {failed_run / 'report.html'}" in out and (failed_run / "report.html").exists()
    assert main(["report", str(lab.source), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info[0]["run_dir"] == str(failed_run) and info[0]["step"] == "disk list"
    assert info[0]["junit"] == str(failed_run / "junit.xml")
    assert main(["report", str(failed_run.parent)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_an_interrupted_run_says_so_in_its_report_and_junit(lab: Lab, tmp_path: Path) -> None:
    class CtrlC(UpStep):
        name = "install playbook scripted"

        def run(self, ctx: Context) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_seat(lab, lab.seat_list()[0], UpOptions(runs_dir=tmp_path / "runs"), [], {},
                 steps=[Quick("prepare"), CtrlC()])
    run_dir = next((tmp_path / "runs").iterdir())
    html = (run_dir / "report.html").read_text()
    assert '<span class="interrupted">interrupted</span>' in html
    assert '<td class="result interrupted">interrupted</td>' in html
    case = [c for c in ET.parse(run_dir / "junit.xml").getroot().iter("testcase")][-1]
    assert case.get("name", "").endswith("install playbook scripted") and case.find("error") is not None
