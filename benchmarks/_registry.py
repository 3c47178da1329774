"""The workloads of ``mobstore bench``, by name.

Every workload is a module of this package with

- ``DEFAULTS``: a dict of its options at full size (``workers``, ``ops``, ``durability``...);
- ``run(*, <options>, directory, progress) -> list[Result]``: runs the system under test
  and its baselines on fresh files in ``directory``, mobstore first, baselines after;
- optionally ``render(results) -> str``, when its results are not a table of systems.

Modules are imported lazily, on first use, so a workload whose module is missing makes
only that workload unavailable (:meth:`Workload.available`), not the command line.

The harness speaks one set of option names (``workers``, ``ops``, ``mobs``, ``durability``,
``group_commit``, ``runtimes``, ``subscribers``, ``backlog``); :meth:`Workload.options`
maps them onto the parameters a module's ``run`` accepts (``aliases``) and drops the rest.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import attrs

from ._stats import Result, table

_PACKAGE = __name__.rpartition(".")[0]


@attrs.frozen
class Workload:
    """One entry of the registry."""

    name: str
    title: str
    module: str
    #: How many times its ``run`` calls ``progress(msg)`` (for the progress percentage).
    phases: int = 3
    #: Harness option name -> the module's parameter name.
    aliases: Mapping[str, str] = attrs.field(factory=dict)
    #: Size overrides for the default suite (``mobstore bench`` with no workload named).
    suite: Mapping[str, Any] = attrs.field(factory=dict)
    #: Whether its rows are systems doing the same work (mobstore first): ratios apply.
    systems: bool = True
    #: Whether a ``--plot`` sweep over worker counts makes sense for it.
    sweep: bool = True
    #: Whether it compares its systems through ``run_systems`` (so ``--repeat`` applies).
    repeats: bool = True

    def load(self) -> ModuleType | None:
        """The module, or ``None`` if it does not exist (yet)."""
        full = f"{_PACKAGE}.{self.module}"
        try:
            return importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name == full:
                return None
            raise

    def available(self) -> bool:
        return self.load() is not None

    def _mod(self) -> ModuleType:
        mod = self.load()
        if mod is None:
            raise LookupError(f"workload {self.name!r}: module {_PACKAGE}.{self.module} is not installed")
        return mod

    @property
    def defaults(self) -> dict[str, Any]:
        """The defaults of ``run``'s keyword parameters, overridden by ``DEFAULTS``."""
        mod = self._mod()
        params = inspect.signature(mod.run).parameters.values()
        out = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        out.update(getattr(mod, "DEFAULTS", {}))
        out.pop("directory", None)
        out.pop("progress", None)
        return out

    def parameters(self) -> set[str]:
        """The keyword parameters of the module's ``run``."""
        return set(inspect.signature(self._mod().run).parameters) - {"directory", "progress"}

    def options(self, given: Mapping[str, Any], *, suite: bool = False) -> dict[str, Any]:
        """The options of a run: ``DEFAULTS``, then the suite sizes (if ``suite``), then the
        options ``given`` that are not ``None``; only those ``run`` accepts."""
        accepted = self.parameters()
        out = {k: v for k, v in self.defaults.items() if k in accepted}
        for k, v in [*(self.suite.items() if suite else ()), *given.items()]:
            k = self.aliases.get(k, k)
            if v is not None and k in accepted:
                out[k] = v
        return out

    def workers_option(self) -> str | None:
        """The parameter that sets the number of concurrent workers, if it has one."""
        p = self.aliases.get("workers", "workers")
        return p if p in self.parameters() else None

    def run(self, options: Mapping[str, Any], *, directory: str | None,
            progress: Callable[[str], None]) -> list[Result]:
        return list(self._mod().run(**options, directory=directory, progress=progress))

    def render(self, results: list[Result]) -> str:
        custom = getattr(self._mod(), "render", None)
        return custom(results) if custom is not None else table(results)


#: The workloads, in the order the default suite runs them.
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload("cas", "CAS contention on one flow run", "cas"),
        Workload("appends", "fan-out appends over many mobs", "appends"),
        Workload("boundaries", "session boundaries over many runtimes", "boundaries"),
        Workload("subscribers", "subscriber latency and catch-up", "subscribers", phases=2,
                 aliases={"workers": "appenders"}, suite={"backlog": 200_000}, systems=False, sweep=False,
                 repeats=False),
        # (rows per scenario, "actor crash" and "reopen"; its workers are capped by its mobs)
        Workload("restart", "restart-to-ready time after an actor crash and a reopen", "restart", sweep=False,
                 repeats=False),
        Workload("mixed", "mixed appends, CAS, labels, boundaries and polls at once", "mixed"),
    ]
}


def get(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise LookupError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}") from None
