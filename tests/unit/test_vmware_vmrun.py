"""vmrun as labctl drives it: discovery (Linux, Windows with a faked registry, macOS), the failure test,
every vmrun text of the VMware reference turned into a clear message, output parsing, path normalisation,
pipe names, lock files. No VMware and no QEMU needed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from labctl.backends import vmrun as vr
from labctl.errors import InputError, RunFailed

VMX = "/home/t/labs/.labctl/usb-install/seat1/vm/usb-install.vmx"


def host(platform: str = "linux", env: dict[str, str] | None = None, on_path: dict[str, str] | None = None,
         files: set[str] | None = None, registry: dict[tuple[str, str], str] | None = None) -> vr.Host:
    reg = registry or {}
    return vr.Host(platform=platform, env=env or {}, which=lambda name: (on_path or {}).get(name),
                   is_file=lambda p: p in (files or set()), registry=lambda k, v: reg.get((k, v)))


# -- discovery -----------------------------------------------------------------------------------------


def test_the_lab_setting_wins_over_everything() -> None:
    h = host(env={"LABCTL_VMRUN": "/opt/other/vmrun"}, on_path={"vmrun": "/usr/bin/vmrun"},
             files={"/opt/vmware/bin/vmrun", "/opt/other/vmrun"})
    assert vr.find_vmrun("/opt/vmware/bin/vmrun", h) == "/opt/vmware/bin/vmrun"


def test_labctl_vmrun_then_path_then_usr_bin() -> None:
    assert vr.find_vmrun(None, host(env={"LABCTL_VMRUN": "/x/vmrun"}, files={"/x/vmrun"})) == "/x/vmrun"
    assert vr.find_vmrun(None, host(on_path={"vmrun": "/usr/local/bin/vmrun"})) == "/usr/local/bin/vmrun"
    assert vr.find_vmrun(None, host(files={"/usr/bin/vmrun"})) == "/usr/bin/vmrun"


def test_a_configured_vmrun_that_is_not_there_is_said_not_replaced() -> None:
    h = host(env={"LABCTL_VMRUN": "/nope/vmrun"}, on_path={"vmrun": "/usr/bin/vmrun"})
    with pytest.raises(InputError, match=r"\$LABCTL_VMRUN is /nope/vmrun, which is not an executable file"):
        vr.find_vmrun(None, h)


def test_missing_vmrun_on_linux_is_one_line_naming_every_place() -> None:
    with pytest.raises(InputError) as exc:
        vr.find_vmrun(None, host())
    msg = str(exc.value)
    assert "\n" not in msg
    for place in ("lab vmware.vmrun (not set)", "$LABCTL_VMRUN (not set)", "PATH", "/usr/bin/vmrun",
                  "/usr/local/bin/vmrun"):
        assert place in msg


def test_windows_program_files_x86() -> None:
    pf = r"C:\Program Files (x86)"
    want = r"C:\Program Files (x86)\VMware\VMware Workstation\vmrun.exe"
    h = host("win32", env={"ProgramFiles(x86)": pf}, files={want})
    assert vr.find_vmrun(None, h) == want


def test_windows_environment_names_match_in_any_case() -> None:
    """dict(os.environ) on Windows has upper-case keys: PROGRAMFILES(X86), VMWARE_HOME, LABCTL_VMRUN."""
    want = r"C:\Program Files (x86)\VMware\VMware Workstation\vmrun.exe"
    h = host("win32", env={"PROGRAMFILES(X86)": r"C:\Program Files (x86)"}, files={want})
    assert vr.find_vmrun(None, h) == want
    h = host("win32", env={"Vmware_Home": r"D:\VMware"}, files={r"D:\VMware\vmrun.exe"})
    assert vr.find_vmrun(None, h) == r"D:\VMware\vmrun.exe"
    assert host("linux", env={"labctl_vmrun": "/x/vmrun"}).getenv("LABCTL_VMRUN") is None


def test_windows_registry_install_path_wow6432node() -> None:
    key = r"SOFTWARE\WOW6432Node\VMware, Inc.\VMware Workstation"
    want = r"D:\VMware\Workstation\vmrun.exe"
    h = host("win32", registry={(key, "InstallPath"): "D:\\VMware\\Workstation\\"}, files={want})
    assert vr.find_vmrun(None, h) == want


def test_windows_registry_without_wow6432node_and_app_paths() -> None:
    key = r"SOFTWARE\VMware, Inc.\VMware Workstation"
    h = host("win32", registry={(key, "InstallPath"): r"E:\WS"}, files={r"E:\WS\vmrun.exe"})
    assert vr.find_vmrun(None, h) == r"E:\WS\vmrun.exe"
    h = host("win32", registry={(vr.APP_PATHS_KEY, "Path"): r"F:\Apps\VMware"}, files={r"F:\Apps\VMware\vmrun.exe"})
    assert vr.find_vmrun(None, h) == r"F:\Apps\VMware\vmrun.exe"


def test_windows_vmware_home_and_path_order() -> None:
    h = host("win32", env={"VMWARE_HOME": r"G:\vm"}, files={r"G:\vm\vmrun.exe"},
             on_path={"vmrun.exe": r"C:\bin\vmrun.exe"})
    assert vr.find_vmrun(None, h) == r"C:\bin\vmrun.exe"  # PATH first, as the reference orders it
    h = host("win32", env={"VMWARE_HOME": r"G:\vm"}, files={r"G:\vm\vmrun.exe"})
    assert vr.find_vmrun(None, h) == r"G:\vm\vmrun.exe"


def test_windows_missing_names_registry_keys_and_program_files() -> None:
    with pytest.raises(InputError) as exc:
        vr.find_vmrun(None, host("win32", env={"ProgramFiles(x86)": r"C:\Program Files (x86)"}))
    msg = str(exc.value)
    assert r"HKLM\SOFTWARE\WOW6432Node\VMware, Inc.\VMware Workstation\InstallPath" in msg
    assert r"App Paths\vmware.exe\Path" in msg
    assert r"C:\Program Files (x86)\VMware\VMware Workstation\vmrun.exe" in msg
    assert "%VMWARE_HOME% (not set)" in msg


def test_macos_fusion_path() -> None:
    assert vr.find_vmrun(None, host("darwin", files={vr.FUSION_VMRUN})) == vr.FUSION_VMRUN
    with pytest.raises(InputError, match=r"VMware Fusion\.app"):
        vr.find_vmrun(None, host("darwin"))


def test_the_real_registry_reader_is_harmless_off_windows() -> None:
    assert vr.windows_registry(vr.APP_PATHS_KEY, "Path") is None


# -- paths and names ---------------------------------------------------------------------------------


def test_list_paths_compare_after_normalising_on_windows() -> None:
    listed = r"c:\Users\Trainer\Labs\SEAT1\vm\seat1.vmx"
    ours = "C:/Users/trainer/labs/seat1/vm/Seat1.vmx"
    assert vr.same_vmx(listed, ours, case_insensitive=True)
    assert not vr.same_vmx(listed, ours, case_insensitive=False)
    assert vr.normalize_path(r"C:\a\\b\c.vmx", True) == "c:/a/b/c.vmx"


def test_linux_paths_stay_case_sensitive() -> None:
    assert vr.same_vmx("/a/B.vmx", "/a//B.vmx", case_insensitive=False)
    assert not vr.same_vmx("/a/B.vmx", "/a/b.vmx", case_insensitive=False)


# -- output parsing ------------------------------------------------------------------------------------


def test_parse_list() -> None:
    assert vr.parse_list(["Total running VMs: 0"]) == []
    assert vr.parse_list(["Total running VMs: 2", VMX, r"C:\vms\b.vmx", ""]) == [VMX, r"C:\vms\b.vmx"]
    with pytest.raises(RunFailed, match="no 'Total running VMs:' line"):
        vr.parse_list(["something else"])


def test_parse_snapshots() -> None:
    assert vr.parse_snapshots(["Total snapshots: 2", "installed", "golden"]) == ["installed", "golden"]
    assert vr.parse_snapshots(["Total snapshots: 0"]) == []


# -- the failure test and the known texts -------------------------------------------------------------

KNOWN = [
    (f"Error: The virtual machine is not powered on: {VMX}", "the VM is not running"),
    (f"Error: Cannot open VM: {VMX}, The virtual machine cannot be found", "missing or VMware cannot read it"),
    ("Error: The operation is not supported for the specified parameters", "does not allow the command"),
    ("Error: The operation is not supported", "Player has no snapshots"),
    ("Error: One of the parameters was invalid", "rejected an argument"),
    (f"Error: The VMware Tools are not running in the virtual machine: {VMX}", "ESXi has none"),
    ("Error: Cannot connect to the virtual machine", "lost its link"),
    ("Error: A snapshot with the name already exists", "another snapshot name"),
    ("Error: The name does not uniquely identify one snapshot", "no snapshot has that name"),
    ("Error: This VM is in use.", "Workstation window holds the VM"),
    ("Error: Unrecognized command: captureScreenX", "too old"),
]


@pytest.mark.parametrize(("text", "hint"), KNOWN, ids=[t.split(":")[1].strip()[:30] for t, _ in KNOWN])
def test_every_known_text_fails_the_call_with_its_words_and_a_hint(text: str, hint: str) -> None:
    words = vr.failure_words(255, [text])
    assert words == text
    msg = vr.failure_message("stop", words)
    assert msg.startswith(f"vmrun stop failed: {text}") and hint in msg


def test_error_with_exit_code_0_is_a_failure() -> None:
    assert vr.failure_words(0, ["Error: The operation is not supported"]) == "Error: The operation is not supported"


def test_a_log_line_before_the_error_does_not_hide_it() -> None:
    lines = ["2026-12-01T09:00:00.000| ServiceImpl_Opener: PID 4242", "Error: Cannot connect to the virtual machine"]
    assert vr.failure_words(0, lines) == "Error: Cannot connect to the virtual machine"


def test_unable_to_connect_takes_line_2_as_the_reason() -> None:
    lines = ["Unable to connect to host.",
             "Error: Service type VIX_SERVICEPROVIDER_VMWARE_WORKSTATION was specified, but not installed"]
    words = vr.failure_words(255, lines)
    assert words == " ".join(lines)
    assert "set vmware.product: player" in vr.failure_message("list", words)
    plain = vr.failure_words(0, ["Unable to connect to host.", "The host is not reachable"])
    assert plain == "Unable to connect to host. The host is not reachable"
    assert "cannot reach the VMware service" in vr.failure_message("list", plain)


def test_non_zero_exit_without_error_line_fails_too() -> None:
    assert vr.failure_words(4294967295, []) == "exit code 4294967295 and no output"  # Windows' -1
    assert vr.failure_words(255, ["something odd"]) == "something odd"
    assert vr.failure_words(0, ["Total running VMs: 0"]) is None


def test_canceled_shows_the_msg_post_error_block_of_vmware_log(tmp_path: Path) -> None:
    log = tmp_path / "vmware.log"
    log.write_text(
        "2026-12-01T09:00:00.100Z| vmx| I005: Msg_Post: Error\n"
        "2026-12-01T09:00:00.101Z| vmx| I005: [msg.usb.noCtrlr] No USB controller for the device.\n"
        "2026-12-01T09:00:00.102Z| vmx| I005: [msg.vmx.poweron.failed] Failed to start the virtual machine.\n"
        "2026-12-01T09:00:00.103Z| vmx| I005: ----------------------------------------\n"
        "2026-12-01T09:00:00.200Z| vmx| I005: VMX exit (1).\n")
    msg = vr.failure_message("start", "Error: The operation was canceled", log)
    assert msg.splitlines()[0] == "vmrun start failed: Error: The operation was canceled"
    assert "[msg.vmx.poweron.failed] Failed to start the virtual machine." in msg
    assert "[msg.usb.noCtrlr]" in msg and "-----" not in msg and "VMX exit" not in msg


def test_unknown_error_points_at_vmware_log(tmp_path: Path) -> None:
    log = tmp_path / "vmware.log"
    log.write_text("2026-12-01T09:00:00.100Z| vmx| I005: Unable to open file 'x.vmdk'\n")
    msg = vr.failure_message("start", "Error: Unknown error", log)
    assert f"last lines of {log}" in msg and "Unable to open file 'x.vmdk'" in msg
    assert f"{tmp_path / 'none.log'} is empty or missing" in vr.failure_message(
        "start", "Error: Unknown error", tmp_path / "none.log")


# -- the driver ------------------------------------------------------------------------------------------


class FakeRun:
    def __init__(self, stdout: str = "", code: int = 0, hang: bool = False) -> None:
        self.stdout, self.code, self.hang = stdout, code, hang
        self.argv: list[list[str]] = []
        self.timeouts: list[float] = []

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.argv.append(argv)
        self.timeouts.append(kw["timeout"])
        if self.hang:
            raise subprocess.TimeoutExpired(argv, kw["timeout"])
        return subprocess.CompletedProcess(argv, self.code, self.stdout, "")


def test_call_puts_the_product_flag_before_the_command() -> None:
    run = FakeRun("Total running VMs: 0\n")
    v = vr.Vmrun("/usr/bin/vmrun", "player", runner=run)
    assert v.running() == []
    assert run.argv == [["/usr/bin/vmrun", "-T", "player", "list"]]
    assert v.calls == 1


def test_call_raises_on_error_with_exit_0() -> None:
    v = vr.Vmrun("vmrun", runner=FakeRun("Error: The operation was canceled\n", 0))
    with pytest.raises(vr.VmrunFailed) as exc:
        v.call("start", VMX, "nogui")
    assert exc.value.words == "Error: The operation was canceled" and exc.value.command == "start"


def test_every_call_has_a_timeout_start_300_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(vr.START_TIMEOUT_ENV, raising=False)
    run = FakeRun()
    v = vr.Vmrun("vmrun", runner=run)
    v.call("start", VMX, "nogui")
    v.call("list")
    v.call("stop", VMX, "soft", timeout=15)
    assert run.timeouts == [300.0, vr.DEFAULT_TIMEOUT, 15]
    monkeypatch.setenv(vr.START_TIMEOUT_ENV, "4")
    assert v.timeout("start") == 4.0
    monkeypatch.setenv(vr.START_TIMEOUT_ENV, "soon")
    with pytest.raises(InputError, match="not a number"):
        v.timeout("start")


def test_a_hanging_vmrun_is_killed_and_said_clearly(tmp_path: Path) -> None:
    log = tmp_path / "vmware.log"
    log.write_text("2026-12-01T09:00:00.100Z| vmx| I005: Waiting for a dialog answer\n")
    v = vr.Vmrun("vmrun", start_timeout=7, runner=FakeRun(hang=True))
    with pytest.raises(vr.VmrunTimeout) as exc:
        v.call("start", VMX, "nogui", log=log)
    assert "vmrun start did not return within 7 s (killed it)" in str(exc.value)
    assert "Waiting for a dialog answer" in str(exc.value)


def test_missing_executable_is_input_error() -> None:
    with pytest.raises(InputError, match="vmrun not found: /nope/vmrun"):
        vr.Vmrun("/nope/vmrun").call("list")


def test_product_probe_ws_then_player_then_fusion() -> None:
    def runner(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        if argv[2] == "ws":
            return subprocess.CompletedProcess(argv, 255, "Unable to connect to host.\nError: Service type "
                                               "VIX_SERVICEPROVIDER_VMWARE_WORKSTATION was specified, but not "
                                               "installed\n", "")
        return subprocess.CompletedProcess(argv, 0, "Total running VMs: 0\n", "")

    product, said = vr.probe_product("vmrun", runner)
    assert product == "player"
    assert said and said[0].startswith("-T ws: Unable to connect to host.")

    def none(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 255, "Unable to connect to host.\nno product\n", "")

    with pytest.raises(RunFailed, match=r"-T ws: .*-T player: .*-T fusion: "):
        vr.probe_product("vmrun", none)


# -- lock files -------------------------------------------------------------------------------------------


def test_lock_files_after_stop(tmp_path: Path) -> None:
    vmx = tmp_path / "seat1.vmx"
    vmx.write_text("")
    (tmp_path / "seat1.vmx.lck").mkdir()
    assert vr.lock_files(vmx) == []  # a lone .vmx.lck is harmless (Packer)
    (tmp_path / "seat1.nvram.lck").mkdir()
    assert [p.name for p in vr.lock_files(vmx)] == ["seat1.nvram.lck", "seat1.vmx.lck"]
    left = vr.wait_unlocked(vmx, timeout=0.3, poll=0.05)
    assert [p.name for p in left] == ["seat1.nvram.lck", "seat1.vmx.lck"]
    (tmp_path / "seat1.nvram.lck").rmdir()
    assert vr.wait_unlocked(vmx, timeout=0.3) == []
