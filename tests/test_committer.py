"""The committer through the store: group commit, batch isolation, answering after COMMIT,
cancellation of callers, orderly close."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
import trio
import trio.testing

from mobstore.actors import NewMobEvent, NotFound, StoreClosed, open_store


class Boom:
    """A command that writes and then fails: its write must be undone, alone."""

    def apply(self, tx):
        tx.execute("INSERT INTO mob_heads VALUES ('boom', 99)")
        raise NotFound("run", "x")


async def warm(store, *mobs):
    """Start the mobs' actors (their recovery reads run in threads, which
    wait_all_tasks_blocked cannot see), so later requests are taken synchronously."""
    for m in mobs:
        await store._call(f"mob:{m}", (), single=False)


class _Held:
    """The writer lock, held by the test; tells when the committer thread reaches it."""

    def __init__(self, inner):
        self.inner = inner
        self.reached = threading.Event()

    def __enter__(self):
        self.reached.set()
        self.inner.acquire()
        return self

    def __exit__(self, *exc):
        self.inner.release()

    async def wait_for_committer(self):
        """Return once the committer thread is blocked on the held writer (waits off-loop)."""
        await trio.to_thread.run_sync(self.reached.wait)
        self.reached.clear()


@contextmanager
def writer_held(store):
    """Block the committer's writer thread at its next batch (it waits for the writer)."""
    db = store._db
    lock = db._writer_lock
    held = _Held(lock)
    lock.acquire()
    db._writer_lock = held
    try:
        yield held
    finally:
        db._writer_lock = lock
        lock.release()


def ev(i=0):
    return NewMobEvent("k", {"i": i})


@pytest.fixture(params=["memory", "file"])
def path(request, tmp_path):
    return None if request.param == "memory" else str(tmp_path / "s.db")


async def test_waiting_requests_form_one_batch_and_fail_alone(path):
    """Requests that wait while a batch commits are committed together in one transaction;
    a failing one is rolled back alone and its neighbours commit."""
    async with open_store(path, durability="normal", idle_timeout=None) as store:
        results: dict[str, object] = {}
        await warm(store, "x", "a", "b", "c")
        before = store.statistics().committer

        async def run(name, coro):
            try:
                results[name] = await coro
            except Exception as exc:  # noqa: BLE001
                results[name] = exc

        async with trio.open_nursery() as n:
            with writer_held(store) as held:
                n.start_soon(run, "first", store.mob("x").events.append(ev(0)))
                await held.wait_for_committer()  # its batch is stuck in the writer thread
                n.start_soon(run, "a", store.mob("a").events.append(ev(1)))
                n.start_soon(run, "boom", store._call("mob:b", (Boom(),)))
                n.start_soon(run, "c", store.mob("c").events.append(ev(2)))
                await trio.testing.wait_all_tasks_blocked()
                assert results == {}  # nobody is answered before COMMIT
        assert isinstance(results["boom"], NotFound)
        assert results["a"].cursor == 1 and results["c"].cursor == 1
        stats = store.statistics().committer
        assert stats.batches - before.batches == 2 and stats.max_batch == 3 and stats.failed == 1
        heads = await store._read(lambda c: c.execute("SELECT mob_id FROM mob_heads ORDER BY 1").fetchall())
        assert heads == [("a",), ("c",), ("x",)]  # Boom's insert was rolled back


async def test_group_commit_off_commits_each_request(path):
    """group_commit=False gives each request its own COMMIT, with the same results."""
    async with open_store(path, durability="normal", group_commit=False, idle_timeout=None) as store:
        await warm(store, "x", "a", "b", "c")
        before = store.statistics().committer
        async with trio.open_nursery() as n:
            with writer_held(store) as held:
                n.start_soon(store.mob("x").events.append, ev())
                await held.wait_for_committer()
                for m in "abc":
                    n.start_soon(store.mob(m).events.append, ev())
                await trio.testing.wait_all_tasks_blocked()
        stats = store.statistics().committer
        delta = (stats.batches - before.batches, stats.commits - before.commits, stats.requests - before.requests)
        assert delta == (2, 4, 4)


async def test_cancelled_while_queued_writes_nothing(path):
    """A caller cancelled while its request is still in the mailbox gets Cancelled and the
    request is withdrawn: nothing is written and the cursor does not move."""
    async with open_store(path, durability="normal", idle_timeout=None) as store:
        log = store.mob("a").events
        await warm(store, "a")
        async with trio.open_nursery() as n:
            with writer_held(store) as held:
                n.start_soon(log.append, ev(1))  # taken; its commit blocks
                await held.wait_for_committer()
                with trio.CancelScope() as scope:
                    n.start_soon(lambda: _cancel_soon(scope))
                    await log.append(ev(2))  # queued behind the first: withdrawn
                assert scope.cancelled_caught
        assert [e.payload["i"] for e in await log.replay_all()] == [1]
        assert (await log.append(ev(3))).cursor == 2


async def _cancel_soon(scope):
    await trio.testing.wait_all_tasks_blocked()
    scope.cancel()


async def test_taken_request_survives_caller_cancellation(path):
    """Same as above, observed from outside: the cancelled caller's event is stored."""
    async with open_store(path, durability="normal", idle_timeout=None) as store:
        log = store.mob("a").events
        await warm(store, "a")
        got = []

        async def caller(scope_box):
            with trio.CancelScope() as scope:
                scope_box.append(scope)
                got.append(await log.append(ev(1)))
                await trio.lowlevel.checkpoint()
                got.append("not reached")

        box: list = []
        async with trio.open_nursery() as n:
            with writer_held(store) as held:
                n.start_soon(caller, box)
                await held.wait_for_committer()
                box[0].cancel()
                await trio.testing.wait_all_tasks_blocked()
                assert got == []  # still waiting for COMMIT, despite the cancel
        assert len(got) == 1 and got[0].cursor == 1
        assert [e.cursor for e in await log.replay_all()] == [1]


async def test_close_drains_accepted_work(path):
    """Requests accepted before close are committed; calls after close raise StoreClosed."""
    results = []
    async with open_store(path, durability="normal", idle_timeout=None) as store:
        log = store.mob("a").events

        async def call(i):
            results.append((await log.append(ev(i))).cursor)

        for i in range(5):
            store._supervisor._nursery.start_soon(call, i)  # outlives the with-block body
        await trio.testing.wait_all_tasks_blocked()
    assert sorted(results) == [1, 2, 3, 4, 5]
    with pytest.raises(StoreClosed):
        await log.append(ev())
    with pytest.raises(StoreClosed):
        await log.replay_all()
    with pytest.raises(StoreClosed):
        store.mob("new")  # noqa: B018 - a handle can be made, but not used
        await store.mob("new").events.append(ev())


async def test_close_under_outer_cancellation_still_commits(path, tmp_path):
    """Cancelling the scope around the store does not drop work it already accepted."""
    got = []
    with trio.CancelScope() as outer:
        async with open_store(path, durability="normal", idle_timeout=None) as store:
            async def call():
                got.append(await store.mob("a").events.append(ev()))

            store._supervisor._nursery.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()
            outer.cancel()
            await trio.sleep_forever()
    assert len(got) == 1 and got[0].cursor == 1


async def test_an_internal_committer_failure_never_hangs_callers(monkeypatch):
    """Even a bug inside the committer answers every request it holds (taken requests cannot
    be cancelled, so they must never be left waiting) and surfaces the bug."""
    from mobstore.actors import _request

    def broken(self):
        raise IndexError("bug in the answer path")

    monkeypatch.setattr(_request.Request, "finish", broken)
    with pytest.raises(BaseExceptionGroup) as info:
        async with open_store(idle_timeout=None) as store:
            with trio.fail_after(5):
                await store.mob("a").events.append(ev())
    assert info.group_contains(IndexError, match="bug in the answer path")


async def test_after_a_committer_crash_every_call_is_store_closed(monkeypatch):
    """A bug that ends the committer stops the store's system tasks; from then on every call,
    for a mob used before or a new one, is StoreClosed. (The slot stayed registered as
    "stopped" with its mailbox open: a call then spun in Store._call forever without a
    checkpoint, and a new mob's first call raised a bare RuntimeError and the next hung.)
    The failed requests count as failed, not handled."""
    from mobstore.storage import Database

    real, calls = Database.apply, []

    def buggy(self, units, *, group=True):
        calls.append(len(units))
        if len(calls) == 2:
            raise RuntimeError("bug in the committer")
        return real(self, units, group=group)

    monkeypatch.setattr(Database, "apply", buggy)
    seen: list[object] = []

    async def later_caller(store):
        await store._supervisor.get("mob:m").finished.wait()  # the actor's task has ended
        s = store.mob("m").statistics()
        assert s.state == "stopped"
        seen.append(s)
        for mob in ("m", "new"):
            with pytest.raises(StoreClosed):
                await store.mob(mob).events.append(ev())
            seen.append(mob)

    with pytest.raises(BaseExceptionGroup) as info:
        async with trio.open_nursery() as outside:
            async with open_store(idle_timeout=None) as store:
                log = store.mob("m").events
                await log.append(ev())
                outside.start_soon(later_caller, store)
                with pytest.raises(StoreClosed, match="committer stopped"):
                    await log.append(ev())
                await trio.sleep_forever()  # the crash cancels the block
    assert info.group_contains(RuntimeError, match="bug in the committer")
    stats, *mobs = seen
    assert mobs == ["m", "new"]
    assert (stats.handled, stats.failed) == (1, 1)
    assert store.statistics().committer.failed == 1
