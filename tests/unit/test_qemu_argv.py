"""The QEMU command line built from lab files: exact devices, and no secret in argv."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labctl.backends import Registry, choose
from labctl.backends.qemu import QemuBackend
from labctl.backends.qemu_argv import OVMF_CODE, OVMF_CODE_SECBOOT, SeatFiles, StickDrive, VncListen, build_argv
from labctl.errors import InputError, NotBuiltError
from labctl.runner import backend_kind, make_backend
from labctl.spec import Lab, load_lab

BASE = """\
name: argv
backend: qemu
iso: installer.iso
stick:
  image: sticks/{seat}.img
  size: 16G
install:
  root_password: {env: LAB_ROOT_PASSWORD}
"""


def make_lab(tmp_path: Path, extra: str = "", base: str = BASE) -> Lab:
    (tmp_path / "installer.iso").write_bytes(b"\0" * 2048)
    path = tmp_path / "lab.yaml"
    path.write_text(base + extra)
    return load_lab(path)


def argv_for(lab: Lab, accel: str = "tcg", stick: StickDrive | None = None, vnc: VncListen | None = None,
             iso: Path | str | None = "lab") -> list[str]:
    seat = lab.seat_list()[0]
    files = SeatFiles.for_state_dir(seat.state_dir)
    image = seat.stick_image(lab)
    if stick is None and image is not None:
        stick = StickDrive(image)
    the_iso = lab.iso_path(seat) if iso == "lab" else iso
    assert not isinstance(the_iso, str)
    return build_argv(lab, seat, files, accel=accel, iso=the_iso, stick=stick,  # type: ignore[arg-type]
                      vnc=vnc or VncListen(port=5907))


def pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_seed_vm_devices(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    seat = lab.seat_list()[0]
    argv = argv_for(lab)
    state = seat.state_dir
    assert argv[0] == "qemu-system-x86_64"
    assert pairs(argv, "-machine") == ["q35"]
    assert pairs(argv, "-accel") == ["tcg"]
    assert "-cpu" not in argv
    assert pairs(argv, "-smp") == ["2"] and pairs(argv, "-m") == ["8192"]
    assert pairs(argv, "-display") == ["none"]
    assert "-daemonize" not in argv and "-no-shutdown" in argv and "-nodefaults" in argv
    drives = pairs(argv, "-drive")
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}" in drives
    assert f"if=pflash,format=raw,unit=1,file={state / 'OVMF_VARS.fd'}" in drives
    assert f"if=none,id=cdrom,media=cdrom,readonly=on,format=raw,file={tmp_path / 'installer.iso'}" in drives
    assert f"if=none,id=stick,format=raw,file={tmp_path / 'sticks' / 'argv.img'}" in drives
    devices = pairs(argv, "-device")
    assert devices == [
        "VGA",
        "ide-cd,bus=ide.0,drive=cdrom,id=cd0,bootindex=0",
        "qemu-xhci,id=usb",
        "usb-storage,bus=usb.0,drive=stick,id=stick0,removable=on,bootindex=1",
        "vmxnet3,netdev=net0,id=nic0",
    ]
    assert pairs(argv, "-netdev") == ["user,id=net0"]  # user-mode, no hostfwd
    assert not any("hostfwd" in a for a in argv)
    assert pairs(argv, "-vnc") == ["127.0.0.1:7,password-secret=vncpass,key-delay-ms=3"]
    # the PS/2 keyboard traced to the seat's file, which typing paces itself by (labctl.console.kbdflow)
    assert pairs(argv, "-D") == [str(state / "keyboard.trace")]
    assert pairs(argv, "-trace") == [f"enable={e}" for e in ("ps2_put_keycode", "ps2_read_data",
                                                              "ps2_reset_keyboard", "ps2_write_keyboard",
                                                              "ps2_kbd_reset", "ps2_keyboard_set_translation")]
    assert pairs(argv, "-object") == [f"secret,id=vncpass,format=raw,file={state / 'vnc.pass'}"]
    assert pairs(argv, "-mon") == ["chardev=qmp,mode=control"]
    chardevs = pairs(argv, "-chardev")
    assert f"socket,id=qmp,path={state / 'qmp.sock'},server=on,wait=off" in chardevs
    assert f"file,id=serial0,path={state / 'serial.log'}" in chardevs
    assert pairs(argv, "-serial") == ["chardev:serial0"]


def test_no_secret_in_argv(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    seat = lab.seat_list()[0]
    backend = QemuBackend(lab, seat, iso=tmp_path / "installer.iso")
    backend.define()
    password = backend.files.vnc_password.read_text()
    assert len(password) == 8 and password.isalnum()
    assert (backend.files.vnc_password.stat().st_mode & 0o777) == 0o600
    argv = argv_for(lab)
    joined = " ".join(argv)
    assert password not in joined
    assert os.environ["LAB_ROOT_PASSWORD"] not in joined
    assert "password=" not in joined.replace("password-secret=", "")


def test_define_creates_sparse_stick_and_vars_once(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    seat = lab.seat_list()[0]
    backend = QemuBackend(lab, seat)
    backend.define()
    image = tmp_path / "sticks" / "argv.img"
    assert image.stat().st_size == 16 * 2**30
    assert image.stat().st_blocks == 0  # sparse
    assert backend.files.ovmf_vars.stat().st_size > 0
    password = backend.files.vnc_password.read_text()
    with image.open("r+b") as f:  # define never overwrites
        f.write(b"x")
    backend.define()
    with image.open("rb") as f:
        assert f.read(1) == b"x"
    assert image.stat().st_size == 16 * 2**30 and backend.files.vnc_password.read_text() == password


def test_empty_cd_when_no_iso(tmp_path: Path) -> None:
    argv = argv_for(make_lab(tmp_path), iso=None)
    assert "ide-cd,bus=ide.0,id=cd0,bootindex=0" in pairs(argv, "-device")
    assert not any("media=cdrom" in d for d in pairs(argv, "-drive"))


def test_kvm_uses_host_cpu(tmp_path: Path) -> None:
    argv = argv_for(make_lab(tmp_path), accel="kvm")
    assert pairs(argv, "-accel") == ["kvm"] and pairs(argv, "-cpu") == ["host"]


def test_host_stick_by_ids_and_by_path(tmp_path: Path) -> None:
    base = BASE.replace("  image: sticks/{seat}.img\n  size: 16G\n", "  usb: {vendor_id: 0x0781, product_id: 0x5567}\n")
    argv = argv_for(make_lab(tmp_path, base=base))
    assert "usb-host,bus=usb.0,id=stick0,vendorid=0x0781,productid=0x5567,bootindex=1" in pairs(argv, "-device")
    assert not any("usb-storage" in d for d in pairs(argv, "-device"))
    base = BASE.replace("  image: sticks/{seat}.img\n  size: 16G\n", "  usb: {path: 1/3/2}\n")
    argv = argv_for(make_lab(tmp_path, base=base))
    assert "usb-host,bus=usb.0,id=stick0,hostbus=1,hostport=3.2,bootindex=1" in pairs(argv, "-device")


def test_nic_disk_ehci_extra_args(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, "vm: {nic: e1000e, usb: ehci, disk: {size: 10G}}\nqemu: {extra_args: [-rtc, base=utc]}\n")
    argv = argv_for(lab)
    devices = pairs(argv, "-device")
    assert "e1000e,netdev=net0,id=nic0,romfile=" in devices
    assert "ich9-usb-ehci1,id=usb" in devices
    assert "ide-hd,bus=ide.1,drive=disk0,id=hd0,bootindex=2" in devices
    disk = lab.seat_list()[0].state_dir / "disk.img"
    assert f"if=none,id=disk0,format=raw,file={disk}" in pairs(argv, "-drive")
    assert argv[-2:] == ["-rtc", "base=utc"]


def test_a_labs_own_qemu_log_items_turn_the_keyboard_trace_off(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, "qemu: {extra_args: [-d, guest_errors]}\n")
    argv = argv_for(lab)
    assert "-D" not in argv and "-trace" not in argv  # QEMU keeps one log: the lab's -d output stays in qemu.log


def test_no_network(tmp_path: Path) -> None:
    argv = argv_for(make_lab(tmp_path, "vm: {network: none}\n"))
    assert pairs(argv, "-nic") == ["none"] and "-netdev" not in argv


def test_secure_boot_firmware(tmp_path: Path) -> None:
    argv = argv_for(make_lab(tmp_path, "vm: {secure_boot: true}\n"))
    assert pairs(argv, "-machine") == ["q35,smm=on"]
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE_SECBOOT}" in pairs(argv, "-drive")
    assert "driver=cfi.pflash01,property=secure,value=on" in pairs(argv, "-global")


def test_overlay_stick_and_unix_vnc(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    overlay = tmp_path / "active.qcow2"
    sock = tmp_path / "vnc.sock"
    argv = argv_for(lab, stick=StickDrive(overlay, "qcow2"), vnc=VncListen(socket=sock))
    assert f"if=none,id=stick,format=qcow2,file={overlay}" in pairs(argv, "-drive")
    assert pairs(argv, "-vnc") == [f"unix:{sock},password-secret=vncpass,key-delay-ms=3"]


def test_commas_in_paths_are_escaped(tmp_path: Path) -> None:
    d = tmp_path / "a,b"
    d.mkdir()
    lab = make_lab(d)
    argv = argv_for(lab)
    assert f"if=none,id=cdrom,media=cdrom,readonly=on,format=raw,file={tmp_path}/a,,b/installer.iso" in pairs(
        argv, "-drive")


def test_long_state_dir_puts_sockets_in_a_short_folder(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    files = SeatFiles.for_state_dir(deep)
    assert files.state_dir == deep.resolve()
    for sock in files.sockets():
        assert len(str(sock)) <= 100
    assert files.ovmf_vars.parent == deep.resolve()  # everything else stays in the state folder
    assert SeatFiles.for_state_dir(deep) == files  # deterministic: down/attach find them again


def test_backend_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry: the lab's backend: or --backend by name; auto is the first usable one and says why."""
    import shutil

    lab = make_lab(tmp_path, base=BASE.replace("backend: qemu", "backend: vmware"))
    assert isinstance(make_backend(lab, lab.seat_list()[0], override="qemu"), QemuBackend)
    auto = make_lab(tmp_path, base=BASE.replace("backend: qemu", "backend: auto"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu is not None
    (bindir / "qemu-system-x86_64").symlink_to(qemu)
    monkeypatch.setenv("PATH", str(bindir))  # QEMU but no vmrun
    choice = choose(auto)
    assert choice.name == "qemu" and choice.reason.startswith("auto: qemu (") and "not vmware: " in choice.reason
    assert backend_kind(auto) == "qemu" and make_backend(auto, auto.seat_list()[0]).name == "qemu"
    (bindir / "vmrun").write_text("#!/bin/sh\n")
    (bindir / "vmrun").chmod(0o755)
    assert backend_kind(auto) == "vmware"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(InputError, match=r"no backend is usable on this host .*vmware: .*qemu: .*not found"):
        backend_kind(auto)


def test_registry_names_what_it_cannot_load(tmp_path: Path) -> None:
    registry = Registry()
    registry.register("later", "labctl.backends.not_written_yet:Later")
    lab = make_lab(tmp_path)
    with pytest.raises(NotBuiltError, match="the later backend is not built yet"):
        make_backend(lab, lab.seat_list()[0], override="later", registry=registry)
    with pytest.raises(InputError, match="unknown backend 'nope' \\(known: later\\)"):
        registry.get("nope")
    assert registry.probe(lab, "later")[0] is False


def test_raw_images_go_to_qemu_as_the_descriptors_labctl_checked(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, "vm: {disk: {size: 10G}}\n")
    seat = lab.seat_list()[0]
    files = SeatFiles.for_state_dir(seat.state_dir)
    image = seat.stick_image(lab)
    assert image is not None
    argv = build_argv(lab, seat, files, accel="tcg", iso=None, stick=StickDrive(image), vnc=VncListen(port=5907),
                      image_fds={"stick": 7, "disk": 8})
    assert pairs(argv, "-add-fd") == ["fd=8,set=1,opaque=disk0", "fd=7,set=2,opaque=stick"]
    assert pairs(argv, "-blockdev") == [
        "driver=file,filename=/dev/fdset/1,node-name=disk0-file", "driver=raw,file=disk0-file,node-name=disk0",
        "driver=file,filename=/dev/fdset/2,node-name=stick-file", "driver=raw,file=stick-file,node-name=stick"]
    assert not any(str(image) in a or "disk.img" in a for a in argv)  # no path left to be swapped
    assert "usb-storage,bus=usb.0,drive=stick,id=stick0,removable=on,bootindex=1" in pairs(argv, "-device")
    # a snapshot overlay (labctl's own qcow2 in the seat's folder) is still opened by QEMU with its chain
    overlay = build_argv(lab, seat, files, accel="tcg", iso=None, stick=StickDrive(tmp_path / "a.qcow2", "qcow2"),
                         vnc=VncListen(port=5907), image_fds={"disk": 8})
    assert f"if=none,id=stick,format=qcow2,file={tmp_path / 'a.qcow2'}" in pairs(overlay, "-drive")


def test_qemus_words_about_an_inherited_image_name_its_path(tmp_path: Path) -> None:
    from labctl.backends.qemu import QemuBackend

    lab = make_lab(tmp_path, "vm: {disk: {size: 10G}}\n")
    seat = lab.seat_list()[0]
    b = QemuBackend(lab, seat)
    b.files.state_dir.mkdir(parents=True, exist_ok=True)
    b.files.stderr_log.write_text('qemu-system-x86_64: Failed to get "write" lock\n'
                                  "Is another process using the image [/dev/fdset/2]?\n")
    assert f"using the image [{seat.stick_image(lab)}]?" in b._stderr_tail()
