"""A playbook file as a typed model, loaded with line numbers: every problem is one
``FILE:LINE:COL: field.path: message`` (``SpecError``, exit 2), found before any VM starts.

The model (``PlaybookFile``, steps from ``labctl.playbook.steps``) checks types and values; this
module adds what needs the whole file: the variables each step uses must be known (the lab's, the
playbook's own, or set by an earlier step's ``as:``), and ``when:`` must name a known variable.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from labctl.errors import SpecError
from labctl.playbook.steps import VAR, AnyStep, PlaybookStep
from labctl.resources import data_path
from labctl.yamlsrc import Located, PathKey, dotted, load_located

PLAYBOOK_DIR = data_path("labs", "playbooks")
# what 'labctl up' gives every playbook besides its own variables and as: results
LAB_VARIABLES = frozenset({"boot_options", "keyboard", "esxi", "media", "existing", "lab", "root_password", "seat"})
_ALWAYS = frozenset({"boot_options", "root_password", "keyboard"})


class PlaybookFile(BaseModel):
    """labs/playbooks/NAME.yaml: a name, a description, default variables and the steps."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr | None = Field(None, description="defaults to the file name")
    description: StrictStr | None = None
    variables: dict[str, Any] = Field(default_factory=dict, description="name: default value")
    steps: list[AnyStep] = Field(min_length=1, description="run in order; see the step types")

    _path: Path = Path()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def title(self) -> str:
        return self.name or self._path.stem


def resolve(name: str) -> Path:
    """A playbook by name (labctl's labs/playbooks/NAME.yaml) or by path."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or "/" in name:
        return p
    return PLAYBOOK_DIR / f"{name}.yaml"


def load(name: str, known_vars: Iterable[str] = ()) -> PlaybookFile:
    """Read and check a playbook; every error is FILE:LINE:COL: field: message."""
    path = resolve(name)
    loc = _read(path)
    try:
        book = PlaybookFile.model_validate(loc.data)
    except ValidationError as exc:
        raise _located_error(exc, loc) from None
    book._path = path
    names = set(book.variables) | set(known_vars) | _ALWAYS
    _check_steps(book.steps, ("steps",), loc, names)
    return book


def _read(path: Path) -> Located:
    try:
        return load_located(path)
    except SpecError as exc:  # the YAML loader speaks of lab files; this is a playbook
        if exc.field == "(lab)":
            if "empty" in exc.message:
                message = "the file is empty; a playbook needs name and steps"
            else:
                message = f"a playbook is a mapping (name:, steps:, ...), not {exc.message.split(', not ')[-1]}"
            raise SpecError(exc.file, exc.line, exc.col, "(playbook)", message) from None
        raise


# -- errors ----------------------------------------------------------------------------------------
def _data_path(data: Any, loc: tuple[int | str, ...]) -> tuple[PathKey, Any]:
    """pydantic's error location as a path in the file's data. At a step, the location first names
    the union member (the step's action) and then its fields: that part is dropped, and so are parts
    naming no value in the data (union members such as 'str'). Returns the path and the value there."""
    from labctl.playbook.steps import STEP_TYPES

    out: list[str | int] = []
    tag_seen = False  # the union tag of the step at ``out`` has been passed
    for part in loc:
        at_step = bool(out) and (out[-1] == "cleanup" or (isinstance(out[-1], int) and out[-2:-1] == ["steps"]))
        if at_step and not tag_seen and isinstance(data, dict) and part in STEP_TYPES and part in data:
            tag_seen = True
            continue
        in_dict = isinstance(data, dict) and part in data
        if not (in_dict or (isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data))):
            continue
        data = data[part]
        out.append(part)
        tag_seen = False
    return tuple(out), data


_RANK = {"step_shape": 0, "extra_forbidden": 1, "missing": 3}


def _located_error(exc: ValidationError, loc: Located) -> SpecError:
    errors = [e for e in exc.errors(include_url=False, include_input=False) if not _other_form(e, loc)]
    errors = errors or exc.errors(include_url=False, include_input=False)
    errors.sort(key=lambda e: _RANK.get(e["type"], 2))
    err = errors[0]
    path, _value = _data_path(loc.data, tuple(err["loc"]))
    msg, prefer_key = _message(err, path, loc)
    key = (err.get("ctx") or {}).get("key")
    if key is not None and isinstance(_value, dict) and key in _value:
        path, prefer_key = (*path, key), True
    line, col = loc.where(path, prefer_key=prefer_key)
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return SpecError(loc.file, line, col, dotted(path) or "(playbook)", msg + more)


def _other_form(err: ErrorDetails, loc: Located) -> bool:
    """An error from the short form of an action (``select: RE``) when the file uses the mapping form
    (or the other way round): noise beside the errors of the form the file uses."""
    if not err["type"].endswith("_type"):
        return False
    _path, value = _data_path(loc.data, tuple(err["loc"]))
    mapping_form = err["type"] in ("dict_type", "model_type", "model_attributes_type")
    return isinstance(value, dict) != mapping_form


def _message(err: ErrorDetails, path: PathKey, loc: Located) -> tuple[str, bool]:
    """A message that never repeats the value (it may be a password typed into the wrong field)."""
    kind, msg = err["type"], str(err["msg"])
    if msg.startswith(("Value error, ", "Assertion failed, ")):
        msg = msg.split(", ", 1)[1]
    raw_loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc.data, path[:-1])
        close = difflib.get_close_matches(str(path[-1]) if path else "", allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; use {', '.join(allowed)}" if allowed else "")
        return f"unknown key{hint}", True
    if kind == "missing":
        return f"missing required key '{raw_loc[-1]}'", True
    if kind == "bool_type":
        return "true or false (without quotes)", False
    if kind == "int_type" or kind == "int_from_float":
        return f"{path[-1] if path else 'this'} is a whole number", False
    field = next((part for part in reversed(path) if part in _FIELD_MESSAGES), None)
    if field is not None and kind not in ("step_shape", "unknown_variable"):
        return _FIELD_MESSAGES[str(field)], False
    if "region" in path:
        return "region is [x, y, width, height] in pixels (whole numbers, 0 or more)", False
    if kind == "too_short" and path and path[-1] == "steps":
        return "a non-empty list of steps is needed here", False
    if kind == "string_type":
        return "text is needed here (in quotes when it looks like a number or true/false)", False
    if kind == "literal_error":
        return f"not allowed; {msg[0].lower()}{msg[1:]}", False
    return msg, False


_FIELD_MESSAGES = {
    "eject": "eject: true (eject the installer ISO)",
    "when": "when is a mapping {VARIABLE: value or [values]} of text, numbers or true/false",
    "variables": "variables is a mapping of name: default value",
}


def _allowed_keys(data: Any, path: PathKey) -> list[str]:
    """The keys of the model at ``path`` (for did-you-mean), found from the step type above it."""
    from labctl.playbook.steps import STEP_TYPES, options_of

    node, model = data, None
    for i, part in enumerate(path):
        node = node[part]
        at_step = part == "cleanup" or (isinstance(part, int) and path[i - 1: i] == ("steps",))
        if at_step and isinstance(node, dict):
            action = next((k for k in node if k in STEP_TYPES), None)
            model = STEP_TYPES[action] if action else None
    if model is None:
        return list(PlaybookFile.model_fields)
    options = options_of(model)
    if path and path[-1] == model.action and options is not None:
        return [f.alias or n for n, f in options.model_fields.items()]
    return [f.alias or n for n, f in model.model_fields.items()]


# -- what needs the whole file ---------------------------------------------------------------------
def _check_steps(steps: list[PlaybookStep], at: PathKey, loc: Located, names: set[str],
                 soft: str | None = None) -> None:
    """Known variables, in file order: an ``as:`` defines its name for the steps after it. ``soft``: where
    a failure only gets logged (an optional group, a cleanup), said in the message a fail step there gets."""
    for i, step in enumerate(steps):
        _check_step(step, (*at, i), loc, names, soft)


def _check_step(step: PlaybookStep, p: PathKey, loc: Located, names: set[str], soft: str | None = None) -> None:
    line, col = loc.where((*p, step.action), prefer_key=True)
    step._where = (loc.file, line, col)

    def fail(path: PathKey, message: str, key: bool = False) -> SpecError:
        line, col = loc.where(path, prefer_key=key)
        return SpecError(loc.file, line, col, dotted(path), message)

    if step.action == "fail" and soft is not None:
        raise fail((*p, "fail"), f"a fail step {soft} would only be logged, never end the run; move it out "
                                 "(a when: on it chooses the branch)", key=True)
    known = names | LAB_VARIABLES
    for var in step.when or {}:
        if var not in known:
            raise fail((*p, "when", var), f"unknown variable; known: {', '.join(sorted(known))}", key=True)
    if step.cleanup is not None:
        _check_step(step.cleanup, (*p, "cleanup"), loc, names, "as a cleanup")
    raw = loc.data
    for part in p:
        raw = raw[part]
    for path, text in _templates(raw.get(step.action), (*p, step.action)):
        for m in VAR.finditer(text):
            if m.group(1) not in names:
                raise fail(path, f"unknown variable {{{m.group(1)}}}; known: {', '.join(sorted(names))}")
    if step.children():
        _check_steps(step.children(), (*p, step.action), loc, names,
                     soft or ("in an optional group" if step.optional else None))
    defined = getattr(step.arg, "as_", None)
    if defined:
        names.add(defined)


_NOT_TEMPLATES = ("as", "needle")


def _templates(value: Any, path: PathKey) -> Iterable[tuple[PathKey, str]]:
    """The strings of an action's argument that get variables filled in (not names, not child steps)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in _NOT_TEMPLATES:
                yield from _templates(v, (*path, k))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a playbook file (``labctl schema --playbook``)."""
    schema = PlaybookFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "labctl playbook file"
    return schema
