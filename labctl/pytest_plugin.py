"""pytest plugin (entry point ``pytest11``): a lab as an end-to-end regression test.

    @pytest.mark.lab("labs/usb-install-sim.yaml")
    def test_installer_welcome(lab_seat):
        lab_seat.wait("Welcome to the VMware ESXi", timeout=240)
        lab_seat.send("<enter>")
        lab_seat.wait("End User License Agreement")

    def test_shell_after_install(installed_seat):     # the install runs once per session and lab
        installed_seat.wait("ESXi")

Options:

``--lab LAB``            the lab for tests without a ``lab`` marker (the marker wins)
``--lab-backend B``      ``qemu``, ``vmware`` or ``auto`` instead of the lab's ``backend:``
``--lab-keep``           leave the seats' VMs running after their tests (look at them over VNC)
``--lab-artifacts DIR``  where run folders, seat state and stick images go (default: pytest's tmp dir); each
                         test's console run folder (events, every screen, report.html) is ``DIR/<test name>``

Fixtures:

``lab_file``         the lab as a file of its own in the test's artifacts folder: state, runs and stick images
                     go there (a test never touches a trainer's own sticks); ``@pytest.mark.lab(path, **keys)``
                     overrides keys (``post_install=[]``, ``console={"serial": False}``); seats left running
                     are stopped after the test
``lab``              that lab, validated
``lab_backend``      the backend it runs on here; skips the test (with the reason) when it cannot run
``lab_seat``         seat 1 booted from the installer ISO, with the console verbs (``wait``, ``send``, ``type``,
                     ``select``, ``screenshot``, ``wait_serial``, ``screen_text``, ``run_playbook``); stopped after
                     the test
``installed_seat``   session-scoped: ``labctl up`` done once (install, post-install, verify), the installed seat
                     left running with the same verbs

A test is skipped, with the reason, when QEMU or OVMF is missing (or the chosen backend is not usable here).
When a test using a seat fails, its screenshot, the last screen text and the serial tail are attached: always as
junit properties (``--junitxml``), as report sections in pytest's output, and as pytest-html extras when
pytest-html is installed. Nothing here runs unless a test asks for a fixture, so installing labctl does not slow
other projects' test runs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from labctl.console import Console, Evidence
    from labctl.report import RunFolder
    from labctl.spec import Lab, Seat

MARKER = "lab"
SERIAL_TAIL = 2000
_SEATS = pytest.StashKey[list["LabSeat"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labctl", "labctl: labs as end-to-end tests")
    group.addoption("--lab", metavar="LAB", default=None, help="lab file for tests without a @pytest.mark.lab")
    group.addoption("--lab-backend", metavar="B", default=None, choices=["qemu", "vmware", "auto"],
                    help="backend instead of the lab's backend: (qemu, vmware, auto)")
    group.addoption("--lab-keep", action="store_true", default=False,
                    help="leave the seats' VMs running after their tests")
    group.addoption("--lab-artifacts", metavar="DIR", default=None,
                    help="run folders, seat state and stick images go here (default: pytest's tmp dir)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab(path): the lab file the test's lab, lab_seat and installed_seat use")


# -- the lab --------------------------------------------------------------------------------------------------


def _marker(node: pytest.Item | None) -> pytest.Mark | None:
    return node.get_closest_marker(MARKER) if node is not None else None


def _lab_path(config: pytest.Config, node: pytest.Item | None) -> Path:
    marker = _marker(node)
    if marker is not None:
        if not marker.args:
            raise pytest.UsageError(f"{node.nodeid if node else ''}: @pytest.mark.lab needs the lab file's path")
        path = Path(str(marker.args[0])).expanduser()
        if not path.is_absolute():
            path = Path(str(config.rootpath)) / path
        return path
    opt = config.getoption("--lab")
    if not opt:
        pytest.skip("no lab: give --lab LAB or mark the test with @pytest.mark.lab('labs/x.yaml')")
    return Path(str(opt)).resolve()


def _artifacts(config: pytest.Config, factory: pytest.TempPathFactory) -> Path:
    opt = config.getoption("--lab-artifacts")
    path = Path(str(opt)).resolve() if opt else factory.getbasetemp() / "labctl"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _anchored(value: Any, base: Path) -> Any:
    """A path from the lab, made absolute against the lab's folder (``sim``, ``~`` and ``${VAR}`` paths kept)."""
    if not isinstance(value, str) or value == "sim" or value.startswith(("sim:", "/", "~", "$")):
        return value
    return str(base / value)


def isolated_lab_file(src: Path, home: Path, overrides: dict[str, Any] | None = None) -> Path:
    """``home/lab.yaml``: the lab ``src`` (with ``overrides`` merged in, as a marker's keywords give them) writing
    its state, runs and stick and disk images under ``home``, so a test never touches a trainer's own sticks or
    another test's. The ISO, kickstart, playbooks and OVMF files still come from beside ``src``; a host stick
    (``stick.usb``) and absolute image paths stay as the lab says. ``src`` is validated first, so its problems
    are reported at its own FILE:LINE:COL."""
    import yaml

    from labctl.errors import SpecError
    from labctl.spec import load_lab

    try:
        load_lab(src)
        data = yaml.safe_load(src.read_text(encoding="utf-8"))
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None
    except OSError as exc:
        raise pytest.UsageError(f"{src}: {exc}") from None
    base = src.resolve().parent
    data = _merge(data, overrides or {})
    data["state_dir"], data["runs_dir"] = "state", "runs"
    if isinstance(data.get("iso"), str):
        data["iso"] = _anchored(data["iso"], base)
    install = data.get("install")
    if isinstance(install, dict):
        for key in ("kickstart",):
            if key in install:
                install[key] = _anchored(install[key], base)
        if str(install.get("playbook", "")).endswith((".yaml", ".yml")):
            install["playbook"] = _anchored(install["playbook"], base)
        secret = install.get("root_password")
        if isinstance(secret, dict) and "file" in secret:
            secret["file"] = _anchored(secret["file"], base)
    qemu = data.get("qemu")
    if isinstance(qemu, dict):
        for key in ("ovmf_code", "ovmf_vars"):
            if key in qemu:
                qemu[key] = _anchored(qemu[key], base)
    for seat in data.get("seats") or [] if isinstance(data.get("seats"), list) else []:
        if isinstance(seat, dict) and isinstance(seat.get("iso"), str):
            seat["iso"] = _anchored(seat["iso"], base)
    home.mkdir(parents=True, exist_ok=True)
    playbooks = base / "playbooks"
    if playbooks.is_dir():  # the lab's own playbooks, found as beside it; a test may add its own there
        (home / "playbooks").mkdir(exist_ok=True)
        for book in playbooks.glob("*.y*ml"):
            link = home / "playbooks" / book.name
            if not link.exists():
                link.symlink_to(book)
    out = home / "lab.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    try:
        load_lab(out)
    except SpecError as exc:
        raise pytest.UsageError(f"{src} with the marker's overrides {overrides}: {exc}") from None
    return out


def skip_unless_runnable(lab: Lab, backend: str | None) -> str:
    """The backend's name; the test is skipped, with the reason, when it cannot run on this host."""
    from labctl import backends
    from labctl.errors import LabctlError

    try:
        choice = backends.choose(lab, backend)
    except LabctlError as exc:
        pytest.skip(f"lab {lab.name}: {exc}")
    if choice.name == "qemu":
        from labctl.backends.qemu_argv import ovmf_files

        if shutil.which("qemu-system-x86_64") is None:
            pytest.skip("qemu-system-x86_64 is missing (apt-get install qemu-system-x86)")
        missing = [str(p) for p in ovmf_files(lab) if not p.exists()]
        if missing:
            pytest.skip(f"OVMF is missing: {', '.join(missing)} (apt-get install ovmf)")
    ok, why = backends.default_registry().probe(lab, choice.name)
    if not ok:
        pytest.skip(f"the {choice.name} backend is not usable here: {why}")
    return choice.name


def stop_lab(lab: Lab, backend: str) -> None:
    """Stop whatever of the lab's seats still runs (a test that failed half-way, a VM a test left)."""
    from labctl import backends

    for seat in lab.seat_list():
        try:
            b = backends.create(lab, seat, backend)
            if b.attach_running() and b.alive():
                b.stop("hard", timeout=20)
            b.stop_strays()
            b.cleanup_stale()
        except Exception as exc:  # teardown: report, never mask the test's own result
            import warnings

            warnings.warn(f"labctl: cannot stop seat {seat.name} of lab {lab.name}: {exc}", stacklevel=1)


@pytest.fixture
def lab_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The test's lab (its marker's, else --lab) as a file of its own in the artifacts folder (see
    ``isolated_lab_file``); the marker's keywords override the lab's keys (``post_install=[]``). Any of its seats
    still running after the test is stopped (not with --lab-keep)."""
    node = request.node if isinstance(request.node, pytest.Item) else None
    src = _lab_path(request.config, node)
    marker = _marker(node)
    home = _test_dir(_artifacts(request.config, tmp_path_factory), request.node.name) / "lab"
    path = isolated_lab_file(src, home, dict(marker.kwargs) if marker is not None else None)
    from labctl.spec import load_lab

    the_lab = load_lab(path)  # as set up: the test may change its file
    yield path
    if not request.config.getoption("--lab-keep"):
        from labctl import backends
        from labctl.errors import LabctlError

        try:
            name = backends.choose(the_lab, request.config.getoption("--lab-backend")).name
        except LabctlError:
            return
        stop_lab(the_lab, name)


@pytest.fixture
def lab(lab_file: Path) -> Lab:
    """The test's lab, validated (``lab_file`` loaded)."""
    from labctl.spec import load_lab

    return load_lab(lab_file)


@pytest.fixture
def lab_backend(request: pytest.FixtureRequest, lab: Lab) -> str:
    """The backend the lab runs on here (``--lab-backend`` or the lab's); the test is skipped, with the reason,
    when it cannot run on this host (QEMU or OVMF missing). For tests that drive ``labctl`` themselves."""
    return skip_unless_runnable(lab, request.config.getoption("--lab-backend"))


# -- a seat with the console verbs ------------------------------------------------------------------------------


@dataclass
class LabSeat:
    """A running seat and the console verbs a test drives it with (os-autoinst's names in brackets)."""

    lab: Lab
    seat: Seat
    backend: Any  # labctl.backends.base.Backend
    console: Console
    run: RunFolder
    variables: dict[str, object] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    install_run: Path | None = None  # installed_seat: the run folder of its 'labctl up'

    def wait(self, text: str, timeout: float = 60.0, serial: bool = True) -> Evidence:
        """Until the regex ``text`` is on screen (or on the serial console) [assert_screen]."""
        self.console.step = f"wait {text}"
        return self.console.wait_text(text, timeout, serial=serial)

    def wait_serial(self, regex: str, timeout: float = 60.0) -> Evidence:
        self.console.step = f"wait serial {regex}"
        return self.console.wait_serial(regex, timeout)

    def send(self, keys: str) -> None:
        """Keys in Packer's boot_command grammar: ``"<enter>"``, ``"<leftShiftOn>O<leftShiftOff>"`` [send_key]."""
        self.console.step = f"send {keys}"
        self.console.send_keys(keys)

    def type(self, text: str, secret: bool = False) -> None:
        """Type text; ``secret=True`` keeps it out of every log and report [type_string]."""
        if secret:
            self.secrets.append(text)
            self.run.add_secrets([text])
        self.console.type_string(text, secret=secret)

    def select(self, text: str, timeout: float = 30.0) -> Evidence:
        """Move the highlight of a list onto the row matching ``text`` (the playbook's select step)."""
        self.console.step = f"select {text}"
        return self.console.select(text, timeout)

    def screenshot(self, name: str = "screenshot") -> Path:
        """Save the screen in the test's run folder; returns the PNG."""
        return self.console.screenshot(name)

    def screen_text(self) -> str:
        """What OCR reads on the screen now."""
        return self.console.read_screen()

    def serial_tail(self, chars: int = SERIAL_TAIL) -> str:
        serial = getattr(self.console, "serial", None)
        if serial is None:
            return ""
        return self.run.scrub(serial.text(since_mark=False))[-chars:]

    def run_playbook(self, name: str) -> None:
        """A playbook by name (labs/playbooks/NAME.yaml, or beside the lab) or path, on this seat."""
        from labctl.playbook import run_playbook
        from labctl.runner import playbook_ref

        run_playbook(playbook_ref(self.lab, name), self.console, self.backend, self.variables, self.run,
                     self.secrets)

    def run_steps(self, steps: list[dict[str, Any]]) -> None:
        """Playbook steps given as data (the playbook grammar), run on this seat."""
        import yaml

        book = self.run.path / f"steps-{len(list(self.run.path.glob('steps-*.yaml'))) + 1}.yaml"
        book.write_text(yaml.safe_dump({"name": "test steps", "steps": steps}, sort_keys=False))
        self.run_playbook(str(book))


def _root_password(lab: Lab) -> str:
    from labctl.errors import LabctlError
    from labctl.spec import resolve_secret

    try:
        return resolve_secret(lab.install.root_password, lab)
    except LabctlError as exc:
        pytest.skip(f"lab {lab.name}: {exc}")


def _test_dir(artifacts: Path, name: str) -> Path:
    return artifacts / re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:120]


def start_seat(lab: Lab, backend_name: str | None, run_dir: Path, install: bool) -> LabSeat:
    """Seat 1 of ``lab`` running, with a console on it: booted from the ISO, or (``install``) after a whole
    ``labctl up``. A run that fails fails the test with labctl's message (the step, the screenshot)."""
    from labctl.console import Console
    from labctl.errors import InputError, RunFailed
    from labctl.report import RunFolder
    from labctl.runner import UpOptions, check_playbooks, playbook_variables, run_seat

    seat = lab.seat_list()[0]
    password = _root_password(lab) if install else None
    variables = playbook_variables(lab, seat, password)
    secrets = [password] if password else []
    if install:
        check_playbooks(lab)
    options = UpOptions(keep=True, boot_only=not install, runs_dir=lab.resolve(lab.runs_dir), backend=backend_name)
    try:
        result = run_seat(lab, seat, options, secrets, variables)
    except (RunFailed, InputError) as exc:
        pytest.fail(f"labctl up of lab {lab.name} failed: {exc}", pytrace=False)
    backend = result.backend
    assert backend is not None
    run = RunFolder(run_dir, secrets=secrets)
    try:
        serial = backend.serial_endpoint() if lab.console.serial else None
        key_rate = lab.console.key_rate or backend.default_key_rate
        console = Console.open(backend.vnc_endpoint(), serial, run, key_rate=key_rate, secrets=secrets,
                               timeout_scale=lab.console.timeout_scale, alive=backend.alive)
    except BaseException:
        backend.stop("hard")
        raise
    return LabSeat(lab=lab, seat=seat, backend=backend, console=console, run=run, variables=variables,
                   secrets=secrets, install_run=result.run_dir if install else None)


def stop_seat(seat: LabSeat, keep: bool, result: str = "finished") -> None:
    try:
        seat.console.close()
    finally:
        try:
            seat.run.finish(result)
        finally:
            if not keep and seat.backend.alive():
                seat.backend.stop("hard")


@pytest.fixture
def lab_seat(request: pytest.FixtureRequest, lab: Lab, lab_backend: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSeat]:
    """Seat 1 of the lab booted from its installer ISO, with the console verbs; stopped after the test."""
    backend = lab_backend
    artifacts = _artifacts(request.config, tmp_path_factory)
    seat = start_seat(lab, backend, _test_dir(artifacts, request.node.name) / "console", install=False)
    request.node.stash.setdefault(_SEATS, []).append(seat)
    try:
        yield seat
    finally:
        failed = getattr(request.node, "_labctl_failed", False)
        stop_seat(seat, bool(request.config.getoption("--lab-keep")), "failed" if failed else "passed")


@pytest.fixture(scope="session")
def installed_seat(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSeat]:
    """The lab installed once per session (``labctl up``: install, post-install, verify), left running with
    the console verbs. The lab is --lab, or the one lab the session's tests using this fixture are marked with."""
    config = request.config
    labs = {_lab_path(config, item) for item in request.session.items
            if "installed_seat" in getattr(item, "fixturenames", ()) and item.get_closest_marker(MARKER)}
    if len(labs) > 1:
        raise pytest.UsageError("installed_seat is one seat per session: its tests are marked with different labs "
                                f"({', '.join(sorted(map(str, labs)))}); run them in separate sessions")
    path = labs.pop() if labs else _lab_path(config, None)
    from labctl.spec import load_lab

    home = _test_dir(_artifacts(config, tmp_path_factory), f"installed-{path.stem}")
    the_lab = load_lab(isolated_lab_file(path, home / "lab"))
    backend = skip_unless_runnable(the_lab, config.getoption("--lab-backend"))
    seat = start_seat(the_lab, backend, home / "console", install=True)
    try:
        yield seat
    finally:
        stop_seat(seat, bool(config.getoption("--lab-keep")))
        if not config.getoption("--lab-keep"):
            stop_lab(the_lab, backend)


# -- evidence of a failure --------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when != "call" or not report.failed:
        return report
    item._labctl_failed = True  # type: ignore[attr-defined]
    held: list[LabSeat] = item.stash.get(_SEATS, [])
    seats: list[Any] = list(held)
    funcargs = getattr(item, "funcargs", {})
    for name in ("lab_seat", "installed_seat"):
        s = funcargs.get(name)
        if s is not None and s not in seats and hasattr(s, "console"):
            seats.append(s)
    for seat in seats:
        _attach(item, report, seat)
    return report


def _attach(item: pytest.Item, report: pytest.TestReport, seat: Any) -> None:
    """The failing test's screenshot, last screen text and serial tail: junit properties, report sections, and
    pytest-html extras when that plugin is installed."""
    shot: Path | None = None
    try:
        shot = seat.screenshot(f"failed-{item.name}")
    except Exception as exc:  # the screen may be what failed
        report.sections.append(("labctl screenshot", f"(no screenshot: {exc})"))
    try:
        text = seat.screen_text()
    except Exception as exc:
        text = f"(no screen text: {exc})"
    try:
        tail = seat.serial_tail()
    except Exception as exc:
        tail = f"(no serial: {exc})"
    label = getattr(getattr(seat, "seat", None), "name", "seat")
    if shot is not None:
        item.user_properties.append((f"labctl_screenshot[{label}]", str(shot)))
        report.sections.append((f"labctl screenshot ({label})", str(shot)))
    item.user_properties.append((f"labctl_screen_text[{label}]", text))
    item.user_properties.append((f"labctl_serial_tail[{label}]", tail))
    report.sections.append((f"labctl screen text ({label})", text))
    if tail:
        report.sections.append((f"labctl serial tail ({label})", tail))
    run = getattr(seat, "run", None)
    if run is not None:
        item.user_properties.append((f"labctl_run_dir[{label}]", str(run.path)))
    _html_extras(item, report, shot, text, tail, label)


def _html_extras(item: pytest.Item, report: pytest.TestReport, shot: Path | None, text: str, tail: str,
                 label: str) -> None:
    if not item.config.pluginmanager.hasplugin("html"):
        return
    try:
        from pytest_html import extras  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return
    found = getattr(report, "extras", [])
    if shot is not None:
        import base64

        found.append(extras.png(base64.b64encode(shot.read_bytes()).decode(), name=f"{label}: screen"))
    found.append(extras.text(text, name=f"{label}: screen text"))
    if tail:
        found.append(extras.text(tail, name=f"{label}: serial tail"))
    report.extras = found  # type: ignore[attr-defined]
