"""Playbooks as data: labs/playbooks/*.yaml, typed models run step by step against a Console and a Backend.

A playbook is ``{name, description?, variables?, steps: [...]}``. Each step is a mapping with one
action and optional common keys (``labctl schema --playbook`` prints the whole JSON Schema):

  action (one of)
    wait:   {text: RE | needle: NAME | serial: RE | change: KEYS | still: SECONDS | any: {key: RE, ...},
             timeout: S, serial: true|false, region: [x, y, w, h], as: VAR}
    keys:   "<leftShiftOn>O<leftShiftOff>"          (Packer boot_command grammar)
    type:   "text {variable}"  | {text: "...", secret: true}
    select: RE | {text: RE, timeout: S, max: N, region: [x, y, w, h]}   move the highlight with Up/Down
    power:  reset | 'off' | 'on'
    eject:  true
    screenshot: NAME
    assert: {text: RE, absent: false, region: [...]}
    fail:   "why" | {message: "why", shows: RE}      end the run here (under a when:); shows: the screen's reason
    run:    {command: "...", prompt: RE, timeout: S, as: VAR, expect: RE}
    prove_layout: {getptbl: VAR, ls: VAR, media: usb|hdd, scratch: /tmp/scratch|.locker, host: BOOL}
    steps:  [...]                                    a group (with ``when``)
  common
    name: a label for events and errors          when: {VAR: value or [values]}
    optional: true  (a failure is logged and the run goes on)
    cleanup: a step, run (in reverse order, Packer style) when a later step fails
    timeout: seconds, on steps that wait (wait, select, assert, fail, run)

``{name}`` in strings is replaced by a variable (``boot_options``, ``root_password``, ``keyboard`` from
the lab, or ``as:`` results). Secret values are typed but never logged. Every problem in a playbook
file is a ``SpecError`` at FILE:LINE:COL, found before anything runs.

Modules: ``steps`` (one model and one handler per step type, the registry), ``model`` (the file model,
loading with positions, the checks that need the whole file, the JSON Schema), ``execute`` (the runner).
"""

from __future__ import annotations

from labctl.playbook.execute import Runner, run_playbook
from labctl.playbook.model import LAB_VARIABLES, PLAYBOOK_DIR, PlaybookFile, json_schema, load, resolve
from labctl.playbook.steps import STEP_TYPES, PlaybookStep, StepContext, step_type

__all__ = ["LAB_VARIABLES", "PLAYBOOK_DIR", "STEP_TYPES", "PlaybookFile", "PlaybookStep", "Runner", "StepContext",
           "json_schema", "load", "resolve", "run_playbook", "step_type"]
