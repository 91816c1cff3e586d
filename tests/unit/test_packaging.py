"""A trainer may ``pip install`` labctl instead of working in a checkout: the wheel must carry the .vmx
template, the playbooks and the sample labs, and an installed labctl must render and find its playbooks."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import labctl, labctl.playbook, labctl.vmx
assert labctl.__file__.startswith(sys.argv[1]), labctl.__file__
print(sorted(p.name for p in labctl.playbook.PLAYBOOK_DIR.glob("*.yaml")))
print(labctl.vmx.TEMPLATE_DIR.is_relative_to(sys.argv[1]))
from labctl.cli import main
sys.argv = ["labctl", "render", sys.argv[2], "-o", sys.argv[3]]
raise SystemExit(main())
"""


def test_installed_wheel_renders_and_finds_its_playbooks(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                        str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("labctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for want in ("labctl/_data/vmx_templates/esxi-usb.vmx.j2", "labctl/_data/labs/usb-install.yaml",
                 "labctl/_data/labs/playbooks/esxi-6.7-interactive.yaml", "labctl/sim/build.py",
                 "labctl/py.typed"):
        assert want in names, f"{want} is not in {wheel.name}"
    assert any(n.startswith("labctl/sim/src/installer/") and n.endswith(".c") for n in names)

    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lab = tmp_path / "lab" / "usb-install.yaml"
    lab.parent.mkdir()
    lab.write_text((REPO / "labs" / "usb-install.yaml").read_text())
    r = subprocess.run([sys.executable, "-c", PROBE, str(site), str(lab), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert "'esxi-6.7-interactive.yaml'" in r.stdout and "True" in r.stdout, r.stdout
    vmx = (tmp_path / "out").glob("*.vmx")
    assert any('firmware = "efi"' in p.read_text() for p in vmx)
