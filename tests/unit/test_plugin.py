"""The pytest plugin, run inside pytester: options and marker, the isolated lab, skips with their reason,
and the evidence a failing test gets (junit properties, report sections)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

LAB = """\
name: plug
backend: qemu
iso: sim
stick: {image: "sticks/{seat}.img", size: 16G}
install: {root_password: {env: LAB_ROOT_PASSWORD}}
"""


@pytest.fixture
def labdir(pytester: pytest.Pytester) -> Path:
    (pytester.path / "labs").mkdir()
    (pytester.path / "labs" / "plug.yaml").write_text(LAB)
    (pytester.path / "labs" / "other.yaml").write_text(LAB.replace("name: plug", "name: other"))
    return pytester.path / "labs"


def test_options_and_marker_are_registered(pytester: pytest.Pytester) -> None:
    help_text = pytester.runpytest("--help").stdout.str()
    for opt in ("--lab=LAB", "--lab-backend=B", "--lab-keep", "--lab-artifacts=DIR"):
        assert opt in help_text
    assert "@pytest.mark.lab(path)" in pytester.runpytest("--markers").stdout.str()


def test_marker_lab_writes_under_the_artifacts_folder(pytester: pytest.Pytester, labdir: Path) -> None:
    art = pytester.path / "art"
    (labdir / "playbooks").mkdir()
    (labdir / "playbooks" / "mine.yaml").write_text("name: mine\nsteps: []\n")
    (labdir / "plug.yaml").write_text(LAB + "post_install: [mine]\n")
    pytester.makepyfile(f"""
        import pytest
        from pathlib import Path

        from labctl.runner import playbook_ref

        @pytest.mark.lab("labs/plug.yaml", console={{"serial": False}}, vm={{"memory_mb": 4096}})
        def test_it(lab, lab_file):
            art = Path({str(art)!r})
            seat = lab.seat_list()[0]
            assert lab.name == "plug" and lab.source == lab_file and lab_file.is_relative_to(art)
            assert seat.stick_image(lab) == lab_file.parent / "sticks" / "plug.img"
            assert seat.state_dir.is_relative_to(lab_file.parent / "state")
            assert lab.resolve(lab.runs_dir) == lab_file.parent / "runs"
            assert lab.console.serial is False and lab.vm.memory_mb == 4096 and lab.vm.cpus == 2
            # playbooks beside the original lab are still found
            assert Path(playbook_ref(lab, "mine")).resolve() == Path({str(labdir)!r}) / "playbooks" / "mine.yaml"
    """)
    pytester.runpytest("--lab-artifacts", str(art)).assert_outcomes(passed=1)
    assert not (labdir / "sticks").exists() and not (labdir / "runs").exists()


def test_no_lab_is_a_skip_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(lab_seat):\n    pass\n")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no lab: give --lab LAB or mark the test*"])


def test_a_bad_lab_file_is_a_usage_error_in_one_line(pytester: pytest.Pytester, labdir: Path) -> None:
    (labdir / "bad.yaml").write_text(LAB.replace("backend: qemu", "backend: qemu\nvm: {memroy_mb: 1}"))
    pytester.makepyfile("def test_it(lab):\n    pass\n")
    result = pytester.runpytest("--lab", str(labdir / "bad.yaml"))
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*bad.yaml:*vm.memroy_mb: unknown key*"])


def test_missing_qemu_skips_with_the_reason(pytester: pytest.Pytester, labdir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    empty = pytester.path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    pytester.makepyfile("""
        import pytest

        @pytest.mark.lab("labs/plug.yaml")
        def test_it(lab_seat):
            raise AssertionError("never reached")
    """)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*qemu-system-x86_64 is missing*"])


def test_missing_ovmf_skips_with_the_reason(pytester: pytest.Pytester, labdir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    if shutil.which("qemu-system-x86_64") is None:
        fake = tmp_path / "bin"
        fake.mkdir()
        (fake / "qemu-system-x86_64").write_text("#!/bin/sh\nexit 0\n")
        (fake / "qemu-system-x86_64").chmod(0o755)
        monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    (labdir / "plug.yaml").write_text(LAB + "qemu: {ovmf_code: /nonexistent/OVMF_CODE.fd}\n")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.lab("labs/plug.yaml")
        def test_it(installed_seat):
            raise AssertionError("never reached")
    """)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*OVMF is missing: /nonexistent/OVMF_CODE.fd*"])


def test_installed_seat_is_one_lab_per_session(pytester: pytest.Pytester, labdir: Path) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.lab("labs/plug.yaml")
        def test_a(installed_seat):
            pass

        @pytest.mark.lab("labs/other.yaml")
        def test_b(installed_seat):
            pass
    """)
    result = pytester.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*installed_seat is one seat per session*"])


FAKE_SEAT = """
import pytest
from pathlib import Path
from PIL import Image


class FakeSeat:
    '''What the plugin reads from a seat when its test fails.'''

    class seat:
        name = "plug"

    def __init__(self, folder):
        self.folder = folder
        self.console = object()

    def screenshot(self, name):
        path = self.folder / f"{name}.png"
        Image.new("RGB", (64, 48), (200, 0, 0)).save(path)
        return path

    def screen_text(self):
        return "Select a Disk to Install or Upgrade"

    def serial_tail(self):
        return "scanning USB ... done"


@pytest.fixture
def lab_seat(tmp_path):
    return FakeSeat(tmp_path)
"""


def test_a_failing_test_gets_screenshot_screen_text_and_serial_tail(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_SEAT)
    pytester.makepyfile("""
        def test_fails(lab_seat):
            assert "EULA" in lab_seat.screen_text()

        def test_passes(lab_seat):
            pass
    """)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest(f"--junitxml={junit}")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*labctl screen text (plug)*", "*Select a Disk to Install or Upgrade*",
                                 "*labctl serial tail (plug)*", "*scanning USB ... done*"])
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_fails"].iter("property")}
    shot = Path(str(props["labctl_screenshot[plug]"]))
    assert shot.is_file() and shot.name == "failed-test_fails.png"
    assert props["labctl_screen_text[plug]"] == "Select a Disk to Install or Upgrade"
    assert props["labctl_serial_tail[plug]"] == "scanning USB ... done"
    assert list(cases["test_passes"].iter("property")) == []


def test_a_seat_whose_screen_is_gone_still_reports_the_failure(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_SEAT + """

class DeadSeat(FakeSeat):
    def screenshot(self, name):
        raise ConnectionError("the VNC console is gone")

    def screen_text(self):
        raise ConnectionError("the VNC console is gone")


@pytest.fixture
def lab_seat(tmp_path):
    return DeadSeat(tmp_path)
""")
    pytester.makepyfile("def test_fails(lab_seat):\n    assert False\n")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no screenshot: the VNC console is gone*"])


def test_pytest_html_gets_the_screenshot_and_texts_as_extras(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    pytester.makeconftest(FAKE_SEAT)
    pytester.makepyfile("def test_fails(lab_seat):\n    assert False\n")
    page = pytester.path / "report.html"
    result = pytester.runpytest(f"--html={page}", "--self-contained-html")
    result.assert_outcomes(failed=1)
    html = page.read_text()
    assert "plug: screen" in html and "data:image/png;base64," in html
    assert "plug: screen text" in html and "plug: serial tail" in html
