"""The event-log contract (SEMANTICS.md §2.7), against any backend."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import trio

from mobstore.actors import InvalidInput, MobEvent, NewMobEvent


def _ev(kind: str = "k", **payload: object) -> NewMobEvent:
    return NewMobEvent(kind, dict(payload))


class EventLogContract:
    """``mob.events``: cursors, batches, polling, replay, clear and prune."""

    async def test_first_append_is_cursor_1_and_increments(self, store):
        """The first append returns cursor 1; later appends return 2, 3, ... ."""
        log = store.mob("m").events
        got = [(await log.append(_ev(i=i))).cursor for i in range(3)]
        assert got == [1, 2, 3]

    async def test_append_returns_the_stored_event(self, store, clock):
        """The returned event carries the store clock's time, the mob, kind and payload."""
        ev = await store.mob("m").events.append(NewMobEvent("meerkat_spawned", {"meerkat_id": "a"}))
        assert ev == MobEvent(1, clock.now, "m", "meerkat_spawned", {"meerkat_id": "a"})
        assert await store.mob("m").events.replay_all() == [ev]

    async def test_timestamp_override_is_kept(self, store, clock):
        """An explicit timestamp is stored as given (back-dating is allowed)."""
        t = clock.now - timedelta(days=3)
        ev = await store.mob("m").events.append(NewMobEvent("k", timestamp=t))
        assert ev.timestamp == t
        assert (await store.mob("m").events.replay_all())[0].timestamp == t

    async def test_batch_is_contiguous_in_input_order(self, store):
        """append_batch returns contiguous cursors in input order."""
        log = store.mob("m").events
        await log.append(_ev())
        got = await log.append_batch([_ev("a"), _ev("b"), _ev("c")])
        assert [(e.cursor, e.kind) for e in got] == [(2, "a"), (3, "b"), (4, "c")]

    async def test_empty_batch_changes_nothing(self, store):
        """append_batch([]) returns [] and does not move the cursor."""
        log = store.mob("m").events
        assert await log.append_batch([]) == []
        assert (await log.append(_ev())).cursor == 1

    async def test_bad_event_in_batch_writes_nothing(self, store):
        """A batch with one bad payload fails whole, naming the field; nothing is stored."""
        log = store.mob("m").events
        with pytest.raises(InvalidInput, match="payload") as info:
            await log.append_batch([_ev("ok"), NewMobEvent("bad", {"x": float("nan")})])
        assert "nan" in str(info.value)
        assert info.value.field == "news[1].payload['x']"  # which event of the batch
        assert await log.replay_all() == []
        assert (await log.append(_ev())).cursor == 1

    @pytest.mark.parametrize(
        "payload, field",
        [
            ({1: "int key"}, "payload"),
            ({"x": object()}, "payload['x']"),
            ({"x": [1, {"y": float("inf")}]}, "payload['x'][1]['y']"),
            ({"x": 2**64}, "payload['x']"),
        ],
    )
    async def test_non_json_payload_is_invalid_input(self, store, payload, field):
        """A payload that is not plain JSON is InvalidInput naming the path; nothing is stored."""
        with pytest.raises(InvalidInput) as info:
            await store.mob("m").events.append(NewMobEvent("k", payload))
        assert info.value.field == field
        assert await store.mob("m").events.replay_all() == []

    async def test_oversized_payload_is_invalid_input(self, store):
        """A payload encoding to more than MAX_JSON_BYTES is refused."""
        from mobstore.storage import MAX_JSON_BYTES

        with pytest.raises(InvalidInput, match="more than"):
            await store.mob("m").events.append(_ev(blob="x" * MAX_JSON_BYTES))

    async def test_bad_records_and_ids(self, store):
        """Wrong record types, empty kinds, bad mob ids and another mob's id are refused."""
        with pytest.raises(InvalidInput, match="NewMobEvent"):
            await store.mob("m").events.append({"kind": "k"})  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="kind"):
            NewMobEvent("")
        with pytest.raises(InvalidInput, match="payload"):
            NewMobEvent("k", ["not", "a", "dict"])  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="naive"):
            NewMobEvent("k", timestamp=datetime(2026, 1, 1))
        for bad in ["", "a\x00b", "x" * 257, 7]:
            with pytest.raises(InvalidInput, match="mob_id"):
                store.mob(bad)
        with pytest.raises(InvalidInput, match="another mob") as info:
            await store.mob("m").events.append(NewMobEvent("k", mob_id="other"))
        assert info.value.field == "new.mob_id"
        with pytest.raises(InvalidInput, match="another mob") as info:
            await store.mob("m").events.append_batch([_ev(), NewMobEvent("k", mob_id="other")])
        assert info.value.field == "news[1].mob_id"
        assert await store.mob("m").events.replay_all() == []

    async def test_poll(self, store):
        """poll(k, n) returns up to n events with cursor > k, ascending; limit 0 is []."""
        log = store.mob("m").events
        await log.append_batch([_ev(i=i) for i in range(5)])
        assert [e.cursor for e in await log.poll(0, 10)] == [1, 2, 3, 4, 5]
        assert [e.cursor for e in await log.poll(2, 2)] == [3, 4]
        assert await log.poll(2, 0) == []
        assert await log.poll(99, 10) == []
        for args in [(-1, 1), (0, -1), (0, 1.5), ("0", 1)]:
            with pytest.raises(InvalidInput):
                await log.poll(*args)

    async def test_mobs_are_isolated(self, store):
        """Two mobs have independent cursor sequences and never see each other's events."""
        a, b = store.mob("a").events, store.mob("b").events
        await a.append(_ev("a1"))
        await b.append(_ev("b1"))
        await a.append(_ev("a2"))
        assert [(e.cursor, e.kind) for e in await a.replay_all()] == [(1, "a1"), (2, "a2")]
        assert [(e.cursor, e.kind) for e in await b.replay_all()] == [(1, "b1")]

    async def test_prune_is_strict_and_counts(self, store, clock):
        """prune(t) removes exactly the events with timestamp < t (also back-dated ones in
        the middle) and returns the count; events at exactly t survive."""
        log = store.mob("m").events
        t0 = clock.now
        await log.append(_ev("old"))  # t0
        clock.advance(10)
        await log.append(NewMobEvent("backdated", timestamp=t0 - timedelta(seconds=1)))
        await log.append(_ev("new"))  # t0 + 10
        assert await log.prune(t0) == 1
        assert [e.kind for e in await log.replay_all()] == ["old", "new"]
        assert await log.prune(t0 + timedelta(seconds=10)) == 1
        assert [e.kind for e in await log.replay_all()] == ["new"]

    async def test_cursors_never_reused_after_clear_and_prune(self, store, clock):
        """After clear or prune of the newest events, the next cursor is still greater than
        every cursor ever returned."""
        log = store.mob("m").events
        await log.append_batch([_ev() for _ in range(3)])
        await log.clear()
        assert await log.replay_all() == []
        assert await log.last_cursor() == 3  # the last ever assigned, also after clear
        assert (await log.append(_ev())).cursor == 4
        clock.advance(5)
        assert await log.prune(clock.now + timedelta(seconds=1)) == 1
        assert await log.last_cursor() == 4
        assert (await log.append(_ev())).cursor == 5
        assert await log.last_cursor() == 5

    async def test_data_and_cursors_survive_reopen(self, backend):
        """A file store keeps events and the high-water mark across close and reopen."""
        async with backend.open() as s:
            await s.mob("m").events.append_batch([_ev() for _ in range(3)])
            await s.mob("m").events.clear()
            await s.mob("n").events.append(_ev("n1"))
        async with backend.open() as s:
            if backend.persistent:
                assert (await s.mob("m").events.append(_ev())).cursor == 4
                assert [e.kind for e in await s.mob("n").events.replay_all()] == ["n1"]
            else:
                assert (await s.mob("m").events.append(_ev())).cursor == 1
                assert await s.mob("n").events.replay_all() == []

    async def test_concurrent_appends_are_gapless_per_mob(self, store):
        """Many tasks appending to a few mobs: each mob's cursors are exactly 1..n."""
        async def writer(i: int) -> None:
            for j in range(10):
                await store.mob(f"m{i % 3}").events.append(_ev(w=i, j=j))

        async with trio.open_nursery() as n:
            for i in range(12):
                n.start_soon(writer, i)
        for m in range(3):
            evs = await store.mob(f"m{m}").events.replay_all()
            assert [e.cursor for e in evs] == list(range(1, 41))
            # per-writer order is kept
            for w in range(m, 12, 3):
                assert [e.payload["j"] for e in evs if e.payload["w"] == w] == list(range(10))

    async def test_wire_form_round_trips(self, store):
        """to_wire gives the upstream {"type": kind, **payload} form; from_wire reads it."""
        ev = await store.mob("m").events.append(NewMobEvent("peers_wired", {"a": "x", "b": "y"}))
        wire = ev.to_wire()
        assert wire["kind"] == {"type": "peers_wired", "a": "x", "b": "y"}
        assert wire["timestamp"].endswith("Z")
        assert MobEvent.from_wire(wire) == ev

    async def test_timestamps_are_utc(self, store):
        """Stored timestamps come back timezone-aware in UTC."""
        t = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
        ev = await store.mob("m").events.append(NewMobEvent("k", timestamp=t))
        [back] = await store.mob("m").events.replay_all()
        assert back.timestamp == t and back.timestamp.tzinfo == timezone.utc and ev == back
