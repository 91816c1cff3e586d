"""The backend registry: backends by name, and ``auto``, which picks the first one usable on this host.

    from labctl import backends
    choice = backends.choose(lab, override)          # Choice(name, reason): 'auto' says why
    backend = backends.create(lab, seat, choice.name, detached=True)

A backend is registered by name with the ``"module:Class"`` it lives in (imported on first use, so a
backend whose module is missing or broken is reported, not fatal to the others). The class provides the
class methods of ``base.BackendClass``: ``create(lab, seat, **options)`` and ``usable(lab) -> (ok, why)``.
``auto`` tries them in registration order: VMware first (what trainers run), then QEMU.

Tests build their own ``Registry`` (``Registry().register("fake", FakeBackend)``) and hand it to the
runner; nothing here is global state.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from labctl.backends.base import Backend, BackendClass
from labctl.errors import InputError, NotBuiltError

if TYPE_CHECKING:
    from labctl.spec import Lab, Seat


@dataclass(frozen=True)
class Choice:
    """The backend chosen for a lab, and why (shown with -v and by ``labctl status``)."""

    name: str
    reason: str


class Registry:
    """Backends by name, in the order ``auto`` tries them."""

    def __init__(self) -> None:
        self._targets: dict[str, str | BackendClass] = {}

    def register(self, name: str, target: str | BackendClass) -> None:
        """``target``: a class, or ``"module:Class"`` imported when the backend is first asked for."""
        self._targets[name] = target

    def names(self) -> list[str]:
        return list(self._targets)

    def get(self, name: str) -> BackendClass:
        """The backend class; InputError for an unknown name, NotBuiltError when its module is missing."""
        target = self._targets.get(name)
        if target is None:
            raise InputError(f"unknown backend {name!r} (known: {', '.join(self._targets) or 'none'})")
        if not isinstance(target, str):
            return target
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise NotBuiltError(f"the {name} backend is not built yet ({module_name} is missing)") from None
        return cast(BackendClass, getattr(module, attr))

    def probe(self, lab: Lab, name: str) -> tuple[bool, str]:
        """``usable`` of one backend; a backend that cannot even be loaded is not usable."""
        try:
            cls = self.get(name)
        except NotBuiltError as exc:
            return False, str(exc)
        return cls.usable(lab)

    def choose(self, lab: Lab, override: str | None = None) -> Choice:
        """The backend for ``lab``: ``override`` (``--backend``), else the lab's ``backend:``; ``auto``
        picks the first usable one and says why the ones before it were not."""
        wanted = override or lab.backend
        if wanted != "auto":
            source = f"--backend {wanted}" if override else f"backend: {wanted} in {lab.source}"
            self.get(wanted)  # unknown or not built: say so now
            return Choice(wanted, f"{source}")
        skipped: list[str] = []
        for name in self._targets:
            ok, why = self.probe(lab, name)
            if ok:
                said = f"auto: {name} ({why})"
                if skipped:
                    said += "; not " + "; not ".join(skipped)
                return Choice(name, said)
            skipped.append(f"{name}: {why}")
        raise InputError("backend auto: no backend is usable on this host (" + "; ".join(skipped) + ")")

    def create(self, lab: Lab, seat: Seat, name: str, **options: object) -> Backend:
        """A backend object for one seat (nothing started)."""
        return self.get(name).create(lab, seat, **options)


def default_registry() -> Registry:
    """labctl's own backends, in the order ``auto`` tries them (one line per backend)."""
    registry = Registry()
    registry.register("vmware", "labctl.backends.vmware:VmwareBackend")
    registry.register("qemu", "labctl.backends.qemu:QemuBackend")
    return registry


def choose(lab: Lab, override: str | None = None, registry: Registry | None = None) -> Choice:
    return (registry or default_registry()).choose(lab, override)


def create(lab: Lab, seat: Seat, name: str, registry: Registry | None = None, **options: object) -> Backend:
    return (registry or default_registry()).create(lab, seat, name, **options)
