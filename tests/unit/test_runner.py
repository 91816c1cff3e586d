"""The runner's Packer-style steps: cleanups in reverse order, the failed step named, secrets scrubbed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.fake_backend import FakeBackend, FakeHost

from labctl.errors import RunFailed
from labctl.runner import Context, UpOptions, UpStep, build_steps, playbook_ref, run_seat
from labctl.spec import Lab, load_lab

LAB = """\
name: rl
backend: qemu
iso: sim
stick:
  image: sticks/{seat}.img
  size: 16G
install:
  root_password: {env: LAB_ROOT_PASSWORD}
post_install: [enable-esxi-shell]
"""


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    (tmp_path / "lab.yaml").write_text(LAB)
    return load_lab(tmp_path / "lab.yaml")


class Rec(UpStep):
    def __init__(self, name: str, log: list[str], fail: BaseException | None = None) -> None:
        self.name, self.log, self.fail = name, log, fail

    def run(self, ctx: Context) -> None:
        self.log.append(f"run {self.name}")
        if self.fail is not None:
            raise self.fail

    def cleanup(self, ctx: Context) -> None:
        self.log.append(f"cleanup {self.name}")


def test_cleanups_run_in_reverse_after_success(lab: Lab, tmp_path: Path) -> None:
    log: list[str] = []
    res = run_seat(lab, lab.seat_list()[0], UpOptions(runs_dir=tmp_path / "runs"), [], {},
                   steps=[Rec("a", log), Rec("b", log)])
    assert res.ok
    assert log == ["run a", "run b", "cleanup b", "cleanup a"]
    assert json.loads((res.run_dir / "result.json").read_text())["ok"] is True
    assert (res.run_dir / "report.html").exists()


def test_failure_names_the_step_and_cleans_up_what_ran(lab: Lab, tmp_path: Path) -> None:
    log: list[str] = []
    secret = "S3cret!pw"
    with pytest.raises(RunFailed) as info:
        run_seat(lab, lab.seat_list()[0], UpOptions(runs_dir=tmp_path / "runs"), [secret], {},
                 steps=[Rec("a", log), Rec("b", log, RuntimeError(f"typed {secret} and failed")), Rec("c", log)])
    assert log == ["run a", "run b", "cleanup b", "cleanup a"]
    msg = str(info.value)
    assert "step 'b' failed" in msg and "seat 1 (rl)" in msg and "run folder:" in msg
    assert secret not in msg
    run_dir = next((tmp_path / "runs").iterdir())
    assert secret not in (run_dir / "events.jsonl").read_text()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["ok"] is False and result["step"] == "b"


def test_ctrl_c_runs_cleanups_and_propagates(lab: Lab, tmp_path: Path) -> None:
    log: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_seat(lab, lab.seat_list()[0], UpOptions(runs_dir=tmp_path / "runs"), [], {},
                 steps=[Rec("a", log), Rec("b", log, KeyboardInterrupt())])
    assert log == ["run a", "run b", "cleanup b", "cleanup a"]


def test_a_failing_cleanup_does_not_skip_the_others(lab: Lab, tmp_path: Path) -> None:
    log: list[str] = []

    class BadCleanup(Rec):
        def cleanup(self, ctx: Context) -> None:
            super().cleanup(ctx)
            raise OSError("disk full")

    res = run_seat(lab, lab.seat_list()[0], UpOptions(runs_dir=tmp_path / "runs"), [], {},
                   steps=[Rec("a", log), BadCleanup("b", log)])
    assert res.ok and log[-2:] == ["cleanup b", "cleanup a"]


def test_step_list(lab: Lab) -> None:
    names = [s.name for s in build_steps(lab, UpOptions())]
    assert names == ["prepare", "build simulator", "start VM", "open console",
                     "install playbook esxi-6.7-interactive", "post-install playbook enable-esxi-shell",
                     "verify layout"]
    assert [s.name for s in build_steps(lab, UpOptions(boot_only=True))] == ["prepare", "build simulator", "start VM"]


def test_playbook_ref(lab: Lab, tmp_path: Path) -> None:
    assert playbook_ref(lab, "esxi-6.7-interactive") == "esxi-6.7-interactive"
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "mine.yaml").write_text("steps: []\n")
    assert playbook_ref(lab, "mine") == str(tmp_path / "playbooks" / "mine.yaml")
    assert playbook_ref(lab, "other.yaml") == str(tmp_path / "other.yaml")


@pytest.mark.parametrize(("size_gib", "partitions"), [(1, [1, 5, 6, 7, 8]), (16, [1, 5, 6, 7, 8, 9])])
def test_verify_step_expects_the_layout_of_the_sticks_size(
    lab: Lab, tmp_path: Path, size_gib: int, partitions: list[int]
) -> None:
    from labctl import layouts
    from labctl.report import RunFolder
    from labctl.runner import VerifyLayout

    sectors = size_gib * 2**30 // 512
    image = tmp_path / "stick.img"
    with image.open("wb") as f:
        f.truncate(sectors * 512)
    layouts.write_gpt(str(image), sectors, layouts.expected_layout(sectors, "usb"))
    seat = lab.seat_list()[0]
    ctx = Context(lab=lab, seat=seat, options=UpOptions(), run=RunFolder(tmp_path / "run"),
                  secrets=[], variables={}, backend=FakeBackend(lab, seat, stick_image=image))
    VerifyLayout().run(ctx)
    assert ctx.result["layout"] == "ok"
    table = (tmp_path / "run" / "stick-layout.txt").read_text().splitlines()
    assert [int(line.split()[0]) for line in table[2:] if line.strip()] == partitions

    # the same stick judged as a 16 GB one would be missing partition 9: the step must say so
    if size_gib == 1:
        wrong = tmp_path / "wrong.img"
        with wrong.open("wb") as f:
            f.truncate(16 * 2**30)
        layouts.write_gpt(str(wrong), 16 * 2**30 // 512, layouts.expected_layout(sectors, "usb"))
        ctx.backend = FakeBackend(lab, seat, stick_image=wrong)
        with pytest.raises(RunFailed, match="not ESXi's esxi6 layout"):
            VerifyLayout().run(ctx)


def test_a_host_stick_is_not_read_by_the_verify_step(lab: Lab, tmp_path: Path) -> None:
    from labctl.report import RunFolder
    from labctl.runner import VerifyLayout

    seat = lab.seat_list()[0]
    backend = FakeBackend(lab, seat)
    backend.stick_image = None  # as a stick passed through from the host
    ctx = Context(lab=lab, seat=seat, options=UpOptions(), run=RunFolder(tmp_path / "run"), secrets=[], variables={},
                  backend=backend)
    VerifyLayout().run(ctx)
    assert ctx.result["layout"] == "not checked (a host stick passed through)"


class _Start(Rec):
    """The start step with a fake VM: started on run, stopped (and so forgotten) by the cleanup."""

    def __init__(self, log: list[str], backend: FakeBackend) -> None:
        super().__init__("start VM", log)
        self.backend = backend

    def run(self, ctx: Context) -> None:
        self.backend.start()
        ctx.backend = self.backend

    def cleanup(self, ctx: Context) -> None:
        self.backend.stop("hard")


def test_a_seat_in_a_worker_thread_says_why_qemu_is_gone(lab: Lab, tmp_path: Path) -> None:
    """In a worker thread (labctl up --parallel) QEMU's death reaches the step as a console error; the
    seat's failure must still be QEMU's death with its exit status, judged before the cleanups stop it."""
    from concurrent.futures import ThreadPoolExecutor

    log: list[str] = []
    backend = FakeBackend(lab, lab.seat_list()[0], FakeHost())

    class Playbook(Rec):
        def run(self, ctx: Context) -> None:
            backend.crash("killed by signal 9")
            raise RunFailed("step 'after the disk': the VNC console is gone: QEMU exited")

    def seat() -> None:
        run_seat(lab, lab.seat_list()[0], UpOptions(runs_dir=tmp_path / "runs"), [], {},
                 steps=[_Start(log, backend), Playbook("install playbook", log)])

    with ThreadPoolExecutor(1) as pool, pytest.raises(RunFailed) as info:
        pool.submit(seat).result(timeout=30)
    msg = str(info.value)
    assert "step 'install playbook' failed: fake VM (pid 4242) exited unexpectedly (killed by signal 9)" in msg, msg
    assert backend.calls[-1] == "stop hard"


def test_a_cancelled_seat_in_a_worker_stops_at_the_next_step(lab: Lab, tmp_path: Path) -> None:
    """Ctrl-C with --parallel: the main thread sets the seats' cancel event; a seat that has not
    started its VM yet must not start it (nor run the install)."""
    from concurrent.futures import ThreadPoolExecutor

    log: list[str] = []
    options = UpOptions(runs_dir=tmp_path / "runs")

    class Interrupted(Rec):
        def run(self, ctx: Context) -> None:
            super().run(ctx)
            options.cancel.set()  # as the main thread does on Ctrl-C

    def seat() -> None:
        run_seat(lab, lab.seat_list()[0], options, [], {},
                 steps=[Interrupted("build ISO", log), Rec("start VM", log), Rec("install", log)])

    with ThreadPoolExecutor(1) as pool, pytest.raises(KeyboardInterrupt):
        pool.submit(seat).result(timeout=30)
    assert log == ["run build ISO", "cleanup build ISO"]
    result = json.loads(next((tmp_path / "runs").glob("*/result.json")).read_text())
    assert result == {"ok": False, "interrupted": True, "step": "build ISO"}


def test_a_seat_whose_qemu_the_interrupt_killed_records_interrupted_not_a_crash(lab: Lab, tmp_path: Path) -> None:
    import signal
    from concurrent.futures import ThreadPoolExecutor

    log: list[str] = []
    backend = FakeBackend(lab, lab.seat_list()[0], FakeHost())
    options = UpOptions(runs_dir=tmp_path / "runs")
    options.cancel_signal = signal.SIGTERM

    class Playbook(Rec):
        def run(self, ctx: Context) -> None:
            options.cancel.set()
            backend.crash()  # the main thread's kill
            raise RunFailed("the VNC console is gone: QEMU exited")

    def seat() -> None:
        run_seat(lab, lab.seat_list()[0], options, [], {}, steps=[_Start(log, backend), Playbook("install", log)])

    with ThreadPoolExecutor(1) as pool, pytest.raises(SystemExit) as info:
        pool.submit(seat).result(timeout=30)
    assert info.value.code == 143 and backend.calls[-1] == "stop hard"
    result = json.loads(next((tmp_path / "runs").glob("*/result.json")).read_text())
    assert result["interrupted"] is True and result["step"] == "install"


def test_children_die_with_labctl(tmp_path: Path) -> None:
    """A QEMU (here: sleep) started with die_with_parent ends when labctl is killed with -9, as the
    KVM probe's QEMU does (not left running, re-parented to init)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pidfile = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from labctl.backends.children import die_with_parent\n"
        "p = subprocess.Popen(die_with_parent(['sleep', '60']), start_new_session=True)\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n")])
    try:
        deadline = time.monotonic() + 20
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(pidfile.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and ") Z " not in Path(f"/proc/{child}/stat").read_text():
            assert time.monotonic() < deadline, "the child outlived its parent"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_one_up_per_seat_at_a_time(lab: Lab, tmp_path: Path) -> None:
    """A second 'labctl up' of a seat being set up is refused before it touches anything (the
    first one's sockets and runtime record stay)."""
    import os

    from labctl.errors import InputError
    from labctl.runner import seat_lock

    seat = lab.seat_list()[0]
    log: list[str] = []
    with seat_lock(seat), pytest.raises(InputError, match=f"another 'labctl up' \\(pid {os.getpid()}\\)"):
        run_seat(lab, seat, UpOptions(runs_dir=tmp_path / "runs"), [], {}, steps=[Rec("a", log)])
    assert log == [] and not (tmp_path / "runs").exists()
    assert run_seat(lab, seat, UpOptions(runs_dir=tmp_path / "runs"), [], {}, steps=[Rec("a", log)]).ok


def test_run_folders_of_the_same_second_differ(lab: Lab, tmp_path: Path) -> None:
    from labctl.runner import new_run_dir

    seat = lab.seat_list()[0]
    folders = {new_run_dir(lab, seat, tmp_path / "runs") for _ in range(5)}
    assert len(folders) == 5 and all(f.is_dir() for f in folders)
