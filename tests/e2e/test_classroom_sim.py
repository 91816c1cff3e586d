"""The classroom end to end, in one test (three seats in parallel under TCG are expensive): labs/classroom-sim.yaml
installs three seats at once; the students change their sticks; ``reset --check`` sees how much; ``reset`` brings
each stick back to its golden copy in seconds (checked byte for byte here with qemu-img and cmp, outside labctl's
reset code); ``reset --to before-install`` blanks them; a second ``up`` installs all three again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.spec import Lab, load_lab

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract-ocr"),
    pytest.mark.skipif(shutil.which("qemu-io") is None, reason="needs qemu-utils"),
]

UP_TIMEOUT = 1800


def labctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True, timeout=timeout)


def up(lab_file: Path) -> dict[str, object]:
    r = labctl("up", str(lab_file), "--json", timeout=UP_TIMEOUT)
    assert r.returncode == 0, r.stderr[-4000:]
    env = json.loads(r.stdout)
    assert env["ok"] is True and len(env["seats"]) == 3, env
    assert "classroom report: " in r.stderr
    index = Path(r.stderr.split("classroom report: ", 1)[1].split()[0])
    assert index.is_file() and "3 of 3 seats passed" in index.read_text()
    return dict(env)


def active_overlay(lab: Lab, index: int) -> Path:
    seat = lab.seat_list()[index]
    chain = json.loads((seat.state_dir / "stick-snapshots" / "chain.json").read_text())
    return Path(chain["active"])


def as_raw(top: Path, out: Path) -> Path:
    """The stick as the VM would see it, read through its qcow2 chain by qemu-img (not by labctl)."""
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(top), str(out)], check=True, timeout=600)
    return out


def same_bytes(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "--quiet", str(a), str(b)], timeout=900).returncode == 0


@pytest.mark.lab("labs/classroom-sim.yaml", post_install=[])
def test_classroom_up_reset_to_golden_and_blank_then_up_again(lab_file: Path, lab_backend: str,
                                                              tmp_path: Path) -> None:
    lab = load_lab(lab_file)
    seats = lab.seat_list()
    t0 = time.monotonic()
    env = up(lab_file)
    first_up = time.monotonic() - t0
    for rec in env["seats"]:  # type: ignore[attr-defined]
        assert "golden copy of the stick kept" in rec["message"], rec

    golden = []
    for i in range(3):  # what each seat's stick holds right after its install
        golden.append(as_raw(active_overlay(lab, i), tmp_path / f"golden-{i}.raw"))
        assert golden[i].stat().st_size == 16 * 2**30

    # the students use their sticks (written outside labctl, through each seat's overlay)
    for i in range(3):
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x{0xa0 + i:x} {64 + i}M {i + 1}M",
                        str(active_overlay(lab, i))], check=True, capture_output=True, timeout=60)
    r = labctl("reset", str(lab_file), "--check")
    assert r.returncode == 0, r.stderr
    for i, seat in enumerate(seats):
        assert f"seat {i + 1} ({seat.name}): " in r.stdout and "differ from its golden copy" in r.stdout, r.stdout
    assert not same_bytes(as_raw(active_overlay(lab, 0), tmp_path / "drifted.raw"), golden[0])

    t1 = time.monotonic()
    r = labctl("reset", str(lab_file))
    reset_seconds = time.monotonic() - t1
    assert r.returncode == 0, r.stderr
    # dropping overlays, not copying 48 GB: seconds even on a loaded host
    assert reset_seconds < 20, f"reset of three 16 GB sticks took {reset_seconds:.1f} s"
    for i in range(3):
        assert same_bytes(as_raw(active_overlay(lab, i), tmp_path / f"after-reset-{i}.raw"), golden[i]), i
    r = labctl("reset", str(lab_file), "--check")
    assert r.stdout.count("equals its golden copy") == 3, r.stdout

    r = labctl("reset", str(lab_file), "--to", "before-install")
    assert r.returncode == 0, r.stderr
    for seat in seats:
        image = seat.stick_image(lab)
        assert image is not None and image.stat().st_size == 16 * 2**30
        zeros = subprocess.run(["cmp", "--quiet", "-n", str(16 * 2**30), str(image), "/dev/zero"], timeout=900)
        assert zeros.returncode == 0, f"{image} is not blank"
        assert not (seat.state_dir / "stick-snapshots" / "chain.json").exists()

    t2 = time.monotonic()
    env = up(lab_file)
    for rec in env["seats"]:  # type: ignore[attr-defined]
        assert "golden copy of the stick kept" in rec["message"], rec
    print(f"\nclassroom: up {first_up:.0f} s, reset {reset_seconds:.2f} s, up again {time.monotonic() - t2:.0f} s")
