"""Playbooks: parsing, FILE:LINE errors, when/optional, cleanups in reverse order (fake console)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labctl.console import Evidence, WaitTimeout
from labctl.errors import RunFailed, SpecError
from labctl.playbook import Runner, load, run_playbook
from labctl.report import RunFolder

SECRET = "Sup3r-Secret!"


class FakeConsole:
    """Records verbs; 'screen' is a list of texts, one per wait, or a dict of text -> present."""

    def __init__(self, screens: list[str], run: RunFolder) -> None:
        self.screens = screens
        self.run = run
        self.calls: list[tuple[str, Any]] = []
        self.step = ""
        self.serial = None
        self.last_text = ""
        self.timeout_scale = 1.0

    def add_secrets(self, secrets: list[str]) -> None:
        self.run.add_secrets(secrets)

    def scrub(self, text: str) -> str:
        return self.run.scrub(text)

    def _current(self) -> str:
        return self.screens[0] if self.screens else ""

    def send_keys(self, spec: str) -> None:
        self.calls.append(("keys", spec))
        if self.screens:
            self.screens.pop(0)

    def type_string(self, text: str, secret: bool = False) -> None:
        self.calls.append(("type", "<secret>" if secret else text))

    def wait_text(self, regex: str, timeout: float, region: Any = None, serial: bool = True) -> Evidence:
        import re

        self.calls.append(("wait", regex))
        if re.search(regex, self._current()):
            return Evidence("screen", regex, 0.0)
        raise WaitTimeout(self.step, f"text /{regex}/", timeout, None, self._current())

    def wait_any_text(self, patterns: dict[str, str], timeout: float, region: Any = None,
                      serial: bool = True) -> tuple[str, Evidence]:
        import re

        for k, p in patterns.items():
            if re.search(p, self._current()):
                return k, Evidence("screen", p, 0.0)
        raise WaitTimeout(self.step, "any", timeout, None, self._current())

    def has_text(self, regex: str, region: Any = None) -> bool:
        import re

        return bool(re.search(regex, self._current()))

    def read_screen(self, region: Any = None) -> str:
        self.last_text = self._current()
        return self.last_text

    def screenshot(self, name: str) -> Path:
        self.calls.append(("screenshot", name))
        return self.run.path / f"{name}.png"


def write(tmp: Path, text: str) -> Path:
    p = tmp / "pb.yaml"
    p.write_text(text)
    return p


def test_interactive_playbook_loads() -> None:
    book = load("esxi-6.7-interactive")
    names = [s.name for s in book.steps]
    assert names[0] == "boot loader" and "installation complete" in names
    assert book.steps[0].wait.serial is False  # type: ignore[attr-defined]  # nothing on serial at the boot loader


@pytest.mark.parametrize(("body", "line", "needle"), [
    ("name: x\nsteps:\n  - keys: '<entr>'\n", 3, "did you mean <enter>"),
    ("name: x\nsteps:\n  - wait: {text: 'a'}\n  - typo: 1\n", 4, "unknown step key"),
    ("name: x\nsteps:\n  - wait: {text: 'a', timeout: -1}\n", 3, "timeout"),
    ("name: x\nsteps:\n  - type: 'hello {nope}'\n", 3, "unknown variable {nope}"),
    ("name: x\nsteps:\n  - wait: {text: 'a('}\n", 3, "bad regular expression"),
    ("name: x\nsteps:\n  - keys: a\n    wait: {text: b}\n", 3, "exactly one action"),
    ("name: x\nsteps:\n  - power: sideways\n", 3, "reset, off or on"),
    ("name: x\nsteps: []\n", 2, "non-empty list"),
    # values a step would only trip over once the VM runs: refused at load time instead
    ("name: x\nsteps:\n  - wait: {text: never, timeout: .nan}\n", 3, "timeout"),
    ("name: x\nsteps:\n  - wait: {text: never, timeout: .inf}\n", 3, "timeout"),
    ("name: x\nsteps:\n  - wait: {text: 'Installing *(ESXi'}\n", 3, "bad regular expression"),
    ("name: x\nsteps:\n  - wait: {needle: esxi-logo-typo}\n", 3, "needle 'esxi-logo-typo' not found"),
    ("name: x\nsteps:\n  - select: {text: a, max: many}\n", 3, "max is a whole number"),
    ("name: x\nsteps:\n  - wait: {any: {a: x, b: y}, as: r}\n  - when: {rr: a}\n    keys: '<enter>'\n", 4,
     "unknown variable"),
    # values that passed the load and then meant something else, or nothing, at run time
    ("name: x\nsteps:\n  - wait: {text: a, timeout: 1}\n    optional: 'false'\n", 4, "true or false"),
    ("name: x\nsteps:\n  - type: {text: a, secret: 'yes'}\n", 3, "true or false"),
    ("name: x\nsteps:\n  - assert: {text: a, absent: 'false'}\n", 3, "true or false"),
    ("name: x\nsteps:\n  - wait: {text: a, serial: 'false'}\n", 3, "in quotes is a pattern"),
    ("name: x\nsteps:\n  - power: off\n", 3, "in quotes"),
    ("name: x\nsteps:\n  - keys: '<enter>'\n    timeout: 5\n", 4, "timeout would be ignored"),
    ("name: x\nsteps:\n  - steps: [{keys: '<enter>'}]\n    timeout: 5\n", 4, "timeout would be ignored"),
    ("name: x\nsteps:\n  - assert: {text: a, absent: true}\n    timeout: 5\n", 4, "would be ignored"),
    ("name: x\nsteps:\n  - wait: {text: a, timeout: 60}\n    timeout: 5\n", 4, "given twice"),
    ("name: x\nsteps:\n  - fail: why\n    optional: true\n", 4, "would never fail"),
    ("name: x\nsteps:\n  - fail: why\n    timeout: 5\n", 4, "would be ignored"),
    ("name: x\nsteps:\n  - fail: {message: why}\n    timeout: 5\n", 4, "would be ignored"),
    ("name: x\nsteps:\n  - optional: true\n    steps:\n      - keys: '<enter>'\n      - fail: why\n", 6,
     "in an optional group would only be logged"),
    ("name: x\nsteps:\n  - keys: '<enter>'\n    cleanup: {fail: why}\n", 4, "as a cleanup would only be logged"),
    ("name: x\nsteps:\n  - fail: {message: why, shows: 'a|'}\n", 3, "matches the empty string"),
    ("name: x\nsteps:\n  - fail: {shows: 'ESXi Found'}\n", 3, "message"),
    ("name: x\nsteps:\n  - wait: {still: 2, still_for: 5, timeout: 10}\n", 3, "unknown key"),
    ("name: x\nsteps:\n  - wait: {still: 40}\n", 3, "could never be met"),
    ("name: x\nsteps:\n  - wait: {still: 5, timeout: 5}\n", 3, "could never be met"),
    ("name: x\nsteps:\n  - wait: {still: -1, timeout: 5}\n", 3, "above 0"),
    ("name: x\nsteps:\n  - wait: {still: 0, timeout: 5}\n", 3, "above 0"),
    ("name: x\nsteps:\n  - wait: {still: .nan, timeout: 5}\n", 3, "above 0"),
    ("name: x\nsteps:\n  - wait: {still: '2', timeout: 5}\n", 3, "not text"),
    ("name: x\nsteps:\n  - wait: {text: 'Complete|'}\n", 3, "matches the empty string"),
    ("name: x\nsteps:\n  - wait: {any: {a: 'Found', b: '(ESXi)?'}}\n", 3, "matches the empty string"),
    ("name: x\nsteps:\n  - select: '.*'\n", 3, "matches the empty string"),
    ("name: x\nsteps:\n  - run: {command: ls, expect: 'x*'}\n", 3, "matches the empty string"),
    ("name: x\nsteps:\n  - keys: '< enter >'\n", 3, "did you mean <enter>"),
    ("name: x\nsteps:\n  - wait: {change: '<f11 >'}\n", 3, "did you mean <f11>"),
])
def test_errors_have_file_line(tmp_path: Path, body: str, line: int, needle: str) -> None:
    with pytest.raises(SpecError) as exc:
        load(str(write(tmp_path, body)))
    assert exc.value.line == line, str(exc.value)
    assert needle in str(exc.value) and str(exc.value).startswith(str(tmp_path / "pb.yaml") + f":{line}:")


def test_cleanups_run_in_reverse_on_failure(tmp_path: Path) -> None:
    p = write(tmp_path, """
name: t
steps:
  - keys: '<enter>'
    cleanup: {screenshot: first}
  - keys: '<f11>'
    cleanup: {screenshot: second}
  - name: never
    wait: {text: 'Installation Complete', timeout: 1}
  - keys: '<esc>'
    cleanup: {screenshot: third}
""")
    run = RunFolder(tmp_path / "run")
    c = FakeConsole(["a", "b", "c"], run)
    with pytest.raises(WaitTimeout, match="never"):
        run_playbook(str(p), c, None, {}, run, [])  # type: ignore[arg-type]
    assert [x for x in c.calls if x[0] == "screenshot"] == [("screenshot", "second"), ("screenshot", "first")]
    events = [json.loads(line) for line in (run.path / "events.jsonl").read_text().splitlines()]
    failed = [e for e in events if e.get("result") == "failed" and e["step"] == "never"]
    assert failed and failed[0]["where"].endswith("pb.yaml:9")


def test_when_and_optional_and_secrets(tmp_path: Path) -> None:
    p = write(tmp_path, """
name: t
steps:
  - wait: {any: {existing: 'ESXi Found', keyboard: 'keyboard layout'}, as: after}
  - when: {after: existing}
    keys: '<enter>'
  - when: {after: keyboard}
    type: {text: '{root_password}', secret: true}
  - name: maybe
    optional: true
    wait: {text: 'System Scan', timeout: 1}
  - type: 'pw is {root_password}'
""")
    run = RunFolder(tmp_path / "run")
    c = FakeConsole(["Please select a keyboard layout"] * 5, run)
    run_playbook(str(p), c, None, {"root_password": SECRET}, run, [SECRET])  # type: ignore[arg-type]
    assert ("keys", "<enter>") not in c.calls
    assert ("type", "<secret>") in c.calls
    # the literal type of a string holding the secret is typed as secret too
    assert c.calls[-1] == ("type", "<secret>")
    text = (run.path / "events.jsonl").read_text()
    assert SECRET not in text and '"skipped"' in text


def test_missing_variable_value_fails_clearly(tmp_path: Path) -> None:
    p = write(tmp_path, "name: t\nsteps:\n  - type: ' {boot_options}'\n")
    run = RunFolder(tmp_path / "run")
    book = load(str(p))
    r = Runner(book, FakeConsole([], run), None, {}, run, [])  # type: ignore[arg-type]
    with pytest.raises(RunFailed, match="boot_options"):
        r.execute()


def test_report_scrubs_secrets(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run", secrets=[SECRET])
    run.event("x", result="failed", error=f"typed {SECRET}", nested={"k": [SECRET]})
    html = run.finish("failed", f"because {SECRET}").read_text()
    assert SECRET not in html and SECRET not in (run.path / "events.jsonl").read_text() and "*****" in html


class FakeBackend:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def reset(self, mode: str = "hard") -> None:
        self.calls.append(f"reset {mode}")

    def stop(self, mode: str = "soft", timeout: float = 60.0) -> None:
        self.calls.append(f"stop {mode}")

    def start(self) -> None:
        self.calls.append("start")

    def eject_cdrom(self) -> None:
        self.calls.append("eject")


def test_change_still_power_eject_steps(tmp_path: Path) -> None:
    p = write(tmp_path, """
name: t
steps:
  - wait: {change: '<f11>', timeout: 5}
  - wait: {still: 0.5, timeout: 5}
  - eject: true
  - power: reset
  - power: 'off'
""")
    run = RunFolder(tmp_path / "run")
    c = FakeConsole(["x"], run)
    seen: list[str] = []

    def wait_change(action: Any, timeout: float) -> Evidence:
        action()
        seen.append("change")
        return Evidence("change", "1 px", 0.0)

    def wait_still(timeout: float, still_for: float = 1.0) -> Evidence:
        seen.append(f"still {still_for}")
        return Evidence("still", "", 0.0)

    c.wait_change = wait_change  # type: ignore[attr-defined]
    c.wait_still = wait_still  # type: ignore[attr-defined]
    be = FakeBackend()
    run_playbook(str(p), c, be, {}, run, [])  # type: ignore[arg-type]
    assert ("keys", "<f11>") in c.calls and seen == ["change", "still 0.5"]
    assert be.calls == ["eject", "reset hard", "stop hard"]


def test_backend_steps_without_backend_fail_clearly(tmp_path: Path) -> None:
    p = write(tmp_path, "name: t\nsteps:\n  - eject: true\n")
    run = RunFolder(tmp_path / "run")
    with pytest.raises(RunFailed, match="backend"):
        run_playbook(str(p), FakeConsole([], run), None, {}, run, [])  # type: ignore[arg-type]


def test_serial_form_of_a_pattern_stays_a_valid_pattern() -> None:
    import re

    from labctl.console import serial_regex

    assert re.search(serial_regex("Installing *ESXi"), "Installing   ESXi")
    assert re.search(serial_regex("ESXi Shell is Enabled"), "ESXi Shell\r\n is Enabled")
    assert serial_regex("[a ]b") == "[a ]b" and serial_regex(r"a\ b") == r"a\ b"


def test_secrets_never_leak_in_escaped_repr_or_cut_forms(tmp_path: Path) -> None:
    pw = 'Ab1\\<b>&"x.$'
    run = RunFolder(tmp_path / "run", secrets=[pw])
    import re

    for shown in (pw, re.escape(pw), repr(pw), repr(re.escape(pw))):
        assert pw not in run.scrub(shown) and "Ab1" not in run.scrub(shown), shown
    p = write(tmp_path, "name: t\nsteps:\n  - wait: {text: 'pw={root_password}', timeout: 1}\n")
    c = FakeConsole(["nothing"], run)
    with pytest.raises(WaitTimeout):
        run_playbook(str(p), c, None, {"root_password": pw}, run, [pw])  # type: ignore[arg-type]
    text = (run.path / "events.jsonl").read_text()
    assert "Ab1" not in text, text


def test_a_literal_marked_secret_is_not_in_the_step_name_or_events(tmp_path: Path) -> None:
    p = write(tmp_path, "name: t\nsteps:\n  - type: {text: 'VMware1!', secret: true}\n"
                        "  - wait: {text: 'VMware1!', timeout: 1}\n")
    run = RunFolder(tmp_path / "run")
    c = FakeConsole(["nothing"], run)
    with pytest.raises(WaitTimeout):
        run_playbook(str(p), c, None, {}, run, [])  # type: ignore[arg-type]
    assert ("type", "<secret>") in c.calls
    assert "VMware1" not in (run.path / "events.jsonl").read_text()


def test_variables_in_keys_are_typed_not_parsed_and_empty_regex_variables_fail(tmp_path: Path) -> None:
    p = write(tmp_path, "name: t\nsteps:\n  - keys: '{root_password}<enter>'\n")
    run = RunFolder(tmp_path / "run")
    c = FakeConsole([], run)
    run_playbook(str(p), c, None, {"root_password": "My<Pass>word1"}, run, ["My<Pass>word1"])  # type: ignore[arg-type]
    assert c.calls[0] == ("keys", "My<lt>Pass<gt>word1<enter>")
    p = write(tmp_path, "name: t\nsteps:\n  - wait: {any: {a: x, b: y}, as: found, timeout: 1}\n"
                        "    optional: true\n  - wait: {text: '{found}', timeout: 1}\n")
    with pytest.raises(RunFailed, match=r"found.*has no value"):
        run_playbook(str(p), FakeConsole(["nothing"], run), None, {}, run, [])  # type: ignore[arg-type]


def test_when_compares_as_text_and_applies_to_cleanups(tmp_path: Path) -> None:
    p = write(tmp_path, """
name: t
steps:
  - when: {esxi: 6.7}
    keys: '<f11>'
  - keys: '<enter>'
    cleanup: {when: {esxi: '7.0'}, screenshot: never}
  - wait: {text: 'absent', timeout: 1}
""")
    run = RunFolder(tmp_path / "run")
    c = FakeConsole(["x"] * 5, run)
    with pytest.raises(WaitTimeout):
        run_playbook(str(p), c, None, {"esxi": "6.7"}, run, [])  # type: ignore[arg-type]
    assert ("keys", "<f11>") in c.calls  # 6.7 (a float in YAML) matches "6.7"
    assert ("screenshot", "never") not in c.calls



def test_every_shipped_playbook_loads() -> None:
    from labctl.playbook import LAB_VARIABLES, PLAYBOOK_DIR

    books = sorted(PLAYBOOK_DIR.glob("*.yaml"))
    assert len(books) >= 3
    for p in books:
        assert load(str(p), known_vars=set(LAB_VARIABLES)).steps, p


def test_the_schema_lists_every_step_type_and_refuses_unknown_keys() -> None:
    from labctl.playbook import STEP_TYPES, json_schema

    schema = json_schema()
    text = json.dumps(schema)
    assert schema["title"] == "labctl playbook file" and schema["required"] == ["steps"]
    for action in STEP_TYPES:
        assert f'"{action}"' in text, action
    assert schema["additionalProperties"] is False
    wait = schema["$defs"]["WaitArgs"]["properties"]
    assert {"text", "any", "still", "as", "serial"} <= set(wait)


def test_a_secret_typed_into_the_wrong_field_is_not_in_the_error(tmp_path: Path) -> None:
    for body in ("name: t\nsteps:\n  - type: {text: 'Sup3r-Secret!', secret: 'Sup3r-Secret!'}\n",
                 "name: t\nsteps:\n  - type: {secret: true, txt: 'Sup3r-Secret!'}\n",
                 "name: t\nsteps:\n  - power: 'Sup3r-Secret!'\n",
                 "name: t\nsteps:\n  - wait: {text: a, timeout: 'Sup3r-Secret!'}\n",
                 "name: t\nsteps:\n  - 'Sup3r-Secret!'\n"):
        with pytest.raises(SpecError) as exc:
            load(str(write(tmp_path, body)))
        assert "Sup3r" not in str(exc.value), str(exc.value)


def test_wait_any_evidence_says_when_several_patterns_matched(tmp_path: Path) -> None:
    from test_console import FakeVnc, TextOcr, draw

    from labctl.console.console import Console

    p = write(tmp_path, "name: t\nsteps:\n  - wait: {any: {partitions: 'Confirm Disk', existing: 'ESXi Found'},"
                        " as: after, timeout: 2}\n  - when: {after: existing}\n    keys: '<enter>'\n")
    run = RunFolder(tmp_path / "run")
    c = Console(FakeVnc(lambda t: draw("x")), None, run, ocr=TextOcr("ESXi Found\nConfirm Disk Selection"))
    run_playbook(str(p), c, None, {}, run, [])
    ev = next(e for e in run.events() if e.get("action") == "wait")
    assert ev["matched"].startswith("partitions: Confirm Disk") and "also matched: existing" in ev["matched"]
    assert ev["also_matched"] == ["existing"] and ev["screenshot"]
    assert not [e for e in run.events() if e.get("action") == "keys" and e.get("result") == "ok"]


def test_labctl_schema_playbook_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from labctl.cli import main

    assert main(["schema", "--playbook"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "labctl playbook file" and "WaitStep" in schema["$defs"]


def test_a_broken_playbook_is_one_located_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.cli import main

    monkeypatch.setenv("LAB_ROOT_PASSWORD", SECRET)
    (tmp_path / "broken.yaml").write_text("name: broken\nsteps:\n  - wait: {text: 'Complete', timeout: 5}\n"
                                          "    optional: 'false'\n")
    (tmp_path / "lab.yaml").write_text(
        "name: t\nbackend: qemu\nesxi: '6.7'\niso: sim\nstick: {image: s.img, size: 16G}\n"
        "install: {playbook: broken.yaml, root_password: {env: LAB_ROOT_PASSWORD}}\n")
    assert main(["validate", str(tmp_path / "lab.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{tmp_path / 'broken.yaml'}:4:15: steps[0].optional: true or false (without quotes)"], err


def test_a_lab_naming_a_missing_playbook_is_located_in_the_lab(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.cli import main

    monkeypatch.setenv("LAB_ROOT_PASSWORD", SECRET)
    lab = tmp_path / "lab.yaml"
    lab.write_text("name: t\nbackend: qemu\nesxi: '6.7'\niso: sim\nstick: {image: s.img, size: 16G}\n"
                   "install: {playbook: esxi-6.7-interactive, root_password: {env: LAB_ROOT_PASSWORD}}\n"
                   "post_install: [enable-esxi-shell, nable-esxi-shell]\n")
    assert main(["validate", str(lab)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{lab}:7:35: post_install[1]: ") and "'nable-esxi-shell'" in err, err


def test_a_pattern_whose_variable_is_empty_fails_instead_of_matching_any_screen(tmp_path: Path) -> None:
    p = write(tmp_path, "name: t\nsteps:\n  - wait: {text: '{keyboard}', timeout: 1}\n")
    run = RunFolder(tmp_path / "run")
    c = FakeConsole(["any screen at all"], run)
    with pytest.raises(RunFailed, match=r"matches the empty string once \{keyboard\} is filled in"):
        run_playbook(str(p), c, None, {"keyboard": ""}, run, [])  # type: ignore[arg-type]
    assert not [x for x in c.calls if x[0] == "wait"]


def test_the_json_schema_accepts_every_shipped_playbook_and_refuses_a_two_action_step() -> None:
    import jsonschema
    import yaml

    from labctl.playbook import PLAYBOOK_DIR, json_schema

    validator = jsonschema.Draft202012Validator(json_schema())
    for p in sorted(PLAYBOOK_DIR.glob("*.yaml")):
        assert not list(validator.iter_errors(yaml.safe_load(p.read_text()))), p
    assert list(validator.iter_errors({"name": "x", "steps": [{"keys": "a", "wait": {"text": "b"}}]}))
    assert list(validator.iter_errors({"name": "x", "steps": [{"wait": {"text": "b"}, "optional": "false"}]}))


class LaggingConsole(FakeConsole):
    """A screen that catches up with the serial console: each look that misses shows the next screen."""

    def wait_text(self, regex: str, timeout: float, region: Any = None, serial: bool = True) -> Evidence:
        import re

        self.calls.append(("wait", regex))
        while not re.search(regex, self._current()):
            if len(self.screens) <= 1:
                raise WaitTimeout(self.step, f"text /{regex}/", timeout, None, self._current())
            self.screens.pop(0)
        return Evidence("screen", regex, 0.0)


STOP_BOOK = """
name: t
steps:
  - wait: {any: {existing: 'ESXi Found', keyboard: 'keyboard layout'}, as: after_disk}
  - name: the stick already holds ESXi and install.existing is stop
    when: {after_disk: existing, existing: stop}
    fail: {message: "install.existing is stop: the stick is left as it was", shows: 'ESXi Found'}
  - keys: '<enter>'
"""


def serial_says_existing(patterns: dict[str, str], timeout: float, region: Any = None,
                         serial: bool = True) -> tuple[str, Evidence]:
    return "existing", Evidence("serial", "ESXi Found", 0.0)


def test_a_fail_step_waits_for_the_screen_to_show_why_then_fails_with_it(tmp_path: Path) -> None:
    """The wait before it matched on serial, ahead of the screen: the screen still shows the disk list.
    A check for absence would pass on that screen; fail waits for the dialog and fails with it."""
    p = write(tmp_path, STOP_BOOK)
    run = RunFolder(tmp_path / "run")
    c = LaggingConsole(["Select a Disk to Install or Upgrade", "ESXi Found | (Esc) Cancel"], run)
    c.wait_any_text = serial_says_existing  # type: ignore[method-assign]
    with pytest.raises(RunFailed) as exc:
        run_playbook(str(p), c, None, {"existing": "stop"}, run, [])  # type: ignore[arg-type]
    text = str(exc.value)
    assert "install.existing is stop: the stick is left as it was" in text and "ESXi Found | (Esc) Cancel" in text
    assert ("screenshot", "fail-the stick already holds ESXi and install.existing is stop") in c.calls
    assert ("keys", "<enter>") not in c.calls
    failed = [json.loads(line) for line in (run.path / "events.jsonl").read_text().splitlines()
              if '"failed"' in line]
    assert failed[0]["ocr"] == "ESXi Found | (Esc) Cancel" and failed[0]["where"].endswith("pb.yaml:7")


def test_a_fail_step_fails_even_when_the_screen_never_shows_why(tmp_path: Path) -> None:
    p = write(tmp_path, STOP_BOOK)
    run = RunFolder(tmp_path / "run")
    c = LaggingConsole(["a blank screen"], run)
    c.wait_any_text = serial_says_existing  # type: ignore[method-assign]
    with pytest.raises(RunFailed, match=r"left as it was \(the screen did not show /ESXi Found/\)"):
        run_playbook(str(p), c, None, {"existing": "stop"}, run, [])  # type: ignore[arg-type]
    # and a when: that does not hold skips it
    c = LaggingConsole(["ESXi Found"], run)
    run_playbook(str(p), c, None, {"existing": "overwrite"}, run, [])  # type: ignore[arg-type]
    assert ("keys", "<enter>") in c.calls


def test_a_fail_message_never_shows_a_secret(tmp_path: Path) -> None:
    p = write(tmp_path, "name: t\nsteps:\n  - fail: 'refused {root_password}'\n")
    run = RunFolder(tmp_path / "run", secrets=[SECRET])
    with pytest.raises(RunFailed) as exc:
        run_playbook(str(p), FakeConsole([f"typed {SECRET}"], run), None, {"root_password": SECRET}, run,
                     [SECRET])  # type: ignore[arg-type]
    assert SECRET not in str(exc.value) and SECRET not in (run.path / "events.jsonl").read_text()
