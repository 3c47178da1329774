"""The live-tail contract: ``subscribe`` and ``wait_cursor`` (SEMANTICS.md §2.3)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import trio
import trio.testing

from mobstore.actors import NewMobEvent, StaleCursor, StoreClosed


def _ev(i: int = 0) -> NewMobEvent:
    return NewMobEvent("k", {"i": i})


async def _take(sub, n: int) -> list[int]:
    out = []
    async for ev in sub:
        out.append(ev.cursor)
        if len(out) == n:
            break
    return out


async def _first(sub, n: int):
    """The first ``n`` events of ``sub``."""
    async for ev in sub:
        yield ev
        n -= 1
        if n == 0:
            return


class SubscriptionContract:
    """``mob.events.subscribe`` / ``wait_cursor``: committed events, in order, no gaps."""

    async def test_history_then_live(self, store):
        """A subscription yields the history after its cursor, then live events."""
        log = store.mob("m").events
        await log.append_batch([_ev(i) for i in range(3)])
        got: list[int] = []

        async def reader():
            got.extend(await _take(log.subscribe(after_cursor=1), 4))

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []  # still waiting for the 4th
            await log.append(_ev(3))
            await log.append(_ev(4))
        assert got == [2, 3, 4, 5]


    async def test_subscribers_see_the_committed_payload(self, store):
        """An appender that changes its payload dict after ``append`` returned does not
        change what live subscribers (served from memory) receive: the committed payload,
        the same that ``poll`` reads back. Single appends and batches alike."""
        log = store.mob("m").events
        await log.wait_cursor(0)  # a tail exists: live events are kept in memory
        one = {"n": 1, "nested": {"k": [1]}}
        batch = [{"n": 2}, {"n": 3}]
        await log.append(NewMobEvent("k", one))
        await log.append_batch([NewMobEvent("k", p) for p in batch])
        one["n"] = 999
        one["nested"]["k"].append(2)
        batch[1]["n"] = 999
        got = [ev.payload async for ev in _first(log.subscribe(), 3)]
        assert got == [{"n": 1, "nested": {"k": [1]}}, {"n": 2}, {"n": 3}]
        assert [e.payload for e in await log.poll(0, 10)] == got
    async def test_many_appenders_many_subscribers(self, store):
        """Every subscriber sees exactly the committed sequence: in order, no gap, no dup."""
        log = store.mob("m").events
        writers, per_writer, readers = 8, 25, 4
        total = writers * per_writer
        seen: list[list[int]] = [[] for _ in range(readers)]

        async def writer(w):
            for i in range(per_writer):
                if i % 5 == 0:
                    await log.append_batch([_ev(w), _ev(w)])
                else:
                    await log.append(_ev(w))

        async def reader(r):
            seen[r] = await _take(log.subscribe(), total + total // 5)

        async with trio.open_nursery() as n:
            for r in range(readers):
                n.start_soon(reader, r)
            for w in range(writers):
                n.start_soon(writer, w)
        expected = list(range(1, total + total // 5 + 1))
        assert all(s == expected for s in seen)

    async def test_only_committed_events_are_seen(self, store, backend):
        """While a transaction holding a new event is open, subscribers and readers do not see
        the event; they see it once it commits."""
        log = store.mob("m").events
        await log.append(_ev(0))
        entered, gate = threading.Event(), threading.Event()

        class Hold:  # a command that keeps the transaction open until released
            mob_id = "m"

            def apply(self, tx):
                entered.set()
                gate.wait(30)

        seen: list[int] = []

        async def reader():
            async for ev in log.subscribe(after_cursor=1):
                seen.append(ev.cursor)
                return

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            n.start_soon(store.mob("m").commit, store.mob("m").cmd.append(_ev(1)), Hold())
            await trio.to_thread.run_sync(entered.wait)  # the event row is written, not committed
            if backend.persistent:  # WAL readers run beside the open transaction
                assert [e.cursor for e in await log.poll(0, 10)] == [1]
            await trio.testing.wait_all_tasks_blocked()
            assert seen == []
            gate.set()
        assert seen == [2]

    async def test_stale_cursor_is_refused(self, store):
        """A cursor past the last one ever assigned raises StaleCursor (no silent jump)."""
        log = store.mob("m").events
        await log.append_batch([_ev(), _ev()])
        with pytest.raises(StaleCursor) as info:
            await _take(log.subscribe(after_cursor=3), 1)
        assert (info.value.after_cursor, info.value.latest_cursor) == (3, 2)
        with pytest.raises(StaleCursor):
            await _take(store.mob("empty").events.subscribe(after_cursor=1), 1)

    async def test_a_stale_subscription_stays_stale(self, store):
        """Iterating a subscription again after its StaleCursor raises it again, also once
        the log has grown past that cursor (it used to carry on from there, skipping)."""
        log = store.mob("m").events
        await log.append_batch([_ev(), _ev()])
        sub = log.subscribe(after_cursor=5)
        with pytest.raises(StaleCursor):
            await sub.__anext__()
        await log.append_batch([_ev(i) for i in range(8)])  # cursors 3..10
        for _ in range(2):
            with pytest.raises(StaleCursor) as info:
                await sub.__anext__()
            assert (info.value.after_cursor, info.value.latest_cursor) == (5, 2)
        assert sub.cursor == 5

    async def test_after_clear_old_cursors_stay_valid(self, store):
        """After clear, a subscriber at an old cursor gets exactly the new events (cursors
        are never reused, so the stale-but-valid cursor cannot skip them)."""
        log = store.mob("m").events
        await log.append_batch([_ev(), _ev(), _ev()])
        await log.clear()
        await log.append(_ev())
        assert await _take(log.subscribe(after_cursor=3), 1) == [4]

    async def test_pruned_holes_are_skipped(self, store, clock):
        """Events removed by prune are skipped; the rest arrive in order."""
        log = store.mob("m").events
        t0 = clock.now
        await log.append(_ev())
        await log.append(NewMobEvent("old", timestamp=t0 - timedelta(days=1)))
        await log.append(_ev())
        assert await log.prune(t0) == 1
        assert await _take(log.subscribe(), 2) == [1, 3]

    @pytest.mark.parametrize("removal", ["prune", "clear"])
    async def test_live_subscriber_skips_events_removed_meanwhile(self, store, clock, removal):
        """Events pruned or cleared while a live subscriber lags behind are not delivered to
        it (recent events kept in memory for subscribers are dropped on prune and clear)."""
        log = store.mob("m").events
        gate, first = trio.Event(), trio.Event()
        got: list[int] = []

        async def reader():
            async for ev in log.subscribe():
                got.append(ev.cursor)
                if ev.cursor == 1:
                    first.set()
                    await gate.wait()
                if ev.cursor == 4:
                    return

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            await log.append(_ev())
            # The reader holds event 1 before the others exist (otherwise its history read
            # may legitimately fetch event 2 before it is removed).
            await first.wait()
            await log.append(NewMobEvent("old", timestamp=clock.now - timedelta(days=1)))
            await log.append(_ev())
            if removal == "prune":
                assert await log.prune(clock.now) == 1  # event 2 only
            else:
                await log.clear()  # events 2 and 3
            await log.append(_ev())
            gate.set()
        assert got == ([1, 3, 4] if removal == "prune" else [1, 4])

    async def test_wait_cursor(self, store):
        """wait_cursor returns at once for a committed cursor and otherwise when it commits."""
        log = store.mob("m").events
        await log.append(_ev())
        await log.wait_cursor(1)
        await log.wait_cursor(0)
        done: list[int] = []

        async def waiter():
            await log.wait_cursor(3)
            done.append(await log.last_cursor())

        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            await log.append(_ev())
            await trio.testing.wait_all_tasks_blocked()
            assert done == []
            await log.append(_ev())
        assert done == [3]

    async def test_every_next_is_a_cancel_point_and_yields_regularly(self, store):
        """Reading a page and waiting are full checkpoints; every other event (from the
        page in hand or from memory) is a cancel point, and the iterator yields to the
        scheduler at least every YIELD_EVERY events (a deliberate deviation from "every
        async call is a checkpoint", docs/architecture.md); a wait_cursor that has nothing
        to wait for is a checkpoint."""
        from mobstore.actors._tail import YIELD_EVERY

        log = store.mob("m").events
        await log.append_batch([_ev() for _ in range(3 * YIELD_EVERY)])
        it = log.subscribe().__aiter__()
        with trio.testing.assert_checkpoints():
            await it.__anext__()  # reads the first page
        for _ in range(2):
            with trio.testing.assert_checkpoints():
                for _ in range(YIELD_EVERY):
                    await it.__anext__()
        with trio.CancelScope() as scope:  # a cancel point at an event from the page in hand
            scope.cancel()
            await it.__anext__()
        assert scope.cancelled_caught
        assert (await it.__anext__()).cursor == 2 * YIELD_EVERY + 2  # nothing was taken
        live = store.mob("m").events.subscribe(after_cursor=3 * YIELD_EVERY).__aiter__()
        await log.append(_ev())
        with trio.testing.assert_checkpoints():  # the first call reads the durable head
            assert (await live.__anext__()).cursor == 3 * YIELD_EVERY + 1
        await log.append(_ev())  # now served from the tail in memory: a cancel point
        with trio.CancelScope() as scope:
            scope.cancel()
            await live.__anext__()
        assert scope.cancelled_caught
        assert (await live.__anext__()).cursor == 3 * YIELD_EVERY + 2
        with trio.testing.assert_checkpoints():
            await log.wait_cursor(2)

    async def test_a_cancelled_next_loses_no_event(self, store):
        """Cancelled at that checkpoint, __anext__ takes nothing: the next call gets it."""
        log = store.mob("m").events
        await log.append_batch([_ev() for _ in range(2)])
        it = log.subscribe().__aiter__()
        assert (await it.__anext__()).cursor == 1
        with trio.CancelScope() as scope:
            scope.cancel()
            await it.__anext__()
        assert (await it.__anext__()).cursor == 2

    async def test_wait_cursor_after_close_is_store_closed(self, backend):
        """After close, wait_cursor raises StoreClosed, also for a cursor the mob's tail in
        memory has seen (it used to return)."""
        async with backend.open() as s:
            log = s.mob("m").events
            await log.append(_ev())
            await log.wait_cursor(1)
        with pytest.raises(StoreClosed):
            await log.wait_cursor(1)

    async def test_close_ends_waiting_subscribers(self, backend):
        """A subscriber waiting for events when the store closes gets StoreClosed."""
        errors = []
        async with backend.open() as s:

            async def reader():
                try:
                    await _take(s.mob("m").events.subscribe(), 1)
                except StoreClosed as exc:
                    errors.append(exc)

            s._supervisor._nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
        assert len(errors) == 1

    async def test_resume_after_reopen(self, backend):
        """A subscriber resuming at its cursor after a reopen gets exactly the rest."""
        async with backend.open() as s:
            await s.mob("m").events.append_batch([_ev(i) for i in range(5)])
        async with backend.open() as s:
            log = s.mob("m").events
            if backend.persistent:
                await log.append(_ev())
                assert await _take(log.subscribe(after_cursor=3), 3) == [4, 5, 6]
            else:
                with pytest.raises(StaleCursor):
                    await _take(log.subscribe(after_cursor=3), 1)
