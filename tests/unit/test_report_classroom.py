"""A classroom's report (index.html + one junit with a testcase per seat) and its live table's rows, from real
run folders written by the runner."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl.classroom import LiveTable, write_report
from labctl.errors import RunFailed
from labctl.runner import Context, SeatResult, UpOptions, UpStep, run_seat
from labctl.spec import Lab, load_lab

LAB = """\
name: room
backend: qemu
iso: sim
stick: {image: "sticks/{seat}.img", size: 16G}
install: {root_password: {env: LAB_ROOT_PASSWORD}}
seats: 3
"""


class Wait(UpStep):
    def __init__(self, name: str, matched: str, fail: bool = False) -> None:
        self.name, self.matched, self.fail = name, matched, fail

    def run(self, ctx: Context) -> None:
        ctx.run.event("EULA", action="wait", source="screen", matched=self.matched, result="ok", duration=0.1)
        if self.fail:
            raise RunFailed("no disk to install on")


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    (tmp_path / "lab.yaml").write_text(LAB)
    return load_lab(tmp_path / "lab.yaml")


def test_index_and_junit_per_seat_and_the_live_rows(lab: Lab, tmp_path: Path) -> None:
    seats = lab.seat_list()
    table = LiveTable(lab, seats)
    assert [r[1] for r in table.rows()] == ["waiting"] * 3
    results: list[SeatResult] = []
    for seat in seats:
        fail = seat.index == 2
        try:
            results.append(run_seat(lab, seat, UpOptions(runs_dir=tmp_path / "runs"), [], {},
                                    steps=[Wait("install playbook x", "End User License Agreement", fail)]))
        except RunFailed:
            results.append(SeatResult(seat, sorted((tmp_path / "runs").glob(f"*-{seat.name}"))[-1], False, 1.0,
                                      "no disk to install on", step="install playbook x"))
    rows = table.rows()
    assert [r[1] for r in rows] == ["passed", "failed at install playbook x", "passed"]
    assert all(r[3] == "End User License Agreement" for r in rows)

    index = write_report(lab, results, tmp_path / "runs")
    assert index.parent.name.endswith("-classroom") and index.parent.parent == tmp_path / "runs"
    html = index.read_text()
    assert "2 of 3 seats passed" in html
    assert html.index("Seat 2 (room-2) failed at step install playbook x") < html.index("<table class=\"seats\">")
    for r in results:
        assert f'href="../{r.run_dir.name}/report.html"' in html
    cases = ET.parse(index.parent / "junit.xml").getroot().findall(".//testcase")
    assert [c.get("name") for c in cases] == ["seat 1 (room-1)", "seat 2 (room-2)", "seat 3 (room-3)"]
    assert [c.find("failure") is not None for c in cases] == [False, True, False]
