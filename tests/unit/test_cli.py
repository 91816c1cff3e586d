"""The CLI contract: exit codes, one-line errors, no tracebacks, lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.cli import main

REPO = Path(__file__).resolve().parents[2]
SIM_LAB = REPO / "labs" / "usb-install-sim.yaml"
VMW_LAB = REPO / "labs" / "usb-install.yaml"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labctl", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})}, cwd=REPO,
    )


def test_validate_the_shipped_labs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(VMW_LAB)]) == 0
    assert main(["validate", str(SIM_LAB)]) == 0
    assert capsys.readouterr().out.count("ok: ") == 2


def test_render_writes_a_vmx_per_seat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(VMW_LAB.read_text().replace("seats: 1", "seats: 2"))
    assert main(["render", str(lab), "-o", str(tmp_path / "out")]) == 0
    written = capsys.readouterr().out.split()
    assert [Path(p).name for p in written] == ["usb-install-1.vmx", "usb-install-2.vmx"]
    a, b = (Path(p).read_text() for p in written)
    port = [ln for ln in a.splitlines() if ln.startswith("RemoteDisplay.vnc.port")]
    assert port and port[0] not in b  # each seat its own VNC port


def test_bad_lab_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SIM_LAB.read_text().replace("memory_mb: 8192", "memory_mb: 2048"))
    r = run_cli("validate", str(bad))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"{bad}:") and "vm.memory_mb" in r.stderr


def test_missing_file_and_bad_arguments_exit_2(tmp_path: Path) -> None:
    r = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert (r.returncode, "no such file" in r.stderr) == (2, True)
    r = run_cli("render")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    r = run_cli("frobnicate")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_schema_is_json_and_the_labs_copy_is_current() -> None:
    r = run_cli("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert {"name", "iso", "stick", "install", "vm", "seats"} <= set(schema["properties"])
    shipped = json.loads((REPO / "labs" / "lab.schema.json").read_text())
    assert shipped == schema, "labs/lab.schema.json is stale: run 'labctl schema > labs/lab.schema.json'"


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from labctl.cli import build_parser; build_parser();"
        "heavy = [m for m in ('pydantic', 'jinja2', 'numpy', 'twisted', 'vncdotool', 'rich') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == ""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_labs_never_traceback(tmp_path: Path, data: st.DataObject) -> None:
    """Feed the shipped lab with random cuts, insertions and byte flips: always 0 or one located line."""
    original = VMW_LAB.read_bytes()
    text = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["delete", "insert", "flip", "dup-line"]))
        pos = data.draw(st.integers(0, max(0, len(text) - 1)))
        if op == "delete":
            del text[pos : pos + data.draw(st.integers(1, 40))]
        elif op == "insert":
            text[pos:pos] = data.draw(st.sampled_from(
                [b"\t", b":", b"{", b"- ", b"\x00", b"\xff", b"  ", b"\n", b"'", b"cpus: 1\n", b"&a ", b"*a", b"!!int "]
            ))
        elif op == "flip":
            text[pos] = data.draw(st.integers(0, 255))
        else:
            lines = bytes(text).split(b"\n")
            i = data.draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            text = bytearray(b"\n".join(lines))
    lab = tmp_path / "mutant.yaml"
    lab.write_bytes(bytes(text))
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["validate", str(lab)])
    out = err.getvalue()
    assert code in (0, 2), out
    if code == 2:
        first = out.strip().splitlines()[-1]
        assert first.startswith(f"{lab}:"), out
        assert "Traceback" not in out


def test_timeouts_counts_and_paths_are_checked_before_anything_runs(tmp_path: Path) -> None:
    """nan/inf timeouts, --parallel 0, --seats '' and wrong output paths are refused (exit 2) before
    any work starts: a wait must be bounded, an empty selection is not 'all'."""
    afile = tmp_path / "a.yaml"
    afile.write_text("x: 1\n")
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    cases = [
        (["wait", str(SIM_LAB), "--text", "zzz", "--timeout", "nan"], "more than 0"),
        (["wait", str(SIM_LAB), "--text", "zzz", "--timeout", "inf"], "at most 86400"),
        (["wait", str(SIM_LAB), "--text", "zzz", "--timeout", "-5"], "more than 0"),
        (["down", str(SIM_LAB), "--timeout", "0"], "more than 0"),
        (["up", str(SIM_LAB), "--parallel", "0"], "1 or more"),
        (["down", str(SIM_LAB), "--seats", ""], "--seats"),
        (["wait", str(SIM_LAB), "--text", ""], "empty"),
        (["send", str(SIM_LAB), "<wait99999999999999999999999>"], "at most 1 hour"),
        (["send", str(SIM_LAB), "<leftShiftOn"], "no closing"),
        (["screenshot", str(SIM_LAB), str(tmp_path)], "is a folder"),
        (["render", str(VMW_LAB), "-o", str(afile)], "not a folder"),
        (["render", str(VMW_LAB), "-o", str(tmp_path / "loop-a" / "out")], "loop of symbolic links"),
        (["up", str(SIM_LAB), "--runs", str(afile)], "not a folder"),
        (["sim", "build", "-o", str(afile / "x.iso")], "no such folder"),
        (["sim", "build", "--kickstart", "/dev/zero"], "not a regular file"),
        (["sim", "build", "-o", "/dev/sdz9labctl"], "no such device"),  # a stick's name, unplugged
        (["screenshot", str(SIM_LAB), "/dev/sdz9labctl"], "no such device"),
    ]
    for argv, word in cases:
        r = run_cli(*argv)
        assert r.returncode == 2, (argv, r.stderr)
        assert word in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (argv, r.stderr)
    assert not os.path.lexists("/dev/sdz9labctl")


@pytest.mark.parametrize("verb", ["validate", "status", "render", "down"])
def test_the_plain_password_warning_is_one_line_from_every_command_and_silent_with_q(tmp_path: Path,
                                                                                    verb: str) -> None:
    source = VMW_LAB if verb == "render" else SIM_LAB
    lab = tmp_path / "lab.yaml"
    lab.write_text(source.read_text().replace("{env: LAB_ROOT_PASSWORD}", "'Hunter2!lab'"))
    argv = [verb, str(lab)] + (["-o", str(tmp_path / "out")] if verb == "render" else [])
    res = run_cli(*argv)
    warned = [ln for ln in res.stderr.splitlines() if "plain text" in ln]
    assert res.returncode == 0, res.stderr
    assert len(warned) == 1 and "install.root_password" in warned[0], res.stderr
    assert "Hunter2" not in res.stderr + res.stdout and "Warning" not in res.stderr
    quiet = run_cli("-q", *argv)
    assert quiet.returncode == 0 and "plain text" not in quiet.stderr, quiet.stderr


def test_render_writes_nothing_before_it_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab.yaml"
    text = VMW_LAB.read_text().replace("seats: 1", "seats:\n  - {name: a}\n  - {name: b, stick: {image: b.img, "
                                                        "size: 16M}}")
    lab.write_text(text)
    assert main(["render", str(lab), "-o", str(tmp_path / "out")]) == 2
    assert "image sticks are for the qemu backend" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / ".labctl").exists()  # no VNC password written for seat a either


def test_layout_json_prints_errors_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "text.img").write_text("not a disk\n")
    for target in (tmp_path / "text.img", tmp_path / "missing.img", Path("/proc/self/mem")):  # the last has no end
        assert main(["layout", "--json", str(target)]) == 2
        doc = json.loads(capsys.readouterr().out)
        assert doc["ok"] is False and doc["error"]
