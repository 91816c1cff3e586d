"""A trainer's own regression test: does my ESXi ISO (or a new build of the simulator) still install onto a USB
stick the way the lab teaches it? labctl's pytest plugin boots the lab's seat and hands the test its console.

Run it against your lab file (the VM, the ISO and the stick it describes)::

    pytest tests/examples --lab labs/my-esxi-6.7.yaml --lab-artifacts out/
    pytest tests/examples --lab labs/usb-install-sim.yaml       # the simulator, no ESXi ISO needed

``--lab-artifacts`` keeps every run folder (each screen, events.jsonl, report.html); a failing test shows the
screenshot, the last screen text and the serial tail, and puts them in ``--junitxml`` as properties. Without
``--lab`` they run against the simulator lab (tests/examples/conftest.py). ``--lab-keep`` leaves the VMs running
to look at over VNC.
"""

from __future__ import annotations

import pytest

from labctl.pytest_plugin import LabSeat

pytestmark = pytest.mark.e2e


def test_the_usb_stick_is_listed_with_prefervmklinux(lab_seat: LabSeat) -> None:
    """The seed's trick: with preferVMklinux=TRUE at the boot loader, the installer lists the USB stick."""
    lab_seat.wait(r"SHIFT\+O: Edit boot options", timeout=300, serial=False)
    lab_seat.send("<leftShiftOn>O<leftShiftOff>")
    lab_seat.wait("ESC: Cancel|Apply options and boot", timeout=15, serial=False)
    lab_seat.type(" preferVMklinux=TRUE")
    lab_seat.send("<enter>")
    lab_seat.wait("Welcome to the VMware ESXi", timeout=900)
    lab_seat.send("<enter>")
    lab_seat.wait("End User License Agreement", timeout=60)
    lab_seat.send("<f11>")
    lab_seat.wait("Select a Disk to Install or Upgrade", timeout=600)
    lab_seat.select(r"vmhba3\d|USB", timeout=120)  # fails, with a screenshot, when no USB disk is listed
    lab_seat.screenshot("usb-stick-selected")


def test_the_installed_stick_boots_into_the_dcui(installed_seat: LabSeat) -> None:
    """After the lab's whole install (once per session: install, post-install, verify), the seat runs ESXi from
    the stick; F2 on its DCUI asks for the root login. The install's own report is in its run folder."""
    assert installed_seat.install_run is not None and (installed_seat.install_run / "report.html").exists()
    installed_seat.wait("To manage this host go to", timeout=120)
    installed_seat.send("<f2>")
    installed_seat.wait("Authentication Required", timeout=60)
    installed_seat.send("<esc>")
