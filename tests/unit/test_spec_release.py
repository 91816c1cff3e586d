"""What a lab leaves out follows its ESXi release: a 7.0/8.0 lab without install.playbook gets the 8.0
playbook (which knows the OSData screen), no VMklinux boot option and the 8.0 layout; 6.x keeps the 6.7 ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.spec import check_playbook_names, load_lab, playbook_file

LAB = """\
name: bare
backend: qemu
esxi: {esxi}
iso: sim
vm: {{nic: vmxnet3}}
stick: {{image: "sticks/{{seat}}.img", size: 32G}}
install:
  root_password: {{env: LAB_ROOT_PASSWORD}}
{extra}"""


def lab_file(tmp_path: Path, esxi: str, extra: str = "") -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(esxi=esxi, extra=extra))
    return path


@pytest.mark.parametrize("esxi", ['"8.0"', "8.0", '"7.0"'])
def test_a_7_or_8_lab_without_a_playbook_gets_the_8_0_install(tmp_path: Path, esxi: str) -> None:
    lab = load_lab(lab_file(tmp_path, esxi), strict=True)
    assert lab.install.playbook == "esxi-8.0-interactive"
    assert playbook_file(lab, lab.install.playbook).is_file()
    check_playbook_names(lab)
    assert lab.install.boot_options == ""  # 7.0 and later have no VMklinux
    assert lab.verify.layout == "esxi8"


def test_a_6_7_lab_keeps_the_6_7_defaults(tmp_path: Path) -> None:
    lab = load_lab(lab_file(tmp_path, '"6.7"'), strict=True)
    assert (lab.install.playbook, lab.install.boot_options, lab.verify.layout) == \
        ("esxi-6.7-interactive", "preferVMklinux=TRUE", "esxi6")


def test_what_the_lab_says_wins_over_the_release_default(tmp_path: Path) -> None:
    extra = "  playbook: esxi-6.7-interactive\n  boot_options: systemMediaSize=min\nverify: {media: usb}\n"
    lab = load_lab(lab_file(tmp_path, '"8.0"', extra), strict=True)
    assert lab.install.playbook == "esxi-6.7-interactive"
    assert lab.install.boot_options == "systemMediaSize=min"
    assert lab.verify.layout == "esxi8" and lab.verify.media == "usb"
