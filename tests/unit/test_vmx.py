"""The .vmx reader/writer keeps user edits; rendering gives the seed's VM and nothing more."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labctl.errors import InputError
from labctl.spec import load_lab
from labctl.vmx import VmxFile, render_vmx, vnc_credentials, write_vmx

USER_VMX = """\
.encoding = "UTF-8"
# my notes: this VM is for the Tuesday class
displayName = "esxi-usb"
MemSize = "8192"
  numvcpus="2"
sound.present = "FALSE"
weird.key = unquoted
"""

LAB = """\
name: usb-install
backend: vmware
iso: isos/esxi.iso
stick: {usb: {vendor_id: 0x0781, product_id: 0x5567}}
install: {root_password: {env: LAB_ROOT_PASSWORD}}
"""


def test_round_trip_is_byte_exact() -> None:
    assert VmxFile.parse(USER_VMX).text() == USER_VMX


def test_lookup_is_case_insensitive_and_set_keeps_position() -> None:
    vmx = VmxFile.parse(USER_VMX)
    assert vmx["memsize"] == "8192" and vmx.get("NUMVCPUS") == "2" and vmx["weird.key"] == "unquoted"
    vmx.set("memsize", "16384")
    vmx.set("usb.present", "TRUE")
    lines = vmx.text().splitlines()
    assert lines[3] == 'MemSize = "16384"'  # the user's spelling and place kept
    assert lines[-1] == 'usb.present = "TRUE"'
    assert lines[1] == "# my notes: this VM is for the Tuesday class"
    assert vmx.remove("SOUND.present") and "sound.present" not in vmx


def test_quotes_in_values_are_escaped() -> None:
    vmx = VmxFile()
    vmx.set("annotation", 'say "hi" | bye')
    assert vmx.text() == 'annotation = "say |22hi|22 |7C bye"\n'


@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9_.:]{0,20}", fullmatch=True),
                          st.text(alphabet=st.characters(blacklist_characters='"|\n\r', codec="utf-8"), max_size=30)),
                max_size=20))
def test_any_written_file_reads_back(pairs: list[tuple[str, str]]) -> None:
    vmx = VmxFile()
    for k, v in pairs:
        vmx.set(k, v.strip())
    again = VmxFile.parse(vmx.text())
    assert again.text() == vmx.text()
    for k, _ in pairs:
        assert again.get(k) == vmx.get(k)


@pytest.fixture
def lab_file(tmp_path: Path) -> Path:
    p = tmp_path / "lab.yaml"
    p.write_text(LAB)
    return p


def rendered(lab_file: Path) -> VmxFile:
    lab = load_lab(lab_file)
    seat = lab.seat_list()[0]
    return VmxFile.parse(render_vmx(lab, seat, vnc_credentials(seat)))


def test_render_has_every_seed_key(lab_file: Path) -> None:
    vmx = rendered(lab_file)
    expected = {
        "firmware": "efi", "numvcpus": "2", "memsize": "8192", "guestOS": "vmkernel65", "vhv.enable": "TRUE",
        "usb.present": "TRUE", "ehci.present": "TRUE", "usb_xhci.present": "TRUE",
        "usb.autoConnect.device0": "vid:0x0781 pid:0x5567 autoclean:1",
        "sata0.present": "TRUE", "sata0:1.present": "TRUE", "sata0:1.deviceType": "cdrom-image",
        "sata0:1.fileName": str((lab_file.parent / "isos/esxi.iso").resolve()), "sata0:1.startConnected": "TRUE",
        "ethernet0.connectionType": "nat", "ethernet0.virtualDev": "vmxnet3",
        "RemoteDisplay.vnc.enabled": "TRUE", "RemoteDisplay.vnc.ip": "127.0.0.1",
        "serial0.present": "TRUE", "serial0.fileType": "pipe", "msg.autoanswer": "TRUE",
        "nvram": "usb-install.nvram", "displayName": "usb-install",
    }
    for key, value in expected.items():
        assert vmx.get(key) == value, key
    assert 5901 <= int(vmx["RemoteDisplay.vnc.port"]) <= 5999
    assert len(vmx["RemoteDisplay.vnc.password"]) == 8


def test_render_has_no_hard_disk(lab_file: Path) -> None:
    keys = [k.lower() for k in rendered(lab_file).keys()]  # noqa: SIM118 (a list of keys, not a dict)
    for prefix in ("scsi0:0", "sata0:0", "nvme0:0", "ide0:0"):
        assert not any(k.startswith(prefix) for k in keys), prefix


def test_render_is_deterministic_and_credentials_are_kept_private(lab_file: Path) -> None:
    first, second = rendered(lab_file).text(), rendered(lab_file).text()
    assert first == second
    creds_file = load_lab(lab_file).seat_list()[0].state_dir / "vnc.json"
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600


def test_guest_os_follows_the_esxi_version(tmp_path: Path) -> None:
    p = tmp_path / "lab.yaml"
    p.write_text(LAB + "esxi: '7.0'\n")
    assert rendered(p)["guestOS"] == "vmkernel7"


def test_write_keeps_user_keys(tmp_path: Path, lab_file: Path) -> None:
    lab = load_lab(lab_file)
    seat = lab.seat_list()[0]
    out = tmp_path / "out" / "seat.vmx"
    text = render_vmx(lab, seat, vnc_credentials(seat))
    write_vmx(out, text)
    out.write_text(out.read_text() + 'sound.present = "TRUE"\n')
    write_vmx(out, text)
    again = VmxFile.load(out)
    assert again["sound.present"] == "TRUE" and again["memsize"] == "8192"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_image_stick_cannot_go_to_vmware(tmp_path: Path) -> None:
    p = tmp_path / "lab.yaml"
    p.write_text(LAB.replace("{usb: {vendor_id: 0x0781, product_id: 0x5567}}", "{image: s.img, size: 16G}"))
    lab = load_lab(p)
    seat = lab.seat_list()[0]
    with pytest.raises(InputError, match="image sticks are for the qemu backend"):
        render_vmx(lab, seat, vnc_credentials(seat))


def test_a_windows_1252_vmx_is_read_in_its_own_encoding_and_keeps_the_users_keys(tmp_path: Path) -> None:
    path = tmp_path / "seat.vmx"
    path.write_bytes('.encoding = "windows-1252"\ndisplayName = "Schulungsraum Müller – Platz 3"\n'
                     'annotation = "café"\n'.encode("cp1252"))
    assert VmxFile.load(path)["displayName"] == "Schulungsraum Müller – Platz 3"
    lab = load_lab(_lab(tmp_path))
    seat = lab.seat_list()[0]
    write_vmx(path, render_vmx(lab, seat, vnc_credentials(seat)))
    merged = VmxFile.load(path)
    assert merged["annotation"] == "café" and merged[".encoding"] == "UTF-8"
    assert "café" in path.read_text(encoding="utf-8")  # written as UTF-8, as its .encoding now says


def test_an_undecodable_or_unknown_encoding_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "seat.vmx"
    path.write_bytes(b'.encoding = "UTF-8"\ndisplayName = "\xff\xfe"\n')
    with pytest.raises(InputError, match=r"seat.vmx:2: not valid UTF-8"):
        VmxFile.load(path)
    path.write_bytes(b'.encoding = "klingon"\n')
    with pytest.raises(InputError, match="not an encoding"):
        VmxFile.load(path)


@pytest.mark.parametrize("name", ["rot13", "base64", "undefined", "zlib"])
def test_an_encoding_name_that_is_not_a_text_encoding_is_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / "seat.vmx"
    path.write_bytes(f'.encoding = "{name}"\ndisplayName = "x"\n'.encode())
    with pytest.raises(InputError, match="not a text encoding") as info:
        VmxFile.load(path)
    assert "\n" not in str(info.value)


def test_a_symlinked_vmx_is_refused_not_merged_with_its_target(tmp_path: Path) -> None:
    target = tmp_path / "other-vm.vmx"
    target.write_text('.encoding = "UTF-8"\nsecret.key = "the other VM"\n')
    before = target.read_bytes()
    link = tmp_path / "seat.vmx"
    link.symlink_to(target)
    lab = load_lab(_lab(tmp_path))
    seat = lab.seat_list()[0]
    with pytest.raises(InputError, match="symbolic link"):
        write_vmx(link, render_vmx(lab, seat, vnc_credentials(seat)))
    assert link.is_symlink() and target.read_bytes() == before


def _lab(tmp_path: Path) -> Path:
    p = tmp_path / "lab.yaml"
    p.write_text(LAB)
    return p
