"""labctl.classroom with the in-memory backend: seats in parallel, one failure not stopping the others,
running seats refused, down and status through the Backend contract only."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest
from fakes.fake_backend import FakeBackend, FakeHost

from labctl.classroom import down_seats, run_seats, status_seats, summary
from labctl.errors import InputError, RunFailed
from labctl.runner import Context, UpOptions, UpStep, playbook_variables, run_seat, supervise
from labctl.spec import Lab, load_lab

LAB = """\
name: room
backend: qemu
iso: installer.iso
seats: 3
stick:
  image: sticks/{seat}.img
  size: 1G
install:
  root_password: {env: LAB_ROOT_PASSWORD}
"""


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    (tmp_path / "installer.iso").write_bytes(b"\0" * 2048)
    (tmp_path / "lab.yaml").write_text(LAB)
    return load_lab(tmp_path / "lab.yaml")


def options(host: FakeHost, tmp_path: Path, **kw: object) -> UpOptions:
    opts = UpOptions(backend="fake", registry=host.registry(), runs_dir=tmp_path / "runs", boot_only=True, keep=True)
    for k, v in kw.items():
        setattr(opts, k, v)
    return opts


def test_seats_run_in_parallel_and_stay_up_after_boot_only(lab: Lab, tmp_path: Path) -> None:
    host = FakeHost()
    heard: list[str] = []
    results = run_seats(lab, lab.seat_list(), options(host, tmp_path, parallel=2),
                        on_result=lambda r: heard.append(r.seat.name))
    assert [r.seat.index for r in results] == [1, 2, 3] and all(r.ok for r in results)
    assert sorted(heard) == ["room-1", "room-2", "room-3"]
    assert sorted(host.vms) == ["room-1", "room-2", "room-3"]  # boot-only: left running
    for r in results:
        assert json.loads((r.run_dir / "result.json").read_text())["boot_only"] is True
    assert summary(results) == "3 of 3 seats passed"


def test_one_failing_seat_does_not_stop_the_others(lab: Lab, tmp_path: Path) -> None:
    host = FakeHost(fail_start={"room-2": "no VNC port left"})
    results = run_seats(lab, lab.seat_list(), options(host, tmp_path))
    assert [r.ok for r in results] == [True, False, True]
    bad = results[1]
    assert bad.step == "start VM" and bad.message == "no VNC port left"
    assert "seat 2 (room-2): step 'start VM' failed: no VNC port left" in bad.detail
    assert summary(results) == "1 of 3 seats failed: seat 2 (room-2) at step 'start VM': no VNC port left"
    assert "room-2" not in host.vms


def test_a_running_seat_is_refused_before_anything_starts(lab: Lab, tmp_path: Path) -> None:
    host = FakeHost()
    seat2 = lab.seat_list()[1]
    host.create(lab, seat2).start()
    with pytest.raises(InputError, match="seat 2 \\(room-2\\) is already running"):
        run_seats(lab, lab.seat_list(), options(host, tmp_path))
    assert not (tmp_path / "runs").exists() and sorted(host.vms) == ["room-2"]


def test_the_root_password_is_checked_before_any_seat_starts(lab: Lab, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_ROOT_PASSWORD", "short")
    host = FakeHost()
    with pytest.raises(InputError, match=r"install\.root_password: the ESXi 6\.7 installer would refuse it"):
        run_seats(lab, lab.seat_list(), options(host, tmp_path, boot_only=False))
    assert host.vms == {}


def test_down_and_status_through_the_contract(lab: Lab, tmp_path: Path) -> None:
    host = FakeHost()
    seats = lab.seat_list()
    run_seats(lab, seats[:2], options(host, tmp_path))
    rows = status_seats(lab, seats, "fake", host.registry())
    assert [r.power_state.value for r in rows] == ["running", "running", "off"]
    assert rows[0].stage == "booted (boot-only run); left running" and rows[2].stage == "not run yet"
    assert rows[0].vnc is not None and rows[0].vnc.url == "vnc://127.0.0.1:5901"
    assert rows[0].choice.reason == "--backend fake"
    auto = lab.model_copy(update={"backend": "auto"})  # the registry's only backend is the fake one
    done_list = down_seats(auto, seats, hard=True, registry=host.registry())
    assert [d.stop.how if d.stop else None for d in done_list] == ["hard", "hard", None]
    assert [d.changed for d in done_list] == [True, True, False] and host.vms == {}


def test_playbook_variables_are_the_ones_playbooks_may_name(lab: Lab) -> None:
    from labctl.playbook import LAB_VARIABLES

    seat = lab.seat_list()[0]
    assert set(playbook_variables(lab, seat, "pw")) == set(LAB_VARIABLES)
    assert "root_password" not in playbook_variables(lab, seat, None)
    assert playbook_variables(lab, seat, None)["seat"] == "room-1"


def test_the_supervisor_ends_a_step_when_the_vm_dies_in_the_main_thread(lab: Lab, tmp_path: Path) -> None:
    """The VM dies while a step waits on the console: the console is told at once (no console timeout),
    the seat fails with the backend's account of the death, and no signal handler is left changed."""
    host = FakeHost()
    backend = FakeBackend(lab, lab.seat_list()[0], host)
    before = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM)

    class Console:
        def __init__(self) -> None:
            self.gone = threading.Event()

        def abort(self, why: str) -> None:
            self.gone.set()

        def close(self) -> None: ...

    class Start(UpStep):
        name = "start VM"

        def run(self, ctx: Context) -> None:
            backend.start()
            ctx.backend = backend
            ctx.console = Console()

        def cleanup(self, ctx: Context) -> None:
            backend.stop("hard")

    class Wait(UpStep):
        name = "install playbook"

        def run(self, ctx: Context) -> None:
            threading.Timer(0.3, backend.crash, args=("killed by signal 9",)).start()
            if not ctx.console.gone.wait(20):
                raise AssertionError("the console was never told")
            raise RunFailed("the VNC console is gone")

    with pytest.raises(RunFailed) as info:
        run_seat(lab, lab.seat_list()[0], UpOptions(runs_dir=tmp_path / "runs"), [], {}, steps=[Start(), Wait()])
    said = str(info.value)
    assert "step 'install playbook' failed: fake VM (pid 4242) exited unexpectedly (killed by signal 9)" in said
    assert (signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM)) == before


def test_supervise_without_a_backend_is_a_no_op() -> None:
    calls: list[str] = []
    with supervise(None, on_death=lambda: calls.append("x")):
        pass
    assert calls == []



def test_status_shows_the_step_of_an_up_in_progress(lab: Lab, tmp_path: Path) -> None:
    from labctl.report import RunFolder
    from labctl.runner import last_run_file, seat_lock

    host = FakeHost()
    seat = lab.seat_list()[0]
    run = RunFolder(tmp_path / "runs" / "now-room-1")
    run.event("prepare", phase="start")
    run.event("prepare", phase="end", result="ok")
    run.event("install playbook esxi-6.7-interactive", phase="start")
    seat.state_dir.mkdir(parents=True, exist_ok=True)
    last_run_file(seat).write_text(f"{run.path}\n")
    with seat_lock(seat):  # as the 'labctl up' in another shell holds it
        [row] = status_seats(lab, [seat], "fake", host.registry())
    assert row.stage == "up: install playbook esxi-6.7-interactive"
    [row] = status_seats(lab, [seat], "fake", host.registry())
    assert row.stage == ("the last up ended without a result during step 'install playbook esxi-6.7-interactive' "
                         "(labctl was killed)")
