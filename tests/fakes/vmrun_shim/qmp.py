"""A tiny synchronous QMP client (stdlib only)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class QmpError(Exception):
    pass


def execute(path: Path, command: str, arguments: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
        f = s.makefile("rwb")

        def read() -> dict[str, Any]:
            while True:
                line = f.readline()
                if not line:
                    raise QmpError("QMP closed")
                msg: dict[str, Any] = json.loads(line)
                if "event" not in msg:
                    return msg

        read()  # greeting
        f.write(json.dumps({"execute": "qmp_capabilities"}).encode() + b"\n")
        f.flush()
        read()
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        f.write(json.dumps(msg).encode() + b"\n")
        f.flush()
        try:
            reply = read()
        except QmpError:
            if command == "quit":
                return {}
            raise
        if "error" in reply:
            raise QmpError(reply["error"].get("desc", str(reply["error"])))
        return reply.get("return")
    except (OSError, ValueError) as exc:
        raise QmpError(str(exc)) from exc
    finally:
        s.close()
