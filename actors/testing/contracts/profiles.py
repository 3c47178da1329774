"""The realm-profile contract (SEMANTICS.md §5.3: upstream's ``realm_profile::contract_tests``
plus the port's rules), against any backend."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import trio

from mobstore.actors import (
    CasConflict,
    DecodeError,
    InvalidInput,
    NotFound,
    Profile,
    StoredRealmProfile,
    ToolConfig,
    open_store,
)


def sample(model: str = "claude-opus-4-6") -> Profile:
    return Profile(model)


class RealmProfileContract:
    """``store.profiles``: create, get, list, update and delete under a revision CAS."""

    async def test_create_and_get(self, store, clock):
        """create gives revision 1 and created_at == updated_at == the store clock; get
        returns the same record."""
        stored = await store.profiles.create("worker", sample())
        assert stored == StoredRealmProfile("worker", sample(), 1, clock.now, clock.now)
        assert await store.profiles.get("worker") == stored

    async def test_get_nonexistent(self, store):
        """get of an unknown name returns None."""
        assert await store.profiles.get("nonexistent") is None

    async def test_create_duplicate_fails(self, store):
        """A second create of the same name is CasConflict and changes nothing."""
        first = await store.profiles.create("dup", sample("a"))
        with pytest.raises(CasConflict) as info:
            await store.profiles.create("dup", sample("b"))
        assert (info.value.expected, info.value.actual) == (0, 1)
        assert await store.profiles.get("dup") == first

    async def test_update_with_correct_revision(self, store, clock):
        """update(…, 1) gives revision 2 and the new profile, keeps created_at, stamps
        updated_at with the clock; get returns the new record."""
        created = await store.profiles.create("evolve", sample())
        clock.advance(5)
        updated = await store.profiles.update("evolve", sample("claude-sonnet-4-6"), 1)
        assert updated.revision == 2 and updated.profile.model == "claude-sonnet-4-6"
        assert updated.created_at == created.created_at
        assert updated.updated_at == clock.now >= created.updated_at
        assert await store.profiles.get("evolve") == updated

    async def test_updated_at_never_goes_backwards(self, store, clock):
        """With the clock set back, update keeps updated_at at its previous value."""
        created = await store.profiles.create("p", sample())
        clock.now = created.updated_at - timedelta(hours=1)
        updated = await store.profiles.update("p", sample("b"), 1)
        assert updated.updated_at == created.updated_at
        assert (await store.profiles.get("p")).updated_at == created.updated_at

    async def test_update_with_wrong_revision(self, store):
        """update(…, 99) is CasConflict(expected 99, actual 1), and so is a stale revision
        below the current one; nothing changes."""
        created = await store.profiles.create("stale", sample())
        with pytest.raises(CasConflict) as info:
            await store.profiles.update("stale", sample("other"), 99)
        assert (info.value.expected, info.value.actual) == (99, 1)
        assert await store.profiles.get("stale") == created
        current = await store.profiles.update("stale", sample("newer"), 1)
        with pytest.raises(CasConflict) as info:
            await store.profiles.update("stale", sample("other"), 1)  # too low
        assert (info.value.expected, info.value.actual) == (1, 2)
        assert await store.profiles.get("stale") == current

    async def test_update_nonexistent(self, store):
        """update of an unknown name is NotFound (before any revision check)."""
        with pytest.raises(NotFound) as info:
            await store.profiles.update("ghost", sample(), 1)
        assert (info.value.kind, info.value.id) == ("realm profile", "ghost")
        with pytest.raises(NotFound):
            await store.profiles.update("ghost", sample(), 0)
        assert await store.profiles.list() == []

    async def test_delete_with_correct_revision(self, store):
        """delete(…, 1) returns the deleted record; get then returns None."""
        created = await store.profiles.create("doomed", sample())
        deleted = await store.profiles.delete("doomed", 1)
        assert deleted == created
        assert await store.profiles.get("doomed") is None
        assert await store.profiles.list() == []

    async def test_delete_returns_the_deleted_revision(self, store):
        """The record returned by delete carries the revision it had when deleted."""
        await store.profiles.create("p", sample("a"))
        updated = await store.profiles.update("p", sample("b"), 1)
        assert await store.profiles.delete("p", 2) == updated

    async def test_delete_with_wrong_revision(self, store):
        """delete(…, 99) is CasConflict and the profile survives."""
        created = await store.profiles.create("safe", sample())
        with pytest.raises(CasConflict) as info:
            await store.profiles.delete("safe", 99)
        assert (info.value.expected, info.value.actual) == (99, 1)
        assert await store.profiles.get("safe") == created

    async def test_delete_nonexistent(self, store):
        """delete of an unknown name is NotFound."""
        with pytest.raises(NotFound):
            await store.profiles.delete("ghost", 1)

    async def test_list(self, store):
        """Two created profiles give two entries, sorted by name."""
        await store.profiles.create("beta", sample("model-b"))
        await store.profiles.create("alpha", sample("model-a"))
        all_ = await store.profiles.list()
        assert [(p.name, p.profile.model) for p in all_] == [("alpha", "model-a"), ("beta", "model-b")]

    async def test_list_empty(self, store):
        """list of an empty realm is []."""
        assert await store.profiles.list() == []

    async def test_list_is_sorted_by_name(self, store):
        """list is sorted by name (by code point), whatever the creation order."""
        names = ["zeta", "Alpha", "alpha", "éclair", "beta", "a-1", "a"]
        for n in names:
            await store.profiles.create(n, sample())
        assert [p.name for p in await store.profiles.list()] == sorted(names)

    async def test_revisions_never_restart_after_delete(self, store):
        """A fresh name starts at 1; a name deleted and created again continues from the
        deleted revision, so the old revision cannot update or delete the new profile."""
        await store.profiles.create("p", sample("a"))
        await store.profiles.update("p", sample("b"), 1)
        await store.profiles.delete("p", 2)
        again = await store.profiles.create("p", sample("c"))
        assert again.revision == 3
        with pytest.raises(CasConflict):
            await store.profiles.update("p", sample("stale"), 1)
        with pytest.raises(CasConflict):
            await store.profiles.delete("p", 2)
        assert (await store.profiles.update("p", sample("d"), 3)).revision == 4
        assert (await store.profiles.create("fresh", sample())).revision == 1

    async def test_recreated_profile_gets_a_new_created_at(self, store, clock):
        """A re-created name is a new profile: its created_at is the time of the re-create."""
        await store.profiles.create("p", sample())
        await store.profiles.delete("p", 1)
        clock.advance(60)
        again = await store.profiles.create("p", sample())
        assert again.created_at == again.updated_at == clock.now

    async def test_full_profile_round_trips(self, store):
        """Every field, and keys this version does not know, survive a store round trip."""
        p = Profile(
            "gpt-5.2",
            skills=["review", "plan"],
            tools=ToolConfig(builtins=True, comms=True, mob_tasks=True, schedule=True,
                             mcp=["code"], rust_bundles=["b"], extra={"future_flag": True}),
            peer_description="Writes code",
            external_addressable=True,
            backend="external",
            runtime_mode="turn_driven",
            max_inline_peer_notifications=-1,
            output_schema={"type": "object", "properties": {"x": {"type": "number"}}},
            provider_params={"temperature": 0.2, "stop": ["\n"]},
            extra={"provider": "openai", "auto_compact_threshold": 0.8},
        )
        await store.profiles.create("full", p)
        got = (await store.profiles.get("full")).profile
        assert got == p
        assert Profile.from_json(p.to_json()) == p
        assert p.to_json()["provider"] == "openai" and p.to_json()["tools"]["future_flag"] is True

    def test_profile_json_form(self):
        """from_json fills defaults, keeps unknown keys in extra, treats null optionals as
        unset; to_json writes only set optionals."""
        p = Profile.from_json({"model": "m", "backend": None, "new_field": [1]})
        assert p == Profile("m", extra={"new_field": [1]})
        assert p.to_json() == {
            "model": "m", "skills": [], "tools": ToolConfig().to_json(), "peer_description": "",
            "external_addressable": False, "runtime_mode": "autonomous_host", "new_field": [1],
        }

    @pytest.mark.parametrize(
        "build, field",
        [
            (lambda: Profile(""), "model"),
            (lambda: Profile(7), "model"),
            (lambda: Profile("m", skills=["a", 1]), "skills[1]"),
            (lambda: Profile("m", skills="abc"), "skills"),
            (lambda: Profile("m", tools={"shell": True}), "tools"),
            (lambda: ToolConfig(shell=1), "shell"),
            (lambda: ToolConfig(mcp=[None]), "mcp[0]"),
            (lambda: Profile("m", external_addressable="yes"), "external_addressable"),
            (lambda: Profile("m", backend="cloud"), "backend"),
            (lambda: Profile("m", runtime_mode="eager"), "runtime_mode"),
            (lambda: Profile("m", max_inline_peer_notifications=-2), "max_inline_peer_notifications"),
            (lambda: Profile("m", max_inline_peer_notifications=2**31), "max_inline_peer_notifications"),
            (lambda: Profile("m", output_schema={"x": float("inf")}), "output_schema['x']"),
            (lambda: Profile("m", provider_params={1: 2}), "provider_params"),
            (lambda: Profile("m", extra={"model": "x"}), "extra['model']"),
            (lambda: Profile.from_json({"skills": []}), "model"),
            (lambda: Profile.from_json(["m"]), "profile"),
        ],
    )
    def test_bad_profile_is_invalid_input(self, build, field):
        """A bad Profile field is InvalidInput naming it, at construction."""
        with pytest.raises(InvalidInput) as info:
            build()
        assert info.value.field == field

    async def test_bad_arguments_are_invalid_input_and_write_nothing(self, store):
        """Bad names, non-Profile profiles and bad revisions are InvalidInput naming the
        argument; nothing is stored."""
        for bad in ["", "x" * 257, "a\x00b", 7, None]:
            with pytest.raises(InvalidInput) as info:
                await store.profiles.create(bad, sample())
            assert info.value.field == "name"
        with pytest.raises(InvalidInput) as info:
            await store.profiles.create("p", {"model": "m"})
        assert info.value.field == "profile"
        await store.profiles.create("ok", sample())
        for bad in [-1, "1", 1.0, None]:
            with pytest.raises(InvalidInput) as info:
                await store.profiles.update("ok", sample("new"), bad)
            assert info.value.field == "expected_revision"
            with pytest.raises(InvalidInput):
                await store.profiles.delete("ok", bad)
        with pytest.raises(InvalidInput):
            await store.profiles.get("")
        assert [(p.name, p.revision, p.profile) for p in await store.profiles.list()] == [("ok", 1, sample())]

    async def test_oversized_profile_is_invalid_input(self, store):
        """A profile encoding to more than MAX_JSON_BYTES is refused; nothing is stored."""
        from mobstore.storage import MAX_JSON_BYTES

        with pytest.raises(InvalidInput, match="more than"):
            await store.profiles.create("big", Profile("m", peer_description="x" * MAX_JSON_BYTES))
        assert await store.profiles.list() == []

    async def test_damaged_rows_are_decode_errors(self, store):
        """A stored time or revision that is not an int (a hand edit) is DecodeError on
        read and on a write, naming the profile, not a bare TypeError; nothing is written."""
        await store.profiles.create("a", sample())
        await store.profiles.create("b", sample())
        with store._db.writer() as conn:
            conn.execute("UPDATE realm_profiles SET updated_us = 'soon' WHERE name = 'a'")
            conn.execute("UPDATE realm_profiles SET revision = 'one' WHERE name = 'b'")
        with pytest.raises(DecodeError, match="soon"):
            await store.profiles.get("a")
        with pytest.raises(DecodeError, match="soon"):
            await store.profiles.list()
        with pytest.raises(DecodeError, match="'b'.*one"):
            await store.profiles.get("b")
        with pytest.raises(DecodeError, match="'b'.*one"):
            await store.profiles.update("b", sample("other"), 1)
        with pytest.raises(DecodeError, match="'b'.*one"):
            await store.profiles.delete("b", 1)
        with store._db.writer() as conn:
            assert conn.execute("SELECT revision FROM realm_profiles WHERE name = 'b'").fetchall() == [("one",)]

    async def test_concurrent_updates_have_one_winner(self, store):
        """Many tasks updating with the same expected revision: exactly one wins (revision
        2), the rest get CasConflict(actual=2)."""
        await store.profiles.create("hot", sample("base"))
        wins: list[StoredRealmProfile] = []
        losers: list[CasConflict] = []

        async def update(i: int) -> None:
            try:
                wins.append(await store.profiles.update("hot", sample(f"m{i}"), 1))
            except CasConflict as exc:
                losers.append(exc)

        async with trio.open_nursery() as n:
            for i in range(16):
                n.start_soon(update, i)
        assert len(wins) == 1 and wins[0].revision == 2
        assert len(losers) == 15 and all(e.actual == 2 for e in losers)
        assert await store.profiles.get("hot") == wins[0]

    async def test_concurrent_creates_have_one_winner(self, store):
        """Concurrent creates of one name: exactly one succeeds."""
        outcomes: list[object] = []

        async def create(i: int) -> None:
            try:
                outcomes.append(await store.profiles.create("p", sample(f"m{i}")))
            except CasConflict as exc:
                outcomes.append(exc)

        async with trio.open_nursery() as n:
            for i in range(8):
                n.start_soon(create, i)
        assert sum(isinstance(o, StoredRealmProfile) for o in outcomes) == 1
        assert sum(isinstance(o, CasConflict) for o in outcomes) == 7

    async def test_reopening_the_same_path_preserves_profiles(self, backend):
        """A file store keeps profiles, revisions, times and tombstones across reopen; a
        memory store starts empty."""
        async with backend.open() as s:
            kept = await s.profiles.create("kept", sample("a"))
            kept = await s.profiles.update("kept", sample("b"), 1)
            await s.profiles.create("gone", sample())
            await s.profiles.delete("gone", 1)
        async with backend.open() as s:
            if backend.persistent:
                assert await s.profiles.list() == [kept]
                assert (await s.profiles.create("gone", sample())).revision == 2
            else:
                assert await s.profiles.list() == []
                assert (await s.profiles.create("gone", sample())).revision == 1

    async def test_opening_a_nested_path_creates_its_directories(self, backend, clock):
        """A file store at a path whose directories do not exist creates them and works;
        a memory store has no path and works the same."""
        if backend.persistent:
            path = os.path.join(os.path.dirname(backend.path), "nested", "deeper", "realm.db")
            assert not os.path.exists(os.path.dirname(path))
        else:
            path = None
        async with open_store(path, clock=clock, durability="normal") as s:
            assert s.path == (os.path.abspath(path) if path else None)
            await s.profiles.create("p", sample())
        if path:
            assert os.path.isfile(path)
            async with open_store(path, clock=clock, durability="normal") as s:
                assert [p.name for p in await s.profiles.list()] == ["p"]
