"""GPT reader/writer, partedUtil getptbl format, ESXi 6.x layouts and the comparison."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from labctl import layouts as L
from labctl.cli import main

STICK_16G = 33554432  # sectors
STICK_1G = 2097152

GETPTBL_16G_USB = """\
gpt
2088 255 63 33554432
1 64 8191 C12A7328F81F11D2BA4B00A0C93EC93B systemPartition 128
5 8224 520191 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative 0
6 520224 1032191 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative 0
7 1032224 1257471 9D27538040AD11DBBF97000C2911D1B8 vmkDiagnostic 0
8 1257504 1843199 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative 0
9 1843200 7086079 9D27538040AD11DBBF97000C2911D1B8 vmkDiagnostic 0
"""


def make_stick(path: Path, total: int = STICK_16G, media: L.Media = "usb") -> Path:
    L.write_gpt(str(path), total, L.expected_layout(total, media))
    return path


def test_read_written_gpt_prints_like_partedutil(tmp_path: Path) -> None:
    gpt = L.read_gpt(str(make_stick(tmp_path / "s.img")))
    assert gpt.primary_ok and gpt.backup_ok and gpt.pmbr_ok and not gpt.problems
    assert L.format_getptbl(gpt) == GETPTBL_16G_USB
    assert [p.number for p in gpt.partitions] == [1, 5, 6, 7, 8, 9]
    assert gpt.metadata_extents() == [(0, 33, "gpt-primary"), (STICK_16G - 33, STICK_16G - 1, "gpt-backup")]
    assert L.compare(gpt, L.expected_layout(STICK_16G, "usb")) == []


def test_expected_layouts_by_size_and_media() -> None:
    nums = lambda t, m: [e.number for e in L.expected_layout(t, m)]  # noqa: E731
    assert nums(STICK_1G, "usb") == [1, 5, 6, 7, 8]  # the seed's 1 GB stick
    assert nums(STICK_16G, "usb") == [1, 5, 6, 7, 8, 9]  # the seed's 16 GB stick: never 2 or 3
    ten_gb = 10 * 2**30 // 512
    full = L.expected_layout(ten_gb, "hdd")
    assert [e.number for e in full] == [1, 5, 6, 7, 8, 9, 2, 3]
    assert (full[-1].start, full[-1].end, full[-1].type_name) == (15472640, ten_gb - 34, "vmfs")
    six_gb = 6 * 2**30 // 512
    small = L.expected_layout(six_gb, "hdd")
    assert [e.number for e in small] == [1, 5, 6, 7, 8, 2, 3]
    assert small[5].start == 1843200 and small[6].start == small[5].end + 1 and small[6].end == six_gb - 34
    # the 3.4 GiB boundary, computed the way the simulator does
    assert nums(34 * 2097152 // 10, "usb")[-1] == 9 and nums(34 * 2097152 // 10 - 1, "usb")[-1] == 8


def test_getptbl_parse_round_trip_and_esxi_shell_noise() -> None:
    table = L.parse_getptbl("\r\n" + GETPTBL_16G_USB.replace("\n", "\r\n") + "\n")
    assert table.cylinders == 2088 and table.total_sectors == STICK_16G
    assert L.format_getptbl(table) == GETPTBL_16G_USB
    assert L.compare(table, L.expected_layout(STICK_16G, "usb")) == []


def test_parse_getptbl_names_the_bad_line() -> None:
    with pytest.raises(L.InputError, match="line 3"):
        L.parse_getptbl("gpt\n2088 255 63 33554432\n1 64 systemPartition\n")


def test_compare_reports_readable_differences() -> None:
    table = L.parse_getptbl(GETPTBL_16G_USB.replace("5 8224 520191", "5 8224 520190")
                            .replace("9 1843200 7086079 9D27538040AD11DBBF97000C2911D1B8 vmkDiagnostic 0\n", "")
                            + "2 7086080 15472639 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative 0\n")
    diffs = L.compare(table, L.expected_layout(STICK_16G, "usb"))
    assert "partition 5: end is 520190, expected 520191" in diffs
    assert any(d.startswith("partition 9 missing") for d in diffs)
    assert any(d.startswith("partition 2 not expected") for d in diffs)


def test_compare_checks_on_disk_order() -> None:
    lines = GETPTBL_16G_USB.splitlines()
    swapped = "\n".join([*lines[:3], lines[4], lines[3], *lines[5:]]) + "\n"
    diffs = L.compare(L.parse_getptbl(swapped), L.expected_layout(STICK_16G, "usb"))
    assert diffs == ["on-disk order is 1 6 5 7 8 9, expected 1 5 6 7 8 9"]


def test_corrupt_primary_header_falls_back_to_backup(tmp_path: Path) -> None:
    img = make_stick(tmp_path / "s.img", STICK_1G)
    with open(img, "r+b") as f:
        f.seek(512 + 40)  # first usable LBA inside the primary header: CRC now wrong
        f.write(struct.pack("<Q", 35))
    gpt = L.read_gpt(str(img))
    assert not gpt.primary_ok and gpt.backup_ok
    assert any("header CRC32 mismatch" in p for p in gpt.problems)
    assert [p.number for p in gpt.partitions] == [1, 5, 6, 7, 8]
    diffs = L.compare(gpt, L.expected_layout(STICK_1G, "usb"))
    assert any("CRC32" in d for d in diffs)


def test_damaged_primary_header_fields_are_not_trusted(tmp_path: Path) -> None:
    """A primary header that fails its CRC says nothing reliable, e.g. where its entries are: the
    GPT areas a backup copies stay the standard ones (LBA 2...), not a garbage LBA."""
    img = make_stick(tmp_path / "s.img", STICK_1G)
    with open(img, "r+b") as f:
        f.seek(512 + 72)  # partition entries LBA
        f.write(struct.pack("<Q", 1_000_000))
    gpt = L.read_gpt(str(img))
    assert not gpt.primary_ok and gpt.backup_ok
    assert gpt.primary_entries_lba == 2
    assert gpt.metadata_extents()[0] == (0, 33, "gpt-primary")


def test_corrupt_entries_are_detected(tmp_path: Path) -> None:
    img = make_stick(tmp_path / "s.img", STICK_1G)
    with open(img, "r+b") as f:
        f.seek(2 * 512 + 32)  # first partition's start LBA in the primary entry array
        f.write(struct.pack("<Q", 65))
    gpt = L.read_gpt(str(img))
    assert any("entry array CRC32 mismatch" in p for p in gpt.problems)
    assert gpt.partitions[0].first_lba == 64  # taken from the intact backup


def test_no_gpt_is_an_input_error(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1 << 20))
    with pytest.raises(L.GptError, match="no valid GPT"):
        L.read_gpt(str(blank))
    with pytest.raises(L.GptError):
        L.read_gpt(str(tmp_path / "missing.img"))


def test_layout_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = make_stick(tmp_path / "s.img")
    assert main(["layout", str(img), "--expect", "esxi6"]) == 0
    assert capsys.readouterr().out.startswith(GETPTBL_16G_USB)
    assert main(["layout", str(img), "--expect", "esxi6", "--media", "hdd"]) == 1
    assert "partition 2 missing" in capsys.readouterr().out
    assert main(["layout", str(img), "--json", "--expect", "esxi6"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["matches"] is True and [p["number"] for p in doc["partitions"]] == [1, 5, 6, 7, 8, 9]
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(4096))
    assert main(["layout", str(blank)]) == 2
    assert "no valid GPT" in capsys.readouterr().err
    assert main(["layout", os.fspath(tmp_path / "nope")]) == 2


# ------------------------------------------------------------------------------- ESXi 7.0/8.0 (esxi8)
# Numbers as published for ESXi 7.0/8.0 (partedUtil getptbl of real installs), not derived from the rule.
E8_P1 = (1, 64, 204863)
E8_CLASS_10_32 = [(5, 208896, 2306047), (6, 2308096, 4405247)]  # 1 GiB bootbanks, 7 from 4407296
E8_LARGE = [(5, 208896, 8595455), (6, 8597504, 16984063)]  # 4 GiB bootbanks, 7 from 16986112
GIB_SECTORS = 2097152


def _rows(total: int, sms: L.MediaSize = "default") -> list[tuple[int, int, int, str]]:
    return [(e.number, e.start, e.end, e.type_name) for e in L.expected_layout(total, "usb", "esxi8", sms)]


@pytest.mark.parametrize(("gib", "bootbanks", "p7_start"), [
    (16, E8_CLASS_10_32, 4407296),  # a 16 GB stick
    (32, E8_LARGE, 16986112),  # a 32 GB stick: 100M / 4G / 4G / the rest
    (64, E8_LARGE, 16986112),  # a 64 GB disk: OSData to the end, no datastore
])
def test_esxi8_layouts_of_sticks_and_small_disks(gib: int, bootbanks: list[tuple[int, int, int]],
                                                 p7_start: int) -> None:
    total = gib * GIB_SECTORS
    rows = _rows(total)
    assert [r[:3] for r in rows] == [E8_P1, *bootbanks, (7, p7_start, total - 34)]
    assert [r[3] for r in rows] == ["systemPartition", "linuxNative", "linuxNative", "vmfsl"]
    assert L.expected_layout(total, "hdd", "esxi8") == L.expected_layout(total, "usb", "esxi8")  # same on both


def test_esxi8_large_disk_gets_a_datastore_after_128_gib_of_osdata() -> None:
    total = 160 * GIB_SECTORS
    rows = _rows(total)
    assert [r[:3] for r in rows] == [E8_P1, *E8_LARGE, (7, 16986112, 268435455), (8, 268437504, total - 34)]
    assert rows[-1][3] == "vmfs"
    # systemMediaSize=min on an 80 GiB disk: OSData capped at 32 GiB, the rest a datastore; max: no datastore
    min80 = _rows(80 * GIB_SECTORS, "min")
    assert [r[:3] for r in min80][-2:] == [(7, 16986112, 67108863), (8, 67110912, 80 * GIB_SECTORS - 34)]
    assert [r[0] for r in _rows(160 * GIB_SECTORS, "max")] == [1, 5, 6, 7]
    assert _rows(160 * GIB_SECTORS, "max")[-1][2] == 160 * GIB_SECTORS - 34
    # a disk just over the 128 GiB cap has too little left for a datastore (published: only over 142 GB)
    assert [r[0] for r in _rows(130 * GIB_SECTORS)] == [1, 5, 6, 7]


def test_esxi8_bootbank_classes() -> None:
    assert L.esxi8_bootbank_sectors(8 * GIB_SECTORS) == 1024000  # 500 MiB under 10 GiB
    assert L.esxi8_bootbank_sectors(10 * GIB_SECTORS) == 2097152  # a 10 GiB disk got 1 GiB bootbanks
    assert L.esxi8_bootbank_sectors(int(29.5 * GIB_SECTORS)) == 8386560  # a stick sold as 32 GB: 4 GiB


def test_esxi8_compare_names_the_difference_with_an_esxi6_stick(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    img = make_stick(tmp_path / "s.img")  # an ESXi 6.x layout on 16 GiB
    assert main(["layout", str(img), "--expect", "esxi8"]) == 1
    out = capsys.readouterr().out
    assert "does not match the ESXi 7.0/8.0 usb layout" in out and "partition 5: start is 8224, expected 208896" in out
    e8 = tmp_path / "e8.img"
    L.write_gpt(str(e8), STICK_16G, L.expected_layout(STICK_16G, "usb", "esxi8"))
    assert main(["layout", str(e8), "--expect", "esxi8"]) == 0
    assert "matches the ESXi 7.0/8.0 usb layout" in capsys.readouterr().out
    with pytest.raises(L.InputError, match="systemMediaSize"):
        L.expected_layout(STICK_16G, "usb", "esxi8", "huge")  # type: ignore[arg-type]
