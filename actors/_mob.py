"""The mob handle and its event log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mobstore.storage import AppendEvents, ClearEvents, InvalidInput, MobEvent, NewMobEvent, PruneEvents, _events
from mobstore.storage._events import encode_event
from mobstore.storage._codec import check_time, time_to_micros

from ._kernel import ActorStatistics
from ._consumer import SUPERVISION_OPTIONS, Consumer, ConsumerStatistics, Handler, start_consumer
from ._tail import Subscription, wait_cursor
from ._mob_commands import MobCommands, commit
from ._mob_runs import MobRuns
from ._mob_cursors import MobCursors
from ._mob_labels import MobLabels
from ._mob_spec import MobSpec

if TYPE_CHECKING:
    from mobstore.storage import Command, CommitResult

    from ._store import Store


class MobEvents:
    """The event log of one mob (``mob.events``).

    Cursors are integers assigned inside the commit: strictly increasing per mob, starting at
    1, never reused (not after ``prune``, ``clear`` or a restart).
    """

    __slots__ = ("_mob",)

    def __init__(self, mob: Mob) -> None:
        self._mob = mob

    async def append(self, new: NewMobEvent) -> MobEvent:
        """Append one event and return it with its cursor and timestamp.

        Durable when it returns. Atomic with respect to cancellation: if the call raises
        ``Cancelled`` the event was not appended; if it returns, it was.

        Raises:
            InvalidInput: ``new`` is not a NewMobEvent, names another mob, or its payload is
                not plain JSON or too large. Nothing is written.
        """
        mob = self._mob
        cmd = AppendEvents(mob.mob_id, (encode_event(mob.mob_id, new, None),))
        return (await mob._store._call(mob._key, (cmd,)))[0]

    async def append_batch(self, news: Sequence[NewMobEvent]) -> list[MobEvent]:
        """Append events all-or-none, with contiguous cursors in input order.

        ``append_batch([])`` returns ``[]`` and changes nothing. Same guarantees as
        :meth:`append`.
        """
        mob = self._mob
        cmd = AppendEvents.of(mob.mob_id, news)
        return await mob._store._call(mob._key, (cmd,))

    async def poll(self, after_cursor: int, limit: int) -> list[MobEvent]:
        """Events with ``cursor > after_cursor``, ascending, at most ``limit``.

        Sees every append acknowledged before the call. A cursor past the end returns ``[]``.

        Raises:
            InvalidInput: a negative or non-int ``after_cursor`` or ``limit``.
        """
        _events.check_poll_args(after_cursor, limit)
        return await self._mob._store._read(_events.poll, self._mob.mob_id, after_cursor, limit)

    async def replay_all(self) -> list[MobEvent]:
        """Every retained event of the mob, ascending by cursor."""
        return await self._mob._store._read(_events.replay_all, self._mob.mob_id)

    async def last_cursor(self) -> int:
        """The last cursor ever assigned in this mob (0 if none), even if since pruned."""
        return await self._mob._store._read(_events.last_cursor, self._mob.mob_id)

    def subscribe(self, after_cursor: int = 0) -> Subscription:
        """Committed events with ``cursor > after_cursor``: history first, then live ones as
        they commit, in cursor order, with no gap or duplicate. Use with ``async for``::

            async for ev in mob.events.subscribe(after_cursor=last_seen):
                handle(ev)

        Only committed events are yielded; a slow subscriber costs no memory (it reads pages
        from the log). The iterator ends with ``StoreClosed`` when the store closes.

        Raises:
            InvalidInput: a negative or non-int ``after_cursor`` (at once, from ``subscribe``).
            StaleCursor: on the first iteration, if ``after_cursor`` is past the last cursor
                ever assigned in this mob (it belongs to another log); never silently
                skipped to the latest.
        """
        return Subscription(self._mob._store, self._mob.mob_id, after_cursor)

    async def wait_cursor(self, cursor: int) -> None:
        """Return once ``cursor`` is committed in this mob (at once if it already is, also if
        it was pruned since). Cancel it to stop waiting; nothing else is affected."""
        await wait_cursor(self._mob._store, self._mob.mob_id, cursor)

    async def clear(self) -> None:
        """Delete every event of the mob. Cursors keep counting from where they were."""
        mob = self._mob
        await mob._store._call(mob._key, (ClearEvents(mob.mob_id),))

    async def prune(self, older_than: datetime, *, force: bool = False) -> int:
        """Delete the events with ``timestamp < older_than`` (strict); return how many.

        Retention respects durable consumers: if an event to delete comes after the cursor
        of a consumer of this mob (any persisted ``mob.cursors`` entry), nothing is deleted
        and :class:`PruneBlocked` names the slowest consumer; ``force=True`` prunes anyway.
        """
        mob = self._mob
        cmd = PruneEvents(mob.mob_id, time_to_micros(check_time(older_than, "older_than")), force is True)
        return await mob._store._call(mob._key, (cmd,))


class Mob:
    """Handle of one mob. All its mutations go through the mob's actor (``"mob:<id>"``),
    one message per call, applied in mailbox order."""

    __slots__ = ("_store", "mob_id", "_key", "events", "spec", "runs", "labels", "cursors")

    def __init__(self, store: Store, mob_id: str) -> None:
        self._store = store
        self.mob_id = mob_id
        self._key = f"mob:{mob_id}"
        self.events = MobEvents(self)
        self.spec = MobSpec(self)
        self.runs = MobRuns(self)
        self.labels = MobLabels(self)
        self.cursors = MobCursors(self)

    @property
    def cmd(self) -> MobCommands:
        """Builders of this mob's commands, for :meth:`commit` (``mob.cmd.append(...)``)."""
        return MobCommands(self.mob_id)

    async def commit(self, *commands: Command) -> CommitResult:
        """Apply several commands of this mob in one message and one transaction, all or
        nothing.

        Build the commands with :attr:`cmd` (``mob.cmd.append(new)``,
        ``mob.cmd.put_spec(d, revision=2)``...); they run in order, each seeing the effects
        of those before it. If one returns ``False`` (a lost CAS, a ``delete_spec`` that
        deleted nothing), the whole batch is rolled back and the result has ``ok=False``
        and ``failed_index``. If one raises, the whole batch is rolled back and the error
        propagates. Either way nothing of it is stored. ``commit()`` with no commands
        returns ``CommitResult(ok=True, results=[])``.

        Durable when it returns. Atomic with respect to cancellation: if the call raises
        ``Cancelled`` nothing was written; if it returns, its result holds.

        Returns:
            ``CommitResult(ok, results, failed_index)``: one result per command when ``ok``.

        Raises:
            InvalidInput: an argument is not a command, or is another mob's (nothing is
                queued).
            MobStoreError: whatever a command raised (``SpecRevisionConflict``,
                ``NotFound``...); nothing of the batch was stored.
        """
        return await commit(self, commands)

    def consume(
        self,
        name: str,
        handler: Handler,
        *,
        after_cursor: int | None = None,
        start: str = "beginning",
        **supervision: Any,
    ) -> Consumer:
        """Start the durable consumer ``name`` of this mob's log (see ``_consumer``).

        ``handler(event)`` (sync or async) is called for each committed event in cursor
        order. If it returns ``mob.cmd`` commands, they commit in one transaction with the
        consumer's cursor (exactly once); if it returns ``None``, delivery is at least once.
        The consumer resumes from its persisted cursor after any restart, also of the
        process (call ``consume`` again with the same name); with no persisted cursor it
        starts after ``after_cursor``, at the head with ``start="latest"``, else at the
        beginning. It runs until the store closes or ``await consumer.stop()``.

        ``supervision``: ``max_retries`` (5), ``retry_window`` (60 s), ``backoff_base``
        (0.05 s), ``backoff_max`` (5 s): a handler failing more often stops the consumer in
        state ``"failed"`` with the error in its statistics.

        Example::

            async def project(ev):
                return [mob.cmd.put_spec({"last": ev.cursor})]

            consumer = mob.consume("projector", project)
            await consumer.wait_cursor(await mob.events.last_cursor())

        Raises:
            InvalidInput: a bad name/option, or a consumer of that name already runs here.
        """
        for key in supervision:
            if key not in SUPERVISION_OPTIONS:
                raise InvalidInput(key, f"is not an option of consume; the supervision options are {', '.join(SUPERVISION_OPTIONS)}")
        return start_consumer(self, name, handler, after_cursor=after_cursor, start=start, **supervision)

    def consumers(self) -> tuple[ConsumerStatistics, ...]:
        """The durable consumers of this mob in this store, running or failed (a failed one
        stays listed until started again): cursor, lag (head minus cursor), retries, last
        error and state of each."""
        return tuple(c.statistics() for (m, _), c in self._store._consumers.items() if m == self.mob_id)

    def statistics(self) -> ActorStatistics | None:
        """The mob actor's counters, or ``None`` if it is not running."""
        slot = self._store._supervisor.get(self._key)
        return None if slot is None else slot.statistics()

    def __repr__(self) -> str:
        return f"Mob({self.mob_id!r})"
