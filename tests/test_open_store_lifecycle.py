"""``open_store`` as a context manager: cancelled while it opens, and what the caller's block
raises.

Before: a cancellation landing while the store started its (shielded) system tasks left
``open_store`` waiting for them forever; an exception raised in the block came out wrapped
in an ``ExceptionGroup`` (the block ran inside the store's nursery).
"""

from __future__ import annotations

import faulthandler

import pytest
import trio

from mobstore.actors import InvalidInput, NewMobEvent, open_store
from mobstore.actors.testing import call_cancelled_at


@pytest.mark.parametrize("count", ["task", "all"])
async def test_cancelled_at_every_checkpoint_of_opening_never_hangs(tmp_path, count):
    """Cancel ``open_store`` at each of its checkpoints (those of the opening task, then
    those of every task): it raises Cancelled or enters the block, and always closes the
    file, which the next try opens again (no leaked lock, no hang)."""
    path = str(tmp_path / "s.db")
    entered = []

    async def open_and_append() -> int:
        async with open_store(path) as store:
            entered.append(True)
            return (await store.mob("m").events.append(NewMobEvent("k"))).cursor

    k, cancelled = 0, 0
    # A watchdog: the bug was a hang in a shielded wait, which no trio timeout can end; on
    # a regression this ends the test process with every thread's traceback instead.
    faulthandler.dump_traceback_later(120, exit=True)
    try:
        while True:
            out = await call_cancelled_at(k, open_and_append, count=count)
            assert out.error is None, out.error
            if not out.completed:
                cancelled += 1
            if not out.cancel_issued:
                break
            k += 1
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert cancelled >= 3 and entered, (k, cancelled)  # the sweep did cancel inside the opening
    async with open_store(path) as store:  # the file is free and consistent
        events = await store.mob("m").events.replay_all()
    assert [e.cursor for e in events] == list(range(1, len(events) + 1))


async def test_an_error_in_the_block_comes_out_unwrapped(tmp_path):
    path = str(tmp_path / "s.db")
    with pytest.raises(InvalidInput) as info:
        async with open_store(path) as store:
            await store.mob("m").events.append(NewMobEvent("kept"))
            await store.mob("m").events.append(NewMobEvent(""))
    assert info.value.field == "kind"
    with pytest.raises(KeyError):
        async with open_store(path) as store:
            raise KeyError("mine")
    async with open_store(path) as store:  # closed properly both times; the ack'd event kept
        assert [e.kind for e in await store.mob("m").events.replay_all()] == ["kept"]


async def test_a_cancelled_block_propagates_to_its_scope(tmp_path):
    """Cancelled raised in the block reaches the scope that was cancelled, after the store
    committed what it had accepted and closed."""
    path = str(tmp_path / "s.db")
    with trio.CancelScope() as scope:
        async with open_store(path) as store:
            await store.mob("m").events.append(NewMobEvent("a"))
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    async with open_store(path) as store:
        assert len(await store.mob("m").events.replay_all()) == 1


async def test_an_empty_commit_after_close_is_store_closed():
    """mob.commit() with no commands after close raises StoreClosed like every other call
    (it used to return ok=True)."""
    from mobstore.actors import StoreClosed, open_store

    async with open_store() as store:
        mob = store.mob("m")
        assert (await mob.commit()).ok
    with pytest.raises(StoreClosed):
        await mob.commit()
