"""ESXi 8.0 lab files: the shipped labs validate, and what 8.0 cannot do is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import SpecError
from labctl.spec import load_lab

REPO = Path(__file__).resolve().parents[2]

LAB = """\
name: l8
backend: qemu
esxi: "{esxi}"
iso: sim
vm:
  nic: {nic}
stick:
  image: sticks/{{seat}}.img
  size: {size}
install:
  playbook: esxi-8.0-interactive
  boot_options: ""
  root_password: {{env: LAB_ROOT_PASSWORD}}
verify: {{layout: esxi8, media: usb}}
"""


def lab(tmp_path: Path, esxi: str = "8.0", nic: str = "vmxnet3", size: str = "32G") -> Path:
    p = tmp_path / "lab.yaml"
    p.write_text(LAB.format(esxi=esxi, nic=nic, size=size))
    return p


@pytest.mark.parametrize("name", ["usb-install-8.0.yaml", "usb-install-8.0-sim.yaml"])
def test_shipped_8_0_labs_validate(name: str) -> None:
    spec = load_lab(REPO / "labs" / name)
    assert spec.esxi == "8.0" and spec.verify.layout == "esxi8" and spec.vm.nic == "vmxnet3"
    assert spec.install.playbook == "esxi-8.0-interactive" and spec.install.boot_options == ""
    assert spec.post_install == ["enable-esxi-shell", "harden-usb-host"]


def test_8_0_sim_lab_uses_a_32g_stick() -> None:
    spec = load_lab(REPO / "labs" / "usb-install-8.0-sim.yaml")
    assert spec.stick.size == 32 << 30 and spec.uses_simulator


@pytest.mark.parametrize("esxi", ["7.0", "8.0"])
def test_e1000_is_refused_on_7_and_8_with_the_reason(tmp_path: Path, esxi: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_lab(lab(tmp_path, esxi=esxi, nic="e1000"))
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path / 'lab.yaml'}:6:8: vm.nic: e1000: ESXi {esxi} has no e1000 driver")
    assert "No network adapters were detected" in msg and "vmxnet3 or e1000e" in msg


def test_e1000_is_still_fine_on_6_7(tmp_path: Path) -> None:
    assert load_lab(lab(tmp_path, esxi="6.7", nic="e1000")).vm.nic == "e1000"


@pytest.mark.parametrize("size", ["10G", "8GB", "13GB"])
def test_stick_under_16gb_is_refused_on_8_0(tmp_path: Path, size: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_lab(lab(tmp_path, size=size))
    msg = str(exc.value)
    assert f"{tmp_path / 'lab.yaml'}:9:9: stick.size: " in msg
    assert "ESXi 8.0's installer refuses media under 16 GB ('disk device does not support OSDATA')" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("size", ["16G", "16GB", "15GB"])
def test_16gb_sticks_are_accepted_on_8_0(tmp_path: Path, size: str) -> None:
    assert load_lab(lab(tmp_path, size=size)).stick.size is not None


def test_small_sticks_stay_fine_on_6_7(tmp_path: Path) -> None:
    assert load_lab(lab(tmp_path, esxi="6.7", size="1G")).stick.size == 1 << 30


def test_cli_validate_exit_2_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labctl.cli import main

    assert main(["validate", str(lab(tmp_path, size="10G"))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stick.size: 10.7 GB" in err[0]
