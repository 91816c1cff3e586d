"""report: where a run's (or a lab's last runs') report.html, junit.xml, animation and events are.

``labctl report RUN_FOLDER`` names that run's files; ``labctl report LAB`` names each seat's last run and the
lab's last classroom index. A report that is missing or older than its events (a run killed before it wrote
one) is rendered again from the run folder first.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from labctl.errors import InputError


def _run_files(run_dir: Path) -> dict[str, Any]:
    from labctl.report import build_report, render_run

    html, events = run_dir / "report.html", run_dir / "events.jsonl"
    if events.exists() and (not html.exists() or html.stat().st_mtime < events.stat().st_mtime):
        render_run(run_dir)
    rep = build_report(run_dir)
    files = {"report": html, "junit": run_dir / "junit.xml", "animation": run_dir / "run.webp", "events": events}
    return {"run_dir": str(run_dir), "result": rep.result, "step": rep.failed.name if rep.failed else None,
            **{k: str(p) if p.exists() else None for k, p in files.items()}}


def _describe(label: str, info: dict[str, Any]) -> str:
    verdict = info["result"] + (f" at step '{info['step']}'" if info["step"] else "")
    lines = [f"{label}: {verdict}", f"  report:    {info['report'] or '(none)'}"]
    for key in ("junit", "animation", "events"):
        if info[key]:
            lines.append(f"  {key + ':':<10} {info[key]}")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    target = Path(args.target)
    out: list[dict[str, Any]] = []
    if target.is_dir():
        if not (target / "events.jsonl").exists() and not (target / "index.html").exists():
            raise InputError(f"{target} is not a run folder (no events.jsonl)")
        if (target / "index.html").exists() and not (target / "events.jsonl").exists():
            out.append({"classroom": str(target / "index.html"), "junit": str(target / "junit.xml")})
        else:
            out.append({"label": target.name, **_run_files(target)})
    else:
        from labctl.runner import last_run_dir
        from labctl.spec import load_lab

        lab = load_lab(target)
        for seat in lab.seat_list():
            run_dir = last_run_dir(seat)
            if run_dir is not None and run_dir.is_dir():
                out.append({"label": f"seat {seat.index} ({seat.name})", **_run_files(run_dir)})
        runs = lab.resolve(lab.runs_dir)
        classrooms = sorted(runs.glob("*-classroom/index.html")) if runs.is_dir() else []
        if classrooms:
            out.append({"classroom": str(classrooms[-1]), "junit": str(classrooms[-1].parent / "junit.xml")})
        if not out:
            raise InputError(f"lab {lab.name} has no runs yet ('labctl up {args.target}' makes one)")
    if getattr(args, "json", False):
        print(json.dumps(out, indent=1))
        return 0
    for info in out:
        if "classroom" in info:
            print(f"classroom: {info['classroom']}\n  junit:     {info['junit']}")
        else:
            print(_describe(str(info.pop("label")), info))
    return 0
