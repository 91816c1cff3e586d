"""Errors that map to labctl's exit codes.

The CLI turns these into one line on stderr and an exit code; nothing else in labctl prints a
traceback for a problem the user can fix. Exit codes (DESIGN.md): 0 success, 1 the lab ran and
failed, 2 bad input or refused operation, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class LabctlError(Exception):
    """Base class: a problem labctl explains in one line."""

    exit_code = EXIT_FAILED


class InputError(LabctlError):
    """Bad input (a lab file, an argument, a missing tool) or a refused operation: exit 2."""

    exit_code = EXIT_USAGE


class SpecError(InputError):
    """A lab file problem, located at FILE:LINE:COL with the dotted field path."""

    def __init__(self, file: str, line: int, col: int, field: str, message: str) -> None:
        self.file, self.line, self.col, self.field, self.message = file, line, col, field, message
        super().__init__(f"{file}:{line}:{col}: {field}: {message}")


class RefusedError(InputError):
    """An operation refused for safety (a non-USB target, a mounted disk, no confirmation)."""


class NotBuiltError(InputError):
    """A verb of the CLI contract whose part is not built yet: say so honestly, exit 2."""


class RunFailed(LabctlError):
    """The lab ran and failed: a step, a wait, a verification. Exit 1."""

    exit_code = EXIT_FAILED
