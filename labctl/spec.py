"""Lab files: the typed model, loading with line numbers, seats and secrets.

A lab file describes the seed's VM (UEFI, 2 vCPU, 8 GB, USB controller, no hard disk, the ESXi ISO on
a CD), the stick, the install and what to verify. Defaults equal the seed's VM, so a minimal lab is
four keys. Every error is one line ``FILE:LINE:COL: field.path: message`` (``SpecError``, exit 2).
"""

from __future__ import annotations

import difflib
import errno
import getpass
import logging
import os
import re
import stat
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from labctl.errors import InputError, SpecError
from labctl.yamlsrc import SECRET_KEYS, Located, PathKey, dotted, load_located

log = logging.getLogger(__name__)

ESXI_VERSIONS = ("6.5", "6.7", "7.0", "8.0")
GUEST_OS = {"6.5": "vmkernel65", "6.7": "vmkernel65", "7.0": "vmkernel7", "8.0": "vmkernel8"}
MIN_MEMORY_MB = 4096  # ESXi's system scan refuses less than 4 GiB (reference §2)
MIN_CPUS = 2  # ... and fewer than 2 CPUs

_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2, "g": 1024**3, "gib": 1024**3, "t": 1024**4, "tib": 1024**4,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def parse_size(value: Any) -> int:
    """'16G', '16GiB', '1 GB', '512M' or a byte count -> bytes. G/GiB are binary, GB decimal."""
    if isinstance(value, bool):
        raise ValueError("a size like 16G or 1GB, not true/false")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE_RE.match(str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"{value!r} is not a size; write it like 16G (GiB), 1GB (10^9 bytes) or 512M")
        if len(m.group(1)) > 20:
            raise ValueError("a size must be at most 1 PiB")
        n = int(Decimal(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise ValueError("a size must be more than 0")
    if n > 1 << 50:
        raise ValueError("a size must be at most 1 PiB")
    return n


def expand(value: str) -> str:
    """Expand ``~`` and ``${VAR}``; an unset variable is an error, not an empty string."""

    def sub(m: re.Match[str]) -> str:
        var = m.group(1) or m.group(2)
        if var not in os.environ:
            raise ValueError(f"environment variable {var} is not set")
        return os.environ[var]

    return os.path.expanduser(_VAR_RE.sub(sub, value))


def _usb_id(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a USB id is a 4-digit hex number like 0x0781")
    if isinstance(value, str):
        text = value.strip().lower()
        if not re.fullmatch(r"(0x)?[0-9a-f]{1,4}", text):
            raise ValueError(f"{value!r} is not a USB id; write 4 hex digits like 0x0781")
        value = int(text, 16)
    if not isinstance(value, int) or not 0 < value <= 0xFFFF:
        raise ValueError(f"{value!r} is not a USB id; ids are 0x0001..0xffff, like 0x0781")
    return value


def _version(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            value = f"{float(value):.1f}"
        except OverflowError:
            raise ValueError("not a supported ESXi version; use one of " + ", ".join(ESXI_VERSIONS)) from None
    if str(value) not in ESXI_VERSIONS:
        raise ValueError(f"{value!r} is not a supported ESXi version; use one of {', '.join(ESXI_VERSIONS)}")
    return str(value)


PLACEHOLDERS = ("seat", "name", "n")
_PLACEHOLDER_RE = re.compile(r"(?<!\$)\{([^{}]*)\}")  # not ${VAR}
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _expanded(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for name in _PLACEHOLDER_RE.findall(value):
        if name not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{name}}}; paths may use "
                             + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
    return expand(value)


def _secret_path(value: Any) -> Any:
    """A password file's path; its errors never quote it (a password typed into the wrong field)."""
    if not isinstance(value, str):
        return value
    try:
        return expand(value)
    except ValueError:
        raise ValueError("the path names an environment variable that is not set (the path is not shown: "
                         "it may be a password typed into the wrong field)") from None


def _env_name(value: Any) -> Any:
    if isinstance(value, str) and not _IDENT_RE.fullmatch(value):
        raise ValueError("not an environment variable name (letters, digits and '_'; the value is not shown: "
                         "it may be a password typed into the wrong field); write {env: LAB_ROOT_PASSWORD}")
    return value


Size = Annotated[int, BeforeValidator(parse_size)]
UsbId = Annotated[int, BeforeValidator(_usb_id)]
EsxiVersion = Annotated[str, BeforeValidator(_version)]
PathStr = Annotated[str, BeforeValidator(_expanded)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiskSettings(_Model):
    """A local hard disk (the seed has none; tests use one for the 8-partition layout)."""

    size: Size = Field(description="e.g. 10G")
    image: PathStr | None = Field(None, description="image file (qemu); default in the seat's state folder")


class VM(_Model):
    firmware: Literal["efi"] = Field("efi", description="UEFI, as in the seed (the simulator is UEFI-only)")
    secure_boot: bool = False
    cpus: int = Field(2, strict=True, description="vCPUs; ESXi's installer stops with fewer than 2")
    memory_mb: int = Field(8192, strict=True, description="RAM in MB; ESXi's installer stops with under 4096")
    network: Literal["nat", "bridged", "hostonly", "none"] = "nat"
    nic: Literal["vmxnet3", "e1000e", "e1000"] = "vmxnet3"
    usb: Literal["xhci", "ehci"] = Field("xhci", description="USB controller for the stick")
    nested_virtualization: bool = Field(True, description="vhv.enable, so ESXi's system scan does not warn")
    disk: DiskSettings | None = Field(None, description="'none' (the seed) or {size: 10G}")

    @field_validator("disk", mode="before")
    @classmethod
    def _none_disk(cls, v: Any) -> Any:
        return None if v in ("none", "None", None, False) else v

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: int) -> int:
        if v < MIN_CPUS:
            raise ValueError(f"{v} CPU: ESXi's installer stops with fewer than {MIN_CPUS} CPUs (the seed uses 2)")
        if v > 64:
            raise ValueError(f"{v} CPUs is more than a lab VM can use (at most 64)")
        return v

    @field_validator("memory_mb")
    @classmethod
    def _memory(cls, v: int) -> int:
        if v < MIN_MEMORY_MB:
            raise ValueError(
                f"{v} MB: ESXi's installer stops with under {MIN_MEMORY_MB} MB of RAM (the seed uses 8192)"
            )
        if v > 1024 * 1024:
            raise ValueError(f"{v} MB is more than any lab host has")
        return v


class UsbPassthrough(_Model):
    """A host USB stick, by vendor:product id or by bus path (VMware KB 1648)."""

    vendor_id: UsbId | None = Field(None, description="e.g. 0x0781 (SanDisk)")
    product_id: UsbId | None = Field(None, description="e.g. 0x5567 (Cruzer Blade)")
    path: str | None = Field(None, description="bus path like 1/3/2 instead of ids")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\d+(/\d+)+", v):
            raise ValueError(f"{v!r} is not a USB bus path; write it like 1/3/2")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> UsbPassthrough:
        ids = (self.vendor_id is not None, self.product_id is not None)
        if self.path is None and ids != (True, True):
            raise ValueError("give vendor_id and product_id (e.g. 0x0781 and 0x5567), or a bus path")
        if self.path is not None and any(ids):
            raise ValueError("give either vendor_id/product_id or path, not both")
        return self


class Stick(_Model):
    """The USB stick: a host stick passed through, or an image file (qemu backend); ``none`` for a lab that
    installs onto vm.disk with no stick at all."""

    usb: UsbPassthrough | None = None
    image: PathStr | None = Field(None, description="image file; {seat} and {name} are replaced per seat")
    size: Size | None = Field(None, description="size of the image file, e.g. 16G (the seed's 16 GB stick)")
    none: bool = Field(False, description="no stick (written 'stick: none'): the install goes to vm.disk")

    @model_validator(mode="before")
    @classmethod
    def _none_word(cls, v: Any) -> Any:
        return {"none": True} if v in ("none", "None") else v

    @model_validator(mode="after")
    def _one_kind(self) -> Stick:
        if self.none:
            if self.usb is not None or self.image is not None or self.size is not None:
                raise ValueError("stick: none has no usb, image or size")
            return self
        if (self.usb is None) == (self.image is None):
            raise ValueError("a stick is either usb: {vendor_id, product_id} or image: FILE with size:")
        if self.image is not None and self.size is None:
            raise ValueError("an image stick needs size: (e.g. 16G)")
        if self.usb is not None and self.size is not None:
            raise ValueError("size: belongs to image sticks; a host stick has its own size")
        if self.size is not None and not (1 << 20 <= self.size <= 2 << 40 and self.size % 512 == 0):
            raise ValueError("an image stick's size is whole 512-byte sectors, from 1M to 2T (e.g. 16G)")
        return self


class Secret(_Model):
    """A secret from the environment, a file, a prompt, or (discouraged) the lab file itself."""

    env: Annotated[str, BeforeValidator(_env_name)] | None = Field(None, description="an environment variable's name")
    file: Annotated[str, BeforeValidator(_secret_path)] | None = Field(None, description="a file holding the secret")
    prompt: bool = False
    value: str | None = Field(None, description="plain text (accepted with a warning)", repr=False)

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        given = [self.env is not None, self.file is not None, self.prompt, self.value is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of {env: VAR}, {file: path}, prompt or a plain value")
        return self


def _secret_before(v: Any) -> Any:
    if isinstance(v, str):
        return {"prompt": True} if v == "prompt" else {"value": v}
    return v


class Install(_Model):
    playbook: str = Field("esxi-6.7-interactive", description="labs/playbooks/NAME.yaml (default: "
                          "esxi-6.7-interactive; esxi-8.0-interactive when esxi is 7.0 or 8.0)")
    boot_options: str = Field("preferVMklinux=TRUE", description="appended at the boot loader (Shift+O); "
                              "default: preferVMklinux=TRUE, none when esxi is 7.0 or 8.0")
    root_password: Annotated[Secret, BeforeValidator(_secret_before)] = Field(
        description="{env: VAR}, {file: path} or prompt; plain text works but warns"
    )
    keyboard: str = "US Default"
    kickstart: PathStr | None = Field(
        None, description="a kickstart file (relative to the lab): up remasters the ISO with it as /KS.CFG and "
                          "ks=cdrom:/KS.CFG in its kernelopt, cached by content hash")
    existing: Literal["overwrite", "stop"] = Field(
        "overwrite", description="the stick already holds ESXi (the installer's 'ESXi Found'): overwrite it, or stop")

    @field_validator("boot_options")
    @classmethod
    def _typeable(cls, v: str) -> str:
        bad = next((c for c in v if not " " <= c <= "~"), None)
        if bad is not None:
            raise ValueError(f"{bad!r} cannot be typed at the boot loader (printable ASCII only)")
        if len(v) > 1000:
            raise ValueError("more than 1000 characters: too long to type at the boot loader")
        return v

    @field_validator("playbook")
    @classmethod
    def _playbook(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError(f"{v!r} is not a playbook name (a file name in labs/playbooks without .yaml)")
        return v


class Verify(_Model):
    layout: Literal["esxi6", "esxi8", "none"] = Field(
        "esxi6", description="the documented GPT layout: esxi6 (ESXi 6.x) or esxi8 (ESXi 7.0/8.0); "
                             "default: the lab's release")
    media: Literal["usb", "hdd"] = "usb"


class ConsoleSettings(_Model):
    """How labctl drives a seat's console: key rate, serial evidence, timeout scale."""

    key_rate: float | None = Field(None, description="keys per second (default: 10 on VMware, 200 on QEMU)")
    serial: bool = Field(True, description="also use the serial console as evidence when the backend has one")
    timeout_scale: float = Field(1.0, description="multiply every wait's timeout (slow hosts)")

    @field_validator("key_rate", "timeout_scale")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= 1000:
            raise ValueError(f"{v} is out of range (more than 0, at most 1000)")
        return v


class QemuOptions(_Model):
    binary: str = "qemu-system-x86_64"
    accel: Literal["auto", "kvm", "tcg"] = Field("auto", description="auto probes KVM with a real boot")
    ovmf_code: PathStr | None = None
    ovmf_vars: PathStr | None = None
    extra_args: list[str] = Field(default_factory=list)


class VmwareOptions(_Model):
    vmrun: PathStr | None = Field(None, description="path to vmrun (default: found on PATH or the usual places)")
    product: Literal["ws", "player", "fusion"] = "ws"
    gui: bool = Field(False, description="start with a window (nogui is more reliable for VNC)")


NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class SeatOverride(_Model):
    name: str | None = Field(None, description="seat name: letters, digits, '-', '_', '.'")
    stick: Stick | None = None
    iso: PathStr | None = None

    @field_validator("iso")
    @classmethod
    def _sim_speed(cls, v: str | None) -> str | None:
        return _sim_iso(v) if v is not None else v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not NAME_RE.fullmatch(v):
            raise ValueError("use letters, digits, '-', '_' and '.', starting with a letter or digit "
                             "(the name becomes file names)")
        return v


def _sim_iso(v: str) -> str:
    if v.startswith("sim:"):
        from labctl.sim.build import SPEEDS

        if v[4:] not in SPEEDS:
            raise ValueError(f"{v!r}: the simulator's speed is one of {', '.join(SPEEDS)} (sim:fast, sim:real)")
    return v


def _seats_before(v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            raise ValueError(f"{v} seats: a lab has at least 1 seat")
        if v > 64:
            raise ValueError(f"{v} seats: at most 64 per lab file")
        return [{} for _ in range(v)]
    return v


# what a lab of these releases gets when it leaves the field out (6.x: the fields' own defaults)
_RELEASE_8: dict[str, dict[str, str]] = {
    "install": {"playbook": "esxi-8.0-interactive", "boot_options": ""},
    "verify": {"layout": "esxi8"},
}
RELEASE_DEFAULTS: dict[str, dict[str, dict[str, str]]] = {"7.0": _RELEASE_8, "8.0": _RELEASE_8}


class Lab(_Model):
    """One lab file."""

    name: str = Field(description="lab name: letters, digits, '-', '_', '.'")
    backend: Literal["vmware", "qemu", "auto"] = "auto"
    esxi: EsxiVersion = Field("6.7", description="6.7 (also 6.5, 7.0, 8.0)")
    iso: PathStr = Field(description="the ESXi installer ISO, or 'sim' / 'sim:real' for the simulator")
    vm: VM = Field(default_factory=lambda: VM())
    stick: Stick
    install: Install
    post_install: list[str] = Field(default_factory=list, description="playbooks run after the install")
    verify: Verify = Field(default_factory=lambda: Verify())
    seats: Annotated[list[SeatOverride], BeforeValidator(_seats_before)] = Field(
        default_factory=lambda: [SeatOverride()], description="a count, or a list of per-seat overrides"
    )
    reset: Literal["before-install", "after-install"] = Field(
        "before-install", description="where 'labctl reset' puts a seat: a blank stick (before-install), or the "
        "golden copy of the stick its first successful up kept (after-install)")
    console: ConsoleSettings = Field(default_factory=lambda: ConsoleSettings())
    qemu: QemuOptions = Field(default_factory=lambda: QemuOptions())
    vmware: VmwareOptions = Field(default_factory=lambda: VmwareOptions())
    state_dir: PathStr = Field(".labctl/{name}", description="per-seat state (VNC password, nvram, images)")
    runs_dir: PathStr = Field("runs", description="run folders with events, screenshots and reports")

    _source: Path = PrivateAttr(default=Path("lab.yaml"))
    _located: Located | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _release_defaults(cls, data: Any) -> Any:
        """ESXi 7.0 and 8.0 install differently from 6.x (OSData on the stick, no VMklinux, another layout):
        what the lab leaves out follows its release."""
        if not isinstance(data, dict):
            return data
        try:
            release = _version(data.get("esxi", "6.7"))
        except ValueError:
            return data  # the field's own validator says why
        defaults = RELEASE_DEFAULTS.get(release)
        if defaults is None:
            return data
        data = dict(data)
        for section, values in defaults.items():
            given = data.get(section, {} if section == "verify" else None)
            if isinstance(given, dict):
                data[section] = {**values, **given}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.fullmatch(v):
            raise ValueError(f"{v!r}: use letters, digits, '-', '_' and '.', starting with a letter or digit")
        return v

    @field_validator("iso")
    @classmethod
    def _sim_speed(cls, v: str) -> str:
        return _sim_iso(v)

    @field_validator("post_install")
    @classmethod
    def _post(cls, v: list[str]) -> list[str]:
        for item in v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", item):
                raise ValueError(f"{item!r} is not a playbook name")
        return v

    @model_validator(mode="after")
    def _no_stick_needs_a_disk(self) -> Lab:
        if self.stick.none and self.vm.disk is None:
            raise ValueError("stick: none needs a local disk to install onto (vm.disk: {size: 10G})")
        return self

    @field_validator("seats")
    @classmethod
    def _seat_list(cls, v: list[SeatOverride], info: ValidationInfo) -> list[SeatOverride]:
        if not v:
            raise ValueError("a lab has at least 1 seat")
        if len(v) > 64:
            raise ValueError(f"{len(v)} seats: at most 64 per lab file")
        # as seat_list() names them: a given name may also equal a default one (lab-2), which would
        # give two seats one stick and one .vmx
        lab = info.data.get("name")
        names = [str(s.name or (lab if len(v) == 1 else f"{lab}-{i}")) for i, s in enumerate(v, start=1)
                 if s.name or lab]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"seat names must differ: {', '.join(sorted(dup))} (given twice, or also a "
                             "default name lab-N)")
        return v

    # -- derived facts -------------------------------------------------------------------------

    @property
    def source(self) -> Path:
        return self._source

    @property
    def base_dir(self) -> Path:
        return self._source.parent

    @property
    def uses_simulator(self) -> bool:
        return self.iso == "sim" or self.iso.startswith("sim:")

    @property
    def sim_speed(self) -> str:
        return self.iso.split(":", 1)[1] if ":" in self.iso and self.uses_simulator else "fast"

    def resolve(self, value: str, seat: Seat | None = None) -> Path:
        """A path from the lab file: {seat}/{name} filled in, relative to the lab file's folder."""
        text = value.replace("{name}", self.name)
        if seat is not None:
            text = text.replace("{seat}", seat.name).replace("{n}", str(seat.index))
        p = Path(text)
        # os.path.realpath, unlike Path.resolve on 3.11, does not raise on a loop of symbolic links:
        # the path stays unresolved there and the check that stats it names the loop
        return Path(os.path.realpath(p if p.is_absolute() else self.base_dir / p))

    def iso_path(self, seat: Seat | None = None) -> Path | None:
        """The installer ISO for a seat, or None when the lab uses the simulator (built on demand)."""
        iso = seat.override.iso if seat and seat.override.iso else self.iso
        if iso == "sim" or iso.startswith("sim:"):
            return None
        return self.resolve(iso, seat)

    def seat_list(self) -> list[Seat]:
        out = []
        for i, override in enumerate(self.seats, start=1):
            name = override.name or (self.name if len(self.seats) == 1 else f"{self.name}-{i}")
            seat = Seat(index=i, name=name, override=override, stick=override.stick or self.stick,
                        state_dir=Path())
            seat.state_dir = self.resolve(self.state_dir, seat) / f"seat{i}"
            out.append(seat)
        return out

    def select_seats(self, selection: str | None) -> list[Seat]:
        seats = self.seat_list()
        if selection is None:  # not given: all; an empty string is a mistake (an unset variable?)
            return seats
        wanted = parse_seat_selection(selection, len(seats))
        return [s for s in seats if s.index in wanted]


@dataclass
class Seat:
    """One student's VM: its number (from 1), name, stick and state folder."""

    index: int
    name: str
    override: SeatOverride
    stick: Stick
    state_dir: Path

    def stick_image(self, lab: Lab) -> Path | None:
        return lab.resolve(self.stick.image, self) if self.stick.image else None


def parse_seat_selection(text: str, count: int) -> set[int]:
    """'3', '1-4', '1,3' -> seat numbers; out-of-range or malformed input is an InputError."""
    wanted: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise InputError(f"--seats {text!r}: write seat numbers like 3, 1-4 or 1,3")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo < 1 or hi > count or lo > hi:
            raise InputError(f"--seats {text!r}: this lab has seats 1-{count}")
        wanted.update(range(lo, hi + 1))
    return wanted


# -- loading ---------------------------------------------------------------------------------------


def load_lab(path: str | Path, strict: bool = False) -> Lab:
    """Load and validate a lab file. Raises SpecError (one line, FILE:LINE:COL) on any problem."""
    p = Path(path)
    located = load_located(p, display=str(path))
    try:
        lab = Lab.model_validate(located.data)
    except ValidationError as exc:
        raise _first_error(exc, located) from None
    except ValueError as exc:  # a validator outside pydantic's wrapping (should not happen)
        raise SpecError(str(path), 1, 1, "(lab)", str(exc)) from None
    lab._source = Path(os.path.realpath(p))
    lab._located = located
    check_release(lab, located)
    check_qemu_args(lab, located)
    check_dirs(lab, located)
    check_images(lab, located)
    for w in lab_warnings(lab, located):
        log.warning("%s", w)
    if strict:
        check_files(lab, located)
    return lab


def lab_warnings(lab: Lab, located: Located) -> list[str]:
    out = []
    if lab.install.root_password.value is not None:
        line, col = located.where(("install", "root_password"))
        out.append(
            f"{located.file}:{line}:{col}: install.root_password: warning: plain text in the lab file; "
            "prefer {env: LAB_ROOT_PASSWORD} or {file: path}"
        )
    return out


def check_release(lab: Lab, located: Located) -> None:
    """What the lab's ESXi release cannot do: an e1000 NIC on 7.0/8.0, a stick image under 16 GB on 8.0."""
    from labctl.layouts import ESXI8_MIN_MEDIA_BYTES

    if lab.esxi in ("7.0", "8.0") and lab.vm.nic == "e1000":
        line, col = located.where(("vm", "nic"))
        raise SpecError(located.file, line, col, "vm.nic",
                        f"e1000: ESXi {lab.esxi} has no e1000 driver (its installer stops with 'No network "
                        "adapters were detected'); use vmxnet3 or e1000e")
    if lab.esxi != "8.0":
        return
    sticks: list[tuple[PathKey, Stick | None]] = [(("stick",), lab.stick)]
    sticks += [(("seats", i, "stick"), s.stick) for i, s in enumerate(lab.seats) if s.stick is not None]
    for key, stick in sticks:
        if stick is not None and stick.size is not None and stick.size < ESXI8_MIN_MEDIA_BYTES:
            line, col = located.where((*key, "size"))
            raise SpecError(located.file, line, col, dotted((*key, "size")),
                            f"{stick.size / 1e9:.1f} GB: ESXi 8.0's installer refuses media under 16 GB ('disk "
                            "device does not support OSDATA'); use 16G or more (32G is what VMware recommends)")


# qemu.extra_args may tune the VM (-rtc, -cpu, -smp, -global, a -device of labctl's own kind) but never
# open a host file or device: that would hand QEMU a host disk past every seat image check
_QEMU_OPTIONS_OK = frozenset({
    "cpu", "smp", "rtc", "global", "no-reboot", "no-shutdown", "d", "msg", "boot", "machine", "M", "device",
    "name", "k", "overcommit", "usb", "vga", "nodefaults", "no-hpet", "uuid", "smbios",
})
_QEMU_HOST_DEVICES = ("usb-host", "vfio", "scsi-generic", "scsi-block", "u2f-passthru", "usb-redir", "vhost",
                      "ivshmem", "pci-assign", "host-")
_QEMU_FILE_KEYS = re.compile(r"(?:^|,)(?:file|filename|path|script|downscript|fd|fds|sock|socket|chardev|"
                             r"drive|fsdev|netdev|memdev|memory-backend|splash|dumpdir)=")


def _qemu_arg_problem(option: str, value: str | None) -> str | None:
    name = option.lstrip("-")
    if name not in _QEMU_OPTIONS_OK:
        return (f"{option} is not one labctl passes on (it may open a host file or device); labctl attaches "
                "the stick (stick.image, stick.usb), the disk (vm.disk) and the ISO itself. Allowed: "
                + ", ".join(f"-{o}" for o in sorted(_QEMU_OPTIONS_OK)))
    if value is not None and ("/" in value or _QEMU_FILE_KEYS.search(value)):
        return f"{option} {value!r} names a host file, device or backend; not passed on"
    if name == "device" and value is not None and value.split(",", 1)[0].startswith(_QEMU_HOST_DEVICES):
        return (f"-device {value.split(',', 1)[0]} passes a host device through; a host stick goes through "
                "stick.usb (its safety checks)")
    return None


def check_qemu_args(lab: Lab, located: Located) -> None:
    """qemu.extra_args: options that cannot reach a host file or device (see _QEMU_OPTIONS_OK)."""
    args = lab.qemu.extra_args
    i = 0
    while i < len(args):
        option = args[i]
        value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else None
        problem = _qemu_arg_problem(option, value) if option.startswith("-") else (
            f"{option!r}: expected an option (-rtc, -cpu, ...) here")
        if problem is not None:
            key: PathKey = ("qemu", "extra_args", i)
            line, col = located.where(key)
            raise SpecError(located.file, line, col, dotted(key), problem)
        i += 2 if value is not None else 1


NAME_MAX = 255  # bytes per path component (Linux)
PATH_MAX = 4095


def _dir_problem(path: Path) -> str | None:
    """Why labctl could not create or use ``path`` as a folder, or None."""
    raw = os.fsencode(path)
    if len(raw) > PATH_MAX:
        return f"the path is {len(raw)} bytes long; the system allows {PATH_MAX}"
    long = next((part for part in path.parts if len(os.fsencode(part)) > NAME_MAX), None)
    if long is not None:
        return f"a path component is {len(os.fsencode(long))} bytes long; the system allows {NAME_MAX}"
    probe = path
    while True:
        try:
            st = os.stat(probe)
        except FileNotFoundError:
            if probe.parent == probe:
                return None
            probe = probe.parent
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return f"{probe}: a loop of symbolic links"
            return f"{probe}: {exc.strerror}"
        if not stat.S_ISDIR(st.st_mode):
            return f"{probe} is not a folder"
        if probe == path:
            return None
        # the folders below it are made later: can they be?
        real = os.path.realpath(probe)
        if real in ("/proc", "/sys") or real.startswith(("/proc/", "/sys/")):
            return f"{probe} is in the kernel's {real.split('/')[1]} file system; labctl cannot make folders there"
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            return f"{probe} is on a read-only file system"
        if not os.access(probe, os.W_OK | os.X_OK):
            return f"{probe}: labctl may not make folders there (no write permission, or it is immutable)"
        return None


def check_dirs(lab: Lab, located: Located) -> None:
    """state_dir and runs_dir can be folders: not too long, no file or link loop in the way."""
    paths: list[tuple[PathKey, Path]] = [(("state_dir",), seat.state_dir) for seat in lab.seat_list()]
    paths.append((("runs_dir",), lab.resolve(lab.runs_dir)))
    for key, path in paths:
        problem = _dir_problem(path)
        if problem is not None:
            line, col = located.where(key)
            raise SpecError(located.file, line, col, dotted(key), problem)


def check_images(lab: Lab, located: Located) -> None:
    """Seat images are image files, never a device, the lab file, the ISO or another seat's image."""
    from labctl.seatimages import ImageRefused, check_lab

    try:
        check_lab(lab)
    except ImageRefused as exc:
        line, col = located.where(exc.key)
        raise SpecError(located.file, line, col, dotted(exc.key) or "(lab)", exc.reason) from None


def playbook_file(lab: Lab, name: str) -> Path:
    """Where a playbook the lab names lives: 'x.yaml' beside the lab; 'x' in the lab folder's
    playbooks/ when there, else labctl's own labs/playbooks/x.yaml."""
    from labctl.resources import data_path

    if name.endswith((".yaml", ".yml")):
        return lab.resolve(name)
    local = lab.base_dir / "playbooks" / f"{name}.yaml"
    return local if local.is_file() else data_path("labs", "playbooks") / f"{name}.yaml"


def check_playbook_names(lab: Lab) -> None:
    """Every playbook the lab names exists; a missing one is located at its field in the lab file."""
    located = lab._located or Located(data={}, file=str(lab.source))
    keys: list[tuple[PathKey, str]] = [(("install", "playbook"), lab.install.playbook)]
    keys += [(("post_install", i), name) for i, name in enumerate(lab.post_install)]
    for key, name in keys:
        if not playbook_file(lab, name).is_file():
            line, col = located.where(key)
            raise SpecError(located.file, line, col, dotted(key),
                            f"no playbook {name!r} (not in {lab.base_dir / 'playbooks'} nor labctl's own)")


def check_files(lab: Lab, located: Located) -> None:
    """Files the lab names must exist (validate --strict, and up)."""
    check_playbook_names(lab)
    for seat in lab.seat_list():
        iso = lab.iso_path(seat)
        if iso is not None and not iso.is_file():
            key: PathKey = ("seats", seat.index - 1, "iso") if seat.override.iso else ("iso",)
            line, col = located.where(key)
            raise SpecError(located.file, line, col, dotted(key), f"ISO not found: {iso}")
    if lab.install.kickstart is not None and not lab.resolve(lab.install.kickstart).is_file():
        line, col = located.where(("install", "kickstart"))
        raise SpecError(located.file, line, col, "install.kickstart",
                        f"no such file: {lab.resolve(lab.install.kickstart)}")
    secret = lab.install.root_password
    if secret.file is not None and not lab.resolve(secret.file).is_file():
        line, col = located.where(("install", "root_password", "file"))
        raise SpecError(located.file, line, col, "install.root_password.file",
                        "no such file (the path is not shown: it may be a password typed into the wrong field)")


def _first_error(exc: ValidationError, located: Located) -> SpecError:
    # A misspelt key also makes the real one "missing": report the unknown key (with its
    # did-you-mean) first, and a missing key only when nothing better explains the problem.
    rank = {"extra_forbidden": 0, "missing": 2}
    errors = sorted(exc.errors(include_url=False), key=lambda e: rank.get(e["type"], 1))
    err = errors[0]
    loc: PathKey = tuple(err["loc"])
    kind = err["type"]
    msg = str(err["msg"])
    if msg.startswith(("Value error, ", "Assertion failed, ")):
        msg = msg.split(", ", 1)[1]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _fields_at(loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        if close:
            hint = f"; did you mean '{close[0]}'?"
        msg = f"unknown key{hint}"
        if any(part in SECRET_KEYS for part in loc[:-1]):  # {S3cret!} in YAML is a mapping with that key
            line, col = located.where(loc, prefer_key=True)
            return SpecError(located.file, line, col, dotted(loc[:-1]),
                             f"unknown key (not shown: it may be the password){hint}{_more(errors)}")
    elif kind == "missing":
        msg = "required key is missing"
        field = str(loc[-1])
        loc = loc[:-1]
        line, col = located.where(loc, prefer_key=True)
        where = dotted(loc) or "(lab)"
        return SpecError(located.file, line, col, where, f"missing required key '{field}'{_more(errors)}")
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        value = _value_at(located.data, loc)
        msg = f"{msg} (got {_shown(value, loc)})"
    elif kind == "literal_error":
        value = _value_at(located.data, loc)
        msg = f"{_shown(value, loc)} is not allowed; {msg[0].lower()}{msg[1:]}"
    line, col = located.where(loc, prefer_key=kind == "extra_forbidden")
    return SpecError(located.file, line, col, dotted(loc) or "(lab)", msg + _more(errors))


def _shown(value: Any, loc: PathKey) -> str:
    """A bad value for an error message; under a secret only its kind (it may be the password)."""
    if any(part in SECRET_KEYS for part in loc):
        return f"a {type(value).__name__}, value not shown"
    return f"{value!r:.40}"


def _more(errors: list[Any]) -> str:
    return f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""


def _value_at(data: Any, loc: PathKey) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _fields_at(loc: PathKey) -> list[str]:
    """The keys allowed at a data path, for 'did you mean'."""
    model: Any = Lab
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        model = _model_of(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return getattr(annotation, "__origin__", None) and _model_of(getattr(annotation, "__origin__", None))


# -- secrets ---------------------------------------------------------------------------------------


def resolve_secret(secret: Secret, lab: Lab, what: str = "root password") -> str:
    """The secret's text. Never log or print the result."""
    if secret.value is not None:
        return secret.value
    if secret.env is not None:
        if secret.env not in os.environ:
            if esxi_password_problem(secret.env) is None:  # Passw0rd is a valid name, and maybe the password
                raise InputError(f"{what}: the environment variable install.root_password.env names is not set "
                                 "(its name is not shown: it would pass as a password)")
            raise InputError(f"{what}: environment variable {secret.env} is not set (export {secret.env}=...)")
        return os.environ[secret.env]
    if secret.file is not None:
        return _read_secret_file(lab.resolve(secret.file), what)
    if not os.isatty(0):
        raise InputError(f"{what}: the lab asks for a prompt but there is no terminal; use {{env: VAR}}")
    return getpass.getpass(f"{what} for lab {lab.name}: ")


SECRET_FILE_MAX = 4096


def _read_secret_file(path: Path, what: str) -> str:
    """A password file's text: a small regular file (a FIFO would block, /dev/zero never end)."""
    def refuse(why: str) -> InputError:
        return InputError(f"{what}: cannot read the file install.root_password.file names ({why})")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise refuse(exc.strerror or "cannot open it") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refuse("not a regular file")
        raw = os.read(fd, SECRET_FILE_MAX + 1)
    except OSError as exc:
        raise refuse(exc.strerror or "cannot read it") from None
    finally:
        os.close(fd)
    if len(raw) > SECRET_FILE_MAX:
        raise refuse(f"more than {SECRET_FILE_MAX} bytes: not a password file")
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise refuse("not UTF-8 text") from None


def esxi_password_problem(password: str) -> str | None:
    """ESXi 6.7's own rules (reference §2); None when the installer would accept it."""
    if len(password) < 7:
        return "Password must be at least 7 characters long."
    if len(password) > 40:
        return "Password must be less than 41 characters long."
    if not password.isascii():
        return "Password may only contain ASCII characters."
    classes = sum(
        [any(c.islower() for c in password), any(c.isupper() for c in password),
         any(c.isdigit() for c in password), any(not c.isalnum() for c in password)]
    )
    if classes < 3:
        return "Password does not have enough character types."
    return None


def json_schema() -> dict[str, Any]:
    schema = Lab.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "labctl lab file"
    return schema
