"""The labels contract (SEMANTICS.md §8.1: upstream mobkit's tests plus the port's rules),
against any backend."""

from __future__ import annotations

import enum
import uuid

import pytest

from mobstore.actors import InvalidInput, MetadataScope


class _Team(str, enum.Enum):
    RED = "red"


class LabelsContract:
    """``mob.labels``: mob- and run-scoped string-to-string labels, persisted."""

    async def test_set_and_get_mob_labels(self, store):
        """set then get round-trips (sorted by key)."""
        labels = store.mob("mob-a").labels
        await labels.set({"repo": "agents", "env": "dev"})
        got = await labels.get()
        assert got == {"env": "dev", "repo": "agents"} and list(got) == ["env", "repo"]

    async def test_set_replaces_rather_than_merges(self, store):
        """{a:1, b:2} then {a:9} gives {a:9}."""
        labels = store.mob("mob-a").labels
        await labels.set({"a": "1", "b": "2"})
        await labels.set({"a": "9"})
        assert await labels.get() == {"a": "9"}

    async def test_empty_set_clears_entry(self, store):
        """An empty set clears: get is {} and list no longer has the scope."""
        labels = store.mob("mob-a").labels
        await labels.set({"k": "v"})
        await labels.set({}, run_id="run-1")
        await labels.set({})
        assert await labels.get() == {} and await labels.list() == []

    async def test_delete_returns_previous(self, store):
        """delete returns the previous labels; again it returns None; get gives {}."""
        labels = store.mob("mob-a").labels
        await labels.set({"k": "v"}, run_id="run-1")
        assert await labels.delete(run_id="run-1") == {"k": "v"}
        assert await labels.delete(run_id="run-1") is None
        assert await labels.get(run_id="run-1") == {}
        assert await labels.delete() is None

    async def test_delete_one_run_leaves_the_others(self, store):
        """Deleting one run's labels leaves the other runs and the mob scope alone."""
        labels = store.mob("mob-a").labels
        await labels.set({"m": "1"})
        await labels.set({"r": "1"}, run_id="run-1")
        await labels.set({"r": "2"}, run_id="run-2")
        await labels.delete(run_id="run-1")
        assert await labels.get() == {"m": "1"}
        assert await labels.get(run_id="run-2") == {"r": "2"}
        await labels.delete()
        assert await labels.get(run_id="run-2") == {"r": "2"}

    async def test_list_returns_mob_and_run_entries_of_that_mob_only(self, store):
        """list for mob-a: its mob scope, then its runs by run id; mob-b's entries (even
        with the same run id) never appear."""
        a, b = store.mob("mob-a").labels, store.mob("mob-b").labels
        await a.set({"trace": "2"}, run_id="run-2")
        await a.set({"env": "dev"})
        await a.set({"trace": "1"}, run_id="run-1")
        await b.set({"trace": "xyz"}, run_id="run-1")
        await b.set({"env": "prod"})
        assert await a.list() == [
            (MetadataScope("mob-a"), {"env": "dev"}),
            (MetadataScope("mob-a", "run-1"), {"trace": "1"}),
            (MetadataScope("mob-a", "run-2"), {"trace": "2"}),
        ]
        assert [s for s, _ in await b.list()] == [MetadataScope.mob("mob-b"), MetadataScope.run("mob-b", "run-1")]

    async def test_run_scope_distinguishes_mobs(self, store):
        """Equal run ids in different mobs are different scopes."""
        a, b = store.mob("mob-a").labels, store.mob("mob-b").labels
        await a.set({"k": "a"}, run_id="run-1")
        await b.set({"k": "b"}, run_id="run-1")
        assert await a.get(run_id="run-1") == {"k": "a"}
        assert await b.get(run_id="run-1") == {"k": "b"}

    @pytest.mark.parametrize(
        "labels, match",
        [
            ({"k": 1}, "the value is a int"),
            ({"k": None}, "the value is a NoneType"),
            ({1: "v"}, "key 1 is a int"),
            ({"": "v"}, "keys must not be empty"),
            (None, "is required"),
            (["k", "v"], "got list"),
            ("k=v", "got str"),
            ({"k" * 257: "v"}, "longer than 256 bytes"),
            ({"é" * 129: "v"}, "longer than 256 bytes"),
            ({"k": "v" * 4097}, "longer than 4096 bytes"),
            ({f"k{i}": "v" for i in range(257)}, "the limit is 256"),
            # A lone surrogate is refused also in a key or value long enough for the byte
            # length check, which encodes it (it used to raise a bare UnicodeEncodeError).
            ({"k" * 100 + "\ud800": "v"}, "lone surrogate"),
            ({"k": "v" * 1100 + "\ud800"}, "lone surrogate"),
            # A str subclass (a StrEnum member) is not stored as its str(): refused.
            ({_Team.RED: "v"}, "not a plain str"),
            ({"team": _Team.RED}, "not a plain str"),
        ],
    )
    async def test_bad_labels_are_invalid_input(self, store, labels, match):
        """Non-string keys or values, empty keys, None, and sets beyond the limits are
        InvalidInput; nothing is written."""
        mob = store.mob("mob-a").labels
        await mob.set({"keep": "me"})
        with pytest.raises(InvalidInput, match=match):
            await mob.set(labels)
        with pytest.raises(InvalidInput, match=match):
            await mob.set(labels, run_id="run-1")
        assert await mob.list() == [(MetadataScope("mob-a"), {"keep": "me"})]

    async def test_limits_are_inclusive(self, store):
        """256 entries, 256-byte keys and 4096-byte values (and empty values) are fine."""
        labels = store.mob("mob-a").labels
        big = {f"{i:0>256}": "v" * 4096 for i in range(256)}
        big["x"] = ""
        del big[f"{0:0>256}"]
        await labels.set(big)
        assert await labels.get() == dict(sorted(big.items()))

    @pytest.mark.parametrize("run_id", ["", "x\x00y", "r" * 257, 7])
    async def test_bad_run_ids_are_invalid_input(self, store, run_id):
        """An empty, over-long, NUL-bearing or non-string run id is InvalidInput naming
        run_id, for every operation."""
        labels = store.mob("mob-a").labels
        for call in (lambda: labels.set({"k": "v"}, run_id), lambda: labels.get(run_id), lambda: labels.delete(run_id)):
            with pytest.raises(InvalidInput) as info:
                await call()
            assert info.value.field == "run_id"
        assert await labels.list() == []

    async def test_uuid_run_ids_are_canonical(self, store):
        """A run's UUID, its lowercase and its uppercase spelling address the same labels."""
        labels, run = store.mob("mob-a").labels, uuid.uuid4()
        await labels.set({"k": "v"}, run_id=run)
        assert await labels.get(str(run).upper()) == {"k": "v"}
        assert await labels.list() == [(MetadataScope("mob-a", str(run)), {"k": "v"})]
        assert MetadataScope.run("mob-a", str(run).upper()) == MetadataScope("mob-a", str(run))

    def test_scope_order_is_mob_first(self):
        """Every mob scope sorts before every run scope, then by mob id and run id."""
        scopes = [MetadataScope("b", "1"), MetadataScope("b"), MetadataScope("a", "2"), MetadataScope("a", "1"), MetadataScope("a")]
        assert sorted(scopes) == [
            MetadataScope("a"),
            MetadataScope("b"),
            MetadataScope("a", "1"),
            MetadataScope("a", "2"),
            MetadataScope("b", "1"),
        ]
        assert MetadataScope("a", "1").is_run and not MetadataScope("a").is_run

    async def test_returned_labels_are_copies(self, store):
        """Changing a passed or returned dict changes nothing stored."""
        labels = store.mob("mob-a").labels
        mine = {"k": "v"}
        await labels.set(mine)
        mine["k"] = "changed"
        (await labels.get())["k"] = "changed"
        assert await labels.get() == {"k": "v"}

    async def test_labels_survive_restart(self, backend):
        """Labels are persisted with the mob (upstream kept them in memory only)."""
        async with backend.open() as s:
            await s.mob("mob-a").labels.set({"env": "dev"})
            await s.mob("mob-a").labels.set({"trace": "1"}, run_id="run-1")
        async with backend.open() as s:
            got = await s.mob("mob-a").labels.list()
            if backend.persistent:
                assert got == [(MetadataScope("mob-a"), {"env": "dev"}), (MetadataScope("mob-a", "run-1"), {"trace": "1"})]
            else:
                assert got == []
