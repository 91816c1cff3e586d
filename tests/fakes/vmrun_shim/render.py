"""A .vmx -> QEMU's argv, by the documented meaning of each key, and the USB autoconnect decisions."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from vmrun_shim.vmx import true

OVMF = Path("/usr/share/OVMF")


@dataclass
class UsbDevice:
    """A host USB device the test declares (VMRUN_SHIM_USB)."""

    vid: int
    pid: int
    path: str
    name: str
    image: str | None
    connect_error: str | None = None

    @classmethod
    def load_all(cls) -> list[UsbDevice]:
        file = os.environ.get("VMRUN_SHIM_USB")
        if not file:
            return []
        out = []
        for d in json.loads(Path(file).read_text()):
            out.append(cls(int(str(d["vid"]), 16), int(str(d["pid"]), 16), str(d.get("path", "1/1")),
                           str(d.get("name", "USB device")), d.get("image"), d.get("connect_error")))
        return out


@dataclass
class Rule:
    """One usb.autoConnect.deviceN value."""

    key: str
    text: str
    vid: int | None = None
    pid: int | None = None
    path: str | None = None

    @classmethod
    def parse(cls, key: str, text: str) -> Rule:
        rule = cls(key, text)
        m = re.fullmatch(r"\s*0x([0-9a-fA-F]+):0x([0-9a-fA-F]+)\s*", text)  # the older form
        if m:
            rule.vid, rule.pid = int(m.group(1), 16), int(m.group(2), 16)
            return rule
        for part in text.split():
            name, _, value = part.partition(":")
            if name == "vid":
                rule.vid = int(value, 16)
            elif name == "pid":
                rule.pid = int(value, 16)
            elif name == "path":
                rule.path = value
        return rule

    def matches(self, dev: UsbDevice) -> bool:
        if self.path is not None:
            return self.path == dev.path
        return self.vid is not None and (self.vid, self.pid) == (dev.vid, dev.pid)


@dataclass
class Plan:
    argv: list[str]
    log: list[str] = field(default_factory=list)  # lines for vmware.log at power-on
    usb_log: list[str] = field(default_factory=list)  # lines for vmware.log a moment after power-on
    serial_pipe: Path | None = None
    serial_out: Path | None = None
    cdroms: dict[str, str] = field(default_factory=dict)  # "sata0:1" -> QEMU device id
    locks: list[Path] = field(default_factory=list)


def build(cfg: dict[str, str], vmx: Path, run: Path, sockets: Path) -> Plan:
    qemu = os.environ.get("VMRUN_SHIM_QEMU", "qemu-system-x86_64")
    accel = os.environ.get("VMRUN_SHIM_ACCEL", "tcg")
    folder = vmx.parent
    argv = [qemu, "-name", f"vmrun-shim-{cfg.get('displayname', vmx.stem)}", "-nodefaults", "-no-user-config",
            "-machine", "q35", "-accel", accel]
    plan = Plan(argv)
    log = plan.log
    log.append(f"DICT --- CONFIGURATION {vmx}")
    for k in ("displayname", "guestos", "firmware", "numvcpus", "memsize", "virtualhw.version"):
        if k in cfg:
            log.append(f'DICT {k:>25} = "{cfg[k]}"')
    argv += ["-smp", cfg.get("numvcpus", "1"), "-m", cfg.get("memsize", "256")]
    plan.locks.append(Path(str(vmx) + ".lck"))
    if cfg.get("firmware", "bios").lower() == "efi":
        secure = true(cfg, "uefi.secureBoot.enabled")
        code = OVMF / ("OVMF_CODE_4M.secboot.fd" if secure else "OVMF_CODE_4M.fd")
        template = OVMF / ("OVMF_VARS_4M.ms.fd" if secure else "OVMF_VARS_4M.fd")
        nvram = folder / cfg.get("nvram", vmx.stem + ".nvram")
        if not nvram.exists() or nvram.stat().st_size != template.stat().st_size:
            shutil.copyfile(template, nvram)
        plan.locks.append(Path(str(nvram) + ".lck"))
        if secure:
            argv[argv.index("q35")] = "q35,smm=on"
            argv += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={nvram}"]
        log.append("EFI: firmware UEFI (OVMF)")
    else:
        log.append("BIOS: firmware legacy BIOS")
    argv += ["-device", "VGA", "-display", "none"]

    # SATA CD-ROMs: sataX:Y on the q35 AHCI controller's port Y
    for key in sorted(cfg):
        m = re.fullmatch(r"(sata(\d+):(\d+))\.devicetype", key)
        if not m or cfg[key] != "cdrom-image":
            continue
        dev, x, y = m.group(1), int(m.group(2)), int(m.group(3))
        if not true(cfg, f"sata{x}.present") or not true(cfg, f"{dev}.present") or x != 0:
            continue
        did = f"cd{y}"
        plan.cdroms[dev] = did
        file = cfg.get(f"{dev}.filename", "")
        path = Path(file) if os.path.isabs(file) else folder / file
        if true(cfg, f"{dev}.startconnected", default=True) and file and path.is_file():
            argv += ["-drive", f"if=none,id=drv-{did},media=cdrom,readonly=on,format=raw,file={path}",
                     "-device", f"ide-cd,bus=ide.{y},drive=drv-{did},id={did},bootindex={y}"]
            log.append(f"CDROM: Connecting {dev} to '{path}'. type=2 remote=0")
        else:
            argv += ["-device", f"ide-cd,bus=ide.{y},id={did},bootindex={y}"]
            why = "startConnected is not TRUE" if file and path.is_file() else f"no such file {file!r}"
            log.append(f"CDROM: {dev} not connected at power on ({why})")

    # USB controllers and autoconnect rules
    bus = None
    if true(cfg, "usb.present"):
        argv += ["-device", "piix3-usb-uhci,id=uhci"]
        bus = "uhci.0"
    if true(cfg, "ehci.present"):
        argv += ["-device", "ich9-usb-ehci1,id=ehci"]
        bus = "ehci.0"
    if true(cfg, "usb_xhci.present"):
        argv += ["-device", "qemu-xhci,id=xhci"]
        bus = "xhci.0"
    devices = UsbDevice.load_all()
    rules = [Rule.parse(k, v) for k, v in sorted(cfg.items()) if re.fullmatch(r"usb\.autoconnect\.device\d+", k)]
    for n, rule in enumerate(rules):
        dev = next((d for d in devices if rule.matches(d)), None)
        if dev is None:
            plan.usb_log.append(f"USB: autoconnect rule {rule.key} = \"{rule.text}\" matched no host device")
            continue
        desc = f'name:{dev.name.replace(" ", "|20")} vid:{dev.vid:04x} pid:{dev.pid:04x} path:{dev.path}'
        plan.usb_log.append(f"USB: Found device [{desc}]")
        if bus is None:
            plan.usb_log.append(f"USB: no USB controller present: cannot connect device [{desc}]")
            continue
        if dev.connect_error:
            reason = ("Driver error." if dev.connect_error == "driver"
                      else f"The VMware USB Arbitrator returned error code {dev.connect_error}.")
            plan.usb_log.append(f'[msg.usb.connectFailed] The connection for the USB device "{dev.name}" was '
                                f"unsuccessful. {reason}")
            continue
        if dev.image is None:
            plan.usb_log.append(f"USB: device [{desc}] has no backing image in the shim")
            continue
        argv += ["-drive", f"if=none,id=usbstick{n},format=raw,file={dev.image}",
                 "-device", f"usb-storage,bus={bus},drive=usbstick{n},id=usbdev{n},removable=on,bootindex={10 + n}"]
        plan.usb_log.append(f"USB: Connecting device desc:{desc} autoclean:1")

    # network
    if true(cfg, "ethernet0.present"):
        nic = cfg.get("ethernet0.virtualdev", "e1000")
        model = {"vmxnet3": "vmxnet3", "e1000e": "e1000e", "e1000": "e1000"}.get(nic, "e1000")
        rom = "" if model == "vmxnet3" else ",romfile="
        argv += ["-netdev", "user,id=net0", "-device", f"{model},netdev=net0,id=nic0{rom}"]
    else:
        argv += ["-nic", "none"]

    # VNC server
    if true(cfg, "remotedisplay.vnc.enabled"):
        port = int(cfg.get("remotedisplay.vnc.port", "5900"))
        ip = cfg.get("remotedisplay.vnc.ip", "0.0.0.0")
        password = cfg.get("remotedisplay.vnc.password")
        vnc = f"{ip}:{port - 5900}"
        if password:
            pw = run / "vnc.pass"
            fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(password)
            argv += ["-object", f"secret,id=vncpass,format=raw,file={pw}"]
            vnc += ",password-secret=vncpass"
        argv += ["-vnc", vnc]
        log.append(f"VNCSERVER: listening on {ip}:{port} (password {'set' if password else 'none'})")

    argv += ["-chardev", f"socket,id=qmp,path={sockets / 'qmp.sock'},server=on,wait=off",
             "-mon", "chardev=qmp,mode=control"]

    # serial0: a pipe is a unix socket server (fed from a file: QEMU's UART pushes back on a socket)
    if true(cfg, "serial0.present"):
        kind = cfg.get("serial0.filetype", "")
        name = cfg.get("serial0.filename", "")
        if kind == "pipe" and name:
            plan.serial_pipe = Path(name)
            plan.serial_out = run / "serial.out"
            plan.serial_out.write_bytes(b"")
            argv += ["-chardev", f"file,id=ser0,path={plan.serial_out}", "-serial", "chardev:ser0"]
        elif kind == "file" and name:
            argv += ["-chardev", f"file,id=ser0,path={name}", "-serial", "chardev:ser0"]
    return plan
