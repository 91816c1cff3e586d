"""docs/architecture.md and the README against the code: the module table is the real tree, every contract
member the code has is named, every CLI option is in the README's command reference, and no file refers
to reading material a user of the repository does not have."""

from __future__ import annotations

import argparse
import inspect
import re
import subprocess
from pathlib import Path

import pytest

from labctl import runner
from labctl.backends.base import Backend
from labctl.cli import build_parser
from labctl.console import Console
from labctl.playbook import STEP_TYPES

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
README = (REPO / "README.md").read_text(encoding="utf-8")


def _code_spans(text: str) -> set[str]:
    """Every `code span`, and the name a span calls ('send_keys(spec)' -> 'send_keys', 'a.b' -> 'b')."""
    spans = set(re.findall(r"`([^`\n]+)`", text))
    names = {m.group(0).rsplit(".", 1)[-1] for s in spans if (m := re.match(r"[\w.]+(?=\()", s))}
    return spans | names


def _table_modules(text: str) -> set[str]:
    """The first column of the 'Where each thing lives' table."""
    part = text.split("## Where each thing lives", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(labctl/[^`]+\.py)` \|", part, flags=re.M))


def test_the_module_table_is_the_real_tree() -> None:
    skip = {"labctl/__main__.py", "labctl/__init__.py", "labctl/commands/__init__.py", "labctl/sim/__init__.py"}
    tree = {str(p.relative_to(REPO)) for p in (REPO / "labctl").rglob("*.py")} - skip
    tree = {t for t in tree if not t.startswith("labctl/sim/src/")}
    listed = _table_modules(DOC)
    assert tree - listed == set(), "modules missing from docs/architecture.md's table"
    assert listed - tree == set(), "docs/architecture.md lists modules that do not exist"


def test_every_path_the_doc_names_exists() -> None:
    paths = {s for s in _code_spans(DOC) if re.fullmatch(r"(labctl|tests|labs|docs)/[\w./-]+", s)}
    assert paths, "the doc names no paths"
    missing = sorted(p for p in paths if not (REPO / p).exists() and "NAME" not in p)  # NAME: a placeholder
    assert missing == []


def test_every_backend_member_is_in_the_doc() -> None:
    members = {n for n in vars(Backend) if not n.startswith("_")} | set(Backend.__annotations__)
    spans = _code_spans(DOC)
    assert sorted(members - spans) == []


def test_every_console_verb_and_step_type_and_up_step_is_in_the_doc() -> None:
    spans = _code_spans(DOC)
    verbs = {n for n, v in vars(Console).items()
             if not n.startswith("_") and (callable(v) or isinstance(v, classmethod | staticmethod))}
    assert sorted(verbs - spans - {"end_of_process", "needle"}) == []  # internals of send and of wait_needle
    assert sorted(set(STEP_TYPES) - spans) == []
    up_steps = {name for name, cls in vars(runner).items()
                if inspect.isclass(cls) and issubclass(cls, runner.UpStep) and cls is not runner.UpStep}
    assert sorted(up_steps - spans) == []


def _options(parser: argparse.ArgumentParser, path: str = "labctl") -> list[tuple[str, tuple[str, ...]]]:
    """(subcommand, the option's strings) for every option of every subcommand, -h and --version aside."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for action in parser._actions:  # argparse has no public walk of its options
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _options(sub, f"{path} {name}")
        elif action.option_strings and not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            found.append((path, tuple(action.option_strings)))
    return found


def test_every_option_of_every_subcommand_is_in_the_command_reference() -> None:
    ref = README.split("## Command reference", 1)[1].split("\n## ", 1)[0]
    lines = ref.splitlines()
    missing = []
    for path, opts in _options(build_parser()):
        words = path.split()[1:]
        # on the line of its subcommand ("labctl stick backup ..."); the global ones anywhere in the section
        where = [ln for ln in lines if all(w in re.split(r"[\s|]+", ln) for w in words)] if words else lines
        if not any(re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", ln) for ln in where for opt in opts):
            missing.append(f"{path} {'/'.join(opts)}")
    assert missing == [], "options missing from README's command reference: " + ", ".join(missing)


def test_the_option_walk_sees_the_options() -> None:
    """The check above is only as good as its walk: it finds options at every level."""
    found = {(path, opt) for path, opts in _options(build_parser()) for opt in opts}
    assert {("labctl up", "--boot-only"), ("labctl stick restore", "--zero-rest"), ("labctl", "-v"),
            ("labctl sim build", "--kickstart"), ("labctl iso kickstart", "--boot-option")} <= found
    assert not {opt for _, opt in found} & {"-h", "--help", "--version"}


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the git checkout")
def test_no_file_refers_to_outside_reading_material() -> None:
    patterns = [".." + "/shared", "shared" + "/DESIGN"]  # split, so that this file does not match itself
    out = subprocess.run(["git", "grep", "-n", "-I", "-F", "-e", patterns[0], "-e", patterns[1]],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stdout == "", out.stdout
