"""Playbook steps: one pydantic model and one handler (its ``run`` method) per step type.

A step is a mapping with exactly one action key (``wait:``, ``keys:``, ...) and the common keys of
``PlaybookStep`` (name, when, optional, cleanup, timeout). The action key picks the model
(``STEP_TYPES``, filled by ``@step_type``); the model checks everything that can be known before a
VM starts (types, patterns, key specs, needles, timeouts that would be ignored), and ``run`` does the
step against the ``StepContext`` (the console, the backend, the variables).

Adding a step type: write one class below with ``action = "name"``, a field of that name for its
argument (a string, a model of its mapping form, or either), ``waits = True`` when it honours
``timeout``, and ``run``; decorate it with ``@step_type``.
The JSON Schema (``labctl schema --playbook``), the loader and the runner pick it up from the registry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, TypeVar, Union, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from labctl.backends.base import Backend
from labctl.console import NEEDLE_DIRS, SHELL_PROMPT, Console, Evidence, ScreenFailure, WaitTimeout
from labctl.console import keys as keyspec
from labctl.console.console import pattern_problem
from labctl.console.screen import find_text
from labctl.errors import InputError, RunFailed

VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_TIMEOUT = 30.0
ASSERT_TIMEOUT = 10.0  # a present text may still be drawing: a short wait
MAX_SECONDS = 86400.0


class StepContext(Protocol):
    """What a step's handler may use: the console, the backend, the variables and its own children."""

    console: Console
    vars: dict[str, Any]
    outputs: dict[str, str]

    @property
    def run_dir(self) -> Path: ...

    def sub(self, text: str) -> str: ...

    def sub_rx(self, text: str) -> str: ...

    def sub_keys(self, spec: str) -> str: ...

    def is_secret(self, text: str) -> bool: ...

    def add_secret(self, text: str) -> None: ...

    def backend(self) -> Backend: ...

    def backend_or_none(self) -> Backend | None: ...

    def run_steps(self, steps: Sequence[PlaybookStep]) -> None: ...


# -- value types -----------------------------------------------------------------------------------
def _pattern(rx: str) -> str:
    """A regular expression as waits use it (``pattern_problem``), with variables taken as text."""
    problem = pattern_problem(VAR.sub("x", rx) if rx else rx)
    if problem:
        raise ValueError(problem)
    return rx


def _key_spec(spec: str) -> str:
    try:
        keyspec.parse(VAR.sub("x", spec))
    except InputError as exc:
        raise ValueError(str(exc)) from None
    return spec


def _seconds(value: float) -> float:
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise ValueError(f"a number of seconds above 0 and at most {MAX_SECONDS:g}")
    return float(value)


def _number(value: Any) -> Any:
    """A number, never a string or a boolean (YAML's 'true' or "30" are mistakes here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number_type", "a number of seconds (not text, not true/false)")
    return value


Pattern = Annotated[StrictStr, AfterValidator(_pattern)]
KeySpec = Annotated[StrictStr, AfterValidator(_key_spec)]
Seconds = Annotated[float, BeforeValidator(_number), AfterValidator(_seconds)]
Pixels = Annotated[StrictInt, Field(ge=0)]
Region = Annotated[list[Pixels], Field(min_length=4, max_length=4,
                                       description="[x, y, width, height] in pixels")]
WhenValue = StrictStr | StrictInt | float | StrictBool
VarName = Annotated[StrictStr, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _region(r: list[int] | None) -> tuple[int, int, int, int] | None:
    return (r[0], r[1], r[2], r[3]) if r else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Args(_Model):
    """The mapping form of an action's argument."""


# -- the common part -------------------------------------------------------------------------------
class PlaybookStep(_Model):
    """Keys every step may have besides its one action."""

    action: ClassVar[str] = ""
    waits: ClassVar[bool] = False  # whether the step honours timeout

    name: StrictStr | None = Field(None, description="a label for events and errors")
    when: dict[str, WhenValue | list[WhenValue]] | None = Field(
        None, min_length=1, description="run only when each VARIABLE has one of these values (compared as text)")
    optional: StrictBool = Field(False, description="a failure is logged as skipped and the run goes on")
    cleanup: AnyStep | None = Field(None, description="a step run (in reverse order) when a later step fails")
    timeout: Seconds | None = Field(None, description="seconds the step may wait (waiting steps only)")

    _where: tuple[str, int, int] = PrivateAttr(default=("?", 0, 0))

    @property
    def where(self) -> tuple[str, int, int]:
        """FILE, LINE, COL of the action key (set by the loader)."""
        return self._where

    @property
    def arg(self) -> Any:
        return getattr(self, _field_of(type(self)))

    @property
    def label(self) -> str:
        return self.name or self.default_name()

    def default_name(self) -> str:
        arg = self.arg
        if isinstance(arg, BaseModel):
            dumped = arg.model_dump(by_alias=True, exclude_unset=True)
            k, v = next(iter(dumped.items()), ("", ""))
            return f"{self.action} {k}={v!s:.40}"
        return f"{self.action} {arg!s:.40}"

    def arg_timeout(self) -> float | None:
        """A timeout given inside the action's mapping (wait, select and run take one there too)."""
        return getattr(self.arg, "timeout", None)

    def seconds(self, default: float = DEFAULT_TIMEOUT) -> float:
        """The step's timeout: the action's own, else the step's, else ``default``."""
        return self.arg_timeout() or self.timeout or default

    def children(self) -> list[PlaybookStep]:
        return []

    @model_validator(mode="after")
    def _timeout_is_used(self) -> PlaybookStep:
        if self.timeout is not None and not self.waits:
            raise PydanticCustomError(
                "ignored_timeout", f"a {self.action} step does not wait, so its timeout would be ignored; "
                                   "remove it (or put it on the wait that follows)", {"key": "timeout"})
        if self.timeout is not None and self.arg_timeout() is not None:
            raise PydanticCustomError(
                "ignored_timeout", f"timeout is given twice (on the step and inside {self.action}:); "
                                   "the step's would be ignored, keep one", {"key": "timeout"})
        return self

    def run(self, ctx: StepContext) -> Evidence | None:  # pragma: no cover - every step type overrides it
        raise NotImplementedError(self.action)


STEP_TYPES: dict[str, type[PlaybookStep]] = {}
S = TypeVar("S", bound=type[PlaybookStep])


def step_type(cls: S) -> S:
    """Register a step type under its ``action`` (the key that selects it in YAML)."""
    if not cls.action or cls.action in STEP_TYPES:
        raise TypeError(f"step type {cls.__name__}: action {cls.action!r} is empty or taken")
    STEP_TYPES[cls.action] = cls
    return cls


def options_of(cls: type[PlaybookStep]) -> type[BaseModel] | None:
    """The model of the mapping form of a step type's argument (``wait: {...}``), if it has one."""
    annotation = cls.model_fields[_field_of(cls)].annotation
    found = [a for a in (annotation, *get_args(annotation)) if isinstance(a, type) and issubclass(a, _Args)]
    return found[0] if found else None


def _field_of(cls: type[PlaybookStep]) -> str:
    """The Python field holding the action's argument (``assert`` is a keyword: field ``assert_``)."""
    return next(name for name, f in cls.model_fields.items() if (f.alias or name) == cls.action)


# -- the step types --------------------------------------------------------------------------------
_BOOL_WORDS = {"true", "false", "yes", "no", "on", "off"}


class WaitArgs(_Args):
    """Exactly one of text, needle, serial (a pattern), change, still, any; the rest are options."""

    text: Pattern | None = Field(None, description="regular expression to find on screen (OCR, fuzzy)")
    needle: StrictStr | None = Field(None, description="needle name (labs/needles/NAME.json) or a .json path")
    serial: StrictBool | Pattern | None = Field(
        None, description="a pattern: wait on the serial console; true/false: may serial text count as evidence")
    change: KeySpec | None = Field(None, description="keys to send; the screen must change after them")
    still: Seconds | None = Field(None, description="seconds the screen must stay unchanged")
    any: dict[str, Pattern] | None = Field(None, min_length=1, description="{name: pattern}; as: gets the name")
    timeout: Seconds | None = None
    region: Region | None = None
    as_: VarName | None = Field(None, alias="as", description="variable that gets any:'s name")

    def kind(self) -> str:
        kinds = [k for k in ("text", "needle", "change", "still", "any") if getattr(self, k) is not None]
        return kinds[0] if kinds else "serial"

    @model_validator(mode="after")
    def _one_kind(self) -> WaitArgs:
        kinds = [k for k in ("text", "needle", "change", "still", "any") if getattr(self, k) is not None]
        if isinstance(self.serial, str):
            if self.serial.lower() in _BOOL_WORDS:
                raise PydanticCustomError(
                    "quoted_bool", f"serial: '{self.serial}' in quotes is a pattern to wait for; write serial: "
                                   f"{'true' if self.serial.lower() in ('true', 'yes', 'on') else 'false'} without "
                                   "quotes to say whether the serial console counts", {"key": "serial"})
            kinds.append("serial")
        if len(kinds) != 1:
            raise ValueError("wait needs exactly one of text, needle, serial (a regex), change, still, any")
        if self.as_ is not None and kinds[0] != "any":
            raise PydanticCustomError("ignored_as", "as: is set only by wait any:", {"key": "as"})
        if self.needle is not None:
            found = ([Path(self.needle)] if self.needle.endswith(".json")
                     else [d / f"{self.needle}.json" for d in NEEDLE_DIRS])
            if not any(c.is_file() for c in found):
                raise PydanticCustomError(
                    "needle", f"needle '{self.needle}' not found (looked for {', '.join(map(str, found))})",
                    {"key": "needle"})
        return self


@step_type
class WaitStep(PlaybookStep):
    """Wait for evidence: a text, a needle, serial output, a change after keys, a still screen, one of several."""

    action: ClassVar[str] = "wait"
    waits: ClassVar[bool] = True
    wait: WaitArgs

    @model_validator(mode="after")
    def _still_fits(self) -> WaitStep:
        still = self.wait.still
        if still is not None and still >= self.seconds():
            raise PydanticCustomError(
                "still_range", f"still {still:g}s is not less than the wait's timeout ({self.seconds():g}s), so "
                               "it could never be met; lower still or raise timeout", {"key": "still"})
        return self

    def run(self, ctx: StepContext) -> Evidence:
        c, w, t = ctx.console, self.wait, self.seconds()
        allow_serial = w.serial if isinstance(w.serial, bool) else True
        region = _region(w.region)
        kind = w.kind()
        if kind == "text":
            assert w.text is not None
            return c.wait_text(ctx.sub_rx(w.text), t, region, serial=allow_serial)
        if kind == "any":
            assert w.any is not None
            key, ev = c.wait_any_text({k: ctx.sub_rx(v) for k, v in w.any.items()}, t, region, serial=allow_serial)
            if w.as_:
                ctx.vars[w.as_] = key
            matched = f"{key}: {ev.matched}"
            if ev.also:
                matched += f" (also matched: {', '.join(ev.also)}; the first listed wins)"
            return Evidence(ev.source, matched, ev.seconds, ev.fuzzy, key, ev.also, ev.screenshot)
        if kind == "serial":
            assert isinstance(w.serial, str)
            return c.wait_serial(ctx.sub_rx(w.serial), t)
        if kind == "needle":
            assert w.needle is not None
            return c.wait_needle(w.needle, t)
        if kind == "change":
            assert w.change is not None
            spec = ctx.sub_keys(w.change)
            return c.wait_change(lambda: c.send_keys(spec), t)
        assert w.still is not None
        return c.wait_still(t, w.still)


@step_type
class KeysStep(PlaybookStep):
    """Send keys in Packer's boot_command grammar ("<leftShiftOn>O<leftShiftOff>", " text<enter>")."""

    action: ClassVar[str] = "keys"
    keys: KeySpec

    def run(self, ctx: StepContext) -> None:
        ctx.console.send_keys(ctx.sub_keys(self.keys))


class TypeArgs(_Args):
    text: StrictStr
    secret: StrictBool = Field(False, description="never shown in logs, events, errors or the report")


@step_type
class TypeStep(PlaybookStep):
    """Type text (variables filled in); a text holding a secret is typed as a secret."""

    action: ClassVar[str] = "type"
    type: StrictStr | TypeArgs

    @property
    def args(self) -> TypeArgs:
        return self.type if isinstance(self.type, TypeArgs) else TypeArgs(text=self.type)

    def default_name(self) -> str:
        return "type <secret>" if self.args.secret else super().default_name()

    def run(self, ctx: StepContext) -> None:
        text = ctx.sub(self.args.text)
        secret = self.args.secret or ctx.is_secret(text)
        if secret:  # a literal marked secret is scrubbed like the root password
            ctx.add_secret(text)
        ctx.console.type_string(text, secret=secret)


class SelectArgs(_Args):
    text: Pattern
    timeout: Seconds | None = None
    max: Annotated[StrictInt, Field(ge=1, le=500, description="moves per direction")] = 40
    region: Region | None = None


@step_type
class SelectStep(PlaybookStep):
    """Move a list's highlight with Down/Up until the highlighted row matches."""

    action: ClassVar[str] = "select"
    waits: ClassVar[bool] = True
    select: Pattern | SelectArgs

    @property
    def args(self) -> SelectArgs:
        return self.select if isinstance(self.select, SelectArgs) else SelectArgs(text=self.select)

    def run(self, ctx: StepContext) -> Evidence:
        s = self.args
        return ctx.console.select(ctx.sub_rx(s.text), self.seconds(), max_moves=s.max, region=_region(s.region))


def _power_word(v: Any) -> Any:
    if isinstance(v, bool):
        raise PydanticCustomError("quoted_word", "YAML reads an unquoted on/off as true/false; write power: 'on' "
                                                 "or power: 'off' in quotes")
    if v not in ("reset", "off", "on"):
        raise PydanticCustomError("power_word", "power is reset, off or on")
    return v


@step_type
class PowerStep(PlaybookStep):
    """Reset, power off or power on the VM (through its backend)."""

    action: ClassVar[str] = "power"
    power: Annotated[Literal["reset", "off", "on"], BeforeValidator(_power_word)]

    def run(self, ctx: StepContext) -> None:
        be = ctx.backend()
        if self.power == "reset":
            be.reset("hard")
        elif self.power == "off":
            be.stop("hard")
        else:
            be.start()


@step_type
class EjectStep(PlaybookStep):
    """Eject the installer ISO."""

    action: ClassVar[str] = "eject"
    eject: Literal[True]

    def run(self, ctx: StepContext) -> None:
        ctx.backend().eject_cdrom()


@step_type
class ScreenshotStep(PlaybookStep):
    """Save the screen as NAME.png in the run folder."""

    action: ClassVar[str] = "screenshot"
    screenshot: Annotated[StrictStr, Field(min_length=1)]

    def run(self, ctx: StepContext) -> Evidence:
        path = ctx.console.screenshot(ctx.sub(self.screenshot))
        return Evidence("screenshot", str(path), 0.0, screenshot=path)


class AssertArgs(_Args):
    text: Pattern
    absent: StrictBool = Field(False, description="the text must not be on screen (checked once, now)")
    region: Region | None = None


@step_type
class AssertStep(PlaybookStep):
    """A text is on screen (waiting up to timeout, 10 s by default), or absent (checked once)."""

    action: ClassVar[str] = "assert"
    waits: ClassVar[bool] = True
    assert_: AssertArgs = Field(alias="assert")

    @model_validator(mode="after")
    def _absent_does_not_wait(self) -> AssertStep:
        if self.assert_.absent and self.timeout is not None:
            raise PydanticCustomError("ignored_timeout", "assert absent: true checks the screen once, so a timeout "
                                                         "would be ignored; remove it", {"key": "timeout"})
        return self

    def run(self, ctx: StepContext) -> Evidence:
        c, a = ctx.console, self.assert_
        rx, region = ctx.sub_rx(a.text), _region(a.region)
        if not a.absent:  # presence: the screen may still be drawing, give it a short wait
            return c.wait_text(rx, self.seconds(ASSERT_TIMEOUT), region, serial=False)
        if c.has_text(rx, region):
            shot = c.screenshot(f"assert-{self.label}")
            raise ScreenFailure(self.label, f"/{c.scrub(a.text)}/ is on screen and must not be", shot,
                                c.scrub(c.last_text))
        return Evidence("screen", "absent", 0.0)


class FailArgs(_Args):
    message: StrictStr = Field(description="why the run ends here, in the trainer's words")
    shows: Pattern | None = Field(
        None, description="the text on screen that says why: waited for (up to the timeout, 10 s by default) "
                          "so the screenshot and the screen read show it; the run fails either way")


@step_type
class FailStep(PlaybookStep):
    """End the run as failed here, saying why (under a when:, a branch the lab refuses to take).

    A wait that matched on the serial console is often ahead of the screen, so ``shows`` first waits
    for the screen to show the reason: the evidence is then the dialog itself, not the screen before it.
    """

    action: ClassVar[str] = "fail"
    waits: ClassVar[bool] = True
    fail: StrictStr | FailArgs

    @model_validator(mode="after")
    def _not_optional(self) -> FailStep:
        if self.optional:
            raise PydanticCustomError("optional_fail", "a fail step that is optional would never fail; remove "
                                                       "optional (put a when: on it instead)", {"key": "optional"})
        if (isinstance(self.fail, str) or self.fail.shows is None) and self.timeout is not None:
            raise PydanticCustomError("ignored_timeout", "a fail step waits only for its shows: text, so without "
                                                         "one the timeout would be ignored", {"key": "timeout"})
        return self

    def run(self, ctx: StepContext) -> None:
        c = ctx.console
        args = FailArgs(message=self.fail) if isinstance(self.fail, str) else self.fail
        reason = c.scrub(ctx.sub(args.message))
        if args.shows is not None:
            try:
                c.wait_text(ctx.sub_rx(args.shows), self.seconds(ASSERT_TIMEOUT), serial=False)
            except WaitTimeout:
                reason += f" (the screen did not show /{c.scrub(args.shows)}/)"
        shot = c.screenshot(f"fail-{self.label}")
        raise ScreenFailure(self.label, reason, shot, c.scrub(c.read_screen()))


class RunArgs(_Args):
    command: StrictStr
    prompt: Pattern = Field(SHELL_PROMPT, description="the shell prompt that ends the output")
    timeout: Seconds | None = None
    as_: VarName | None = Field(None, alias="as", description="variable that gets the output")
    expect: Pattern | None = Field(None, description="the output must match this")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + "..."


@step_type
class RunStep(PlaybookStep):
    """Type a shell command, wait for the prompt, keep (and check) its output."""

    action: ClassVar[str] = "run"
    waits: ClassVar[bool] = True
    run_: RunArgs = Field(alias="run")

    def run(self, ctx: StepContext) -> Evidence:
        c, r = ctx.console, self.run_
        command = ctx.sub(r.command)
        out = c.run_command(command, r.prompt, self.seconds())
        if r.as_:
            ctx.vars[r.as_] = out
            ctx.outputs[r.as_] = out
        if r.expect and not find_text(ctx.sub_rx(r.expect), out):
            raise RunFailed(f"output of '{c.scrub(command)}' does not match /{c.scrub(r.expect)}/: "
                            f"{_clip(c.scrub(out), 300)!r}")
        return Evidence("serial" if c.serial else "screen", out[:4000], 0.0, typed=c.last_typing)


def _prove_args(value: Any) -> Any:
    from labctl.prove import check_step

    problem = check_step(value)
    if problem:
        raise ValueError(problem)
    return value


class ProveLayoutArgs(_Args):
    """The outputs of earlier run steps (variable names) and what the layout must be."""

    getptbl: StrictStr = Field("getptbl", description="variable holding 'partedUtil getptbl' output")
    ls: StrictStr = Field("ls_root", description="variable holding 'ls -lh /' output")
    media: StrictStr | None = Field(None, description="usb or hdd (default: the lab's verify.media)")
    disk: StrictStr | None = Field(None, description="the disk's name in messages")
    scratch: StrictStr | None = Field(None, description="/tmp/scratch or .locker: where scratch must point")
    host: StrictBool = Field(True, description="put the host-side GPT beside the guest's table")


@step_type
class ProveLayoutStep(PlaybookStep):
    """The guest's partition table (and scratch link) proven against ESXi's documented layout (labctl.prove)."""

    action: ClassVar[str] = "prove_layout"
    prove_layout: Annotated[ProveLayoutArgs, BeforeValidator(_prove_args)]

    def run(self, ctx: StepContext) -> Evidence:
        from labctl.prove import run_step

        given = self.prove_layout.model_dump(exclude_unset=True)
        arg = {k: ctx.sub(v) if isinstance(v, str) else v for k, v in given.items()}
        proof = run_step(arg, ctx.vars, ctx.run_dir, ctx.backend_or_none())
        return Evidence("output", proof.summary(), 0.0)


@step_type
class GroupStep(PlaybookStep):
    """A group of steps (with a shared when: or optional:)."""

    action: ClassVar[str] = "steps"
    steps: Annotated[list[AnyStep], Field(min_length=1)]

    def children(self) -> list[PlaybookStep]:
        return list(self.steps)

    def default_name(self) -> str:
        return f"steps ({len(self.steps)})"

    def run(self, ctx: StepContext) -> None:
        ctx.run_steps(self.steps)


# -- the union of every step type ------------------------------------------------------------------
def _action_of(value: Any) -> str | None:
    if isinstance(value, dict):
        found = [k for k in value if k in STEP_TYPES]
        return found[0] if len(found) == 1 else None
    if isinstance(value, PlaybookStep):
        return value.action
    return None


COMMON = ("name", "when", "optional", "cleanup", "timeout")


def _step_shape(value: Any) -> Any:
    """A step's shape, with the messages a person needs (before its type's model sees it)."""
    actions = ", ".join(STEP_TYPES)
    if isinstance(value, str):
        raise PydanticCustomError("step_shape", "a step is a mapping like 'keys: ...' or 'wait: {text: ...}', "
                                                "not a bare string")
    if not isinstance(value, dict):
        raise PydanticCustomError("step_shape", f"a step is a mapping with one action: {actions}")
    unknown = [k for k in value if k not in STEP_TYPES and k not in COMMON]
    if unknown:
        import difflib

        close = difflib.get_close_matches(str(unknown[0]), [*STEP_TYPES, *COMMON], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise PydanticCustomError("step_shape", f"unknown step key{hint}", {"key": str(unknown[0])})
    found = [k for k in value if k in STEP_TYPES]
    if len(found) != 1:
        what = "no action" if not found else f"two actions ({', '.join(found)})"
        raise PydanticCustomError("step_shape", f"a step has exactly one action of {actions}; this one has {what}")
    return value


def _step_union() -> Any:
    members = tuple(Annotated[cls, Tag(action)] for action, cls in STEP_TYPES.items())
    return Annotated[Annotated[Union[members], Discriminator(_action_of)],  # noqa: UP007 - built at run time
                     BeforeValidator(_step_shape)]


if TYPE_CHECKING:
    AnyStep = PlaybookStep
else:
    AnyStep = _step_union()

_MODELS: list[type[BaseModel]] = [PlaybookStep, *STEP_TYPES.values()]
for _cls in _MODELS:
    _cls.model_rebuild(_types_namespace={"AnyStep": AnyStep})
