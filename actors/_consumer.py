"""Durable consumers: named, supervised readers of a mob's log that resume from a persisted
cursor (``mob.consume``).

Theory of operation
-------------------
A consumer is a task in the store's nursery that reads ``mob.events.subscribe(cursor)`` and
calls ``handler(event)`` for each event, in cursor order. Its position is the mob's
persisted cursor named after it (``mob.cursors``), so after any restart (of the handler, of
the mob actor, of the whole process: call ``mob.consume`` again with the same name) it resumes
strictly after the last position it persisted.

Delivery:

* **At least once** when the handler returns nothing: the handler runs first, the cursor
  advances afterwards (once per page of events, and whenever the consumer catches up). A crash
  can only repeat events whose handler finished but whose cursor write did not.
* **Exactly once** when the handler returns store commands for this mob (``mob.cmd.*``): they
  are committed in ONE transaction with the cursor advance to that event
  (``mob.commit(*commands, cursor_set)``). Either both happen or neither does, so a retried
  event can never apply its effects twice. The cursor set is a forward-only CAS: a stale
  incarnation that tries to re-apply an old event rolls back whole.

Start position with no persisted cursor: ``after_cursor`` if given, the current head with
``start="latest"``, else 0 (the whole history: the seed's start-at-latest lost events). The
start is persisted at once, which also registers the consumer for retention (``prune`` will
not remove events it has not processed). A persisted cursor past the log's last cursor is
``StaleCursor``: the consumer stops and reports it, never jumping silently to the latest.

Supervision: a handler that raises (or a commit that fails) restarts the consumer from its
persisted cursor after an exponential backoff; more than ``max_retries`` failures within
``retry_window`` seconds stops it with state ``"failed"`` and the error in its statistics
(reported, never silently dropped). ``await consumer.wait_stopped()`` re-raises that error.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Union

import attrs
import trio

from mobstore.storage import Command, InvalidInput, MobEvent, StaleCursor, StoreClosed, _cursors, _events
from mobstore.storage._codec import check_count

if TYPE_CHECKING:
    from ._mob import Mob

HandlerResult = Union[None, Sequence[Command]]
Handler = Callable[[MobEvent], Union[HandlerResult, Awaitable[HandlerResult]]]

#: Events handled before an at-least-once consumer persists its cursor (also on catching up).
FLUSH_EVERY = 256


@attrs.frozen
class ConsumerStatistics:
    """A snapshot of a consumer (``consumer.statistics()``, ``store.statistics().consumers``)."""

    mob_id: str
    name: str
    state: str  #: "starting", "running", "backoff", "failed", "stopped"
    cursor: int  #: the last event handled (persisted or about to be)
    persisted: int | None  #: the last cursor known to be persisted
    lag: int  #: the mob's committed head minus ``cursor``
    handled: int
    retries: int
    last_error: str | None


class Consumer:
    """A running durable consumer. Made by :meth:`Mob.consume`."""

    def __init__(
        self,
        mob: Mob,
        name: str,
        handler: Handler,
        *,
        after_cursor: int | None,
        start: str,
        max_retries: int,
        retry_window: float,
        backoff_base: float,
        backoff_max: float,
    ) -> None:
        self._mob = mob
        self.name = name
        self._handler = handler
        self._after = after_cursor
        self._start = start
        self._max_retries = max_retries
        self._window = retry_window
        self._backoff = (backoff_base, backoff_max)
        self.state = "starting"
        self.cursor = 0
        self.persisted: int | None = None
        self.handled = 0
        self.retries = 0
        self.error: BaseException | None = None
        self._scope = trio.CancelScope()
        #: True while the consumer has handled everything committed and waits for more.
        self._idle = False
        self._stopped = trio.Event()
        self._progress = trio.Event()
        self._ready = trio.Event()

    # -- public ------------------------------------------------------------------------------

    async def wait_cursor(self, cursor: int) -> None:
        """Return once the consumer has handled every event up to ``cursor``: its own
        cursor reached it, or ``cursor`` is committed and no retained event in between is
        left to handle (after a ``clear`` or ``prune`` there may be none to move it).

        Raises:
            the consumer's error if it stopped failed first; ``StoreClosed`` if it stopped.
        """
        check_count(cursor, "cursor")
        if self.cursor >= cursor:
            await trio.lowlevel.checkpoint()  # a checkpoint also when there is nothing to wait for
            return
        check = True  # at the start, then each time the consumer has caught up and waits
        while self.cursor < cursor:
            if self._stopped.is_set():
                self._raise_stopped()
            progress = self._progress
            if check and await self._nothing_left_to(cursor):
                return
            if self.cursor < cursor:
                await progress.wait()
            check = self._idle

    async def _nothing_left_to(self, cursor: int) -> bool:
        """True if ``cursor`` is committed and no retained event after the consumer's
        cursor and up to ``cursor`` is left (one read transaction)."""
        return await self._mob._store._read(_nothing_left, self._mob.mob_id, self.cursor, cursor)

    async def wait_ready(self) -> None:
        """Return once the consumer has established (and persisted) its start position;
        events committed after this are guaranteed to reach it."""
        await self._ready.wait()

    async def stop(self) -> None:
        """Stop the consumer and wait for it. A handler call in progress is cancelled: its
        event was not acknowledged, so the next start under this name delivers it again
        (for a handler that returns commands, nothing of it was committed). The persisted
        cursor stays."""
        self._scope.cancel()
        await self._stopped.wait()

    async def wait_stopped(self) -> None:
        """Wait until the consumer stops; re-raise its error if it failed."""
        await self._stopped.wait()
        if self.state == "failed" and self.error is not None:
            raise self.error

    def statistics(self) -> ConsumerStatistics:
        """A snapshot: name, cursor, lag (head minus cursor), retries, last error, state."""
        tail = self._mob._store._tails.get(self._mob.mob_id)
        head = tail.head if tail is not None else self.cursor
        err = None if self.error is None else f"{type(self.error).__name__}: {self.error}"
        return ConsumerStatistics(
            self._mob.mob_id, self.name, self.state, self.cursor, self.persisted,
            max(head - self.cursor, 0), self.handled, self.retries, err,
        )

    # -- the supervised task -----------------------------------------------------------------

    async def _run(self) -> None:
        failures: deque[float] = deque()
        try:
            with self._scope:
                while True:
                    try:
                        self.state = "running"
                        await self._consume()
                    except (StoreClosed, trio.ClosedResourceError) as exc:
                        if self._mob._store._closed:
                            return  # the store is closing: a normal stop
                        # Raised by the handler itself (or the store failed under it):
                        # a failure like any other, retried and reported, never a silent stop.
                        if not self._retry_or_fail(exc, failures):
                            return
                        await self._backoff_sleep(failures)
                    except StaleCursor as exc:  # not retried: the cursor is not of this log
                        self._fail(exc)
                        return
                    except Exception as exc:  # noqa: BLE001 - supervised: retried with backoff
                        if not self._retry_or_fail(exc, failures):
                            return
                        await self._backoff_sleep(failures)
        finally:
            if self.state != "failed":
                self.state = "stopped"
                # A failed consumer stays listed (statistics, mob.consumers()) with its
                # error until it is started again under its name.
                self._mob._store._consumers.pop((self._mob.mob_id, self.name), None)
            self._ready.set()
            self._stopped.set()
            self._wake()

    def _retry_or_fail(self, exc: BaseException, failures: deque[float]) -> bool:
        """Count a failure; True to retry (after :meth:`_backoff_sleep`), False if the
        consumer failed for good."""
        self.error = exc
        now = trio.current_time()
        failures.append(now)
        while failures and failures[0] < now - self._window:
            failures.popleft()
        if len(failures) > self._max_retries:
            self._fail(exc)
            return False
        self.retries += 1
        self.state = "backoff"
        return True

    async def _backoff_sleep(self, failures: deque[float]) -> None:
        base, cap = self._backoff
        await trio.sleep(min(base * 2.0 ** min(len(failures) - 1, 60), cap))

    def _fail(self, exc: BaseException) -> None:
        self.state = "failed"
        self.error = exc

    def _raise_stopped(self) -> None:
        if self.state == "failed" and self.error is not None:
            raise self.error
        raise StoreClosed(f"consumer {self.name!r} of mob {self._mob.mob_id!r} stopped")

    def _caught_up(self) -> None:
        self._idle = True
        self._wake()

    def _wake(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def _consume(self) -> None:
        mob = self._mob
        cursors = mob.cursors
        persisted = await cursors.get(self.name)
        if persisted is None:
            if self._after is not None:
                # Checked before the cursor is pinned: a stale start must not be saved, or
                # the next start under this name would resume from it once the log grew
                # past it, silently skipping the events in between.
                last = await mob._store._read(_events.last_cursor, mob.mob_id)
                if self._after > last:
                    raise StaleCursor(mob.mob_id, self._after, last)
                persisted = self._after
            elif self._start == "latest":
                persisted = await mob._store._read(_events.last_cursor, mob.mob_id)
            else:
                persisted = 0
            # Register (retention) and pin the start, so a restart resumes from here.
            await cursors.reset(persisted, self.name)
        else:
            last = await mob._store._read(_events.last_cursor, mob.mob_id)
            if persisted > last:  # saved against another log (a replaced file?): say so
                raise StaleCursor(mob.mob_id, persisted, last, field=f"persisted cursor of consumer {self.name!r}")
        self.cursor = self.persisted = persisted
        self._ready.set()
        self._wake()
        pending = False
        sub = mob.events.subscribe(after_cursor=persisted)
        sub._on_idle = self._caught_up
        try:
            async for ev in sub:
                self._idle = False
                out = self._handler(ev)
                if inspect.isawaitable(out):
                    out = await out
                if out:
                    await self._commit_with_cursor(out, ev.cursor)
                    pending = False
                else:
                    pending = True
                self.cursor = ev.cursor
                self.handled += 1
                self._wake()
                if pending and (not sub._page or self.handled % FLUSH_EVERY == 0):
                    await self._flush()
                    pending = False
        finally:
            if pending:
                with trio.CancelScope(shield=True):
                    try:
                        await self._flush()
                    except Exception:  # noqa: BLE001 - best effort: at-least-once covers it
                        pass

    async def _flush(self) -> None:
        cursor = self.cursor
        await self._mob.cursors.set(cursor, self.name)
        self.persisted = cursor

    async def _commit_with_cursor(self, commands: Sequence[Command], cursor: int) -> None:
        mob = self._mob
        if not isinstance(commands, (list, tuple)):
            raise InvalidInput("handler result", f"must be None or a list of mob.cmd commands, got {type(commands).__name__}")
        result = await mob.commit(*commands, mob.cursors.set_command(cursor, self.name))
        if not result.ok:
            raise ConsumerCommitLost(self.name, cursor, result.failed_index)
        self.persisted = cursor


class ConsumerCommitLost(RuntimeError):
    """A consumer's commit returned ``ok=False`` (a CAS in its output lost); the event will be
    handled again after a backoff."""

    def __init__(self, name: str, cursor: int, index: int | None) -> None:
        super().__init__(f"consumer {name!r}: the commit for event {cursor} lost at command {index}; retrying")


def _nothing_left(conn: Any, mob_id: str, after: int, cursor: int) -> bool:
    if _events.last_cursor(conn, mob_id) < cursor:
        return False
    left = _events.poll(conn, mob_id, after, 1)
    return not left or left[0].cursor > cursor


def start_consumer(
    mob: Mob,
    name: str,
    handler: Handler,
    *,
    after_cursor: int | None = None,
    start: str = "beginning",
    max_retries: int = 5,
    retry_window: float = 60.0,
    backoff_base: float = 0.05,
    backoff_max: float = 5.0,
) -> Consumer:
    store = mob._store
    name = _cursors.check_name(name)
    if not callable(handler):
        raise InvalidInput("handler", f"must be callable, got {type(handler).__name__}")
    if after_cursor is not None:
        check_count(after_cursor, "after_cursor")
    if start not in ("beginning", "latest"):
        raise InvalidInput("start", f"must be 'beginning' or 'latest', got {start!r}")
    _check_supervision(max_retries, retry_window, backoff_base, backoff_max)
    if store._closed:
        raise StoreClosed()
    key = (mob.mob_id, name)
    if key in store._consumers and store._consumers[key].state != "failed":
        raise InvalidInput("name", f"consumer {name!r} of mob {mob.mob_id!r} is already running")
    consumer = Consumer(
        mob, name, handler, after_cursor=after_cursor, start=start, max_retries=max_retries,
        retry_window=retry_window, backoff_base=backoff_base, backoff_max=backoff_max,
    )
    store._consumers[key] = consumer
    store._supervisor._nursery.start_soon(consumer._run, name=f"mobstore consumer {mob.mob_id}/{name}")
    return consumer


#: The supervision options of ``Mob.consume`` (its ``**supervision``).
SUPERVISION_OPTIONS = ("max_retries", "retry_window", "backoff_base", "backoff_max")


def _check_supervision(max_retries: Any, retry_window: Any, backoff_base: Any, backoff_max: Any) -> None:
    # Checked when the consumer starts: a bad value found at the first failure would crash
    # the store's nursery instead of failing the call that passed it.
    def seconds(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0  # NaN fails

    if type(max_retries) is not int or max_retries < 0:
        raise InvalidInput("max_retries", f"must be an int >= 0, got {max_retries!r}")
    if not seconds(retry_window) or retry_window == 0:
        raise InvalidInput("retry_window", f"must be a number of seconds > 0, got {retry_window!r}")
    for name, v in (("backoff_base", backoff_base), ("backoff_max", backoff_max)):
        if not seconds(v):
            raise InvalidInput(name, f"must be a number of seconds >= 0, got {v!r}")
