"""The mob-spec contract (SEMANTICS.md §4.4, plus the port's rules), against any backend."""

from __future__ import annotations

import pytest
import trio

from mobstore.actors import DecodeError, InvalidInput, SpecRevisionConflict

DEF = {"orchestrator": {"profile": "lead"}, "profiles": {"lead": {"realm_profile": "worker"}}}


class SpecStoreContract:
    """``mob.spec`` and ``store.list_specs``: revision CAS, delete, listing, tombstones."""

    async def test_put_none_then_put_k_then_stale_put(self, store):
        """put(None) on a fresh mob is 1, put(1) is 2; put(1) again conflicts with
        actual 2 and the stored spec is still revision 2 with its definition."""
        spec = store.mob("m").spec
        assert await spec.put_spec({"v": 1}) == 1
        assert await spec.put_spec({"v": 2}, revision=1) == 2
        with pytest.raises(SpecRevisionConflict) as info:
            await spec.put_spec({"v": 3}, revision=1)
        assert (info.value.mob_id, info.value.expected, info.value.actual) == ("m", 1, 2)
        assert await spec.get_spec() == ({"id": "m", "v": 2}, 2)

    async def test_put_zero_is_create_only(self, store):
        """put(0) creates an absent spec (revision 1) and conflicts with an existing one,
        reporting the current revision."""
        spec = store.mob("m").spec
        assert await spec.put_spec({"v": 1}, revision=0) == 1
        with pytest.raises(SpecRevisionConflict) as info:
            await spec.put_spec({"v": 2}, revision=0)
        assert (info.value.expected, info.value.actual) == (0, 1)
        assert await spec.get_spec() == ({"id": "m", "v": 1}, 1)

    async def test_put_k_on_absent_spec_conflicts_with_actual_zero(self, store):
        """put(5) on a mob without a spec conflicts with actual 0 and stores nothing."""
        spec = store.mob("m").spec
        with pytest.raises(SpecRevisionConflict) as info:
            await spec.put_spec({"v": 1}, revision=5)
        assert (info.value.expected, info.value.actual) == (5, 0)
        assert await spec.get_spec() is None
        assert await store.list_specs() == []

    async def test_get_absent_is_none(self, store):
        """get_spec on a mob that never had a spec returns None."""
        assert await store.mob("nobody").spec.get_spec() is None

    async def test_definition_round_trips_with_id_filled_in(self, store):
        """The definition comes back equal, key order kept, with "id" set to the mob id
        (added when missing, kept when equal); the caller's dict is not modified."""
        d = {"z": 1, "a": [1, 2.5, None, True], "nested": {"b": "x", "a": {}}}
        assert await store.mob("m").spec.put_spec(d) == 1
        got, rev = await store.mob("m").spec.get_spec()
        assert got == {"id": "m", **d} and list(got)[1:] == list(d) and rev == 1
        assert "id" not in d
        await store.mob("n").spec.put_spec({"id": "n", **DEF})
        assert await store.mob("n").spec.get_spec() == ({"id": "n", **DEF}, 1)

    async def test_list_specs_shows_exactly_live_specs_sorted(self, store):
        """list_specs lists the mobs with a live spec, sorted; deleted ones drop out."""
        assert await store.list_specs() == []
        for m in ["c", "a", "b", "é", "B"]:
            await store.mob(m).spec.put_spec({})
        await store.mob("x").events.append_batch([])  # a mob without a spec
        assert await store.list_specs() == sorted(["c", "a", "b", "é", "B"])
        assert await store.mob("b").spec.delete_spec() is True
        assert await store.list_specs() == ["B", "a", "c", "é"]

    async def test_delete_with_stale_revision_is_false_and_keeps_the_spec(self, store):
        """delete(stale) returns False and leaves the spec in place."""
        spec = store.mob("m").spec
        await spec.put_spec({"v": 1})
        await spec.put_spec({"v": 2})
        assert await spec.delete_spec(revision=1) is False
        assert await spec.get_spec() == ({"id": "m", "v": 2}, 2)

    async def test_delete_with_current_revision(self, store):
        """delete(current) returns True; get then returns None."""
        spec = store.mob("m").spec
        await spec.put_spec({"v": 1})
        assert await spec.delete_spec(revision=1) is True
        assert await spec.get_spec() is None

    async def test_delete_absent_is_false(self, store):
        """delete on a mob without a spec returns False, with or without a revision."""
        spec = store.mob("m").spec
        assert await spec.delete_spec() is False
        assert await spec.delete_spec(revision=0) is False
        assert await spec.delete_spec(revision=1) is False

    async def test_delete_none_on_present_spec(self, store):
        """delete(None) deletes whatever revision is stored; a second delete is False."""
        spec = store.mob("m").spec
        await spec.put_spec({"v": 1})
        await spec.put_spec({"v": 2})
        assert await spec.delete_spec() is True
        assert await spec.get_spec() is None
        assert await spec.delete_spec() is False

    async def test_revisions_never_restart_after_delete(self, store):
        """After a delete, put(None) and put(0) continue from the high-water mark; a stale
        revision of the deleted spec can neither update nor delete the new one."""
        spec = store.mob("m").spec
        await spec.put_spec({"v": 1})
        await spec.put_spec({"v": 2})
        assert await spec.delete_spec(revision=2) is True
        with pytest.raises(SpecRevisionConflict) as info:
            await spec.put_spec({"v": "stale"}, revision=2)  # absent: only None or 0 pass
        assert info.value.actual == 0
        assert await spec.put_spec({"v": 3}, revision=0) == 3
        assert await spec.delete_spec(revision=1) is False
        with pytest.raises(SpecRevisionConflict):
            await spec.put_spec({"v": "stale"}, revision=1)
        assert await spec.delete_spec() is True
        assert await spec.put_spec({"v": 4}) == 4
        assert await spec.get_spec() == ({"id": "m", "v": 4}, 4)

    async def test_mobs_are_isolated(self, store):
        """Revisions are counted per mob; a delete in one mob does not touch another."""
        await store.mob("a").spec.put_spec({"v": "a1"})
        await store.mob("a").spec.put_spec({"v": "a2"})
        assert await store.mob("b").spec.put_spec({"v": "b1"}, revision=0) == 1
        assert await store.mob("a").spec.delete_spec() is True
        assert await store.mob("b").spec.get_spec() == ({"id": "b", "v": "b1"}, 1)

    @pytest.mark.parametrize(
        "definition, revision, field",
        [
            ([1, 2], None, "definition"),
            (None, None, "definition"),
            ('{"id": "m"}', None, "definition"),
            ({"id": "other"}, None, "definition['id']"),
            ({"id": 7}, None, "definition['id']"),
            ({"x": float("nan")}, None, "definition['x']"),
            ({"x": {1: 2}}, None, "definition['x']"),
            ({"x": object()}, None, "definition['x']"),
            ({}, -1, "revision"),
            ({}, 1.0, "revision"),
            ({}, "1", "revision"),
            ({}, 2**63, "revision"),
        ],
    )
    async def test_bad_input_is_invalid_input_and_writes_nothing(self, store, definition, revision, field):
        """A bad definition or revision is InvalidInput naming the field; nothing is stored."""
        with pytest.raises(InvalidInput) as info:
            await store.mob("m").spec.put_spec(definition, revision)
        assert info.value.field == field
        assert await store.mob("m").spec.get_spec() is None
        assert await store.list_specs() == []

    async def test_bad_delete_revision_is_invalid_input(self, store):
        """delete_spec with a revision that is not None or a count is InvalidInput."""
        await store.mob("m").spec.put_spec({})
        for bad in [-1, "1", 1.5]:
            with pytest.raises(InvalidInput, match="revision"):
                await store.mob("m").spec.delete_spec(bad)
        assert await store.mob("m").spec.get_spec() == ({"id": "m"}, 1)

    async def test_oversized_definition_is_invalid_input(self, store):
        """A definition encoding to more than MAX_JSON_BYTES is refused."""
        from mobstore.storage import MAX_JSON_BYTES

        with pytest.raises(InvalidInput, match="more than"):
            await store.mob("m").spec.put_spec({"blob": "x" * MAX_JSON_BYTES})
        assert await store.mob("m").spec.get_spec() is None

    async def test_damaged_revision_is_decode_error(self, store):
        """A stored revision that is not an int (a hand edit) is DecodeError on read and on
        a put, not a wrong tuple or a bare TypeError; nothing is written."""
        spec = store.mob("mob-a").spec
        await spec.put_spec({"v": 1})
        with store._db.writer() as conn:
            conn.execute("UPDATE mob_specs SET revision = '7x' WHERE mob_id = 'mob-a'")
        with pytest.raises(DecodeError, match="7x"):
            await spec.get_spec()
        with pytest.raises(DecodeError, match="7x"):
            await spec.put_spec({"v": 2})
        with store._db.writer() as conn:
            assert conn.execute("SELECT revision FROM mob_specs").fetchall() == [("7x",)]

    async def test_concurrent_put_with_same_revision_has_one_winner(self, store):
        """Many tasks putting with the same expected revision: exactly one gets the next
        revision, every other one gets SpecRevisionConflict(actual = that revision)."""
        spec = store.mob("m").spec
        await spec.put_spec({"v": "base"})
        wins: list[int] = []
        conflicts: list[int] = []

        async def put(i: int) -> None:
            try:
                wins.append(await spec.put_spec({"v": i}, revision=1))
            except SpecRevisionConflict as exc:
                conflicts.append(exc.actual)

        async with trio.open_nursery() as n:
            for i in range(16):
                n.start_soon(put, i)
        assert wins == [2] and conflicts == [2] * 15
        definition, rev = await spec.get_spec()
        assert rev == 2 and definition["v"] != "base"

    async def test_concurrent_create_only_has_one_winner(self, store):
        """Concurrent put(0) on a fresh mob: exactly one creates the spec."""
        spec = store.mob("m").spec
        outcomes: list[object] = []

        async def put(i: int) -> None:
            try:
                outcomes.append(await spec.put_spec({"v": i}, revision=0))
            except SpecRevisionConflict as exc:
                outcomes.append(exc)

        async with trio.open_nursery() as n:
            for i in range(8):
                n.start_soon(put, i)
        assert sorted(o for o in outcomes if isinstance(o, int)) == [1]
        assert sum(isinstance(o, SpecRevisionConflict) for o in outcomes) == 7

    async def test_specs_and_high_water_survive_reopen(self, backend):
        """A file store keeps specs, their revisions and the tombstone high-water mark
        across close and reopen; a memory store starts empty."""
        async with backend.open() as s:
            await s.mob("kept").spec.put_spec({"v": 1})
            await s.mob("kept").spec.put_spec({"v": 2})
            await s.mob("gone").spec.put_spec({})
            await s.mob("gone").spec.put_spec({})
            assert await s.mob("gone").spec.delete_spec() is True
        async with backend.open() as s:
            if backend.persistent:
                assert await s.list_specs() == ["kept"]
                assert await s.mob("kept").spec.get_spec() == ({"id": "kept", "v": 2}, 2)
                assert await s.mob("gone").spec.put_spec({}, revision=0) == 3
            else:
                assert await s.list_specs() == []
                assert await s.mob("gone").spec.put_spec({}, revision=0) == 1
