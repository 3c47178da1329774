"""The subscription-cursor contract (SEMANTICS.md §8.2: upstream mobkit's tests plus the
port's never-backwards rule), against any backend."""

from __future__ import annotations

import pytest

from mobstore.actors import CasConflict, DecodeError, InvalidInput, NewMobEvent


class CursorsContract:
    """``mob.cursors``: named, persisted cursors that never move backwards by accident."""

    async def test_fresh_store_has_no_cursor(self, store):
        """get is None before the first set, for any name."""
        assert await store.mob("mob-a").cursors.get() is None
        assert await store.mob("mob-a").cursors.get("projector") is None
        assert await store.mob("mob-a").cursors.list() == {}

    async def test_set_get_and_move_forward(self, store):
        """set(42) then get gives 42; 1 then 2 gives 2; setting the same value again is
        fine; set returns the cursor."""
        c = store.mob("mob-a").cursors
        assert await c.set(42) == 42
        assert await c.get() == 42
        d = store.mob("mob-d").cursors
        await d.set(1)
        await d.set(2)
        await d.set(2)
        assert await d.get() == 2

    async def test_never_moves_backwards(self, store):
        """A lower value is CasConflict (expected = asked, actual = stored) and changes
        nothing."""
        c = store.mob("mob-a").cursors
        await c.set(10)
        with pytest.raises(CasConflict, match="reset") as info:
            await c.set(9)
        assert (info.value.expected, info.value.actual) == (9, 10)
        assert await c.get() == 10

    async def test_reset_rewinds_or_removes_explicitly(self, store):
        """reset(n) sets any value, also lower; reset() removes the cursor (get is None, and
        the next set may start anywhere)."""
        c = store.mob("mob-a").cursors
        await c.set(10)
        await c.reset(3)
        assert await c.get() == 3
        await c.set(4)
        await c.reset()
        assert await c.get() is None
        await c.set(1)
        assert await c.get() == 1
        await c.reset(name="never-set")  # removing a missing cursor is fine
        assert await c.get("never-set") is None

    async def test_isolated_per_mob_and_name(self, store):
        """Cursors of different mobs and different names are independent."""
        a, b = store.mob("mob-a").cursors, store.mob("mob-b").cursors
        await a.set(9999)
        await a.set(7, "projector")
        await b.set(5)
        assert (await a.get(), await a.get("projector"), await b.get(), await b.get("projector")) == (9999, 7, 5, None)
        assert await a.list() == {"default": 9999, "projector": 7}

    async def test_bad_arguments_are_invalid_input(self, store):
        """Negative, non-int or over-64-bit cursors and empty names are InvalidInput."""
        c = store.mob("mob-a").cursors
        for call, field in [
            (lambda: c.set(-1), "cursor"),
            (lambda: c.set(1.0), "cursor"),
            (lambda: c.set(True), "cursor"),
            (lambda: c.set(2**63), "cursor"),
            (lambda: c.set(1, ""), "name"),
            (lambda: c.get(""), "name"),
            (lambda: c.reset(-5), "cursor"),
        ]:
            with pytest.raises(InvalidInput) as info:
                await call()
            assert info.value.field == field
        assert await c.list() == {}

    async def test_corrupt_value_is_decode_error(self, store):
        """A stored value that is not an integer (a hand edit) is DecodeError on read, and
        set refuses to overwrite it blindly."""
        c = store.mob("mob-a").cursors
        await c.set(5)
        with store._db.writer() as conn:
            conn.execute("UPDATE mob_cursors SET cursor = 'not-a-number' WHERE mob_id = 'mob-a'")
        with pytest.raises(DecodeError, match="not-a-number"):
            await c.get()
        with pytest.raises(DecodeError):
            await c.set(6)
        await c.reset(6)
        assert await c.get() == 6

    async def test_cursor_advance_commits_with_the_consumer_output(self, store):
        """In mob.commit, a cursor advance and the consumer's writes commit together; a
        stale advance (backwards) rolls the whole commit back (exactly once)."""
        mob = store.mob("mob-a")
        ok = await mob.commit(mob.cmd.append(NewMobEvent("projected", {"n": 1})), mob.cursors.set_command(1, "proj"))
        assert ok.ok and await mob.cursors.get("proj") == 1
        with pytest.raises(CasConflict):
            await mob.commit(mob.cmd.append(NewMobEvent("projected", {"n": 2})), mob.cursors.set_command(0, "proj"))
        assert [e.payload["n"] for e in await mob.events.replay_all()] == [1]
        assert await mob.cursors.get("proj") == 1

    async def test_cursor_survives_reopen(self, backend):
        """A value survives close and reopen of a file store (in memory starts empty)."""
        async with backend.open() as s:
            await s.mob("mob-x").cursors.set(7777)
        async with backend.open() as s:
            assert await s.mob("mob-x").cursors.get() == (7777 if backend.persistent else None)
