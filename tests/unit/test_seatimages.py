"""Seat images: a lab cannot make a VM write a host disk, the lab file, the ISO or another seat's image
(validate, up, reset refuse with one located line, exit 2, and leave every file as it was), and reset
empties only images labctl made, in place."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import pytest

from labctl import seatimages
from labctl.cli import main
from labctl.spec import load_lab

LOCATED = re.compile(r"^[^:\n]+:\d+:\d+: [\w.\[\]]+: .+$")
BLOCK = "/dev/loop0"  # only its device number is used, for a node in the test's own folder

LAB = """\
name: t
backend: qemu
iso: {iso}
stick:
  image: {image}
  size: 16M
install:
  root_password: {{env: LAB_ROOT_PASSWORD}}
qemu: {{binary: /nonexistent/qemu-system-x86_64}}
"""


def lab_file(tmp_path: Path, image: str, iso: str = "x.iso", extra: str = "") -> Path:
    (tmp_path / "x.iso").write_bytes(b"\0" * 4096)
    p = tmp_path / "lab.yaml"
    p.write_text(LAB.format(iso=iso, image=image) + extra, encoding="utf-8")
    return p


def fingerprint(*paths: Path) -> list[tuple[object, ...]]:
    """What must not change: content, inode, mode and times of each file (lstat: links themselves)."""
    out: list[tuple[object, ...]] = []
    for p in paths:
        st = os.lstat(p)
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out.append((str(p), st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, digest))
    return out


def one_located_line(err: str, what: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert LOCATED.match(lines[0]) and "stick.image" in lines[0] and what in lines[0], lines[0]


def _victims(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """image value -> (what the refusal says, ...); each made in tmp_path."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    # device nodes of their own in tmp_path (a block one for loop0, a character one for /dev/null):
    # whatever a broken labctl did to them, the host's /dev stays as it is
    os.mknod(tmp_path / "blk", stat.S_IFBLK | 0o600, os.stat(BLOCK).st_rdev)
    os.mknod(tmp_path / "chr", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (tmp_path / "disk-link").symlink_to(tmp_path / "blk")
    return {
        "block device": ("disk-link", "block device"),
        "character device": ("chr", "character device"),
        "fifo": ("fifo", "FIFO"),
        "folder": ("folder", "folder"),
        "symlink loop": ("loop-a/s.img", "loop of symbolic links"),
        "the lab file": ("lab.yaml", "the lab file"),
        "the ISO": ("x.iso", "the installer ISO"),
        "a playbook": ("playbooks/p.yaml", "the playbook"),
        "a text file": ("notes.txt", "not a disk image"),
    }


CASES = ["block device", "character device", "fifo", "folder", "symlink loop", "the lab file", "the ISO",
         "a playbook", "a text file"]


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(BLOCK) or not stat.S_ISBLK(os.stat(BLOCK).st_mode),
                    reason="needs root (mknod) and /dev/loop0")
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("verb", ["validate", "up", "reset", "render"])
def test_dangerous_image_paths_are_refused_with_one_located_line(
        tmp_path: Path, case: str, verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    image, what = _victims(tmp_path)[case]
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "p.yaml").write_text("name: p\nsteps: []\n")
    (tmp_path / "notes.txt").write_text("a user's notes\n")
    lab = lab_file(tmp_path, image)
    if case == "a playbook":  # install.playbook p is playbooks/p.yaml beside the lab
        lab.write_text(lab.read_text().replace("install:\n", "install:\n  playbook: p\n"))
    watched = sorted(p for p in tmp_path.rglob("*") if not p.is_dir() or p.is_symlink())
    before = fingerprint(*watched)
    argv = {"validate": ["validate", "--strict", str(lab)], "up": ["up", str(lab)],
            "reset": ["reset", str(lab), "--yes"], "render": ["render", str(lab)]}[verb]
    assert main(argv) == 2
    one_located_line(capsys.readouterr().err, what)
    assert fingerprint(*watched) == before
    assert not (tmp_path / ".labctl").exists()  # no state folder either


def test_two_seats_on_one_image_and_hard_links_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab_file(tmp_path, "sticks/shared.img", extra="seats: 2\n")
    assert main(["validate", str(lab)]) == 2
    err = capsys.readouterr().err
    one_located_line(err, "seat 2 (t-2)'s stick image")
    os.link(lab, tmp_path / "alias.img")  # the lab file under another name
    lab.write_text(lab.read_text().replace("sticks/shared.img", "alias.img").replace("seats: 2\n", ""))
    assert main(["validate", str(lab)]) == 2
    one_located_line(capsys.readouterr().err, "the lab file")


def test_a_seat_override_is_located_at_its_own_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab_file(tmp_path, "sticks/{seat}.img",
                   extra="seats:\n  - {name: a}\n  - {name: b, stick: {image: /dev/null, size: 16M}}\n")
    assert main(["validate", str(lab)]) == 2
    err = capsys.readouterr().err.strip()
    assert ":12:30:" in err and "seats[1].stick.image" in err and "character device" in err


def test_the_backend_checks_again_right_before_creating(tmp_path: Path) -> None:
    """Validation passed, then the path became something else: the backend still refuses."""
    lab_path = lab_file(tmp_path, "s.img")
    lab = load_lab(lab_path)
    seat = lab.seat_list()[0]
    (tmp_path / "s.img").symlink_to("/dev/null")
    with pytest.raises(seatimages.ImageRefused, match="character device"):
        seatimages.ensure_images(lab, seat)
    (tmp_path / "s.img").unlink()
    os.mkfifo(tmp_path / "s.img")
    from labctl.backends.qemu import QemuBackend

    with pytest.raises(seatimages.ImageRefused, match="FIFO"):
        QemuBackend(lab, seat).define()


def test_reset_empties_what_labctl_made_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab_file(tmp_path, "sticks/{seat}.img")
    assert main(["reset", str(lab)]) == 0  # creates it
    img = tmp_path / "sticks" / "t.img"
    assert img.stat().st_size == 16 << 20 and img.stat().st_blocks == 0
    with open(img, "r+b") as f:
        f.write(os.urandom(1 << 20))  # the VM installed something
    os.link(img, tmp_path / "second-name")
    ino = img.stat().st_ino
    assert main(["reset", str(lab)]) == 0
    assert "recreated blank in place" in capsys.readouterr().out
    assert img.stat().st_ino == ino and img.stat().st_nlink == 2  # same inode, the hard link kept
    assert img.stat().st_size == 16 << 20 and img.read_bytes().count(0) == 16 << 20


def test_reset_needs_yes_for_data_labctl_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "precious.img"
    target.write_bytes(os.urandom(2 << 20))
    (tmp_path / "s.img").symlink_to(target)
    lab = lab_file(tmp_path, "s.img")
    before = fingerprint(target, tmp_path / "s.img")
    assert main(["reset", str(lab)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "labctl did not create" in err and "--yes" in err
    assert fingerprint(target, tmp_path / "s.img") == before
    assert not (tmp_path / ".labctl").exists()  # refused before anything: no UEFI vars reset either
    assert main(["reset", str(lab), "--yes"]) == 0
    assert (tmp_path / "s.img").is_symlink() and target.read_bytes().count(0) == 2 << 20  # emptied, not unlinked


def test_reset_refuses_a_file_that_replaced_labctls_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab_file(tmp_path, "s.img")
    assert main(["reset", str(lab)]) == 0
    img = tmp_path / "s.img"
    (tmp_path / "other").write_bytes(os.urandom(1 << 20))
    os.replace(tmp_path / "other", img)  # someone else's file at that path now (another inode)
    before = fingerprint(img)
    assert main(["reset", str(lab)]) == 2
    assert "not the file labctl created" in capsys.readouterr().err
    assert fingerprint(img) == before


def test_records_hold_identity_and_fingerprint(tmp_path: Path) -> None:
    lab = load_lab(lab_file(tmp_path, "s.img"))
    seat = lab.seat_list()[0]
    [img] = seatimages.ensure_images(lab, seat)
    rec = seatimages.load_records(seat.state_dir)[str(img.path)]
    st = img.path.stat()
    assert (rec.dev, rec.ino, rec.size) == (st.st_dev, st.st_ino, 16 << 20)
    assert rec.fingerprint == hashlib.sha256(bytes(64 << 10)).hexdigest()
    with open(img.path, "r+b") as f:
        f.truncate(8 << 20)  # the same file, cut by someone else
    with pytest.raises(seatimages.ImageRefused, match="labctl made it 16777216"):
        seatimages.check_reset(seat.state_dir, img)


def test_reset_refuses_a_new_file_that_got_the_deleted_images_inode_number(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ext4 gives a freed inode number to the next new file: same path, device, inode number and size
    is not yet labctl's file; the inode's generation tells them apart."""
    import json

    lab = lab_file(tmp_path, "s.img")
    assert main(["reset", str(lab)]) == 0
    img = tmp_path / "s.img"
    fd = os.open(img, os.O_RDONLY)
    try:
        if seatimages.generation(fd) is None:
            pytest.skip("this file system keeps no inode generation")
    finally:
        os.close(fd)
    img.unlink()
    with open(img, "wb") as f:  # the trainer's own 16 MiB image copied to that path
        f.write(os.urandom(1 << 20))
        f.truncate(16 << 20)
    records = next(tmp_path.glob(".labctl/*/seat1/images.json"))
    data = json.loads(records.read_text())
    data["images"][0]["ino"] = img.stat().st_ino  # what ext4 usually does by itself
    records.write_text(json.dumps(data))
    before = fingerprint(img)
    assert main(["reset", str(lab)]) == 2
    assert "not the file labctl created" in capsys.readouterr().err
    assert fingerprint(img) == before


def test_the_hosts_firmware_and_the_kickstart_are_not_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A seat boots the host's OVMF build when the lab names none: 4 MiB of whole sectors, so only the
    firmware rule keeps a stick image from being written over it."""
    from labctl.backends import qemu_argv

    code = tmp_path / "OVMF_CODE_4M.fd"
    code.write_bytes(os.urandom(4 << 20))
    monkeypatch.setattr(qemu_argv, "OVMF_CODE", code)
    lab = lab_file(tmp_path, str(code))
    before = fingerprint(code)
    assert main(["validate", str(lab)]) == 2
    one_located_line(capsys.readouterr().err, "the host's UEFI firmware")
    assert main(["reset", str(lab), "--yes"]) == 2
    capsys.readouterr()
    assert fingerprint(code) == before
    ks = tmp_path / "ks.cfg"
    ks.write_bytes(b"#" * (1 << 20))
    lab = lab_file(tmp_path, "ks.cfg", extra="")
    lab.write_text(lab.read_text().replace("install:\n", "install:\n  kickstart: ks.cfg\n"))
    assert main(["validate", str(lab)]) == 2
    one_located_line(capsys.readouterr().err, "the kickstart file")


@pytest.mark.parametrize("path", ["/dev/sdz9labctl", "/dev/disk/by-id/usb-labctl-no-such-stick", "/proc/labctl.img",
                                  "/sys/labctl.img"])
def test_a_device_path_with_nothing_behind_it_is_not_a_new_image(tmp_path: Path, path: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """/dev/sdX written while the stick is unplugged: labctl would create a 16 GiB file in /dev (RAM)."""
    lab = lab_file(tmp_path, path)
    assert main(["validate", str(lab)]) == 2
    one_located_line(capsys.readouterr().err, "device path")
    assert main(["reset", str(lab)]) == 2
    assert not os.path.lexists(path)


def test_reset_makes_labctls_image_the_size_the_lab_says_now(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab_file(tmp_path, "s.img")
    assert main(["reset", str(lab)]) == 0
    lab.write_text(lab.read_text().replace("size: 16M", "size: 32M"))
    ino = (tmp_path / "s.img").stat().st_ino
    assert main(["reset", str(lab)]) == 0
    assert (tmp_path / "s.img").stat().st_size == 32 << 20 and (tmp_path / "s.img").stat().st_ino == ino
    capsys.readouterr()
    assert main(["reset", str(lab)]) == 0  # and it is still labctl's
    assert "already blank" in capsys.readouterr().out


def test_a_vm_gets_the_image_file_that_was_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """open_for_vm checks the file it opened: its descriptor names the checked image; a path that
    changes while it is opened (here: during the path check) is refused, and so is a hard link to the
    lab file."""
    lab_path = lab_file(tmp_path, "s.img")
    lab = load_lab(lab_path)
    seat = lab.seat_list()[0]
    seatimages.ensure_images(lab, seat)
    image = tmp_path / "s.img"
    fds = seatimages.open_for_vm(lab, seat, ["stick"])
    try:
        assert list(fds) == ["stick"] and os.fstat(fds["stick"])[1:3] == os.stat(image)[1:3]
        assert os.get_inheritable(fds["stick"]) is False  # handed over explicitly (pass_fds), never leaked
    finally:
        os.close(fds["stick"])

    decoy = tmp_path / "decoy.img"
    decoy.write_bytes(b"\0" * (1 << 20))
    real = seatimages.image_problem

    def swapped_meanwhile(path: Path, forbidden: object = ()) -> str | None:
        if path == image:
            os.replace(decoy, image)  # another program puts a different file under the name
        return real(path, forbidden)  # type: ignore[arg-type]

    monkeypatch.setattr(seatimages, "image_problem", swapped_meanwhile)
    with pytest.raises(seatimages.ImageRefused, match="changed while it was being opened"):
        seatimages.open_for_vm(lab, seat, ["stick"])
    monkeypatch.setattr(seatimages, "image_problem", real)
    assert seatimages.open_for_vm(lab, seat, []) == {}  # roles not asked for are not opened

    image.unlink()
    os.mkfifo(image)  # pinned, never opened: no open that waits for a writer
    with pytest.raises(seatimages.ImageRefused, match="FIFO"):
        seatimages.open_for_vm(lab, seat, ["stick"])
    image.unlink()
    with lab_path.open("ab") as f:
        f.write(b"#" * (1 << 20))  # big enough for an image: only its identity gives it away
    os.link(lab_path, image)
    with pytest.raises(seatimages.ImageRefused, match="the lab file itself"):
        seatimages.open_for_vm(lab, seat, ["stick"])
