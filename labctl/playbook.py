"""Playbooks as data: labs/playbooks/*.yaml, run step by step against a Console and a Backend.

A playbook is ``{name, description?, variables?, steps: [...]}``. Each step is a mapping with one
action and optional common fields:

  action (one of)
    wait:   {text: RE | needle: NAME | serial: RE | change: KEYS | still: SECONDS | any: {key: RE, ...},
             timeout: S, serial: true|false, region: [x, y, w, h], as: VAR}
    keys:   "<leftShiftOn>O<leftShiftOff>"          (Packer boot_command grammar)
    type:   "text {variable}"  | {text: "...", secret: true}
    select: RE | {text: RE, timeout: S, max: N, region: [x, y, w, h]}   move the highlight with Up/Down
    power:  reset | off | on
    eject:  true
    screenshot: NAME
    assert: {text: RE, absent: false}
    run:    {command: "...", prompt: RE, timeout: S, as: VAR, expect: RE}
    prove_layout: {getptbl: VAR, ls: VAR, media: usb|hdd, scratch: /tmp/scratch|.locker, host: BOOL}
            the outputs of earlier run steps proven against ESXi's documented layout (labctl.prove)
    steps:  [...]                                    a group (with ``when``)
  common
    name: a label for events and errors          when: {VAR: value or [values]}
    optional: true  (a failure is logged and the run goes on)
    cleanup: a step, run (in reverse order, Packer style) when a later step fails

``{name}`` in strings is replaced by a variable (``boot_options``, ``root_password``, ``keyboard`` from
the lab, or ``as:`` results). Secret values are typed but never logged. Every problem in a playbook
file is a ``SpecError`` at FILE:LINE:COL, found before anything runs.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.backends.base import Backend
from labctl.console import NEEDLE_DIRS, Console, Evidence, WaitTimeout, serial_regex
from labctl.console import keys as keyspec
from labctl.console.screen import find_text, highlighted_rows
from labctl.errors import InputError, RunFailed, SpecError
from labctl.report import RunFolder
from labctl.resources import data_path
from labctl.yamlsrc import Located, PathKey, dotted, load_located

log = logging.getLogger(__name__)

PLAYBOOK_DIR = data_path("labs", "playbooks")
ACTIONS = ("wait", "keys", "type", "select", "power", "eject", "screenshot", "assert", "run", "prove_layout",
           "steps")
COMMON = ("name", "when", "optional", "cleanup", "timeout")
_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# what 'labctl up' gives every playbook besides its own variables and as: results
LAB_VARIABLES = frozenset({"boot_options", "keyboard", "esxi", "media", "existing", "lab", "root_password", "seat"})
DEFAULT_TIMEOUT = 30.0


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + "..."


@dataclass
class Step:
    action: str
    arg: Any
    name: str
    where: tuple[str, int, int]
    timeout: float = DEFAULT_TIMEOUT
    optional: bool = False
    when: dict[str, list[Any]] | None = None
    cleanup: Step | None = None
    children: list[Step] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name


@dataclass
class Playbook:
    name: str
    path: Path
    steps: list[Step]
    variables: dict[str, Any]


# --- loading -------------------------------------------------------------------------------------------
def resolve(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or "/" in name:
        return p
    return PLAYBOOK_DIR / f"{name}.yaml"


def load(name: str, known_vars: set[str] | None = None) -> Playbook:
    """Read and check a playbook; every error is FILE:LINE:COL: field: message."""
    path = resolve(name)
    loc = load_located(path)
    data = loc.data

    def err(p: PathKey, msg: str, key: bool = False) -> SpecError:
        line, col = loc.where(p, prefer_key=key)
        return SpecError(loc.file, line, col, dotted(p) or "(playbook)", msg)

    for k in data:
        if k not in ("name", "description", "variables", "steps"):
            raise err((k,), "unknown key; a playbook has name, description, variables, steps", key=True)
    if not isinstance(data.get("steps"), list) or not data["steps"]:
        raise err(("steps",), "a playbook needs a non-empty list of steps")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise err(("variables",), "variables is a mapping of name: default")
    names = set(variables) | (known_vars or set()) | {"boot_options", "root_password", "keyboard"}
    steps = [_parse_step(s, ("steps", i), loc, err, names) for i, s in enumerate(data["steps"])]
    return Playbook(str(data.get("name", path.stem)), path, steps, dict(variables))


def _parse_step(raw: Any, p: PathKey, loc: Located, err: Callable[..., SpecError], names: set[str]) -> Step:
    if isinstance(raw, str):
        raise err(p, f"a step is a mapping like 'keys: {raw}', not a bare string")
    if not isinstance(raw, dict):
        raise err(p, "a step is a mapping with one action: " + ", ".join(ACTIONS))
    actions = [k for k in raw if k in ACTIONS]
    unknown = [k for k in raw if k not in ACTIONS and k not in COMMON]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], [*ACTIONS, *COMMON], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise err((*p, unknown[0]), f"unknown step key{hint}", key=True)
    if len(actions) != 1:
        what = "no action" if not actions else f"two actions ({', '.join(actions)})"
        raise err(p, f"a step has exactly one action of {', '.join(ACTIONS)}; this one has {what}")
    action = actions[0]
    arg = raw[action]
    line, col = loc.where((*p, action), prefer_key=True)
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(arg, dict) and "timeout" in arg:
        timeout = arg["timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 86400:
        raise err((*p, "timeout"), "timeout is a number of seconds above 0 and at most 86400")
    if action == "type" and isinstance(arg, dict) and arg.get("secret"):
        name = raw.get("name") or "type <secret>"  # the default name would show the text
    else:
        name = raw.get("name") or f"{action} {_short(arg)}"
    step = Step(action, arg, str(name), (loc.file, line, col), float(timeout), bool(raw.get("optional", False)))
    if "when" in raw:
        when = raw["when"]
        if not isinstance(when, dict) or not when:
            raise err((*p, "when"), "when is a mapping {VARIABLE: value or [values]}")
        for k in when:
            if str(k) not in names and str(k) not in LAB_VARIABLES:
                raise err((*p, "when", k), f"unknown variable; known: {', '.join(sorted(names | LAB_VARIABLES))}",
                          key=True)
        step.when = {str(k): [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in when.items()}
    if "cleanup" in raw:
        step.cleanup = _parse_step(raw["cleanup"], (*p, "cleanup"), loc, err, names)
    _check_action(step, (*p, action), loc, err, names)
    if action == "steps":
        if not isinstance(arg, list) or not arg:
            raise err((*p, "steps"), "steps is a non-empty list of steps")
        step.children = [_parse_step(s, (*p, "steps", i), loc, err, names) for i, s in enumerate(arg)]
    for k in ("as",):
        if isinstance(arg, dict) and k in arg:
            names.add(str(arg[k]))
    return step


def _short(arg: Any) -> str:
    if isinstance(arg, dict):
        k, v = next(iter(arg.items()))
        return f"{k}={v!s:.40}"
    return f"{arg!s:.40}"


def _check_vars(text: str, p: PathKey, err: Callable[..., SpecError], names: set[str]) -> None:
    for m in _VAR.finditer(text):
        if m.group(1) not in names:
            raise err(p, f"unknown variable {{{m.group(1)}}}; known: {', '.join(sorted(names))}")


def _check_regex(rx: Any, p: PathKey, err: Callable[..., SpecError], names: set[str]) -> None:
    if not isinstance(rx, str) or not rx:
        raise err(p, "a regular expression (text) is needed here")
    _check_vars(rx, p, err, names)
    try:
        re.compile(_VAR.sub("x", rx))
        re.compile(serial_regex(_VAR.sub("x", rx)))  # the form a serial console searches
    except re.error as exc:
        raise err(p, f"bad regular expression: {exc}") from None


def _check_action(step: Step, p: PathKey, loc: Located, err: Callable[..., SpecError], names: set[str]) -> None:
    a, arg = step.action, step.arg

    def allowed(keys: set[str]) -> dict[str, Any]:
        if not isinstance(arg, dict):
            raise err(p, f"{a} takes a mapping with {', '.join(sorted(keys))}")
        for k in arg:
            if k not in keys:
                raise err((*p, k), f"unknown {a} option; use {', '.join(sorted(keys))}", key=True)
        return arg

    if a == "wait":
        w = allowed({"text", "needle", "serial", "change", "still", "any", "timeout", "region", "as", "still_for"})
        kinds: list[str] = [k for k in ("text", "needle", "change", "still", "any") if k in w]
        if isinstance(w.get("serial"), str):
            kinds.append("serial")
        if len(kinds) != 1:
            raise err(p, "wait needs exactly one of text, needle, serial (a regex), change, still, any")
        kind = kinds[0]
        if kind in ("text", "serial"):
            _check_regex(w[kind], (*p, kind), err, names)
        elif kind == "any":
            if not isinstance(w["any"], dict) or not w["any"]:
                raise err((*p, "any"), "any is a mapping {name: regex, ...}")
            for k, v in w["any"].items():
                _check_regex(v, (*p, "any", k), err, names)
            try:  # they are searched as one pattern: same group names or inline flags clash
                re.compile("|".join(f"(?:{_VAR.sub('x', str(v))})" for v in w["any"].values()))
            except re.error as exc:
                raise err((*p, "any"), f"these patterns do not combine: {exc}") from None
        elif kind == "needle":
            name = str(w["needle"])
            found = [Path(name)] if name.endswith(".json") else [d / f"{name}.json" for d in NEEDLE_DIRS]
            if not any(c.is_file() for c in found):
                raise err((*p, "needle"), f"needle '{name}' not found (looked for {', '.join(map(str, found))})")
        elif kind == "change":
            _check_keys(w["change"], (*p, "change"), err, names)
        elif kind == "still" and (isinstance(w["still"], bool) or not isinstance(w["still"], int | float)):
            raise err((*p, "still"), "still is a number of seconds the screen must not change")
        if "serial" in w and kind != "serial" and not isinstance(w["serial"], bool):
            raise err((*p, "serial"), "serial is true or false (may the serial console count as evidence)")
        if "region" in w:
            _check_region(w["region"], (*p, "region"), err)
    elif a == "keys":
        _check_keys(arg, p, err, names)
    elif a == "type":
        t = allowed({"text", "secret"}) if isinstance(arg, dict) else {"text": arg}
        if not isinstance(t.get("text"), str):
            raise err(p, "type needs text")
        _check_vars(t["text"], p, err, names)
    elif a == "select":
        s = allowed({"text", "timeout", "max", "region"}) if isinstance(arg, dict) else {"text": arg}
        _check_regex(s.get("text"), p, err, names)
        if "max" in s and (isinstance(s["max"], bool) or not isinstance(s["max"], int) or not 0 < s["max"] <= 500):
            raise err((*p, "max"), "max is a whole number of moves from 1 to 500")
        if "region" in s:
            _check_region(s["region"], (*p, "region"), err)
    elif a == "power":
        if arg not in ("reset", "off", "on"):
            raise err(p, "power is reset, off or on")
    elif a == "eject":
        if arg is not True:
            raise err(p, "eject: true")
    elif a == "screenshot":
        if not isinstance(arg, str) or not arg:
            raise err(p, "screenshot needs a name")
    elif a == "assert":
        s = allowed({"text", "absent", "region"})
        _check_regex(s.get("text"), (*p, "text"), err, names)
    elif a == "run":
        r = allowed({"command", "prompt", "timeout", "as", "expect"})
        if not isinstance(r.get("command"), str):
            raise err(p, "run needs command")
        _check_vars(r["command"], (*p, "command"), err, names)
        for k in ("prompt", "expect"):
            if k in r:
                _check_regex(r[k], (*p, k), err, names)
    elif a == "prove_layout":
        from labctl.prove import check_step

        problem = check_step(arg)
        if problem:
            raise err(p, problem)
        for v in arg.values():
            if isinstance(v, str):
                _check_vars(v, p, err, names)


def _check_keys(spec: Any, p: PathKey, err: Callable[..., SpecError], names: set[str]) -> None:
    if not isinstance(spec, str):
        raise err(p, "keys are a string in Packer's boot_command grammar, e.g. '<enter>'")
    _check_vars(spec, p, err, names)
    try:
        keyspec.parse(_VAR.sub("x", spec))
    except InputError as exc:
        raise err(p, str(exc)) from None


def _check_region(r: Any, p: PathKey, err: Callable[..., SpecError]) -> None:
    if not (isinstance(r, list) and len(r) == 4 and all(isinstance(v, int) and v >= 0 for v in r)):
        raise err(p, "region is [x, y, width, height] in pixels")


# --- running -------------------------------------------------------------------------------------------
class Runner:
    def __init__(self, book: Playbook, console: Console, backend: Backend | None, variables: dict[str, Any],
                 run: RunFolder, secrets: list[str]) -> None:
        self.book, self.console, self.backend, self.run = book, console, backend, run
        self.vars: dict[str, Any] = {**book.variables, **{k: v for k, v in variables.items() if v is not None}}
        self.secrets = [s for s in secrets if s]
        run.add_secrets(self.secrets)
        self.cleanups: list[Step] = []
        self.outputs: dict[str, str] = {}

    def sub(self, text: str) -> str:
        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in self.vars:
                raise RunFailed(f"playbook variable {{{m.group(1)}}} has no value (set it in the lab)")
            return str(self.vars[m.group(1)])

        return _VAR.sub(repl, text)

    def sub_rx(self, text: str) -> str:
        def repl(m: re.Match[str]) -> str:
            if self.vars.get(m.group(1)) is None:  # an empty pattern would match anything
                raise RunFailed(f"playbook variable {{{m.group(1)}}} has no value (set it in the lab)")
            return re.escape(str(self.vars[m.group(1)]))

        return _VAR.sub(repl, text)

    def sub_keys(self, spec: str) -> str:
        """Variables in a key spec are text: a '<' or '>' in a value (a password) is typed, never a key."""
        def repl(m: re.Match[str]) -> str:
            value = self.sub(m.group(0))
            return "".join("<lt>" if ch == "<" else "<gt>" if ch == ">" else ch for ch in value)

        return _VAR.sub(repl, spec)

    def execute(self) -> None:
        try:
            self._steps(self.book.steps)
        except BaseException:
            for step in reversed(self.cleanups):
                try:
                    self._one(step, cleanup=True)
                except Exception as exc:  # keep going: every cleanup gets its chance
                    log.warning("cleanup '%s' failed: %s", step.name, self.run.scrub(str(exc)))
            raise

    def _steps(self, steps: list[Step]) -> None:
        for step in steps:
            if self._one(step) and step.cleanup:
                self.cleanups.append(step.cleanup)

    def _one(self, step: Step, cleanup: bool = False) -> bool:
        """Run one step; False when its when: does not apply (skipped, and its cleanup never armed)."""
        if step.when and not all(str(self.vars.get(k)) in vals for k, vals in step.when.items()):
            self.run.event(step.name, action=step.action, result="skipped", duration=0.0,
                           reason=f"when {step.when}", **({"cleanup": True} if cleanup else {}))
            return False
        c = self.console
        c.step = step.name
        t0 = time.monotonic()
        started = time.time()
        fields: dict[str, Any] = {"action": step.action, "start": started}
        if cleanup:
            fields["cleanup"] = True
        where = f"{step.where[0]}:{step.where[1]}"
        try:
            ev = self._do(step)
        except WaitTimeout as exc:
            if step.optional:
                self.run.event(step.name, **fields, result="skipped", duration=time.monotonic() - t0,
                               reason=str(exc), screenshot=str(exc.screenshot) if exc.screenshot else None)
                return True
            self.run.event(step.name, **fields, result="failed", duration=time.monotonic() - t0, error=str(exc),
                           ocr=exc.ocr_text, screenshot=str(exc.screenshot) if exc.screenshot else None,
                           where=where)
            raise
        except RunFailed as exc:
            if step.optional:
                self.run.event(step.name, **fields, result="skipped", duration=time.monotonic() - t0, reason=str(exc))
                return True
            self.run.event(step.name, **fields, result="failed", duration=time.monotonic() - t0, error=str(exc),
                           where=where)
            raise RunFailed(f"step '{step.name}' ({where}): {exc}") from None
        except InputError as exc:  # bad input met only now (a key spec, no serial console): exit 2, located
            self.run.event(step.name, **fields, result="failed", duration=time.monotonic() - t0, error=str(exc),
                           where=where)
            raise InputError(f"step '{step.name}' ({where}): {exc}") from None
        except Exception as exc:  # anything else still names the step and leaves its evidence
            failed_shot = None
            with contextlib.suppress(Exception):
                failed_shot = c.screenshot(f"failed-{step.name}")
            self.run.event(step.name, **fields, result="failed", duration=time.monotonic() - t0,
                           error=f"{type(exc).__name__}: {exc}", where=where,
                           screenshot=str(failed_shot) if failed_shot else None)
            raise RunFailed(f"step '{step.name}' ({where}): "
                            f"{type(exc).__name__}: {exc}") from None
        if ev is not None:
            fields.update(source=ev.source, matched=ev.matched, fuzzy=ev.fuzzy)
            shot = ev.matched if ev.source == "screenshot" else self.run.last_frame_path
            if shot:
                fields["screenshot"] = str(shot)
        self.run.event(step.name, **fields, result="ok", duration=round(time.monotonic() - t0, 3))
        return True

    def _do(self, step: Step) -> Evidence | None:
        c, a, arg = self.console, step.action, step.arg
        if a == "steps":
            self._steps(step.children)
            return None
        if a == "keys":
            c.send_keys(self.sub_keys(arg))
            return None
        if a == "type":
            t = arg if isinstance(arg, dict) else {"text": arg}
            text = self.sub(t["text"])
            if t.get("secret"):  # a literal marked secret is scrubbed like the root password
                self.secrets.append(text)
                self.run.add_secrets([text])
            c.type_string(text, secret=bool(t.get("secret")) or any(s in text for s in self.secrets))
            return None
        if a == "wait":
            return self._wait(step, arg)
        if a == "select":
            s = arg if isinstance(arg, dict) else {"text": arg}
            return select(c, self.sub_rx(s["text"]), timeout=float(s.get("timeout", step.timeout)),
                          max_moves=int(s.get("max", 40)), region=_region(s.get("region")))
        if a == "power":
            be = self._backend()
            if arg == "reset":
                be.reset("hard")
            elif arg == "off":
                be.stop("hard")
            else:
                be.start()
            return None
        if a == "eject":
            self._backend().eject_cdrom()
            return None
        if a == "screenshot":
            path = c.screenshot(self.sub(arg))
            return Evidence("screenshot", str(path), 0.0)
        if a == "assert":
            if not arg.get("absent"):  # presence: the screen may still be drawing, give it a short wait
                return c.wait_text(self.sub_rx(arg["text"]), min(step.timeout, 10.0), _region(arg.get("region")),
                                   serial=False)
            present = c.has_text(self.sub_rx(arg["text"]), _region(arg.get("region")))
            if present == bool(arg.get("absent", False)):
                shot = c.screenshot(f"assert-{step.name}")
                raise WaitTimeout(step.name, f"{'absence' if arg.get('absent') else 'presence'} of /{arg['text']}/",
                                  0.0, shot, c.last_text)
            return Evidence("screen", "absent" if arg.get("absent") else "present", 0.0)
        if a == "run":
            out = run_command(c, self.sub(arg["command"]), arg.get("prompt", r"\[root@[^\]]*\]\s?[#$]?"),
                              float(arg.get("timeout", step.timeout)))
            if "as" in arg:
                self.vars[str(arg["as"])] = out
                self.outputs[str(arg["as"])] = out
            if "expect" in arg and not find_text(self.sub_rx(arg["expect"]), out):
                raise RunFailed(f"output of '{arg['command']}' does not match /{arg['expect']}/: "
                                f"{_clip(self.run.scrub(out), 300)!r}")
            return Evidence("serial" if c.serial else "screen", out[:4000], 0.0)
        if a == "prove_layout":
            from labctl.prove import run_step

            proof = run_step({k: self.sub(v) if isinstance(v, str) else v for k, v in arg.items()}, self.vars,
                             self.run.path, self.backend)
            return Evidence("output", proof.summary(), 0.0)
        raise AssertionError(a)

    def _wait(self, step: Step, w: dict[str, Any]) -> Evidence:
        c = self.console
        allow_serial = w.get("serial", True) if isinstance(w.get("serial", True), bool) else True
        region = _region(w.get("region"))
        if "text" in w:
            return c.wait_text(self.sub_rx(w["text"]), step.timeout, region, serial=allow_serial)
        if "any" in w:
            key, ev = c.wait_any_text({k: self.sub_rx(v) for k, v in w["any"].items()}, step.timeout, region,
                                      serial=allow_serial)
            if "as" in w:
                self.vars[str(w["as"])] = key
            return Evidence(ev.source, f"{key}: {ev.matched}", ev.seconds, ev.fuzzy)
        if isinstance(w.get("serial"), str):
            return c.wait_serial(self.sub_rx(w["serial"]), step.timeout)
        if "needle" in w:
            return c.wait_needle(str(w["needle"]), step.timeout)
        if "change" in w:
            spec = self.sub(w["change"])
            return c.wait_change(lambda: c.send_keys(spec), step.timeout)
        return c.wait_still(step.timeout, float(w["still"]))

    def _backend(self) -> Backend:
        if self.backend is None:
            raise RunFailed("this step needs the VM's backend, and none was given")
        return self.backend


def _region(r: Any) -> tuple[int, int, int, int] | None:
    return (int(r[0]), int(r[1]), int(r[2]), int(r[3])) if r else None


def select(c: Console, regex: str, timeout: float, max_moves: int = 40,
           region: tuple[int, int, int, int] | None = None) -> Evidence:
    """Move a list's highlight with Down (then Up) until the highlighted row's text matches ``regex``.
    The highlighted row is found in the frame (a bar on another background), never by counting."""
    t0 = time.monotonic()
    deadline = t0 + timeout * c.timeout_scale
    seen_rows: list[str] = []
    for key in ("<down>", "<up>"):
        seen: set[str] = set()
        for _ in range(max_moves):
            frame = c.frame()
            bars = highlighted_rows(frame, region)
            if not bars and time.monotonic() < deadline:
                # the list is not drawn yet (serial evidence can run ahead of the screen): never press
                # keys blind, let the screen settle and look again
                with contextlib.suppress(WaitTimeout):
                    c.wait_still(max(0.5, min(5.0, deadline - time.monotonic())), still_for=0.3)
                frame = c.frame()
                bars = highlighted_rows(frame, region)
            texts = [c.ocr.read(frame, bar) for bar in bars[:4]]
            for text in texts:
                if find_text(regex, text):
                    return Evidence("screen", text, time.monotonic() - t0)
            current = " | ".join(texts)  # several bars (a footer stripe too): the set moves when we move
            seen_rows.append(current)
            if current in seen or time.monotonic() > deadline:
                break
            seen.add(current)
            try:
                c.wait_change(lambda k=key: c.send_keys(k), min(5.0, max(0.5, deadline - time.monotonic())))  # type: ignore[misc]
            except WaitTimeout:
                break  # the highlight did not move: an end of the list
            # let the move finish drawing before reading the bar
            c.wait_still(max(1.0, deadline - time.monotonic()), still_for=0.3)
    rows = " | ".join(dict.fromkeys(r for r in seen_rows if r))
    shot = c.screenshot(f"select-{c.step}")
    raise WaitTimeout(c.step, f"highlighted row matching /{regex}/ (rows seen: {rows[:300]})", timeout, shot,
                      c.last_text)


def run_command(c: Console, command: str, prompt: str, timeout: float) -> str:
    """Type a command line at a shell prompt, wait for the prompt again, return the output read back:
    from the serial console when there is one, else by OCR of the screen below the command line.

    The serial mirror is a convenience, the screen the authority: when the serial line stays silent
    (it can lose bytes, or its reader can end), the screen is read before the step is called failed."""
    if c.serial is not None:
        c.serial.mark()
        c.type_string(command + "\n")
        m = c.serial.wait(re.compile(re.escape(command[-20:]) + r".*?\n(?P<out>.*?)" + prompt, re.S), timeout)
        if m:  # the serial mirror repeats line ends (cursor moves + CR LF): drop empty lines
            return "\n".join(line.rstrip() for line in m.group("out").splitlines() if line.strip())
        with contextlib.suppress(WaitTimeout):
            c.wait_still(5.0, still_for=1.0)
        out = _output_below(c.read_screen(), command, prompt)
        if out is not None:
            log.warning("step %r: the serial console did not show the prompt (%s); output read from the screen",
                        c.step, c.serial.stopped or "no text")
            return out
        shot = c.screenshot(f"run-{c.step}")
        heard = c.serial.stopped or f"serial read {c.run.scrub(c.serial.text())[-120:]!r}"
        raise WaitTimeout(c.step, f"prompt /{prompt}/ after '{command}' ({heard})", timeout, shot, c.last_text)
    c.wait_change(lambda: c.type_string(command + "\n"), timeout)
    c.wait_still(timeout, still_for=1.0)
    return _output_below(c.read_screen(), command, prompt, strict=False) or ""


def _output_below(text: str, command: str, prompt: str, strict: bool = True) -> str | None:
    """The lines between the last line showing ``command`` and the prompt after it. Strict: None unless
    the screen shows both. Lenient (OCR may garble the command line): from the top when the command is
    not found, to the bottom when no prompt follows."""
    lines = text.splitlines()
    key = re.sub(r"\s+", "", command)[:24].lower()
    starts = [i for i, ln in enumerate(lines) if key and key in re.sub(r"\s+", "", ln).lower()]
    if not starts and strict:
        return None
    out: list[str] = []
    for ln in lines[(starts[-1] if starts else -1) + 1:]:
        if find_text(prompt, ln):
            return "\n".join(out)
        out.append(ln)
    return None if strict else "\n".join(out)


def run_playbook(name: str, console: Console, backend: Backend | None, variables: dict[str, object],
                 run: RunFolder, secrets: list[str]) -> None:
    """Load ``labs/playbooks/<name>.yaml`` (or a path) and run it; raises RunFailed on a failed step
    after running the cleanups in reverse order."""
    book = load(name, known_vars=set(variables))
    run.event("playbook", action="start", playbook=book.name, file=str(book.path))
    t0 = time.monotonic()
    runner = Runner(book, console, backend, dict(variables), run, secrets)
    try:
        runner.execute()
    except RunFailed as exc:
        run.event("playbook", action="end", result="failed", duration=time.monotonic() - t0, error=str(exc))
        raise
    run.event("playbook", action="end", result="ok", duration=round(time.monotonic() - t0, 3))
