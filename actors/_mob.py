"""The mob handle and its event log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from mobstore.storage import AppendEvents, ClearEvents, MobEvent, NewMobEvent, PruneEvents, _events
from mobstore.storage._codec import check_time, time_to_micros

from ._kernel import ActorStatistics

if TYPE_CHECKING:
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
        cmd = AppendEvents.of(mob.mob_id, (new,))
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

    async def clear(self) -> None:
        """Delete every event of the mob. Cursors keep counting from where they were."""
        mob = self._mob
        await mob._store._call(mob._key, (ClearEvents(mob.mob_id),))

    async def prune(self, older_than: datetime) -> int:
        """Delete the events with ``timestamp < older_than`` (strict); return how many."""
        mob = self._mob
        cmd = PruneEvents(mob.mob_id, time_to_micros(check_time(older_than, "older_than")))
        return await mob._store._call(mob._key, (cmd,))


class Mob:
    """Handle of one mob. All its mutations go through the mob's actor (``"mob:<id>"``),
    one message per call, applied in mailbox order."""

    __slots__ = ("_store", "mob_id", "_key", "events")

    def __init__(self, store: Store, mob_id: str) -> None:
        self._store = store
        self.mob_id = mob_id
        self._key = f"mob:{mob_id}"
        self.events = MobEvents(self)

    def statistics(self) -> ActorStatistics | None:
        """The mob actor's counters, or ``None`` if it is not running."""
        slot = self._store._supervisor.get(self._key)
        return None if slot is None else slot.statistics()

    def __repr__(self) -> str:
        return f"Mob({self.mob_id!r})"
