"""mob.cmd stays in step with the handle methods it mirrors."""

from __future__ import annotations

import inspect

from mobstore.actors import MobCommands, MobEvents, MobSpec
from mobstore.actors._mob_runs import MobRuns

_READS = {"get_run", "list_runs", "get_spec", "poll", "replay_all", "last_cursor", "wait_cursor", "subscribe"}


def _mutations(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in vars(cls).items()
        if inspect.iscoroutinefunction(fn) and not name.startswith("_") and name not in _READS
    }


def test_every_mutating_handle_method_has_a_builder_with_its_signature():
    """Each mutating method of mob.events, mob.spec and mob.runs has a mob.cmd builder
    taking the same parameters."""
    for cls in (MobEvents, MobSpec, MobRuns):
        for name, sig in _mutations(cls).items():
            builder = getattr(MobCommands, name, None)
            assert builder is not None, f"mob.cmd.{name} is missing"
            assert list(inspect.signature(builder).parameters) == list(sig.parameters), name
