"""Where labctl's own data files are: the .vmx templates, the playbooks, the sample labs.

In a source checkout they sit where DESIGN.md puts them (``vmx_templates/``, ``labs/``), next to the
``labctl`` package. An installed wheel has no checkout around it, so pyproject.toml maps the same folders
into the package as ``labctl/_data/vmx_templates`` and ``labctl/_data/labs``. Callers ask here instead of
walking up from ``__file__``, so ``pip install .`` renders and runs exactly like an editable install.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_path(*parts: str) -> Path:
    """``data_path("labs", "playbooks")``: the installed copy when there is one, else the checkout's."""
    installed = _PACKAGE.joinpath("_data", *parts)
    if installed.exists():
        return installed
    return _PACKAGE.parent.joinpath(*parts)
