"""Backup / restore / wipe / verify on regular files (no root needed): exactness, sparseness,
bytes written, refusals, interruption."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labctl import layouts
from labctl.cli import main
from labctl.commands.stick import confirm
from labctl.errors import RefusedError
from labctl.stick import imaging, ops
from labctl.stick.blockdev import Target

TOTAL = 131072  # a 64 MiB stick with an ESXi-like layout scaled down (the engine is layout-agnostic)
MIB = 1 << 20
LAYOUT = [
    layouts.TableEntry(1, 64, 8191, layouts.ESP, "systemPartition", 128),
    layouts.TableEntry(5, 8224, 40959, layouts.BASIC_DATA, "linuxNative", 0),
    layouts.TableEntry(6, 40992, 57343, layouts.BASIC_DATA, "linuxNative", 0),
    layouts.TableEntry(7, 57376, 73727, layouts.VMK_DIAGNOSTIC, "vmkDiagnostic", 0),
    layouts.TableEntry(8, 73760, 106495, layouts.BASIC_DATA, "linuxNative", 0),
]
DATA = [(64, MIB), (8224, 3 * MIB), (8224 + 20000, 2 * MIB + 4096), (40992, MIB), (73760, 2 * MIB)]
P5, P7, P8 = 8224 * 512, 57376 * 512, 73760 * 512


@pytest.fixture(autouse=True)
def _no_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")


def make_stick(path: Path) -> Path:
    layouts.write_gpt(str(path), TOTAL, LAYOUT)
    with open(path, "r+b") as f:
        for lba, n in DATA:
            f.seek(lba * 512)
            f.write(os.urandom(n))
    return path


def junk_target(path: Path, size: int = TOTAL * 512) -> Path:
    """A 'stick' full of other data: random bytes in and between the partitions (first 40 MiB and
    the last MiB), the rest of it zeros."""
    with open(path, "wb") as f:
        f.truncate(size)
        f.write(os.urandom(40 * MIB))
        f.seek(size - MIB)
        f.write(os.urandom(MIB))
    return path


def extents_equal(a: Path, b: Path) -> bool:
    gpt = layouts.read_gpt(str(a))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for e in ops.plan_extents(gpt, TOTAL * 512, full=False):
            fa.seek(e.offset)
            fb.seek(e.offset)
            if fa.read(e.length) != fb.read(e.length):
                return False
    return True


def sha(path: Path, offset: int, length: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return hashlib.sha256(f.read(length)).hexdigest()


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, Path]:
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "stick.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    return src, img


def test_backup_is_sparse_gpt_aware_and_has_a_manifest(image: tuple[Path, Path]) -> None:
    src, img = image
    m = json.loads(Path(str(img) + ".manifest.json").read_text())
    assert m["mode"] == "gpt" and m["size"] == TOTAL * 512 and m["table"].startswith("gpt\n8 255 63 131072\n")
    assert [e["name"] for e in m["extents"]] == ["gpt-primary", "p1", "p5", "p6", "p7", "p8", "gpt-backup"]
    assert m["data_bytes"] <= sum(n for _, n in DATA) + 64 * 1024 * 4  # data + GPT areas
    assert os.stat(img).st_blocks * 512 < m["data_bytes"] + MIB  # sparse
    assert not list(img.parent.glob(".*partial*"))
    assert extents_equal(src, img)  # the image is a raw stick image: layout and QEMU read it as is
    assert layouts.read_gpt(str(img)).partitions[0].first_lba == 64


def test_restore_onto_junk_is_exact_leaves_gaps_and_verifies(image: tuple[Path, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    src, img = image
    dst = junk_target(tmp_path / "dst.raw")
    gap_before = sha(dst, 34 * 512, 30 * 512)  # between the primary GPT area and partition 1
    assert main(["stick", "restore", str(img), str(dst), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "read back and verified" in out
    assert extents_equal(src, dst)
    assert sha(dst, 34 * 512, 30 * 512) == gap_before  # unallocated space left alone
    assert main(["stick", "verify", str(img), str(dst)]) == 0
    # again: nothing differs, nothing is written
    assert main(["stick", "restore", str(img), str(dst), "--yes"]) == 0
    assert "wrote 0 B (0 bytes) in 0 ranges" in capsys.readouterr().out


def test_restore_writes_only_what_differs(image: tuple[Path, Path], tmp_path: Path) -> None:
    src, img = image
    dst = tmp_path / "dst.raw"
    dst.write_bytes(src.read_bytes())
    with open(dst, "r+b") as f:  # a used stick: a FAT sector in p5, 3 MiB in p8
        f.seek(P5 + 7 * 4096 + 100)
        f.write(b"changed!")
        f.seek(P8 + 5 * MIB)
        f.write(os.urandom(3 * MIB))
    data = imaging.open_image(str(img))
    try:
        with ops.open_target(Target(str(dst), False, dst.stat().st_size, True), data.manifest.size) as dev:
            job = ops.Job("dst")
            res = ops.restore(data, dev, zero_rest=False, job=job)
    finally:
        data.close()
    assert not res.mismatches
    differing = 8 + 3 * MIB
    # pages written: 4 KiB around the FAT change + 3 MiB; plus the two GPT header sectors cleared
    # and rewritten (an interrupted restore must not look valid)
    assert res.bytes_written <= 1.2 * differing + MIB
    assert extents_equal(src, dst)


def test_zero_rest_and_full_make_every_byte_equal(image: tuple[Path, Path], tmp_path: Path) -> None:
    src, img = image
    dst = junk_target(tmp_path / "dst.raw")
    assert main(["stick", "restore", str(img), str(dst), "--yes", "--zero-rest"]) == 0
    same = dst.read_bytes() == src.read_bytes()
    assert same
    full = tmp_path / "full.img"
    assert main(["stick", "backup", str(src), str(full), "--full"]) == 0
    m = imaging.Manifest.load(str(full))
    assert m.mode == "full" and [e.name for e in m.extents] == ["disk"]
    dst2 = junk_target(tmp_path / "dst2.raw")
    assert main(["stick", "restore", str(full), str(dst2), "--yes"]) == 0
    same = dst2.read_bytes() == src.read_bytes()
    assert same


def test_coredump_header_only_leaves_the_dump_partition_body_and_says_so(
        image: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, img = image
    p7_len = (73727 - 57376 + 1) * 512
    exact = junk_target(tmp_path / "exact.raw")
    assert main(["stick", "restore", str(img), str(exact), "--yes"]) == 0
    wrote_exact = capsys.readouterr().out
    dst = junk_target(tmp_path / "dst.raw")
    body_before = sha(dst, P7 + MIB, p7_len - MIB)
    assert main(["stick", "restore", str(img), str(dst), "--yes", "--coredump-header-only"]) == 0
    out = capsys.readouterr().out
    assert f"({p7_len - MIB} bytes) of core dump partitions keep each stick's old bytes" in out
    assert sha(dst, P7 + MIB, p7_len - MIB) == body_before  # the junk in p7's body stays
    assert sha(dst, P7, MIB) == sha(src, P7, MIB)  # its first MiB is exact (zero)
    with open(src, "rb") as a, open(dst, "rb") as b:  # every other extent is exact
        for e in ops.plan_extents(layouts.read_gpt(str(src)), TOTAL * 512, full=False):
            if e.name != "p7":
                a.seek(e.offset)
                b.seek(e.offset)
                assert a.read(e.length) == b.read(e.length), e.name

    def written(text: str) -> int:
        return int(text.split("wrote ")[1].split("(")[1].split(" bytes")[0].replace(",", ""))

    assert written(wrote_exact) - written(out) >= p7_len - MIB - 64 * 1024
    assert main(["stick", "verify", str(img), str(dst)]) == 1  # plain verify holds p7 to zeros
    assert f"p7 bytes {P7 + MIB}-" in capsys.readouterr().out
    assert main(["stick", "verify", str(img), str(dst), "--coredump-header-only"]) == 0


def test_coredump_header_only_still_restores_a_dump_the_image_holds(tmp_path: Path) -> None:
    src = make_stick(tmp_path / "src.raw")
    with open(src, "r+b") as f:  # a core dump deep inside p7 is image data, not free space
        f.seek(P7 + 3 * MIB + 512)
        f.write(os.urandom(MIB))
    img = tmp_path / "stick.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    m = imaging.Manifest.load(str(img))
    held, left = ops.coredump_header_only(m)
    p7 = [(e.offset, e.length) for e in held.extents if e.name == "p7"]
    assert p7[0] == (P7, MIB) and len(p7) == 2 and p7[1][0] <= P7 + 3 * MIB + 512
    assert left == (73727 - 57376 + 1) * 512 - sum(n for _, n in p7)
    assert [e for e in held.extents if e.name != "p7"] == [e for e in m.extents if e.name != "p7"]
    held.check()  # every data range still inside an extent
    dst = junk_target(tmp_path / "dst.raw")
    assert main(["stick", "restore", str(img), str(dst), "--yes", "--coredump-header-only"]) == 0
    assert sha(dst, P7 + 3 * MIB + 512, MIB) == sha(src, P7 + 3 * MIB + 512, MIB)
    assert main(["stick", "verify", str(img), str(dst), "--coredump-header-only"]) == 0


def test_compressed_round_trip(tmp_path: Path) -> None:
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "stick.img.zst"
    assert main(["stick", "backup", str(src), str(img), "--compress"]) == 0
    assert imaging.Manifest.load(str(img)).compression == "zstd"
    assert img.stat().st_size < 11 * MIB
    dst = junk_target(tmp_path / "dst.raw")
    assert main(["stick", "restore", str(img), str(dst), "--yes"]) == 0
    assert extents_equal(src, dst)
    assert main(["stick", "verify", str(img), str(dst)]) == 0


def test_no_gpt_falls_back_to_a_full_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "mbr.raw"
    src.write_bytes(os.urandom(MIB) + bytes(7 * MIB))
    img = tmp_path / "mbr.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    assert "no usable GPT" in capsys.readouterr().out
    m = imaging.Manifest.load(str(img))
    assert m.mode == "full" and m.data_bytes == MIB


def test_verify_names_the_differing_ranges(image: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src, img = image
    dst = tmp_path / "dst.raw"
    dst.write_bytes(src.read_bytes())
    with open(dst, "r+b") as f:
        f.seek(P5 + 1000)  # inside p5's first data range
        f.write(b"\xff")
        f.seek(P7 + 5 * MIB)  # p7 (all zero in the image)
        f.write(b"dump")
    capsys.readouterr()
    assert main(["stick", "verify", str(img), str(dst)]) == 1
    out = capsys.readouterr().out
    assert f"range p5 bytes {P5}-" in out and "sha256 differs" in out
    assert f"p7 bytes {P7 + 5 * MIB}-{P7 + 5 * MIB + 3}: should be zero" in out


def test_corrupt_image_writes_nothing(image: tuple[Path, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _, img = image
    with open(img, "r+b") as f:
        f.seek(P5 + 10)
        f.write(b"rot")
    dst = junk_target(tmp_path / "dst.raw")
    before = dst.read_bytes()
    assert main(["stick", "restore", str(img), str(dst), "--yes"]) == 2
    assert "corrupt" in capsys.readouterr().err
    untouched = dst.read_bytes() == before
    assert untouched


def test_refusals_without_confirmation(image: tuple[Path, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    src, img = image
    dst = junk_target(tmp_path / "dst.raw")
    before = sha(dst, 0, TOTAL * 512)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["stick", "restore", str(img), str(dst)]) == 2
    assert "no terminal to confirm" in capsys.readouterr().err
    assert main(["stick", "wipe", str(dst)]) == 2
    assert main(["stick", "restore", str(img), str(img)]) == 2  # the image itself
    assert main(["stick", "backup", str(src), str(img)]) == 2  # exists, no --yes
    assert sha(dst, 0, TOTAL * 512) == before
    # a new file needs no confirmation: nothing is lost
    assert main(["stick", "restore", str(img), str(tmp_path / "new.raw")]) == 0


def test_confirmation_needs_the_device_name() -> None:
    t = Target("/dev/sdz", True, 16 * 2**30, True)
    confirm([t], yes=False, action="restore", ask=lambda _: "sdz", isatty=lambda: True)
    confirm([t], yes=False, action="restore", ask=lambda _: "/dev/sdz", isatty=lambda: True)
    for answer in ("", "y", "yes", "sdy"):
        with pytest.raises(RefusedError, match="not confirmed"):
            confirm([t], yes=False, action="restore", ask=lambda _, a=answer: a, isatty=lambda: True)
    with pytest.raises(RefusedError, match="--yes"):
        confirm([t], yes=False, action="restore", ask=lambda _: "sdz", isatty=lambda: False)
    confirm([t], yes=True, action="restore", ask=lambda _: "", isatty=lambda: False)


class _StopAfter(ops.Job):
    """A job whose user presses Ctrl-C after ``limit`` bytes."""

    limit = 16 * MIB

    def tick(self, n: int) -> None:
        if self.done + n > self.limit:
            self.cancel.set()
        super().tick(n)


def interrupted_restore(img: Path, dst: Path, after: int) -> ops.Job:
    """Restore ``img`` onto ``dst`` and press Ctrl-C after ``after`` bytes; the job, for its state."""
    data = imaging.open_image(str(img))
    job = _StopAfter("dst")
    job.limit = after
    try:
        with ops.open_target(Target(str(dst), False, dst.stat().st_size, True), data.manifest.size) as dev, \
                pytest.raises(ops.Cancelled):
            ops.restore(data, dev, zero_rest=False, job=job)
    finally:
        data.close()
    return job


def test_interrupted_restore_never_looks_like_a_valid_stick(image: tuple[Path, Path], tmp_path: Path) -> None:
    src, img = image
    dst = tmp_path / "dst.raw"
    layouts.write_gpt(str(dst), TOTAL, LAYOUT)  # an old, valid stick
    with open(dst, "r+b") as f:
        f.seek(P5)
        f.write(os.urandom(12 * MIB))
    job = interrupted_restore(img, dst, after=8 * MIB)
    assert "GPT headers cleared" in job.state
    with pytest.raises(layouts.GptError):
        layouts.read_gpt(str(dst))
    assert main(["stick", "restore", str(img), str(dst), "--yes"]) == 0  # and a rerun finishes it
    assert extents_equal(src, dst)


def test_interrupted_backup_leaves_no_image(tmp_path: Path) -> None:
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "stick.img"
    job = _StopAfter("src")
    job.limit = 2 * MIB
    with pytest.raises(ops.Cancelled):
        ops.backup(str(src), str(img), full=False, compress=False, job=job)
    assert not img.exists() and not Path(str(img) + ".manifest.json").exists()
    assert list(tmp_path.iterdir()) == [src]
    assert "no image written" in job.state


def test_wipe_quick_and_full(image: tuple[Path, Path], tmp_path: Path) -> None:
    src, _ = image
    dst = tmp_path / "w.raw"
    dst.write_bytes(src.read_bytes())
    assert main(["stick", "wipe", str(dst), "--quick", "--yes"]) == 0
    with pytest.raises(layouts.GptError):
        layouts.read_gpt(str(dst))
    data = dst.read_bytes()
    p5_start_zero = data[P5: P5 + MIB] == bytes(MIB)
    deeper_zero = data[P5 + 20000 * 512:][:MIB] == bytes(MIB)
    assert p5_start_zero and not deeper_zero  # p5's first MiB cleared, deeper data untouched
    assert main(["stick", "wipe", str(dst), "--yes"]) == 0
    all_zero = dst.read_bytes() == bytes(TOTAL * 512)
    assert all_zero


def test_full_image_restore_with_one_late_difference_is_exact(tmp_path: Path) -> None:
    """The GPT headers are cleared before the first partition write and must come back even when
    their block was compared (and found equal) earlier, as in a full image."""
    src = make_stick(tmp_path / "src.raw")
    full = tmp_path / "full.img"
    assert main(["stick", "backup", str(src), str(full), "--full"]) == 0
    dst = tmp_path / "dst.raw"
    dst.write_bytes(src.read_bytes())
    with open(dst, "r+b") as f:
        f.seek(P8 + 5 * MIB)
        f.write(b"late change")
    assert main(["stick", "restore", str(full), str(dst), "--yes"]) == 0
    same = dst.read_bytes() == src.read_bytes()
    assert same


def test_interrupted_full_image_restore_never_looks_like_a_valid_stick(tmp_path: Path) -> None:
    """A full image's GPT areas are written last too, after the partition data."""
    src = make_stick(tmp_path / "src.raw")
    full = tmp_path / "full.img"
    assert main(["stick", "backup", str(src), str(full), "--full"]) == 0
    dst = junk_target(tmp_path / "dst.raw")
    job = interrupted_restore(full, dst, after=8 * MIB)
    assert "GPT headers cleared" in job.state
    with pytest.raises(layouts.GptError):
        layouts.read_gpt(str(dst))
    assert main(["stick", "restore", str(full), str(dst), "--yes"]) == 0
    same = dst.read_bytes() == src.read_bytes()
    assert same


def test_backup_never_replaces_a_folder_or_a_special_file(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = make_stick(tmp_path / "src.raw")
    folder = tmp_path / "images"
    folder.mkdir()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target in (folder, fifo):
        capsys.readouterr()
        assert main(["stick", "backup", str(src), str(target), "--yes"]) == 2
        err = capsys.readouterr().err
        assert "is not a regular file" in err and err.count("\n") == 1
    assert folder.is_dir() and not list(folder.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "pipe", "src.raw"]  # no leftovers


def test_corrupt_image_creates_and_extends_no_target(image: tuple[Path, Path], tmp_path: Path) -> None:
    _, img = image
    with open(img, "r+b") as f:
        f.seek(P5 + 10)
        f.write(b"rot")
    small = tmp_path / "small.raw"
    small.write_bytes(b"x" * MIB)
    new = tmp_path / "new.raw"
    assert main(["stick", "restore", str(img), str(small), str(new), "--yes"]) == 2
    assert small.stat().st_size == MIB and not new.exists()


def test_bad_inputs_get_one_line_and_exit_2(image: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src, img = image
    mpath = Path(f"{img}.manifest.json")
    good = mpath.read_text()
    cases: list[tuple[list[str], str]] = [
        (["stick", "verify", str(img), str(tmp_path)], "neither a block device nor a regular file"),
        (["stick", "restore", str(tmp_path / "gone.img.zst"), str(tmp_path / "t.raw"), "--yes"], "not found"),
    ]
    for argv, want in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert want in err and err.count("\n") == 1 and "Traceback" not in err, err
    broken = {"[]": "not a JSON object",
              good.replace('"offset": 0', '"offset": "zero"', 1): "whole numbers",
              good.replace('"extents"', '"extentz"', 1): "malformed manifest",
              good.replace('"sector_size": 512', '"sector_size": 7', 1): "sector size 7"}
    for text, want in broken.items():
        mpath.write_text(text)
        for argv in (["stick", "verify", str(img), str(src)],
                     ["stick", "restore", str(img), str(tmp_path / "t.raw"), "--yes"]):
            capsys.readouterr()
            assert main(argv) == 2, (argv, text[:40])
            err = capsys.readouterr().err
            assert want in err and err.count("\n") == 1, err
    assert not (tmp_path / "t.raw").exists()


def test_a_target_too_large_for_the_file_system_is_one_line(image: tuple[Path, Path], tmp_path: Path) -> None:
    """A file-size limit (as on FAT32, here RLIMIT_FSIZE) makes creating the target fail: one line."""
    _, img = image

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 * MIB, 32 * MIB))

    res = subprocess.run([sys.executable, "-m", "labctl", "stick", "restore", str(img), str(tmp_path / "t.raw"),
                          "--yes"], capture_output=True, text=True, timeout=60, preexec_fn=limit,
                         env=dict(os.environ, CI="true"), check=False)
    assert res.returncode == 2, res.stderr
    assert "File too large" in res.stderr and res.stderr.count("\n") == 1, res.stderr



def test_ctrl_c_just_after_unpacking_a_compressed_image_leaves_no_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.commands import stick as cmd

    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "stick.img.zst"
    assert main(["stick", "backup", str(src), str(img), "--compress"]) == 0
    unpack = tmp_path / "unpack"
    unpack.mkdir()
    monkeypatch.setenv("LABCTL_TMP", str(unpack))

    def late_ctrl_c(jobs: list[tuple[ops.Job, Any]], quiet_mode: bool) -> list[Any]:
        for _, fn in jobs:
            fn()  # the work finished ...
        raise KeyboardInterrupt  # ... and Ctrl-C came before its result was taken

    monkeypatch.setattr(cmd, "run_jobs", late_ctrl_c)
    assert main(["stick", "restore", str(img), str(tmp_path / "t.raw"), "--yes"]) == 130
    assert list(unpack.iterdir()) == []


def test_held_for_writing_reads_qemus_write_permission_lock(tmp_path: Path) -> None:
    """QEMU locks byte 100 + n for each permission n it holds; n=1 is write (byte 101)."""
    f = tmp_path / "seat1.img"
    f.write_bytes(b"")
    st = os.stat(f)
    me = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    reading = f"1: OFDLCK ADVISORY  READ -1 {me} 201 201\n2: OFDLCK ADVISORY  READ -1 {me} 100 100\n"
    writing = f"1: OFDLCK ADVISORY  READ -1 {me} 201 201\n2: OFDLCK ADVISORY  READ -1 {me} 100 101\n"
    other = "2: OFDLCK ADVISORY  READ -1 fe:00:1 100 101\n"
    assert not imaging.held_for_writing(str(f), reading)
    assert imaging.held_for_writing(str(f), writing)
    assert not imaging.held_for_writing(str(f), other)
    assert imaging.held_for_writing(str(f), f"3: POSIX  ADVISORY  WRITE 77 {me} 0 EOF\n")
    assert not imaging.held_for_writing(str(tmp_path / "gone"), writing)


def test_a_backup_never_deletes_its_source_and_asks_before_replacing_a_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_stick(tmp_path / "s.img.manifest.json")  # a source named like the image's manifest
    before = src.read_bytes()
    assert main(["stick", "backup", str(src), str(tmp_path / "s.img"), "--yes"]) == 2
    assert "replace its own source" in capsys.readouterr().err
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [src.name]
    other = make_stick(tmp_path / "other.raw")
    old_manifest = tmp_path / "t.img.manifest.json"
    old_manifest.write_text("{}")
    assert main(["stick", "backup", str(other), str(tmp_path / "t.img")]) == 2  # no terminal to ask on
    assert "t.img.manifest.json exists" in capsys.readouterr().err
    assert old_manifest.read_text() == "{}" and not (tmp_path / "t.img").exists()


def test_a_crc_correct_gpt_with_overlapping_partitions_is_copied_in_full(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src.raw"
    overlapping = [*LAYOUT[:2], layouts.TableEntry(6, 30000, 57343, layouts.BASIC_DATA, "linuxNative", 0)]
    layouts.write_gpt(str(src), TOTAL, overlapping)
    with open(src, "r+b") as f:
        f.seek(35000 * 512)
        f.write(b"inside both p5 and p6")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img)]) == 0
    assert "layout does not" in capsys.readouterr().out
    m = imaging.Manifest.load(str(img))
    assert m.mode == "full" and img.read_bytes() == src.read_bytes()


def test_wiping_an_image_file_keeps_it_sparse(image: tuple[Path, Path], tmp_path: Path) -> None:
    src, _ = image
    dst = tmp_path / "w.raw"
    dst.write_bytes(src.read_bytes())
    assert main(["stick", "wipe", str(dst), "--yes"]) == 0
    assert dst.stat().st_size == TOTAL * 512 and dst.stat().st_blocks == 0
    assert dst.read_bytes() == bytes(TOTAL * 512)


def test_two_hard_links_to_one_target_are_named_twice(image: tuple[Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _, img = image
    t = tmp_path / "t.raw"
    t.write_bytes(bytes(TOTAL * 512))
    os.link(t, tmp_path / "t2.raw")
    assert main(["stick", "restore", str(img), str(t), str(tmp_path / "t2.raw"), "--yes"]) == 2
    assert "named twice" in capsys.readouterr().err
    assert t.read_bytes() == bytes(TOTAL * 512)


def test_layout_reads_a_compressed_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_stick(tmp_path / "src.raw")
    img = tmp_path / "s.img"
    assert main(["stick", "backup", str(src), str(img), "--compress"]) == 0
    capsys.readouterr()
    assert main(["layout", "--json", str(img)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["partitions"]) == len(LAYOUT)
    assert not [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob(f"{imaging.UNPACK_PREFIX}{os.getpid()}.*")]


@pytest.mark.parametrize(("key", "value"), [("table", 5), ("size", 1 << 60), ("mode", "sideways"),
                                            ("source", "usb"), ("extents", [{"offset": "0", "length": 1, "name": 3}])])
def test_a_manifest_with_a_field_of_the_wrong_type_creates_nothing(image: tuple[Path, Path], tmp_path: Path,
                                                                    key: str, value: object,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, img = image
    mpath = Path(imaging.manifest_path(str(img)))
    doc = json.loads(mpath.read_text())
    doc[key] = value
    mpath.write_text(json.dumps(doc))
    target = tmp_path / "new-target.raw"
    assert main(["stick", "restore", str(img), str(target), "--yes", "--coredump-header-only"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "manifest" in err, err
    assert not target.exists()


@pytest.mark.parametrize("verb", ["restore", "wipe"])
@pytest.mark.parametrize("swap", ["link", "file"])
def test_a_target_replaced_while_the_user_confirms_is_not_written(
        image: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], verb: str, swap: str) -> None:
    """The target is checked, then the prompt waits; what the path names by then is not what was
    confirmed (a link to another file, another file moved there): refused, nothing written anywhere."""
    _, img = image
    dst = junk_target(tmp_path / "dst.raw")
    victim = junk_target(tmp_path / "victim.raw")
    before = sha(victim, 0, TOTAL * 512)

    def answer(prompt: str) -> str:
        dst.unlink()
        if swap == "link":
            dst.symlink_to(victim)
        else:
            os.link(victim, dst)
        return dst.name

    monkeypatch.setattr("builtins.input", answer)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    argv = ["stick", "restore", str(img), str(dst)] if verb == "restore" else ["stick", "wipe", str(dst)]
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the prompt's lines
    assert last.startswith("labctl: ") and "nothing written" in last, last
    assert sha(victim, 0, TOTAL * 512) == before


def test_a_backup_makes_no_image_file_in_dev(image: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    src, _ = image
    target = "/dev/sdz9labctl"  # 'backup IMG DEV' typed for a restore, the stick not plugged in
    assert main(["stick", "backup", str(src), target, "--yes"]) == 2
    assert "no image file in /dev" in capsys.readouterr().err
    assert not os.path.lexists(target)


def test_a_restore_through_a_link_to_a_missing_device_makes_no_file_in_dev(
        image: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, img = image
    (tmp_path / "stick").symlink_to("/dev/sdz9labctl")  # the stick it named is not plugged in
    assert main(["stick", "restore", str(img), str(tmp_path / "stick"), "--yes"]) == 2
    assert "no such device" in capsys.readouterr().err
    assert not os.path.lexists("/dev/sdz9labctl")
