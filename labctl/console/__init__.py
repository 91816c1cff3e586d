"""The console stage: a seat's screen, keyboard and serial port behind one ``Console``.

``console.py`` holds the Console and its verbs, ``keys.py`` Packer's key grammar, ``vnc.py`` the VNC
session, ``screen.py`` OCR, needles and frame comparison, ``serial.py`` the serial reader and
``waiting.py`` the bounded-wait helpers every wait uses. ``from labctl.console import Console`` is the
way in; nothing outside this package talks to vncdotool, the OCR engine or the serial reader.
"""

from __future__ import annotations

from labctl.console.console import (
    NEEDLE_DIRS,
    SHELL_PROMPT,
    Console,
    Evidence,
    FrameSource,
    ScreenFailure,
    WaitTimeout,
    serial_regex,
)

__all__ = ["NEEDLE_DIRS", "SHELL_PROMPT", "Console", "Evidence", "FrameSource", "ScreenFailure", "WaitTimeout",
           "serial_regex"]
