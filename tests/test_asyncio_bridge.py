"""The asyncio bridge: asyncio code on trio-asyncio's loop uses the store through
open_store_asyncio, with real results and typed errors."""

from __future__ import annotations

import asyncio

import pytest
import trio
import trio_asyncio

from mobstore.actors import (
    InvalidInput,
    InvalidTransition,
    MobRun,
    NewMobEvent,
    NotFound,
    StoreLocked,
    open_store,
    open_store_asyncio,
)


async def _asyncio_app(path):
    """A small asyncio application: every await below is asyncio-flavored."""
    assert asyncio.current_task() is not None  # really running as an asyncio task
    out = {}
    async with open_store_asyncio(path) as store:
        mob = store.mob("mob-a")
        log = mob.events
        first = await log.append(NewMobEvent("meerkat_spawned", {"meerkat_id": "m1"}))
        batch = await log.append_batch(
            [NewMobEvent("peers_wired", {"a": "m1", "b": "m2"}), NewMobEvent("flow_started", {"flow_id": "f"})]
        )
        out["cursors"] = [first.cursor] + [e.cursor for e in batch]
        out["polled"] = [(e.cursor, e.kind) for e in await log.poll(after_cursor=1, limit=10)]
        out["last"] = await log.last_cursor()

        # Several asyncio tasks appending concurrently, each call a trio task underneath.
        appended = await asyncio.gather(*(log.append(NewMobEvent("tick", {"n": i})) for i in range(8)))
        out["concurrent"] = sorted(e.cursor for e in appended)

        # A live tail as an asyncio async iterator.
        seen = []
        async for ev in log.subscribe(after_cursor=9):
            seen.append(ev.cursor)
            if ev.cursor == 11:
                break
        follower = asyncio.ensure_future(_first_of_kind(log, 11, "late"))
        # Not synchronisation: the follower subscribes after cursor 11 and replays history, so
        # it finds the "late" event whether it starts before or after the append. Yielding
        # once only makes the usual case (subscribed first, then served live) the one tested.
        await asyncio.sleep(0)
        await log.append(NewMobEvent("late"))
        out["seen"], out["late"] = seen, (await asyncio.wait_for(follower, 5)).cursor

        # Runs: compare-and-swap, exactly one winner; store-level read by id.
        run = await mob.runs.create_run(MobRun.pending(mob_id="mob-a", flow_id="review"))
        out["cas"] = (
            await mob.runs.cas_run_status(run.run_id, "pending", "running"),
            await mob.runs.cas_run_status(run.run_id, "pending", "running"),
        )
        out["status"] = (await store.get_run(run.run_id)).status.value

        # mob.commit with mob.cmd builders (sync passthrough) in one transaction.
        result = await mob.commit(
            mob.cmd.cas_run_status(run.run_id, "running", "completed"),
            mob.cmd.append(NewMobEvent("flow_completed", {"run_id": str(run.run_id)})),
        )
        out["commit_ok"] = result.ok

        # Errors cross the bridge with their types.
        with pytest.raises(InvalidInput):
            await log.append("not an event")
        with pytest.raises(InvalidInput):
            store.mob("")  # a bad id is refused synchronously, as in trio
        with pytest.raises(InvalidTransition):
            await mob.runs.cas_run_status(run.run_id, "completed", "running")
        with pytest.raises(NotFound):
            await store.profiles.delete("nobody", expected_revision=1)

        # Realm handles and sync attributes pass through.
        snap = await store.config.set({"k": 1}, expected_generation=0)
        out["generation"] = snap.generation
        await mob.cursors.set(3, "dash")
        out["cursor"] = await mob.cursors.get("dash")
        out["path"] = store.path
        out["alive"] = store.statistics().actors_alive >= 1
    return out


async def _first_of_kind(log, after, kind):
    async for ev in log.subscribe(after_cursor=after):
        if ev.kind == kind:
            return ev


async def test_asyncio_app_uses_the_store(tmp_path):
    path = tmp_path / "bridge.db"
    async with trio_asyncio.open_loop():
        out = await trio_asyncio.aio_as_trio(_asyncio_app)(path)
    assert out["cursors"] == [1, 2, 3]
    assert out["polled"] == [(2, "peers_wired"), (3, "flow_started")]
    assert out["last"] == 3
    assert out["concurrent"] == list(range(4, 12))
    assert out["seen"] == [10, 11]
    assert out["late"] == 12
    assert out["cas"] == (True, False)
    assert out["status"] == "running"
    assert out["commit_ok"] is True
    assert out["generation"] == 1 and out["cursor"] == 3
    assert out["path"] == str(path) and out["alive"]

    # The bridge closed the store: a trio open of the same file sees every write.
    async with open_store(path) as store:
        events = await store.mob("mob-a").events.replay_all()
        assert [e.cursor for e in events] == list(range(1, 14))
        assert events[-1].kind == "flow_completed"
        assert (await store.get_run(events[-1].payload["run_id"])).status.value == "completed"


async def test_open_errors_propagate_with_their_types(tmp_path):
    async def bad_option():
        async with open_store_asyncio(no_such_option=1):
            pass  # pragma: no cover

    async def locked(path):
        async with open_store_asyncio(path):
            pass  # pragma: no cover

    async def body_error():
        async with open_store_asyncio() as store:
            await store.mob("m").events.append(NewMobEvent("x"))
            raise KeyError("from the asyncio body")

    async with trio_asyncio.open_loop():
        with pytest.raises(InvalidInput):
            await trio_asyncio.aio_as_trio(bad_option)()
        async with open_store(tmp_path / "held.db"):
            with pytest.raises(StoreLocked):
                await trio_asyncio.aio_as_trio(locked)(tmp_path / "held.db")
        with pytest.raises(KeyError):
            await trio_asyncio.aio_as_trio(body_error)()


async def test_refuses_outside_a_trio_asyncio_loop():
    with pytest.raises(RuntimeError, match="trio-asyncio"):
        async with open_store_asyncio():
            pass  # pragma: no cover
    await trio.lowlevel.checkpoint()


async def test_consumer_with_an_asyncio_handler():
    async def app():
        async with open_store_asyncio() as store:
            mob = store.mob("mob-a")
            await mob.events.append_batch([NewMobEvent("task_created", {"n": i}) for i in range(3)])

            async def count(ev):  # asyncio-flavored, wrapped for the trio consumer
                # Not synchronisation: one await on the asyncio side, so the handler really
                # suspends under asyncio before it calls back into the store.
                await asyncio.sleep(0)
                current = await mob.spec.get_spec()
                n, rev = (current[0]["count"], current[1]) if current else (0, 0)
                return [mob.cmd.put_spec({"count": n + 1}, revision=rev)]

            consumer = mob.consume("counter", trio_asyncio.aio_as_trio(count))
            await consumer.wait_cursor(3)
            await consumer.stop()
            return (await mob.spec.get_spec())[0]["count"], await mob.cursors.get("counter")

    async with trio_asyncio.open_loop():
        assert await trio_asyncio.aio_as_trio(app)() == (3, 3)


async def _cancel_appends(n: int) -> tuple[dict[int, str], set[int]]:
    """Start n appends as asyncio tasks and cancel each after 0-6 loop turns."""
    async with open_store_asyncio() as store:
        mob = store.mob("m")
        outcome = {}
        for i in range(n):
            t = asyncio.ensure_future(mob.events.append(NewMobEvent("x", {"i": i})))
            for _ in range(i % 7):
                await asyncio.sleep(0)
            t.cancel()
            try:
                await t
                outcome[i] = "returned"
            except asyncio.CancelledError:
                outcome[i] = "cancelled"
        stored = {e.payload["i"] for e in await mob.events.replay_all()}
    return outcome, stored


async def test_a_cancelled_asyncio_call_is_all_or_nothing():
    """An asyncio call cancelled at any moment either raises CancelledError and was not
    applied, or returns and was: before, a cancel landing after the trio call completed
    raised CancelledError for appends that were stored."""
    async with trio_asyncio.open_loop():
        outcome, stored = await trio_asyncio.aio_as_trio(_cancel_appends)(300)
    assert {i for i, o in outcome.items() if o == "returned"} == stored
    assert "cancelled" in outcome.values() and "returned" in outcome.values()  # both cases hit


async def _cancel_nexts(n: int) -> tuple[list[int], list[int]]:
    async with open_store_asyncio() as store:
        mob = store.mob("m")
        await mob.events.append_batch([NewMobEvent("x", {"i": i}) for i in range(n)])
        sub = mob.events.subscribe(0)
        delivered, skipped = [], []
        for k in range(n):
            before = sub.cursor
            t = asyncio.ensure_future(sub.__anext__())
            for _ in range(k % 4):
                await asyncio.sleep(0)
            t.cancel()
            try:
                delivered.append((await t).cursor)
            except asyncio.CancelledError:
                if sub.cursor != before:  # taken by the subscription, never handed over
                    skipped.append(sub.cursor)
        return delivered, skipped


async def test_a_cancelled_subscription_step_loses_no_event():
    """Cancelling an asyncio ``__anext__`` never consumes an event it does not hand over."""
    async with trio_asyncio.open_loop():
        delivered, skipped = await trio_asyncio.aio_as_trio(_cancel_nexts)(200)
    assert skipped == []
    assert delivered == list(range(1, len(delivered) + 1)) and delivered
