"""prove-layout's module: recorded ``partedUtil getptbl`` and ``ls -lh /`` texts as the ESXi Shell prints them
(CR LF line ends, the command echo and the prompt around them), compared with ESXi's documented layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl import layouts, prove
from labctl.cli import main
from labctl.errors import InputError

GIB = 2**30

# [root@localhost:~] partedUtil getptbl /dev/disks/mpx.vmhba32:C0:T0:L0   on the seed's 16 GB stick
STICK_16G = (
    "partedUtil getptbl /dev/disks/mpx.vmhba32:C0:T0:L0\r\n"
    "gpt\r\n"
    "2088 255 63 33554432\r\n"
    "1 64 8191 C12A7328F81F11D2BA4B00A0C93EC93B systemPartition 128\r\n"
    "5 8224 520191 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative 0\r\n"
    "6 520224 1032191 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative 0\r\n"
    "7 1032224 1257471 9D27538040AD11DBBF97000C2911D1B8 vmkDiagnostic 0\r\n"
    "8 1257504 1843199 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative 0\r\n"
    "9 1843200 7086079 9D27538040AD11DBBF97000C2911D1B8 vmkDiagnostic 0\r\n"
    "[root@localhost:~] "
)
LS_ROOT_STICK = """\
total 565
lrwxrwxrwx    1 root     root          49 Dec  1 10:02 altbootbank -> /vmfs/volumes/6f1e0a44-3c3b2b2f-1a7e-9d3e0c4f5a21
drwxr-xr-x    1 root     root         512 Dec  1 10:01 bin
lrwxrwxrwx    1 root     root           6 Dec  1 10:02 locker -> /store
lrwxrwxrwx    1 root     root          12 Dec  1 10:02 scratch -> /tmp/scratch
drwxrwxrwt    1 root     root         512 Dec  1 10:02 tmp
"""
LOCKER = "/vmfs/volumes/5c1a7b3e-91d2e6f0-4b1c-000c29a1b2c3/.locker"
LS_ROOT_DATASTORE = LS_ROOT_STICK.replace("12 Dec  1 10:02 scratch -> /tmp/scratch",
                                          f"57 Dec  1 10:09 scratch -> {LOCKER}")


def table_text(total: int, media: layouts.Media) -> str:
    return layouts.format_getptbl(layouts.Table("gpt", total, tuple(layouts.expected_layout(total, media))))


def test_the_seed_16g_stick_is_proven() -> None:
    p = prove.prove(STICK_16G, "usb", disk="mpx.vmhba32:C0:T0:L0", ls_root=LS_ROOT_STICK, expect_scratch="/tmp/scratch")
    assert p.ok, p.diffs
    assert [e.number for e in p.table.entries] == [1, 5, 6, 7, 8, 9]
    assert p.scratch == "/tmp/scratch"
    text = p.text()
    assert " 9    1843200    7086079  vmkDiagnostic      0   1843200-7086079 vmkDiagnostic" in text
    assert "verdict: matches ESXi's documented 6.x usb layout" in text
    assert "ESXi's 6.x usb layout for 16.00 GiB (1,5,6,7,8,9)" in p.summary()


@pytest.mark.parametrize(("size", "media", "numbers"), [
    (1 * GIB, "usb", [1, 5, 6, 7, 8]),
    (10 * GIB, "hdd", [1, 5, 6, 7, 8, 9, 2, 3]),
    (16 * GIB, "usb", [1, 5, 6, 7, 8, 9]),
])
def test_the_seed_media(size: int, media: layouts.Media, numbers: list[int]) -> None:
    p = prove.prove(table_text(size // 512, media), media)
    assert p.ok and [e.number for e in p.table.entries] == numbers


def test_a_16g_stick_proven_as_a_hard_disk_names_partitions_and_fields() -> None:
    p = prove.prove(STICK_16G, "hdd", disk="mpx.vmhba32:C0:T0:L0")
    assert not p.ok
    lines = [d.line() for d in p.diffs]
    assert "partition 2: missing, expected 7086080-15472639 linuxNative" in lines
    assert "partition 3: missing, expected 15472640-33554398 vmfs" in lines
    assert {(d.partition, d.field) for d in p.diffs} == {(2, "presence"), (3, "presence")}
    assert "verdict: DOES NOT MATCH" in p.text()
    assert " 2   (absent)" in p.text() and "NO" in p.text()


def test_a_wrong_end_and_type_are_named() -> None:
    bad = STICK_16G.replace("9 1843200 7086079 9D27538040AD11DBBF97000C2911D1B8 vmkDiagnostic",
                            "9 1843200 7086000 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative")
    p = prove.prove(bad, "usb")
    assert [d.line() for d in p.diffs] == [
        "partition 9: end is 7086000, expected 7086079",
        "partition 9: type is EBD0A0A2B9E5443387C068B6B72699C7, expected 9D27538040AD11DBBF97000C2911D1B8",
    ]
    assert [r["ok"] for r in p.rows()] == [True, True, True, True, True, False]


def test_an_extra_partition_and_the_order() -> None:
    p = prove.prove(table_text(1 * GIB // 512, "usb").replace(
        "8 1257504", "9 1843200 1900000 9D27538040AD11DBBF97000C2911D1B8 vmkDiagnostic 0\n8 1257504"), "usb")
    fields = [(d.partition, d.field) for d in p.diffs]
    assert (9, "presence") in fields and (None, "order") not in fields


def test_scratch_on_the_datastore_locker() -> None:
    p = prove.prove(STICK_16G, "usb", ls_root=LS_ROOT_DATASTORE, expect_scratch=".locker")
    assert p.ok and p.scratch == "/vmfs/volumes/5c1a7b3e-91d2e6f0-4b1c-000c29a1b2c3/.locker"
    q = prove.prove(STICK_16G, "usb", ls_root=LS_ROOT_STICK, expect_scratch=".locker")
    assert [d.line() for d in q.diffs] == ["disk: scratch is /tmp/scratch, expected /vmfs/volumes/<datastore>/.locker"]
    r = prove.prove(STICK_16G, "usb", ls_root="total 0\r\n", expect_scratch="/tmp/scratch")
    assert r.diffs[0].field == "scratch"


def test_the_host_gpt_beside_it() -> None:
    host = layouts.Table("gpt", 33554432, tuple(layouts.expected_layout(33554432, "usb")))
    p = prove.prove(STICK_16G, "usb", host_table=host)
    assert p.ok and all(r["host_gpt"] != "absent" for r in p.rows())
    other = layouts.Table("gpt", 33554432, tuple(layouts.expected_layout(33554432, "usb"))[:5])
    assert prove.prove(STICK_16G, "usb", host_table=other).diffs[-1].field == "host GPT"


def test_not_a_table_is_input_error() -> None:
    with pytest.raises(InputError, match="no table in the output"):
        prove.prove("Error: Could not stat device mpx.vmhba9:C0:T0:L0- No such file or directory.\r\n", "usb")


def test_written_into_the_run_folder(tmp_path: Path) -> None:
    p = prove.prove(STICK_16G, "hdd", disk="mpx.vmhba32:C0:T0:L0", ls_root=LS_ROOT_STICK)
    js, txt = prove.write(p, tmp_path)
    doc = json.loads(js.read_text())
    assert doc["verdict"] == "mismatch" and doc["partitions_seen"] == "1 5 6 7 8 9"
    assert doc["rows"][0] == {"partition": 1, "start": 64, "end": 8191, "type": "systemPartition", "attr": 128,
                              "expected_start": 64, "expected_end": 8191, "expected_type": "systemPartition",
                              "ok": True}
    assert "partition 3: missing, expected 15472640-33554398 vmfs" in doc["diff"]
    assert txt.read_text() == p.text()
    # the run report reads the JSON's first list of objects as its table
    from labctl.report import proof_table
    table = proof_table(doc)
    assert table is not None and table[0][0] == "partition" and len(table[1]) == 8


def test_layout_of_a_16g_stick_image_as_hdd_fails_with_a_readable_diff(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "stick.img"
    layouts.write_gpt(str(img), 16 * GIB // 512, layouts.expected_layout(16 * GIB // 512, "usb"))
    assert main(["layout", str(img), "--expect", "esxi6", "--media", "usb"]) == 0
    capsys.readouterr()
    assert main(["layout", str(img), "--expect", "esxi6", "--media", "hdd"]) == 1
    out = capsys.readouterr().out
    assert "# does not match the ESXi 6.x hdd layout for 33554432 sectors:" in out
    assert "- partition 2 missing: expected 2 7086080 15472639 EBD0A0A2B9E5443387C068B6B72699C7 linuxNative 0" in out
    assert "- partition 3 missing: expected 3 15472640 33554398 AA31E02A400F11DB9590000C2911D1B8 vmfs 0" in out
