"""Resets to a named point on real stick images (QEMU's qcow2 overlays, no VM booted): the golden copy kept
after a successful up, drift measured byte for byte without writing, reset to after-install equal to the golden
copy (checked here with qemu-img and cmp, outside labctl's reset code), reset to before-install blank."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from labctl.classroom import GOLDEN, differing_bytes, keep_golden, stick_drift
from labctl.cli import main
from labctl.runner import UpOptions, make_backend
from labctl.spec import Lab, load_lab

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None or shutil.which("qemu-io") is None
                                or not Path("/usr/share/OVMF/OVMF_VARS_4M.fd").exists(),
                                reason="needs qemu-utils and ovmf")

LAB = """\
name: room
backend: qemu
iso: sim
stick: {image: "sticks/{seat}.img", size: 64M}
install: {root_password: {env: LAB_ROOT_PASSWORD}}
seats: 2
reset: after-install
"""


def qemu_io(image: Path, fmt: str, command: str) -> None:
    subprocess.run(["qemu-io", "-f", fmt, "-c", command, str(image)], check=True, capture_output=True, timeout=60)


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    (tmp_path / "lab.yaml").write_text(LAB)
    lab = load_lab(tmp_path / "lab.yaml")
    for seat in lab.seat_list():  # "installed": each stick gets its own bytes, as up would have written
        b = make_backend(lab, seat)
        b.define()
        image = seat.stick_image(lab)
        assert image is not None
        qemu_io(image, "raw", f"write -P 0x{0x40 + seat.index:x} 1M 2M")
    return lab


def raw_now(lab: Lab, index: int, out: Path) -> Path:
    """The stick as the VM sees it (its whole overlay chain), read by qemu-img, not by labctl."""
    seat = lab.seat_list()[index]
    chain = json.loads((seat.state_dir / "stick-snapshots" / "chain.json").read_text()) \
        if (seat.state_dir / "stick-snapshots" / "chain.json").exists() else None
    top = Path(chain["active"]) if chain and chain["active"] else seat.stick_image(lab)
    assert top is not None
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(top), str(out)], check=True, timeout=60)
    return out


def test_after_install_reset_returns_every_stick_to_its_golden_copy(lab: Lab, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    seats = lab.seat_list()
    golden = tmp_path / "golden"
    golden.mkdir()
    for i, seat in enumerate(seats):
        assert keep_golden(lab, seat, UpOptions()) == "golden copy of the stick kept (labctl reset returns to it)"
        assert keep_golden(lab, seat, UpOptions()) is None  # once per seat
        raw_now(lab, i, golden / f"{seat.name}.raw")
        assert stick_drift(lab, seat).differing == 0
    # the students use the sticks: 3 MiB rewritten on seat 1, 1 KiB on seat 2 (outside labctl)
    chains = [json.loads((s.state_dir / "stick-snapshots" / "chain.json").read_text()) for s in seats]
    qemu_io(Path(chains[0]["active"]), "qcow2", "write -P 0xee 2M 3M")
    qemu_io(Path(chains[1]["active"]), "qcow2", "write -P 0x42 1M 1k")  # seat 2's own byte: 1 KiB the same
    qemu_io(Path(chains[1]["active"]), "qcow2", "write -P 0x00 40M 1k")  # zeros over zeros: no difference
    drift = [stick_drift(lab, s) for s in seats]
    assert drift[0].differing == 3 * 2**20  # 2M-3M was 0x41 and 3M-5M zeros: now all 0xee
    assert drift[1].differing == 0 and drift[1].message == "equals its golden copy"

    assert main(["reset", str(lab.source), "--check"]) == 0
    out = capsys.readouterr().out
    assert "seat 1 (room-1): 3.0 MiB differ from its golden copy (3145728 bytes)" in out
    assert chains[0]["active"] and Path(chains[0]["active"]).exists()  # --check wrote nothing

    assert main(["reset", str(lab.source)]) == 0
    assert "reverted to its snapshot 'after-install'" in capsys.readouterr().out
    for i, seat in enumerate(seats):
        now = raw_now(lab, i, tmp_path / f"now-{i}.raw")
        assert subprocess.run(["cmp", str(now), str(golden / f"{seat.name}.raw")], timeout=60).returncode == 0
        assert GOLDEN in make_backend(lab, seat).snapshots()


def test_before_install_reset_forgets_the_golden_copy_and_blanks_the_stick(lab: Lab, tmp_path: Path) -> None:
    seat = lab.seat_list()[0]
    assert keep_golden(lab, seat, UpOptions()) is not None
    assert main(["reset", str(lab.source), "--seats", "1", "--to", "before-install"]) == 0
    b = make_backend(lab, seat)
    assert b.snapshots() == []
    image = seat.stick_image(lab)
    assert image is not None and image.stat().st_size == 64 * 2**20
    blank = tmp_path / "blank"
    with blank.open("wb") as f:
        f.truncate(64 * 2**20)
    assert differing_bytes(image, blank) == 0
    assert stick_drift(lab, seat).message.startswith("no golden copy yet")


def test_differing_bytes_reads_only_data_and_counts_exactly(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for p in (a, b):
        with p.open("wb") as f:
            f.truncate(64 * 2**30)  # two sparse 64 GiB sticks
    with a.open("r+b") as f:
        f.seek(5 * 2**30)
        f.write(b"\x01" * 1000)
    with b.open("r+b") as f:
        f.seek(5 * 2**30 + 500)
        f.write(b"\x01" * 1000)
    assert differing_bytes(a, b) == 1000


HOST_LAB = """\
name: hostroom
backend: qemu
iso: sim
stick: {usb: {vendor_id: 0x0781, product_id: 0x5567}}
install: {root_password: {env: LAB_ROOT_PASSWORD}}
reset: after-install
"""


def test_a_host_stick_is_restored_from_its_golden_image_and_wiped_before_install(tmp_path: Path) -> None:
    """The stick here is an image file standing in for /dev/sdX (the 'labctl stick' verbs accept both; finding
    the device by vendor:product id is blockdev's, tested with it)."""
    from labctl.classroom import GOLDEN_IMAGE, keep_host_golden, reset_host_stick
    from labctl.layouts import expected_layout, write_gpt

    (tmp_path / "lab.yaml").write_text(HOST_LAB)
    lab = load_lab(tmp_path / "lab.yaml")
    seat = lab.seat_list()[0]
    seat.state_dir.mkdir(parents=True)
    stick = tmp_path / "sdx.img"
    with stick.open("wb") as f:
        f.truncate(2**30)
    sectors = 2**30 // 512
    write_gpt(str(stick), sectors, expected_layout(sectors, "usb"))
    qemu_io(stick, "raw", "write -P 0x61 33M 1M")  # data inside a partition: kept by the backup
    before = tmp_path / "installed.img"
    subprocess.run(["cp", "--sparse=always", str(stick), str(before)], check=True)

    assert "golden copy of the host stick" in keep_host_golden(lab, seat, device=str(stick))
    assert (seat.state_dir / GOLDEN_IMAGE).exists()
    qemu_io(stick, "raw", "write -P 0x77 33M 64k")  # the student's change
    assert subprocess.run(["cmp", "--quiet", str(stick), str(before)]).returncode != 0
    said = reset_host_stick(lab, seat, None, yes=True, device=str(stick))
    assert "restored from its golden copy" in said
    assert subprocess.run(["cmp", "--quiet", str(stick), str(before)]).returncode == 0

    said = reset_host_stick(lab, seat, "before-install", yes=True, device=str(stick))
    assert "wiped (quick); golden copy forgotten" in said and not (seat.state_dir / GOLDEN_IMAGE).exists()
    from labctl.layouts import GptError, read_gpt

    with pytest.raises(GptError, match="no valid GPT"):
        read_gpt(str(stick))


def installed_and_verified(lab: Lab, seat_index: int, tmp_path: Path, ok: bool = True) -> Path:
    """What a successful up leaves: a run folder whose result.json says ok, named by the seat's last-run file."""
    from labctl.runner import last_run_file

    seat = lab.seat_list()[seat_index]
    run = tmp_path / "runs" / f"{seat.name}-earlier"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"ok": ok, "layout": "ok"} if ok else {"ok": False, "step": "x"}))
    last_run_file(seat).write_text(f"{run}\n")
    return run


def test_up_of_an_installed_seat_equal_to_its_golden_copy_is_no_change(lab: Lab, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from labctl.classroom import ALREADY_INSTALLED, already_installed

    seats = lab.seat_list()
    runs = [installed_and_verified(lab, i, tmp_path) for i in range(2)]
    assert already_installed(lab, seats[1], UpOptions()) is None  # no golden copy yet: up installs
    for seat in seats:
        assert keep_golden(lab, seat, UpOptions()) is not None
    chain = json.loads((seats[0].state_dir / "stick-snapshots" / "chain.json").read_text())
    qemu_io(Path(chain["active"]), "qcow2", "write -P 0xee 2M 1k")  # seat 1 drifted
    assert already_installed(lab, seats[0], UpOptions()) is None
    assert already_installed(lab, seats[1], UpOptions(force=True)) is None  # --force: a fresh install
    same = already_installed(lab, seats[1], UpOptions())
    assert same is not None and same.ok and not same.changed and same.run_dir == runs[1]

    assert main(["up", str(lab.source), "--seats", "2", "--json"]) == 0
    envelope = json.loads(capsys.readouterr().out)
    assert envelope["ok"] is True and envelope["changed"] is False
    [seat] = envelope["seats"]
    assert seat["ok"] is True and seat["changed"] is False and seat["message"] == ALREADY_INSTALLED
    assert seat["run_dir"] == str(runs[1])  # no new run folder: nothing ran
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(r.name for r in runs)

    installed_and_verified(lab, 1, tmp_path / "later", ok=False)  # the last run failed: up installs again
    assert already_installed(lab, seats[1], UpOptions()) is None
