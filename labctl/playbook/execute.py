"""Running a playbook: its steps in order against a Console and a Backend, Packer style.

Each step's own handler (``PlaybookStep.run``) does the work; this module gives it a ``StepContext``
(variables filled in, secrets kept, the backend when there is one) and does what every step shares:
``when:`` (a skip is an event, and a skipped step's cleanup is never armed), ``optional:`` (a failure
is logged as skipped), the cleanups in reverse order when a step fails, and one event per step with
its evidence (what matched, the screenshot) or its failure (where in the file, the screen, what OCR read).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labctl.backends.base import Backend
from labctl.console import Console, Evidence, ScreenFailure
from labctl.errors import InputError, RunFailed
from labctl.playbook.model import PlaybookFile
from labctl.playbook.steps import VAR, PlaybookStep
from labctl.report import RunFolder
from labctl.secrets import Secrets

log = logging.getLogger(__name__)


class Runner:
    """One run of a playbook: its variables, its armed cleanups and its outputs (``run ... as:``)."""

    def __init__(self, book: PlaybookFile, console: Console, backend: Backend | None, variables: dict[str, Any],
                 run: RunFolder, secrets: Sequence[str]) -> None:
        self.book, self.console, self._backend, self.run = book, console, backend, run
        self.vars: dict[str, Any] = {**book.variables, **{k: v for k, v in variables.items() if v is not None}}
        self.secrets = Secrets(secrets)
        console.add_secrets(list(self.secrets))
        self.cleanups: list[PlaybookStep] = []
        self.outputs: dict[str, str] = {}

    @property
    def run_dir(self) -> Path:
        return self.run.path

    # -- the StepContext ------------------------------------------------------------------------------
    def sub(self, text: str) -> str:
        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in self.vars:
                raise RunFailed(f"playbook variable {{{m.group(1)}}} has no value (set it in the lab)")
            return str(self.vars[m.group(1)])

        return VAR.sub(repl, text)

    def sub_rx(self, text: str) -> str:
        """A pattern with its variables filled in as literal text; one that would then match the empty
        string (an empty variable) fails the step instead of matching any screen."""
        def repl(m: re.Match[str]) -> str:
            if self.vars.get(m.group(1)) is None:
                raise RunFailed(f"playbook variable {{{m.group(1)}}} has no value (set it in the lab)")
            return re.escape(str(self.vars[m.group(1)]))

        rx = VAR.sub(repl, text)
        if VAR.search(text) and re.search(rx, "") is not None:
            names = ", ".join(f"{{{n}}}" for n in VAR.findall(text))
            raise RunFailed(f"pattern /{self.secrets.scrub(text)}/ matches the empty string once {names} is "
                            "filled in (an empty value?); it would match any screen")
        return rx

    def sub_keys(self, spec: str) -> str:
        """Variables in a key spec are text: a '<' or '>' in a value (a password) is typed, never a key."""
        def repl(m: re.Match[str]) -> str:
            value = self.sub(m.group(0))
            return "".join("<lt>" if ch == "<" else "<gt>" if ch == ">" else ch for ch in value)

        return VAR.sub(repl, spec)

    def is_secret(self, text: str) -> bool:
        return self.secrets.shows(text)

    def add_secret(self, text: str) -> None:
        self.secrets.add([text])
        self.console.add_secrets([text])

    def backend(self) -> Backend:
        if self._backend is None:
            raise RunFailed("this step needs the VM's backend, and none was given")
        return self._backend

    def backend_or_none(self) -> Backend | None:
        return self._backend

    def run_steps(self, steps: Sequence[PlaybookStep]) -> None:
        for step in steps:
            if self._one(step) and step.cleanup:
                self.cleanups.append(step.cleanup)

    # -- running --------------------------------------------------------------------------------------
    def execute(self) -> None:
        try:
            self.run_steps(self.book.steps)
        except BaseException:
            for step in reversed(self.cleanups):
                try:
                    self._one(step, cleanup=True)
                except Exception as exc:  # keep going: every cleanup gets its chance
                    log.warning("cleanup '%s' failed: %s", step.label, self.secrets.scrub(str(exc)))
            raise

    def _applies(self, step: PlaybookStep) -> bool:
        return not step.when or all(str(self.vars.get(k)) in [str(v) for v in (vals if isinstance(vals, list)
                                                                                 else [vals])]
                                    for k, vals in step.when.items())

    def _one(self, step: PlaybookStep, cleanup: bool = False) -> bool:
        """Run one step; False when its when: does not apply (skipped, and its cleanup never armed)."""
        name = step.label
        extra: dict[str, Any] = {"cleanup": True} if cleanup else {}
        if not self._applies(step):
            self.run.event(name, action=step.action, result="skipped", duration=0.0, reason=f"when {step.when}",
                           **extra)
            return False
        self.console.step = name
        t0 = time.monotonic()
        fields: dict[str, Any] = {"action": step.action, "start": time.time(), **extra}
        where = f"{step.where[0]}:{step.where[1]}"

        def event(result: str, **more: Any) -> None:
            self.run.event(name, **fields, result=result, duration=round(time.monotonic() - t0, 3), **more)

        try:
            ev = step.run(self)
        except ScreenFailure as exc:
            shot = str(exc.screenshot) if exc.screenshot else None
            if step.optional:
                event("skipped", reason=str(exc), screenshot=shot)
                return True
            event("failed", error=str(exc), ocr=exc.ocr_text, screenshot=shot, where=where)
            raise
        except RunFailed as exc:
            if step.optional:
                event("skipped", reason=str(exc))
                return True
            event("failed", error=str(exc), where=where)
            raise RunFailed(f"step '{name}' ({where}): {exc}") from None
        except InputError as exc:  # bad input met only now (a key spec, no serial console): exit 2, located
            event("failed", error=str(exc), where=where)
            raise InputError(f"step '{name}' ({where}): {exc}") from None
        except Exception as exc:  # anything else still names the step and leaves its evidence
            failed_shot = None
            with contextlib.suppress(Exception):
                failed_shot = self.console.screenshot(f"failed-{name}")
            event("failed", error=f"{type(exc).__name__}: {exc}", where=where,
                  screenshot=str(failed_shot) if failed_shot else None)
            raise RunFailed(f"step '{name}' ({where}): {type(exc).__name__}: {exc}") from None
        if ev is not None:
            fields.update(source=ev.source, matched=ev.matched, fuzzy=ev.fuzzy)
            if ev.also:
                fields["also_matched"] = list(ev.also)
            if ev.screenshot:
                fields["screenshot"] = str(ev.screenshot)
            if ev.typed is not None:
                fields["typed"] = ev.typed
        event("ok")
        return True


def run_playbook(name: str, console: Console, backend: Backend | None, variables: dict[str, object],
                 run: RunFolder, secrets: Sequence[str]) -> None:
    """Load ``labs/playbooks/<name>.yaml`` (or a path) and run it; raises RunFailed on a failed step
    after running the cleanups in reverse order."""
    from labctl.playbook.model import load

    book = load(name, known_vars=set(variables))
    run.event("playbook", action="start", playbook=book.title, file=str(book.path))
    t0 = time.monotonic()
    runner = Runner(book, console, backend, dict(variables), run, secrets)
    try:
        runner.execute()
    except RunFailed as exc:
        run.event("playbook", action="end", result="failed", duration=time.monotonic() - t0, error=str(exc))
        raise
    run.event("playbook", action="end", result="ok", duration=round(time.monotonic() - t0, 3))


__all__ = ["Evidence", "Runner", "run_playbook"]
