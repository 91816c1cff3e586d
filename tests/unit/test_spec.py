"""Lab files: defaults, paths, seats, secrets, and one located line for every kind of bad input."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from labctl.errors import InputError, SpecError
from labctl.spec import (
    esxi_password_problem,
    load_lab,
    parse_seat_selection,
    parse_size,
    resolve_secret,
)

GOOD = """\
name: usb-install
backend: vmware
iso: isos/esxi.iso
stick: {usb: {vendor_id: 0x0781, product_id: 0x5567}}
install:
  root_password: {env: LAB_ROOT_PASSWORD}
"""

LINE_RE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<field>\S+): (?P<msg>.+)$")


def write(tmp_path: Path, text: str | bytes, name: str = "lab.yaml") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_defaults_are_the_seed_vm(tmp_path: Path) -> None:
    lab = load_lab(write(tmp_path, GOOD))
    assert (lab.vm.firmware, lab.vm.cpus, lab.vm.memory_mb) == ("efi", 2, 8192)
    assert lab.vm.usb == "xhci" and lab.vm.disk is None and lab.vm.network == "nat"
    assert lab.esxi == "6.7" and lab.install.boot_options == "preferVMklinux=TRUE"
    assert lab.iso_path() == (tmp_path / "isos/esxi.iso").resolve()
    assert [s.name for s in lab.seat_list()] == ["usb-install"]


def test_paths_expand_home_and_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISO_DIR", "/srv/isos")
    lab = load_lab(write(tmp_path, GOOD.replace("isos/esxi.iso", "${ISO_DIR}/esxi.iso")))
    assert lab.iso_path() == Path("/srv/isos/esxi.iso")
    lab = load_lab(write(tmp_path, GOOD.replace("isos/esxi.iso", "~/esxi.iso")))
    assert lab.iso_path() == Path.home() / "esxi.iso"


def test_seats_count_and_overrides(tmp_path: Path) -> None:
    text = GOOD + "seats:\n  - {name: alice}\n  - {name: bob, stick: {usb: {path: '1/3/2'}}}\n"
    seats = load_lab(write(tmp_path, text)).seat_list()
    assert [s.name for s in seats] == ["alice", "bob"]
    assert seats[1].stick.usb is not None and seats[1].stick.usb.path == "1/3/2"
    assert seats[0].state_dir != seats[1].state_dir
    lab = load_lab(write(tmp_path, GOOD + "seats: 3\n"))
    assert [s.name for s in lab.seat_list()] == ["usb-install-1", "usb-install-2", "usb-install-3"]
    assert [s.index for s in lab.select_seats("1,3")] == [1, 3]


def test_image_stick_per_seat(tmp_path: Path) -> None:
    text = GOOD.replace("{usb: {vendor_id: 0x0781, product_id: 0x5567}}", "{image: 'sticks/{seat}.img', size: 16G}")
    lab = load_lab(write(tmp_path, text + "seats: 2\n"))
    seats = lab.seat_list()
    assert seats[0].stick.size == 16 * 1024**3
    assert seats[1].stick_image(lab) == (tmp_path / "sticks/usb-install-2.img").resolve()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16G", 16 * 2**30), ("16GiB", 16 * 2**30), ("1GB", 10**9), ("512M", 512 * 2**20), (4096, 4096)],
)
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


def test_seat_selection() -> None:
    assert parse_seat_selection("1-3,5", 6) == {1, 2, 3, 5}
    with pytest.raises(InputError):
        parse_seat_selection("7", 6)
    with pytest.raises(InputError):
        parse_seat_selection("a", 6)


def test_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw.txt").write_text("Secret99!\n")
    lab = load_lab(write(tmp_path, GOOD.replace("{env: LAB_ROOT_PASSWORD}", "{file: pw.txt}")))
    assert resolve_secret(lab.install.root_password, lab) == "Secret99!"
    lab = load_lab(write(tmp_path, GOOD))
    assert resolve_secret(lab.install.root_password, lab) == "VMware1!lab"
    monkeypatch.delenv("LAB_ROOT_PASSWORD")
    with pytest.raises(InputError, match="LAB_ROOT_PASSWORD is not set"):
        resolve_secret(lab.install.root_password, lab)


def test_plain_password_warns_without_echoing_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="labctl.spec"):
        lab = load_lab(write(tmp_path, GOOD.replace("{env: LAB_ROOT_PASSWORD}", "Hunter2!x")))
    assert lab.install.root_password.value == "Hunter2!x"
    assert len(caplog.messages) == 1 and "plain text" in caplog.messages[0]
    assert "Hunter2" not in caplog.text and "Hunter2" not in repr(lab)


def test_password_rules_match_the_installer() -> None:
    assert esxi_password_problem("short1!") is None
    assert esxi_password_problem("abc") == "Password must be at least 7 characters long."
    assert esxi_password_problem("a" * 41) == "Password must be less than 41 characters long."
    assert esxi_password_problem("abcdefgh") == "Password does not have enough character types."
    assert esxi_password_problem("Pässwort1") == "Password may only contain ASCII characters."


# Each case: (lab text or bytes, expected line, a word the message must contain). The whole
# contract is one line FILE:LINE:COL: field: message — the CLI tests check exit 2 and no traceback.
USB = "{usb: {vendor_id: 0x0781, product_id: 0x5567}}"
HEAD = "name: x\niso: a.iso\n"
INSTALL = "install: {root_password: {env: X}}\n"
MALFORMED: list[tuple[str, str | bytes, int, str]] = [
    ("empty", "", 1, "empty"),
    ("only-comments", "# nothing\n\n", 1, "empty"),
    ("list-document", "- name: x\n- iso: y\n", 1, "not a list"),
    ("scalar-document", "just words\n", 1, "mapping"),
    ("tab-indent", "name: x\nvm:\n\tcpus: 2\n", 3, "tab"),
    ("unclosed-flow", "name: x\nstick: {usb: {vendor_id: 1\n", 3, ""),
    ("bad-indent", "name: x\n  iso: y\n iso: z\n", 2, ""),
    ("unclosed-quote", 'name: "x\niso: y\n', 3, ""),
    ("two-documents", "name: x\n---\nname: y\n", 2, "more than one"),
    ("binary-garbage", b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe\x00", 1, "binary"),
    ("nul-bytes", b"name: x\x00\n", 1, "NUL"),
    ("duplicate-top", HEAD + "name: y\n", 3, "duplicate"),
    ("duplicate-nested", HEAD + f"stick: {USB}\n" + INSTALL + "vm:\n  cpus: 2\n  cpus: 4\n", 7, "duplicate"),
    ("unknown-top", HEAD + f"stick: {USB}\n" + INSTALL + "colour: blue\n", 5, "unknown key"),
    ("misspelt-top", HEAD + f"stick: {USB}\n" + INSTALL + "seat: 2\n", 5, "did you mean 'seats'"),
    ("misspelt-vm", HEAD + f"stick: {USB}\n" + INSTALL + "vm: {memroy_mb: 8192}\n", 5, "did you mean 'memory_mb'"),
    ("misspelt-install", HEAD + f"stick: {USB}\n" + "install: {root_pasword: {env: X}}\n", 4, "did you mean"),
    ("memory-2048", HEAD + f"stick: {USB}\n" + INSTALL + "vm: {memory_mb: 2048}\n", 5, "4096"),
    ("one-cpu", HEAD + f"stick: {USB}\n" + INSTALL + "vm:\n  cpus: 1\n", 6, "fewer than 2"),
    ("cpus-string", HEAD + f"stick: {USB}\n" + INSTALL + "vm: {cpus: two}\n", 5, "integer"),
    ("cpus-list", HEAD + f"stick: {USB}\n" + INSTALL + "vm: {cpus: [2]}\n", 5, "integer"),
    ("memory-bool", HEAD + f"stick: {USB}\n" + INSTALL + "vm: {memory_mb: yes}\n", 5, "integer"),
    ("bad-vendor-id", HEAD + "stick: {usb: {vendor_id: 0x10000, product_id: 0x5567}}\n" + INSTALL, 3, "USB id"),
    ("text-vendor-id", HEAD + "stick: {usb: {vendor_id: sandisk, product_id: 0x5567}}\n" + INSTALL, 3, "USB id"),
    ("missing-product-id", HEAD + "stick: {usb: {vendor_id: 0x0781}}\n" + INSTALL, 3, "product_id"),
    ("bad-bus-path", HEAD + "stick: {usb: {path: 'port 3'}}\n" + INSTALL, 3, "bus path"),
    ("stick-both", HEAD + "stick: {usb: {path: '1/2'}, image: a.img, size: 1G}\n" + INSTALL, 3, "either"),
    ("image-no-size", HEAD + "stick: {image: a.img}\n" + INSTALL, 3, "size"),
    ("bad-size", HEAD + "stick: {image: a.img, size: huge}\n" + INSTALL, 3, "not a size"),
    ("negative-seats", HEAD + f"stick: {USB}\n" + INSTALL + "seats: -1\n", 5, "at least 1"),
    ("zero-seats", HEAD + f"stick: {USB}\n" + INSTALL + "seats: 0\n", 5, "at least 1"),
    ("too-many-seats", HEAD + f"stick: {USB}\n" + INSTALL + "seats: 500\n", 5, "at most 64"),
    ("seats-string", HEAD + f"stick: {USB}\n" + INSTALL + "seats: many\n", 5, "list"),
    ("duplicate-seat-names", HEAD + f"stick: {USB}\n" + INSTALL + "seats: [{name: a}, {name: a}]\n", 5, "differ"),
    ("bad-backend", HEAD + f"stick: {USB}\n" + INSTALL + "backend: virtualbox\n", 5, "not allowed"),
    ("bad-version", HEAD + f"stick: {USB}\n" + INSTALL + "esxi: 5.5\n", 5, "supported ESXi version"),
    ("bad-firmware", HEAD + f"stick: {USB}\n" + INSTALL + "vm: {firmware: bios}\n", 5, "not allowed"),
    ("bad-name", "name: 'my lab!'\niso: a.iso\n" + f"stick: {USB}\n" + INSTALL, 1, "letters"),
    ("missing-name", "iso: a.iso\n" + f"stick: {USB}\n" + INSTALL, 1, "'name'"),
    ("missing-stick", HEAD + INSTALL, 1, "'stick'"),
    ("missing-password", HEAD + f"stick: {USB}\n" + "install: {playbook: esxi-6.7-interactive}\n", 4, "root_password"),
    ("secret-two-sources", HEAD + f"stick: {USB}\n" + "install: {root_password: {env: X, file: y}}\n", 4, "one of"),
    ("vm-is-list", HEAD + f"stick: {USB}\n" + INSTALL + "vm: [2, 8192]\n", 5, "dictionary"),
    ("unset-variable", "name: x\niso: ${NO_SUCH_VAR_LABCTL}/a.iso\n" + f"stick: {USB}\n" + INSTALL, 2, "NO_SUCH_VAR"),
    ("post-install-bad", HEAD + f"stick: {USB}\n" + INSTALL + "post_install: ['rm -rf /']\n", 5, "playbook name"),
    ("key-rate-negative", HEAD + f"stick: {USB}\n" + INSTALL + "console: {key_rate: -5}\n", 5, "out of range"),
    ("complex-key", HEAD + f"stick: {USB}\n" + INSTALL + "? [a, b]\n: c\n", 5, "plain name"),
    # tagged values, merge keys, alias cycles and bombs: each one located line, no value echoed
    ("tag-int-password", HEAD + f"stick: {USB}\n" + "install: {root_password: !!int S3cret!xyz}\n", 4, "as 'int'"),
    ("tag-bool-value", HEAD + f"stick: {USB}\n" + "install: {root_password: {value: !!bool S3cret!xyz}}\n", 4,
     "as 'bool'"),
    ("impossible-date", HEAD + f"stick: {USB}\n" + INSTALL + "esxi: 2024-02-30\n", 5, "cannot read"),
    ("merge-key", HEAD + f"stick: {USB}\n" + INSTALL + "vm: {<<: {cpus: 2}}\n", 5, "merge keys"),
    ("custom-tag-key", HEAD + f"stick: {USB}\n" + INSTALL + "vm: {!foo cpus: 2}\n", 5, "!foo"),
    ("alias-cycle-list", HEAD + f"stick: {USB}\n" + INSTALL + "post_install: &a [*a]\n", 5, "contains itself"),
    ("alias-cycle-map", HEAD + f"stick: {USB}\n" + INSTALL + "qemu: &a {x: *a}\n", 5, "contains itself"),
    ("alias-bomb", HEAD + f"stick: {USB}\n" + INSTALL + "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
               for p, c in zip("abcdefg", "bcdefgh", strict=True)), 0, "values"),
    ("huge-version", HEAD + f"stick: {USB}\n" + INSTALL + "esxi: " + "9" * 400 + "\n", 5, "ESXi version"),
    ("huge-size", HEAD + "stick: {image: a.img, size: '" + "9" * 5000 + "'}\n" + INSTALL, 3, "at most 1 PiB"),
    ("byte-size-stick", HEAD + "stick: {image: a.img, size: 1.5}\n" + INSTALL, 3, "512-byte sectors"),
    ("seat-name-path", HEAD + f"stick: {USB}\n" + INSTALL + "seats: [{name: ../../escaped}]\n", 5, "letters"),
    ("seat-name-default-twice", "name: t\niso: a.iso\n" + f"stick: {USB}\n" + INSTALL
     + "seats: [{name: t-2}, {}]\n", 5, "t-2"),
]


@pytest.mark.parametrize(("case", "text", "line", "word"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_lab_gives_one_located_line(
    tmp_path: Path, case: str, text: str | bytes, line: int, word: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_lab(path)
    message = str(info.value)
    assert "\n" not in message
    m = LINE_RE.match(message)
    assert m, message
    assert m.group("file") == str(path)
    assert line == 0 or int(m.group("line")) == line, message  # 0: wherever the expansion stops
    assert word.lower() in message.lower(), message


def test_there_are_at_least_30_malformed_cases() -> None:
    assert len(MALFORMED) >= 30


def test_missing_iso_only_with_strict(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    load_lab(path)
    with pytest.raises(SpecError, match=r"lab.yaml:3:6: iso: ISO not found"):
        load_lab(path, strict=True)


@pytest.mark.parametrize("given", ["12345678", "[S3cr3t!pw]", "{value: 987654321}", "{prompt: 'S3cret!xyz'}",
                                   "{env: [S3cret!xyz]}"])
def test_a_bad_password_value_is_never_echoed(tmp_path: Path, given: str) -> None:
    path = write(tmp_path, HEAD + f"stick: {USB}\n" + f"install: {{root_password: {given}}}\n")
    with pytest.raises(SpecError) as info:
        load_lab(path)
    message = str(info.value)
    assert LINE_RE.match(message), message
    for secret in ("12345678", "S3cr3t!pw", "987654321", "S3cret!xyz"):
        assert secret not in message, message


@pytest.mark.parametrize("given", ["{S3cr3t!pw}", "{S3cr3t!pw: 1}", "{value: x, S3cr3t!pw: 1}", "*S3cr3t!pw",
                                   "!S3cr3t!pw", "!S3cr3tpw", "!!S3cr3tpw", "&S3cr3tpw",
                                   "!<tag:yaml.org,2002:S3cr3tpw> x"])
def test_a_password_written_as_yaml_syntax_is_never_echoed(tmp_path: Path, given: str) -> None:
    # braces, '*', '&' and '!' are YAML syntax: a password starting with one is a key, an alias, an anchor or a tag
    path = write(tmp_path, HEAD + f"stick: {USB}\n" + f"install:\n  root_password: {given}\n")
    with pytest.raises(SpecError) as info:
        load_lab(path)
    message = str(info.value)
    assert LINE_RE.match(message) and info.value.line == 5, message
    assert "S3cr3t" not in message, message


@pytest.mark.parametrize("value", ["!!timestamp x", "!!timestamp ''", "!!int ''", "!!float ''"])
def test_a_tagged_value_that_cannot_be_read_is_one_line(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, HEAD + f"stick: {USB}\n" + INSTALL + f"esxi: {value}\n")
    with pytest.raises(SpecError) as info:
        load_lab(path)
    assert LINE_RE.match(str(info.value)) and info.value.line == 5 and "cannot read" in str(info.value)


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_lab_file_that_is_not_a_small_regular_file(tmp_path: Path, kind: str) -> None:
    import os

    if kind == "fifo":
        path = tmp_path / "lab.yaml"
        os.mkfifo(path)  # reading it would block forever
        word = "not a regular file"
    elif kind == "device":
        path = Path("/dev/zero")  # reading it would never end
        word = "not a regular file"
    else:
        path = write(tmp_path, "# padding\n" * 200_000)
        word = "too large"
    with pytest.raises(SpecError) as info:
        load_lab(path)
    assert word in str(info.value)



# -- secrets typed into the wrong field, odd paths, what can only fail later -------------------------


@pytest.mark.parametrize("given", ["{env: 'Hunter2!x'}", "{env: 'Hunter2 x'}", "{file: '/no/Hunter2!x'}",
                                   "{file: '$Hunter2x'}"])
def test_a_password_in_env_or_file_is_never_echoed(tmp_path: Path, given: str) -> None:
    (tmp_path / "isos").mkdir()
    (tmp_path / "isos" / "esxi.iso").write_bytes(b"")
    path = write(tmp_path, GOOD.replace("{env: LAB_ROOT_PASSWORD}", given))
    with pytest.raises(SpecError) as info:
        load_lab(path, strict=True)
    message = str(info.value)
    assert LINE_RE.match(message) and "install.root_password" in message, message
    assert "Hunter2" not in message, message


def test_an_unreadable_password_file_is_named_by_its_field(tmp_path: Path) -> None:
    (tmp_path / "pw.bin").write_bytes(b"\xff\xfeHunter2!x")
    lab = load_lab(write(tmp_path, GOOD.replace("{env: LAB_ROOT_PASSWORD}", "{file: pw.bin}")))
    with pytest.raises(InputError) as info:
        resolve_secret(lab.install.root_password, lab)
    assert "install.root_password.file" in str(info.value) and "pw.bin" not in str(info.value)


@pytest.mark.parametrize(("change", "field", "words"), [
    (("isos/esxi.iso", "sim:turbo"), "iso", "speed"),
    (("isos/esxi.iso", "isos/{version}.iso"), "iso", "unknown placeholder {version}"),
    (("install:\n", "install:\n  boot_options: \"preferVMklinux=TRUE\\u00e9\"\n"), "install.boot_options",
     "cannot be typed"),
    (("install:\n", "install:\n  boot_options: \"a\\tb\"\n"), "install.boot_options", "cannot be typed"),
])
def test_what_would_only_fail_later_is_refused_now(tmp_path: Path, change: tuple[str, str], field: str,
                                                   words: str) -> None:
    with pytest.raises(SpecError) as info:
        load_lab(write(tmp_path, GOOD.replace(*change)))
    assert info.value.field == field and words in info.value.message, str(info.value)


def test_deeply_nested_yaml_is_one_line(tmp_path: Path) -> None:
    for depth in (60, 100_000):
        with pytest.raises(SpecError) as info:
            load_lab(write(tmp_path, GOOD + "x: " + "[" * depth + "]" * depth + "\n"))
        assert "nested too deeply" in str(info.value) and LINE_RE.match(str(info.value))


@pytest.mark.parametrize("kind", ["long", "component", "file", "loop"])
def test_state_dir_that_cannot_be_a_folder_is_one_located_line(tmp_path: Path, kind: str) -> None:
    (tmp_path / "plain").write_text("x")
    (tmp_path / "la").symlink_to(tmp_path / "lb")
    (tmp_path / "lb").symlink_to(tmp_path / "la")
    value = {"long": "/".join(["d" * 200] * 25), "component": "s" * 300, "file": "plain/state",
             "loop": "la/state"}[kind]
    with pytest.raises(SpecError) as info:
        load_lab(write(tmp_path, GOOD + f"state_dir: {value}\n"))
    assert info.value.field == "state_dir" and info.value.line == 7, str(info.value)


def test_a_stick_path_through_a_link_loop_is_one_located_line(tmp_path: Path) -> None:
    (tmp_path / "la").symlink_to(tmp_path / "lb")
    (tmp_path / "lb").symlink_to(tmp_path / "la")
    text = GOOD.replace("{usb: {vendor_id: 0x0781, product_id: 0x5567}}", "{image: la/s.img, size: 16M}")
    with pytest.raises(SpecError) as info:
        load_lab(write(tmp_path, text))
    assert info.value.field == "stick.image" and "loop of symbolic links" in info.value.message


def test_a_missing_playbook_is_located_at_its_field_in_the_lab(tmp_path: Path) -> None:
    from labctl.spec import check_playbook_names

    lab = load_lab(write(tmp_path, GOOD + "post_install: [enable-esxi-shell, nable-esxi-shell]\n"))
    with pytest.raises(SpecError) as info:
        check_playbook_names(lab)
    assert info.value.field == "post_install[1]" and info.value.line == 7 and "nable-esxi-shell" in info.value.message


@pytest.mark.parametrize(("args", "index", "words"), [
    ("[-drive, 'if=none,id=d,format=raw,file=/dev/vda', -device, 'usb-storage,drive=d']", 0, "-drive"),
    ("[-rtc, base=utc, -blockdev, 'driver=host_device,filename=/dev/sda,node-name=x']", 2, "-blockdev"),
    ("[-hda, /dev/sda]", 0, "-hda"),
    ("[--drive, file=x.img]", 0, "--drive"),
    ("[-device, 'usb-host,vendorid=0x0781,productid=0x5567']", 0, "passes a host device"),
    ("[-device, 'usb-storage,drive=stick']", 0, "names a host file"),
    ("[-smbios, 'file=/etc/shadow']", 0, "names a host file"),
    ("[-boot, 'splash=/root/x.bmp']", 0, "names a host file"),
    ("[-object, 'memory-backend-file,id=m,mem-path=/dev/sda']", 0, "-object"),
    ("[-chardev, 'file,id=c,path=/dev/sda']", 0, "-chardev"),
    ("[-D, /dev/sda]", 0, "-D"),
    ("[-pidfile, /etc/passwd]", 0, "-pidfile"),
    ("[-readconfig, evil.cfg]", 0, "-readconfig"),
    ("[base=utc]", 0, "expected an option"),
])
def test_qemu_extra_args_cannot_open_a_host_file_or_device(tmp_path: Path, args: str, index: int,
                                                           words: str) -> None:
    text = GOOD.replace("backend: vmware", "backend: qemu") + f"qemu: {{extra_args: {args}}}\n"
    with pytest.raises(SpecError) as info:
        load_lab(write(tmp_path, text))
    assert info.value.field == f"qemu.extra_args[{index}]" and words in info.value.message, str(info.value)
    assert info.value.line == 7


def test_qemu_extra_args_that_only_tune_the_vm_are_passed_on(tmp_path: Path) -> None:
    text = GOOD + "qemu: {extra_args: [-rtc, base=utc, -no-reboot, -cpu, 'max,+vmx', -smp, '2,cores=2', " \
                  "-device, e1000e]}\n"
    assert load_lab(write(tmp_path, text)).qemu.extra_args[0] == "-rtc"


def test_an_env_name_that_would_pass_as_a_password_is_not_shown(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("Hunter2x", raising=False)
    monkeypatch.delenv("LAB_ROOT_PASSWORD", raising=False)
    lab = load_lab(write(tmp_path, GOOD.replace("{env: LAB_ROOT_PASSWORD}", "{env: Hunter2x}")))
    with pytest.raises(InputError) as info:
        resolve_secret(lab.install.root_password, lab)
    assert "Hunter2x" not in str(info.value) and "install.root_password.env" in str(info.value)
    lab = load_lab(write(tmp_path, GOOD))
    with pytest.raises(InputError, match="LAB_ROOT_PASSWORD is not set"):  # an ordinary name is still named
        resolve_secret(lab.install.root_password, lab)


@pytest.mark.parametrize("kind", ["proc", "sys", "immutable"])
def test_a_state_dir_labctl_cannot_create_is_one_located_line(tmp_path: Path, kind: str) -> None:
    import shutil
    import subprocess

    value = {"proc": "/proc/labctl-state", "sys": "/sys/labctl-state",
             "immutable": str(tmp_path / "frozen/state")}[kind]
    if kind == "immutable":
        (tmp_path / "frozen").mkdir()
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(tmp_path / "frozen")],
                                                            capture_output=True, timeout=10).returncode != 0:
            pytest.skip("chattr +i does not work here")
    try:
        with pytest.raises(SpecError) as info:
            load_lab(write(tmp_path, GOOD + f"state_dir: {value}\n"))
        assert info.value.field == "state_dir" and info.value.line == 7, str(info.value)
    finally:
        if kind == "immutable":
            subprocess.run(["chattr", "-i", str(tmp_path / "frozen")], capture_output=True, timeout=10)


@pytest.mark.parametrize("kind", ["big", "device", "fifo"])
def test_a_password_file_that_is_not_a_small_file_is_one_line(tmp_path: Path, kind: str) -> None:
    import os

    target = {"big": tmp_path / "big.txt", "device": Path("/dev/zero"), "fifo": tmp_path / "pw.fifo"}[kind]
    if kind == "big":
        target.write_bytes(b"x" * (8 << 20))  # the wrong file, read whole
    elif kind == "fifo":
        os.mkfifo(target)  # nobody writes: reading it would wait forever
    lab = load_lab(write(tmp_path, GOOD.replace("{env: LAB_ROOT_PASSWORD}", f"{{file: '{target}'}}")))
    with pytest.raises(InputError) as info:
        resolve_secret(lab.install.root_password, lab)
    assert "install.root_password.file" in str(info.value) and str(target) not in str(info.value)
