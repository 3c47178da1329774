"""Commands of one mob, built ahead for ``mob.commit`` (``mob.cmd``), and ``commit`` itself.

``mob.cmd.<op>(...)`` takes the same arguments as the handle method of the same name
(``mob.events.append``, ``mob.spec.put_spec``...), validates them on the spot (raising
:class:`InvalidInput` before anything is queued) and returns the command object instead of
running it. ``mob.commit(*commands)`` then sends them as one message, applied in one
transaction, all or nothing (``storage._atomic``)::

    ok = await mob.commit(
        mob.cmd.put_spec(definition, revision=3),
        mob.cmd.append(NewMobEvent("spec_updated", {"revision": 4})),
    )

The terminal transition of a run and its event, together or not at all (SEMANTICS.md §9)::

    res = await mob.commit(
        mob.cmd.cas_run_snapshot(run_id, "running", state, "completed", done_state),
        mob.cmd.append(NewMobEvent("flow_completed", {"run_id": run_id})),
    )
    if not res.ok:   # the CAS lost: no event was appended either
        ...

The builders of the ``mob.runs`` mutations are generated from :class:`MobRuns`'s own method
signatures (:data:`_RUN_COMMANDS` maps each method to its command class, whose ``of`` takes
``mob_id`` and then the method's arguments in order), so they cannot drift from the handle
methods. Extending: a new mutating handle method gets a builder here with the same
signature, returning the storage command the handle method would send (a command needs a
``mob_id`` attribute naming its mob, and an ``apply(tx)``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import trio

from mobstore.storage import (
    AppendEvents,
    AppendFailureEntry,
    AppendStepEntry,
    AppendStepEntryIfAbsent,
    Atomic,
    CasCompleteBodyFrame,
    CasCompleteLoop,
    CasCompleteStepAndRecordOutput,
    CasFlowState,
    CasFrameState,
    CasGrantBodyFrameStart,
    CasGrantNodeSlot,
    CasLoopRequestBodyFrame,
    CasRunSnapshot,
    CasRunStatus,
    CasStartLoop,
    ClearEvents,
    CommitResult,
    CreateRun,
    DeleteSpec,
    InvalidInput,
    NewMobEvent,
    PruneEvents,
    PutSpec,
    PutStepOutput,
    StoreClosed,
    UpsertLoopSnapshot,
)
from mobstore.storage._atomic import CommitAborted, First
from mobstore.storage._codec import check_time, time_to_micros
from mobstore.storage._events import encode_event

from ._mob_runs import MobRuns

if TYPE_CHECKING:
    from mobstore.storage import Command

    from ._mob import Mob


class MobCommands:
    """Builders of this mob's commands (``mob.cmd``), for :meth:`Mob.commit`.

    Each method validates its arguments like the handle method of the same name and returns
    a command; nothing is sent until the command is passed to ``mob.commit``.
    """

    __slots__ = ("mob_id",)

    def __init__(self, mob_id: str) -> None:
        self.mob_id = mob_id

    # -- mob.events --------------------------------------------------------------------------

    def append(self, new: NewMobEvent) -> Command:
        """``mob.events.append(new)`` as a command; its result is the :class:`MobEvent`."""
        return First(AppendEvents(self.mob_id, (encode_event(self.mob_id, new, None),)))

    def append_batch(self, news: Sequence[NewMobEvent]) -> Command:
        """``mob.events.append_batch(news)``; its result is the list of :class:`MobEvent`."""
        return AppendEvents.of(self.mob_id, news)

    def clear(self) -> Command:
        """``mob.events.clear()``; its result is ``None``."""
        return ClearEvents(self.mob_id)

    def prune(self, older_than: datetime, *, force: bool = False) -> Command:
        """``mob.events.prune(older_than, force=...)``; its result is the number of events
        deleted (:class:`PruneBlocked` from ``commit`` if a consumer holds them back)."""
        return PruneEvents(self.mob_id, time_to_micros(check_time(older_than, "older_than")), force is True)

    # -- mob.spec ----------------------------------------------------------------------------

    def put_spec(self, definition: dict[str, Any], revision: int | None = None) -> Command:
        """``mob.spec.put_spec(...)``; its result is the new revision. A revision
        mismatch raises :class:`SpecRevisionConflict` from ``commit`` (nothing stored)."""
        return PutSpec.of(self.mob_id, definition, revision)

    def delete_spec(self, revision: int | None = None) -> Command:
        """``mob.spec.delete_spec(...)``; its result is ``True``. Returning ``False`` (no
        spec, or a stale revision) makes the whole commit ``ok=False``."""
        return DeleteSpec.of(self.mob_id, revision)

    # -- mob.runs: generated below from MobRuns (see the module docstring) ------------------

    def __repr__(self) -> str:
        return f"MobCommands({self.mob_id!r})"


#: ``mob.runs`` method -> the command class it sends (``cls.of(mob_id, *its arguments)``).
_RUN_COMMANDS: dict[str, type] = {
    "create_run": CreateRun,
    "cas_run_status": CasRunStatus,
    "cas_flow_state": CasFlowState,
    "cas_run_snapshot": CasRunSnapshot,
    "append_step_entry": AppendStepEntry,
    "append_step_entry_if_absent": AppendStepEntryIfAbsent,
    "put_step_output": PutStepOutput,
    "append_failure_entry": AppendFailureEntry,
    "upsert_loop_snapshot": UpsertLoopSnapshot,
    "cas_frame_state": CasFrameState,
    "cas_grant_node_slot": CasGrantNodeSlot,
    "cas_complete_step_and_record_output": CasCompleteStepAndRecordOutput,
    "cas_start_loop": CasStartLoop,
    "cas_loop_request_body_frame": CasLoopRequestBodyFrame,
    "cas_grant_body_frame_start": CasGrantBodyFrameStart,
    "cas_complete_body_frame": CasCompleteBodyFrame,
    "cas_complete_loop": CasCompleteLoop,
}


def _run_builder(name: str, cls: Any) -> Callable[..., Command]:
    method = getattr(MobRuns, name)
    sig = inspect.signature(method)
    params = list(sig.parameters.values())[1:]  # without self
    bind = sig.replace(parameters=params, return_annotation="Command").bind

    def build(self: MobCommands, *args: Any, **kwargs: Any) -> Command:
        bound = bind(*args, **kwargs)  # TypeError, as the handle method would raise
        bound.apply_defaults()
        return cls.of(self.mob_id, *bound.args)  # type: ignore[no-any-return]

    build.__name__, build.__qualname__ = name, f"MobCommands.{name}"
    build.__signature__ = sig.replace(return_annotation="Command")  # type: ignore[attr-defined]
    build.__doc__ = (
        f"``mob.runs.{name}(...)`` as a command for :meth:`Mob.commit`: same arguments, same "
        "validation (``InvalidInput`` at once). Its result in the commit is what the method "
        "returns; a ``False`` (a lost CAS) makes the whole commit ``ok=False``, and a raised "
        "error (``NotFound``...) rolls it back and propagates."
    )
    return build


for _name, _cls in _RUN_COMMANDS.items():
    setattr(MobCommands, _name, _run_builder(_name, _cls))
del _name, _cls


def check_commands(mob_id: str, commands: Sequence[Any]) -> tuple[Command, ...]:
    """The commands of a ``commit`` on mob ``mob_id``, checked on the caller's side.

    Raises:
        InvalidInput: an argument is not a command, is a command of another mob (or of no
            mob), or is itself an atomic batch.
    """
    for i, cmd in enumerate(commands):
        field = f"commands[{i}]"
        if type(cmd) is Atomic:
            raise InvalidInput(field, "is an atomic batch itself; pass its commands instead")
        if not callable(getattr(cmd, "apply", None)):
            hint = ""
            if isinstance(cmd, (list, tuple)):
                hint = "; pass commands as separate arguments: mob.commit(*cmds)"
            raise InvalidInput(field, f"must be a command built with mob.cmd, got {type(cmd).__name__}{hint}")
        owner = getattr(cmd, "mob_id", None)
        if owner != mob_id:
            what = f"mob {owner!r}" if owner is not None else "no mob (it is not a mob command)"
            raise InvalidInput(
                field, f"is a command of {what}; mob.commit on {mob_id!r} takes this mob's commands only"
            )
    return tuple(commands)


async def commit(mob: Mob, commands: Sequence[Any]) -> CommitResult:
    """The body of :meth:`Mob.commit` (see there)."""
    cmds = check_commands(mob.mob_id, commands)
    if not cmds:
        if mob._store._closed:
            raise StoreClosed()
        await trio.lowlevel.checkpoint()
        return CommitResult(True, [], None)
    try:
        results = await mob._store._call(mob._key, (Atomic(mob.mob_id, cmds),))
    except CommitAborted as exc:
        return CommitResult(False, exc.results, exc.index)
    return CommitResult(True, results, None)
