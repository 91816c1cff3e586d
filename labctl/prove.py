"""The partition layout proven inside the guest: what ``partedUtil getptbl`` and ``ls -lh /`` print in the
ESXi Shell, parsed and compared with ESXi's documented 6.x layout for the medium and the disk's size.

This is the seed's own proof ("6 partitions on the 16 GB stick, 5 on the 1 GB one, 8 on a hard disk;
``scratch -> /tmp/scratch`` on a stick-only host") and it works wherever a shell prompt can be read, a
VMware seat with a passed-through stick included, where the host cannot read the stick. Where the host can
(an image stick), the host-side GPT is put beside it.

A proof is a ``Proof``: the guest's table, the expected one, one ``Diff`` per difference (naming the
partition and the field: start, end, type, attribute, presence, order, the disk's size, the scratch link),
a readable text table and a JSON form. ``write`` puts both into a run folder as ``layout-proof.txt`` and
``layout-proof.json`` (the run report shows the JSON as a table).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl import layouts
from labctl.errors import InputError

PROOF_JSON = "layout-proof.json"
PROOF_TEXT = "layout-proof.txt"
RAMDISK_SCRATCH = "/tmp/scratch"
_PROMPT = re.compile(r"^\[[^\]]*@[^\]]*\]")
_LINK = re.compile(r"^l\S*\s+.*?\s(?P<name>[^\s/]+)\s+->\s+(?P<target>\S+)\s*$")


@dataclass(frozen=True)
class Diff:
    """One difference: which partition (None for the disk as a whole), which field, what was seen and wanted."""

    partition: int | None
    field: str
    have: str
    want: str

    def line(self) -> str:
        where = f"partition {self.partition}" if self.partition is not None else "disk"
        if self.field == "presence":
            return f"{where}: {self.have}, expected {self.want}"
        return f"{where}: {self.field} is {self.have}, expected {self.want}"


@dataclass
class Proof:
    """The guest's layout against the documented one."""

    disk: str
    media: layouts.Media
    table: layouts.Table
    expected: list[layouts.TableEntry]
    diffs: list[Diff] = field(default_factory=list)
    scratch: str | None = None
    expect_scratch: str | None = None
    host_table: layouts.Table | None = None

    @property
    def ok(self) -> bool:
        return not self.diffs

    def summary(self) -> str:
        numbers = ",".join(str(e.number) for e in self.table.entries)
        gib = self.table.total_sectors * 512 / 2**30
        if self.ok:
            return (f"{self.disk}: ESXi's 6.x {self.media} layout for {gib:.2f} GiB ({numbers})"
                    + (f", scratch -> {self.scratch}" if self.scratch else ""))
        return f"{self.disk}: not ESXi's 6.x {self.media} layout for {gib:.2f} GiB: " + "; ".join(
            d.line() for d in self.diffs[:8])

    def rows(self) -> list[dict[str, Any]]:
        """One row per partition seen or expected, in the expected on-disk order, then the unexpected ones."""
        have = {e.number: e for e in self.table.entries}
        want = {e.number: e for e in self.expected}
        host = {e.number: e for e in self.host_table.entries} if self.host_table else None
        bad = {d.partition for d in self.diffs}
        numbers = [e.number for e in self.expected] + [n for n in have if n not in want]
        out = []
        for n in numbers:
            h, w = have.get(n), want.get(n)
            row: dict[str, Any] = {
                "partition": n,
                "start": h.start if h else None, "end": h.end if h else None,
                "type": h.type_name if h else None, "attr": h.attr if h else None,
                "expected_start": w.start if w else None, "expected_end": w.end if w else None,
                "expected_type": w.type_name if w else None,
            }
            if host is not None:
                hh = host.get(n)
                row["host_gpt"] = f"{hh.start}-{hh.end}" if hh else "absent"
            row["ok"] = n not in bad
            out.append(row)
        return out

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "verdict": "ok" if self.ok else "mismatch",
            "disk": self.disk,
            "media": self.media,
            "total_sectors": self.table.total_sectors,
            "size_gib": round(self.table.total_sectors * 512 / 2**30, 2),
            "partitions_seen": " ".join(str(e.number) for e in self.table.entries),
            "partitions_expected": " ".join(str(e.number) for e in self.expected),
            "scratch": self.scratch,
            "expected_scratch": self.expect_scratch,
            "rows": self.rows(),
            "diff": [d.line() for d in self.diffs],
            "getptbl": layouts.format_getptbl(self.table),
        }
        if self.host_table is not None:
            doc["host_getptbl"] = layouts.format_getptbl(self.host_table)
        return doc

    def text(self) -> str:
        """A readable table (what the trainer would write on the board), then the diff."""
        lines = [f"layout proof: {self.disk} ({self.media}, {self.table.total_sectors} sectors, "
                 f"{self.table.total_sectors * 512 / 2**30:.2f} GiB)", ""]
        head = f"{'#':>2}  {'start':>9} {'end':>10}  {'type':<16}{'attr':>4}   {'expected':<31}  ok"
        if self.host_table is not None:
            head += "  host GPT"
        lines += [head, "-" * len(head)]
        for r in self.rows():
            seen = (f"{r['start']:>9} {r['end']:>10}  {r['type']:<16}{r['attr']:>4}" if r["start"] is not None
                    else f"{'(absent)':>9} {'':>10}  {'':<16}{'':>4}")
            exp = (f"{r['expected_start']}-{r['expected_end']} {r['expected_type']}" if r["expected_start"] is not None
                   else "(not expected)")
            row = f"{r['partition']:>2}  {seen}   {exp:<31}  {'ok' if r['ok'] else 'NO'}"
            if "host_gpt" in r:
                row += f"  {r['host_gpt']}"
            lines.append(row)
        lines.append("")
        if self.scratch is not None or self.expect_scratch is not None:
            lines.append(f"scratch -> {self.scratch or '(not found in ls -lh /)'}"
                         + (f" (expected {self.expect_scratch})" if self.expect_scratch else ""))
        if self.ok:
            lines.append(f"verdict: matches ESXi's documented 6.x {self.media} layout")
        else:
            lines.append("verdict: DOES NOT MATCH")
            lines += [f"- {d.line()}" for d in self.diffs]
        return "\n".join(lines) + "\n"


def parse_ls_links(text: str) -> dict[str, str]:
    """The symbolic links of busybox ``ls -l[h] /``: name -> target (``scratch`` -> ``/tmp/scratch``)."""
    links = {}
    for raw in text.replace("\r", "\n").splitlines():
        m = _LINK.match(raw.strip())
        if m:
            links[m.group("name")] = m.group("target").rstrip("/") or "/"
    return links


def scratch_matches(seen: str, expected: str) -> bool:
    """``/tmp/scratch`` exactly; ``.locker`` means any ``/vmfs/volumes/<datastore>/.locker`` (the datastore's
    UUID is only known in the guest); anything else must be equal."""
    if expected == ".locker":
        return bool(re.fullmatch(r"/vmfs/volumes/[^/]+/\.locker", seen))
    return seen.rstrip("/") == expected.rstrip("/")


def compare(table: layouts.Table, expected: Sequence[layouts.TableEntry]) -> list[Diff]:
    """Structured differences of a table from an expected layout (partition and field named)."""
    diffs: list[Diff] = []
    if table.label != "gpt":
        diffs.append(Diff(None, "label", table.label, "gpt"))
    have = {e.number: e for e in table.entries}
    want = {e.number: e for e in expected}
    for e in expected:
        h = have.get(e.number)
        if h is None:
            diffs.append(Diff(e.number, "presence", "missing", f"{e.start}-{e.end} {e.type_name}"))
            continue
        for name, a, b in (("start", h.start, e.start), ("end", h.end, e.end),
                           ("type", h.type_guid, e.type_guid), ("attribute", h.attr, e.attr)):
            if a != b:
                diffs.append(Diff(e.number, name, str(a), str(b)))
    for h in table.entries:
        if h.number not in want:
            diffs.append(Diff(h.number, "presence", f"present ({h.start}-{h.end} {h.type_name})", "absent"))
    order_have = [e.number for e in table.entries if e.number in want]
    order_want = [e.number for e in expected if e.number in have]
    if order_have != order_want:
        diffs.append(Diff(None, "order", " ".join(map(str, order_have)), " ".join(map(str, order_want))))
    return diffs


def prove(getptbl: str, media: layouts.Media, *, disk: str = "disk", ls_root: str | None = None,
          expect_scratch: str | None = None, host_table: layouts.Table | None = None,
          expect_sectors: int | None = None) -> Proof:
    """Parse the guest's ``partedUtil getptbl`` (and ``ls -lh /``) and compare them with the documented layout
    for ``media`` and the size partedUtil reports. InputError when the text is not partedUtil's table."""
    text = _from_label(getptbl)
    table = layouts.parse_getptbl(text)
    expected = layouts.expected_layout(table.total_sectors, media)
    proof = Proof(disk, media, table, expected, compare(table, expected), expect_scratch=expect_scratch,
                  host_table=host_table)
    if expect_sectors is not None and expect_sectors != table.total_sectors:
        proof.diffs.insert(0, Diff(None, "total sectors", str(table.total_sectors), str(expect_sectors)))
    if host_table is not None and host_table.entries != table.entries:
        proof.diffs.append(Diff(None, "host GPT", "differs from the guest's partedUtil", "the same table"))
    if ls_root is not None:
        proof.scratch = parse_ls_links(ls_root).get("scratch")
    if expect_scratch is not None:
        if proof.scratch is None:
            proof.diffs.append(Diff(None, "scratch", "no 'scratch ->' link in ls -lh /", expect_scratch))
        elif not scratch_matches(proof.scratch, expect_scratch):
            proof.diffs.append(Diff(None, "scratch", proof.scratch, _scratch_words(expect_scratch)))
    return proof


def _scratch_words(expected: str) -> str:
    return "/vmfs/volumes/<datastore>/.locker" if expected == ".locker" else expected


def _from_label(text: str) -> str:
    """partedUtil's table from the label line to the next shell prompt (the command's echo before it and
    the prompt after it are dropped; any other line is kept, so that a garbled one is an error, not a gap)."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if ln in ("gpt", "msdos", "unknown") and i + 1 < len(lines) and re.fullmatch(r"\d+ 255 63 \d+", lines[i + 1]):
            table = []
            for row in lines[i:]:
                if _PROMPT.match(row):
                    break
                table.append(row)
            return "\n".join(table)
    raise InputError("partedUtil getptbl: no table in the output (a label line 'gpt' and a geometry line "
                     f"'<cylinders> 255 63 <sectors>'): {' | '.join(lines)[:200]!r}")


def write(proof: Proof, run_dir: Path) -> tuple[Path, Path]:
    """layout-proof.json and layout-proof.txt in the run folder."""
    js, txt = run_dir / PROOF_JSON, run_dir / PROOF_TEXT
    js.write_text(json.dumps(proof.to_json(), indent=1) + "\n")
    txt.write_text(proof.text())
    return js, txt


# -- the playbook step ---------------------------------------------------------------------------------

STEP_KEYS = frozenset({"getptbl", "ls", "media", "disk", "scratch", "host"})


def check_step(arg: object) -> str | None:
    """What is wrong with a ``prove_layout:`` step's mapping (None when it is fine), for the playbook loader."""
    if not isinstance(arg, dict):
        return "prove_layout takes a mapping with " + ", ".join(sorted(STEP_KEYS))
    unknown = [k for k in arg if k not in STEP_KEYS]
    if unknown:
        return f"unknown prove_layout option {unknown[0]!r}; use {', '.join(sorted(STEP_KEYS))}"
    for k in ("getptbl", "ls", "media", "disk", "scratch"):
        if k in arg and not isinstance(arg[k], str):
            return f"prove_layout.{k} is text"
    if "host" in arg and not isinstance(arg["host"], bool):
        return "prove_layout.host is true or false (put the host-side GPT beside the guest's table)"
    return None


def run_step(arg: dict[str, Any], variables: dict[str, Any], run_dir: Path, backend: Any = None) -> Proof:
    """A ``prove_layout:`` step: the outputs of earlier ``run`` steps (``as: getptbl``, ``as: ls_root``; other
    names with ``getptbl:`` / ``ls:``) proven against ``media`` (``{media}``, the lab's verify.media), written
    into the run folder. ``scratch:`` ``/tmp/scratch`` or ``.locker`` (a datastore's) checks the scratch link.
    ``host: true`` (the default) puts the host-side GPT beside it when the backend can read the disk.
    RunFailed (naming partition and field) when the guest's layout differs."""
    from labctl.errors import RunFailed

    var = arg.get("getptbl", "getptbl")
    if var not in variables:
        raise RunFailed(f"prove_layout: no output named {var!r}; run 'partedUtil getptbl' with as: {var} first")
    given = str(arg.get("media") or variables.get("media") or "usb")
    if given not in ("usb", "hdd"):
        raise RunFailed(f"prove_layout: media is usb or hdd, not {given!r}")
    media: layouts.Media = "hdd" if given == "hdd" else "usb"
    ls_var = arg.get("ls", "ls_root")
    ls_text = variables.get(ls_var)
    host = _host_table(backend, media) if arg.get("host", True) else None
    try:
        proof = prove(str(variables[var]), media,
                      disk=str(arg.get("disk") or "install disk"), ls_root=None if ls_text is None else str(ls_text),
                      expect_scratch=arg.get("scratch") or None, host_table=host)
    except InputError as exc:
        raise RunFailed(str(exc)) from None
    write(proof, run_dir)
    if not proof.ok:
        raise RunFailed(proof.summary() + f" (table: {run_dir / PROOF_TEXT})")
    return proof


def _host_table(backend: Any, media: str) -> layouts.Table | None:
    """The install disk's GPT as the host reads it: the stick image for usb, the local disk image for hdd;
    None where the host cannot read it (a passed-through stick, a VMware seat)."""
    if backend is None:
        return None
    try:
        if media == "usb":
            with backend.stick_view() as view:
                return layouts.read_gpt(str(view.path)).table() if view.path is not None else None
        disk = backend.images().disk
        return layouts.read_gpt(str(disk)).table() if disk is not None else None
    except (InputError, AttributeError, OSError, NotImplementedError):
        return None
