"""The atomic batch behind ``mob.commit``: several commands of one mob, all or nothing.

Theory of operation
-------------------
The committer gives every message (one ``Unit``) its own SAVEPOINT, so one failed command
does not abort the neighbouring messages of a group commit (DESIGN.md §3). ``mob.commit``
needs the opposite *within* its message: several commands that hold together, like a
terminal run CAS and its ``flow_completed`` event (SEMANTICS.md §9, W2). So the commands are
wrapped in one command, :class:`Atomic`, and the message holds only that.

``Atomic.apply`` runs the commands in order; each sees the effects of those before it. A
command that *raises* propagates, so the committer rolls the message's SAVEPOINT back: the
caller gets the error and nothing of the batch is stored. A command that *returns exactly
False* (a lost CAS: ``cas_*`` methods, ``delete_spec``, ``append_step_entry_if_absent``) is
turned into :class:`CommitAborted`, which carries the results so far; it is rolled back the
same way and the caller gets ``CommitResult(ok=False, ...)`` instead of an error. In the
committer's optimistic path (a batch without SAVEPOINTs) a raising unit makes the whole
batch replay with one SAVEPOINT per unit, so neighbours still commit and this message alone
is undone.

Rejected: one SAVEPOINT per command inside the message (what the neighbours get), which
would commit the event of a terminal run whose CAS lost; and stopping at the first False
while keeping what came before, which is exactly upstream's half-visible state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from ._database import Command, Transaction
from ._errors import MobStoreError


@attrs.frozen
class CommitResult:
    """The outcome of ``mob.commit``.

    Attributes:
        ok: True if every command succeeded and all of them were committed together. False
            if a command returned False (a lost CAS); then *nothing* was committed.
        results: one result per command, in order, when ``ok``. When not ``ok``, the results
            up to and including the failing command (which is ``False``), as they were
            inside the rolled-back transaction: none of it is stored (cursors or revisions
            shown there were not assigned).
        failed_index: the index of the command that returned False, or None when ``ok``.
    """

    ok: bool
    results: list[Any]
    failed_index: int | None = None


class CommitAborted(MobStoreError):
    """Internal: a command of an :class:`Atomic` returned False; the batch is rolled back.

    It travels from the committer to ``mob.commit`` as the message's error (a
    ``MobStoreError``, so it passes the error translation unchanged) and is turned into a
    :class:`CommitResult` there; users never see it.
    """

    def __init__(self, index: int, results: list[Any]) -> None:
        self.index = index
        self.results = results
        super().__init__(f"command {index} of an atomic commit returned False; nothing was committed")


@attrs.frozen
class Atomic:
    """Apply ``commands`` (all for mob ``mob_id``) in order, all or nothing.

    Returns the list of their results. Raises :class:`CommitAborted` if one returns exactly
    ``False``, and re-raises what a command raises (with a note naming its index); either
    way the committer rolls back everything the batch did.
    """

    mob_id: str
    commands: tuple[Command, ...]

    def apply(self, tx: Transaction) -> list[Any]:
        results: list[Any] = []
        for i, cmd in enumerate(self.commands):
            try:
                res = cmd.apply(tx)
            except Exception as exc:
                exc.add_note(
                    f"raised by command {i} ({type(cmd).__name__}) of mob.commit on mob "
                    f"{self.mob_id!r}; nothing of the commit was stored"
                )
                raise
            results.append(res)
            if res is False:
                raise CommitAborted(i, results)
        return results


@attrs.frozen
class First:
    """Apply ``command`` and return the first item of its (list) result: the one-event
    append of ``mob.cmd.append``, whose result is a :class:`MobEvent` as for
    ``mob.events.append``."""

    command: Command

    @property
    def mob_id(self) -> str:
        return self.command.mob_id  # type: ignore[attr-defined, no-any-return]

    def apply(self, tx: Transaction) -> Any:
        return self.command.apply(tx)[0]


def iter_applied(commands: Sequence[Command], results: Sequence[Any]) -> Iterator[tuple[Command, Any]]:
    """Yield ``(command, result)`` for every leaf command of a committed message, looking
    inside :class:`Atomic` and :class:`First` (whose result is re-wrapped as a list), so an
    actor that follows its commits (``committed``) sees the commands of a ``mob.commit``
    exactly as if they had been sent one by one."""
    for cmd, res in zip(commands, results):
        t = type(cmd)
        if t is Atomic:
            yield from iter_applied(cmd.commands, res)  # type: ignore[attr-defined]
        elif t is First:
            yield cmd.command, [res]  # type: ignore[attr-defined]
        else:
            yield cmd, res
