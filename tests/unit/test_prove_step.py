"""The prove_layout playbook step: its checks at load time, and a run that fails when the guest's layout
differs, naming the partition and the field, with the table left in the run folder."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_prove import LS_ROOT_DATASTORE, LS_ROOT_STICK, STICK_16G

from labctl import layouts, playbook, prove
from labctl.backends.base import SeatImages, StickView
from labctl.errors import RunFailed, SpecError


def test_the_shipped_playbook_loads() -> None:
    book = playbook.load("prove-layout", known_vars=set(playbook.LAB_VARIABLES))
    names = [s.name for s in book.steps]
    assert "prove the layout of the stick" in names and "prove the layout of the local disk" in names


def test_a_bad_option_is_located(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: bad\nsteps:\n  - prove_layout: {getptbl: getptbl, medium: usb}\n")
    with pytest.raises(SpecError, match=r"bad.yaml:3:19: steps\[0\].prove_layout: unknown prove_layout option"):
        playbook.load(str(p))


def test_a_guest_layout_that_differs_fails_the_step(tmp_path: Path) -> None:
    bad = STICK_16G.replace("7 1032224 1257471", "7 1032224 1257000")
    with pytest.raises(RunFailed) as exc:
        prove.run_step({"media": "usb"}, {"getptbl": bad, "ls_root": LS_ROOT_STICK}, tmp_path)
    assert "partition 7: end is 1257000, expected 1257471" in str(exc.value)
    assert "DOES NOT MATCH" in (tmp_path / prove.PROOF_TEXT).read_text()
    assert json.loads((tmp_path / prove.PROOF_JSON).read_text())["verdict"] == "mismatch"


def test_scratch_checked_and_host_gpt_beside(tmp_path: Path) -> None:
    img = tmp_path / "stick.img"
    layouts.write_gpt(str(img), 33554432, layouts.expected_layout(33554432, "usb"))

    class Backend:
        def stick_view(self) -> object:
            import contextlib
            return contextlib.nullcontext(StickView(img))

        def images(self) -> SeatImages:
            return SeatImages(img, None)

    proof = prove.run_step({"media": "usb", "scratch": ".locker"},
                           {"getptbl": STICK_16G, "ls_root": LS_ROOT_DATASTORE}, tmp_path, Backend())
    assert proof.ok and proof.host_table is not None
    assert "host GPT" in (tmp_path / prove.PROOF_TEXT).read_text()
    with pytest.raises(RunFailed, match="scratch is /tmp/scratch"):
        prove.run_step({"media": "usb", "scratch": ".locker"}, {"getptbl": STICK_16G, "ls_root": LS_ROOT_STICK},
                       tmp_path, SimpleNamespace())


def test_no_output_is_a_clear_failure(tmp_path: Path) -> None:
    with pytest.raises(RunFailed, match="run 'partedUtil getptbl' with as: getptbl first"):
        prove.run_step({}, {}, tmp_path)
    with pytest.raises(RunFailed, match="no table in the output"):
        prove.run_step({}, {"getptbl": "Error: Could not stat device x- No such file or directory."}, tmp_path)


SCENARIOS = ["usb-1gb", "hdd-install", "scratch", "kickstart"]


@pytest.mark.parametrize("name", [*SCENARIOS, *(f"{n}-sim" for n in SCENARIOS), "usb-install-sim"])
def test_scenario_labs_validate_and_prove_their_layout(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    from labctl.cli import main
    from labctl.spec import load_lab

    path = Path(__file__).resolve().parents[2] / "labs" / f"{name}.yaml"
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    lab = load_lab(path)
    assert "prove-layout" in lab.post_install
    assert lab.backend == ("qemu" if name.endswith("-sim") else "vmware")
    twin = path.with_name(name.removesuffix("-sim") + ".yaml")
    assert twin.is_file()
    if name != "usb-install-sim":  # the seed's VMware lab is the VMware backend's own
        other = load_lab(twin)
        assert (other.verify, other.install.playbook, other.post_install) == (
            lab.verify, lab.install.playbook, lab.post_install)
