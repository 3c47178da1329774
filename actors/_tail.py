"""Live tails of mob event logs: ``subscribe`` and ``wait_cursor``.

Theory of operation
-------------------
A subscription never buffers events in memory: it reads committed events from the database
in pages (``poll``) and, when it has caught up, parks until the mob's *committed head* moves
past its cursor. The head lives in a per-mob :class:`Tail` owned by the store (not by the
actor, so passivating or restarting the actor does not disturb subscribers). The mob actor
advances it in ``committed()``, which runs after the COMMIT that made the events durable, so
a subscriber is never woken for, and never reads, an uncommitted event.

Why no gaps or duplicates: the subscription's cursor only moves to cursors it has yielded, in
ascending order, and every read asks for ``cursor > last yielded``. Why no lost wake-up: the
head is compared before parking, and the head is only advanced after the rows are readable.
Pruned holes are simply skipped by ``poll``.

Live subscribers read from memory: the tail keeps the most recent committed events (up to
:data:`RECENT`, pushed by the mob actor after each COMMIT, contiguous in cursor order), so N
subscribers of a busy mob do not each re-read and re-decode every event. A subscriber whose
cursor is not covered (it is behind, or the actor restarted, or events were cleared or
pruned, which empties the memory) reads pages from the database as before. Events served from
memory are decoded from the stored text when pushed (never the appender's own payload dicts,
which it may change after ``append`` returned), and are the same objects for every
subscriber: treat their payloads as read-only.

Backpressure: a slow subscriber holds at most one page of events; the log itself is the
buffer, so a subscriber that falls behind costs no memory, only reads when it resumes.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from mobstore.storage import MobEvent, StaleCursor, StoreClosed, _events
from mobstore.storage._codec import check_count

if TYPE_CHECKING:
    from ._store import Store

#: Events read per page by a subscription.
PAGE = 256
#: Recent committed events a tail keeps in memory for live subscribers.
RECENT = 4096


class Tail:
    """The committed head of one mob's log, and a way to wait for it to move."""

    __slots__ = ("head", "_moved", "_closed", "recent")

    def __init__(self) -> None:
        self.head = 0
        self._moved = trio.Event()
        self._closed = False
        self.recent: deque[MobEvent] = deque(maxlen=RECENT)

    def push(self, events: list[MobEvent]) -> None:
        """Remember committed events (called by the mob actor, in commit order)."""
        recent = self.recent
        if recent and recent[-1].cursor + 1 != events[0].cursor:
            recent.clear()  # not contiguous (e.g. a restarted actor): start over
        recent.extend(events)

    def forget(self) -> None:
        """Drop the remembered events (after a clear or prune)."""
        self.recent.clear()

    def after(self, cursor: int, limit: int) -> list[MobEvent] | None:
        """Up to ``limit`` remembered events after ``cursor``, or ``None`` if memory does not
        cover ``cursor + 1`` (read the database instead)."""
        recent = self.recent
        if not recent:
            return None
        first = recent[0].cursor
        if not first <= cursor + 1 <= recent[-1].cursor:
            return None
        i = cursor + 1 - first
        return list(itertools.islice(recent, i, i + limit))

    def advance(self, head: int) -> None:
        """Record a committed head (called by the mob actor after COMMIT)."""
        if head > self.head:
            self.head = head
            self._moved.set()
            self._moved = trio.Event()

    async def wait_past(self, cursor: int) -> None:
        """Return once the committed head is greater than ``cursor``.

        Raises:
            StoreClosed: the store closed while waiting.
        """
        while self.head <= cursor:
            if self._closed:
                raise StoreClosed("the store closed while waiting for new events")
            await self._moved.wait()

    def close(self) -> None:
        """Wake every waiter with StoreClosed (the store is closing)."""
        self._closed = True
        self._moved.set()


async def _tail(store: Store, mob_id: str) -> Tail:
    tail = store._tails.get(mob_id)
    if tail is None:
        tail = store._tails[mob_id] = Tail()
    # Learn the durable head (also after a reopen, before any append in this process).
    tail.advance(await store._read(_events.last_cursor, mob_id))
    return tail


#: A subscription yields to the scheduler at least once per this many events.
YIELD_EVERY = 32


class Subscription:
    """An async iterator over a mob's committed events, history first, then live.

    Use it with ``async for``; it ends only when the store closes (``StoreClosed``) or the
    caller stops iterating. Cancelling a wait is safe: nothing is consumed that was not yielded.
    """

    def __init__(self, store: Store, mob_id: str, after_cursor: int) -> None:
        self._store = store
        self._mob_id = mob_id
        self.cursor = check_count(after_cursor, "after_cursor")
        self._page: deque[MobEvent] = deque()
        self._burst = 0  # events handed over since the last yield to the scheduler
        self._tail: Tail | None = None
        self._stale: StaleCursor | None = None
        #: Called each time the subscription has read everything committed and waits.
        self._on_idle: Callable[[], None] | None = None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> MobEvent:
        # A cancel point at every event, and a yield to the scheduler at least every
        # YIELD_EVERY events: a subscriber with a sync body can always be cancelled at the
        # next event and never holds the loop for long. Not a full checkpoint per event
        # from the page in hand (API.md's rule), on purpose: that yield cost ~4 µs per event
        # and cut catch-up from ~380k to ~150k events/s (docs/architecture.md). Cancelled
        # here, nothing was taken from the page.
        self._burst += 1
        if self._page:
            if self._burst < YIELD_EVERY:
                await trio.lowlevel.checkpoint_if_cancelled()
            else:
                self._burst = 0
                await trio.lowlevel.checkpoint()
        else:
            await self._fill()  # a read or a wait yields; a page from memory is a cancel point
        ev = self._page.popleft()
        self.cursor = ev.cursor
        return ev

    async def _fill(self) -> None:
        store, mob = self._store, self._mob_id
        if self._stale is not None:
            # Sticky: iterating again must not carry on from a cursor of another log once
            # this log has grown past it (that would skip the events in between silently).
            raise self._stale
        if self._tail is None:
            tail = await _tail(store, mob)
            if self.cursor > tail.head:
                self._stale = StaleCursor(mob, self.cursor, tail.head)
                raise self._stale
            self._tail = tail
        tail = self._tail
        while True:
            page = tail.after(self.cursor, PAGE)
            if page is None:
                page = await store._read(_events.poll, mob, self.cursor, PAGE)
            elif page:
                # Served from memory: a cancel point; __anext__ yields every YIELD_EVERY events.
                await trio.lowlevel.checkpoint_if_cancelled()
            if page:
                self._page = deque(page)
                return
            if self._on_idle is not None:
                self._on_idle()
            await tail.wait_past(self.cursor)


async def wait_cursor(store: Store, mob_id: str, cursor: int) -> None:
    """Return once ``cursor`` of ``mob_id`` is committed (at once if it already is)."""
    check_count(cursor, "cursor")
    if store._closed:
        raise StoreClosed()
    tail = store._tails.get(mob_id)
    if tail is not None and tail.head >= cursor:
        await trio.lowlevel.checkpoint()
        return
    tail = await _tail(store, mob_id)
    await tail.wait_past(cursor - 1)
