"""The durable-consumer contract (``mob.consume``), SEMANTICS.md §8.3."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import trio
import trio.testing

from mobstore.actors import InvalidInput, NewMobEvent, PruneBlocked, StaleCursor, StoreClosed


def _ev(i: int = 0) -> NewMobEvent:
    return NewMobEvent("k", {"i": i})


class ConsumerContract:
    """Durable consumers resume from their persisted cursor; exactly once with commands."""

    async def test_first_start_delivers_history_then_live(self, store):
        """With no persisted cursor a consumer starts at the beginning, then follows live."""
        mob = store.mob("m")
        await mob.events.append_batch([_ev(i) for i in range(3)])
        seen: list[int] = []
        c = mob.consume("proj", lambda ev: seen.append(ev.cursor))
        await c.wait_cursor(3)
        await mob.events.append(_ev(3))
        await c.wait_cursor(4)
        assert seen == [1, 2, 3, 4]
        await c.stop()
        assert await mob.cursors.get("proj") == 4
        assert c.statistics().state == "stopped"

    async def test_resumes_from_persisted_cursor(self, store):
        """A consumer started again under the same name continues after its cursor."""
        mob = store.mob("m")
        seen: list[int] = []
        c = mob.consume("proj", lambda ev: seen.append(ev.cursor))
        await mob.events.append_batch([_ev(i) for i in range(3)])
        await c.wait_cursor(3)
        await c.stop()
        await mob.events.append_batch([_ev(i) for i in range(2)])
        c = mob.consume("proj", lambda ev: seen.append(ev.cursor))
        await c.wait_cursor(5)
        assert seen == [1, 2, 3, 4, 5]

    async def test_resumes_after_reopen(self, backend):
        """After the process closes the store and opens it again, the consumer resumes."""
        seen: list[int] = []
        async with backend.open() as s:
            c = s.mob("m").consume("proj", lambda ev: seen.append(ev.cursor))
            await s.mob("m").events.append_batch([_ev(i) for i in range(3)])
            await c.wait_cursor(3)
        async with backend.open() as s:
            await s.mob("m").events.append(_ev())
            c = s.mob("m").consume("proj", lambda ev: seen.append(ev.cursor))
            await c.wait_cursor(4 if backend.persistent else 1)
        if backend.persistent:
            assert seen == [1, 2, 3, 4]
        else:
            assert seen == [1, 2, 3, 1]

    async def test_start_positions(self, store):
        """after_cursor= starts after it; start="latest" skips the history."""
        mob = store.mob("m")
        await mob.events.append_batch([_ev(i) for i in range(4)])
        a: list[int] = []
        b: list[int] = []
        ca = mob.consume("a", lambda ev: a.append(ev.cursor), after_cursor=2)
        cb = mob.consume("b", lambda ev: b.append(ev.cursor), start="latest")
        await cb.wait_ready()
        await mob.events.append(_ev())
        await ca.wait_cursor(5)
        await cb.wait_cursor(5)
        assert (a, b) == ([3, 4, 5], [5])

    async def test_failing_handler_is_retried_then_succeeds(self, backend, autojump_clock):
        """A handler that raises is retried with backoff from the persisted cursor."""
        # (no idle sweeper: with autojump, virtual time would leap past the retry window)
        async with backend.open(idle_timeout=None) as store:
            await self._retried(store)

    async def _retried(self, store):
        mob = store.mob("m")
        seen: list[int] = []
        failures = [2]

        def handler(ev):
            if ev.cursor == 3 and failures[0]:
                failures[0] -= 1
                raise RuntimeError("transient")
            seen.append(ev.cursor)

        c = mob.consume("proj", handler)
        await mob.events.append_batch([_ev(i) for i in range(4)])
        await c.wait_cursor(4)
        assert seen[-2:] == [3, 4] and seen.count(3) == 1  # 1, 2 may repeat (at least once)
        assert sorted(set(seen)) == [1, 2, 3, 4]
        st = c.statistics()
        assert st.retries == 2 and "transient" in st.last_error

    async def test_handler_that_keeps_failing_is_reported(self, backend, autojump_clock):
        """Too many failures in the window stop the consumer as failed, error kept."""
        async with backend.open(idle_timeout=None) as store:
            await self._fails(store)

    async def _fails(self, store):
        mob = store.mob("m")
        await mob.events.append(_ev())

        def handler(ev):
            raise ValueError("always broken")

        c = mob.consume("proj", handler, max_retries=3)
        with pytest.raises(ValueError, match="always broken"):
            await c.wait_stopped()
        st = c.statistics()
        assert (st.state, st.retries) == ("failed", 3), st
        # Still listed, failed, with its error (until started again under its name).
        assert store.statistics().consumers == (st,) and mob.consumers() == (st,)
        assert "always broken" in st.last_error
        assert await mob.cursors.get("proj") == 0  # never advanced past the failing event
        again = mob.consume("proj", lambda ev: None)  # the name is free again
        await again.wait_cursor(1)
        assert [x.state for x in mob.consumers()] == ["running"]
        await again.stop()
        assert mob.consumers() == ()

    @pytest.mark.parametrize("error", [trio.ClosedResourceError, StoreClosed])
    async def test_a_handler_raising_a_closed_error_is_a_failure_not_a_stop(self, backend, autojump_clock, error):
        """ClosedResourceError or StoreClosed raised by the handler (the store is open) is
        retried and reported like any failure; it used to stop the consumer silently."""
        async with backend.open(idle_timeout=None) as store:
            mob = store.mob("m")
            await mob.events.append(_ev())

            def handler(ev):
                raise error("the handler's own channel")

            c = mob.consume("proj", handler, max_retries=2)
            with pytest.raises(error):
                await c.wait_stopped()
            st = c.statistics()
            assert (st.state, st.retries) == ("failed", 2) and "the handler's own channel" in st.last_error

    async def test_stale_persisted_cursor_is_an_error(self, store):
        """A persisted cursor past the log's last cursor stops the consumer with StaleCursor
        naming the persisted cursor (not the after_cursor argument, which was not given)."""
        mob = store.mob("m")
        await mob.events.append(_ev())
        await mob.cursors.reset(7, "proj")
        c = mob.consume("proj", lambda ev: None)
        with pytest.raises(StaleCursor) as info:
            await c.wait_stopped()
        assert info.value.field == "persisted cursor of consumer 'proj'"
        assert (info.value.after_cursor, info.value.latest_cursor) == (7, 1)

    async def test_stale_start_cursor_is_not_saved(self, store):
        """after_cursor= past the last cursor stops the first start with StaleCursor and
        pins nothing: a later start under the name, after the log grew past that cursor,
        begins at the start of the log instead of skipping the events in between."""
        mob = store.mob("m")
        await mob.events.append_batch([_ev(i) for i in range(3)])
        c = mob.consume("proj", lambda ev: None, after_cursor=10)
        with pytest.raises(StaleCursor) as info:
            await c.wait_stopped()
        assert (info.value.after_cursor, info.value.latest_cursor) == (10, 3)
        assert await mob.cursors.get("proj") is None
        await mob.events.append_batch([_ev(i) for i in range(12)])  # cursors 4..15
        seen: list[int] = []
        c = mob.consume("proj", lambda ev: seen.append(ev.cursor))
        await c.wait_cursor(15)
        await c.stop()
        assert seen == list(range(1, 16))
    async def test_wait_cursor_returns_when_nothing_is_left_to_handle(self, store):
        """wait_cursor(last_cursor()) (the documented idiom) returns after a clear, when no
        event is left to move the consumer's cursor (it used to wait for ever)."""
        mob = store.mob("m")
        await mob.events.append_batch([_ev(i) for i in range(3)])
        await mob.events.clear()
        seen: list[int] = []
        c = mob.consume("proj", lambda ev: seen.append(ev.cursor))
        with trio.fail_after(30):
            await c.wait_cursor(await mob.events.last_cursor())
        assert seen == [] and c.cursor == 0
        await mob.events.append(_ev())  # cursor 4
        with trio.fail_after(30):
            await c.wait_cursor(4)
        assert seen == [4]
        await c.stop()

    async def test_after_clear_receives_new_events(self, store):
        """After clear, a resumed consumer receives the new events (cursors never reused)."""
        mob = store.mob("m")
        seen: list[int] = []
        c = mob.consume("proj", lambda ev: seen.append(ev.cursor))
        await mob.events.append_batch([_ev(), _ev()])
        await c.wait_cursor(2)
        await c.stop()
        await mob.events.clear()
        await mob.events.append(_ev())
        c = mob.consume("proj", lambda ev: seen.append(ev.cursor))
        await c.wait_cursor(3)
        assert seen == [1, 2, 3]

    async def test_exactly_once_with_commands_under_crashes(self, backend, autojump_clock):
        """A consumer whose handler returns commands commits them with its cursor: after 100
        injected failures (handler crashes and actor crashes) every event is applied once."""
        rng = random.Random(7)
        budget = {"handler": 50, "actor": 50}

        def crash_hook(key, requests):
            # crash the mob actor on some groups that carry the consumer's commit
            if budget["actor"] and any(len(r.commands) == 1 and type(r.commands[0]).__name__ == "Atomic" for r in requests):
                if rng.random() < 0.5:
                    budget["actor"] -= 1
                    raise RuntimeError("injected actor crash")

        async with backend.open(crash_hook=crash_hook, idle_timeout=None, max_restarts=10**6) as s:
            mob = s.mob("m")
            n = 40
            await mob.events.append_batch([_ev(i) for i in range(n)])

            async def project(ev):
                if budget["handler"] and rng.random() < 0.5:
                    budget["handler"] -= 1
                    raise RuntimeError("injected handler crash")
                current = await mob.spec.get_spec()
                seen, rev = (current[0]["seen"], current[1]) if current else ([], 0)
                return [mob.cmd.put_spec({"seen": [*seen, ev.cursor]}, revision=rev)]

            c = mob.consume("proj", project, max_retries=10**6, backoff_base=0.001, backoff_max=0.01)
            while budget["handler"] or budget["actor"]:
                await c.wait_cursor(n)
                if budget["handler"] or budget["actor"]:  # replay from the start to spend the budget
                    await c.stop()
                    await mob.cursors.reset(0, "proj")
                    await mob.spec.delete_spec()
                    c = mob.consume("proj", project, max_retries=10**6, backoff_base=0.001, backoff_max=0.01)
            await c.wait_cursor(n)
            definition, _ = await mob.spec.get_spec()
            assert budget == {"handler": 0, "actor": 0}  # all 100 failures were injected
            assert definition["seen"] == list(range(1, n + 1))
            assert c.statistics().retries > 0

    async def test_prune_respects_consumers(self, store, clock):
        """prune refuses to remove events a consumer has not processed (naming it), and
        removes them with force=True."""
        mob = store.mob("m")
        t_old = clock.now - timedelta(days=1)
        await mob.events.append_batch([NewMobEvent("old", timestamp=t_old) for _ in range(4)])
        await mob.cursors.reset(2, "slow")
        await mob.cursors.reset(4, "fast")
        with pytest.raises(PruneBlocked) as info:
            await mob.events.prune(clock.now)
        assert (info.value.consumer, info.value.consumer_cursor) == ("slow", 2)
        assert len(await mob.events.replay_all()) == 4
        await mob.cursors.set(3, "slow")  # exactly one event behind: event 4 is still held
        with pytest.raises(PruneBlocked) as info:
            await mob.events.prune(clock.now)
        assert (info.value.consumer, info.value.consumer_cursor) == ("slow", 3)
        assert len(await mob.events.replay_all()) == 4
        await mob.cursors.set(4, "slow")
        assert await mob.events.prune(clock.now) == 4
        await mob.events.append(NewMobEvent("old", timestamp=t_old))
        assert await mob.events.prune(clock.now, force=True) == 1

    @pytest.mark.parametrize(
        "option, value, words",
        [
            ("max_retries", "x", "an int >= 0"),
            ("max_retries", -1, "an int >= 0"),
            ("retry_window", "w", "> 0"),
            ("retry_window", 0, "> 0"),
            ("backoff_base", -1.0, ">= 0"),
            ("backoff_max", float("nan"), ">= 0"),
            ("backoff_max", True, ">= 0"),
            ("retries", 3, "not an option of consume"),
        ],
    )
    async def test_bad_supervision_options_are_invalid_input(self, store, option, value, words):
        """A bad supervision option fails the consume call, naming it; it used to be taken and
        crash the store's nursery at the handler's first failure. Nothing is started."""
        mob = store.mob("m")
        with pytest.raises(InvalidInput, match=words) as info:
            mob.consume("proj", lambda ev: None, **{option: value})
        assert info.value.field == option
        assert mob.consumers() == ()
        mob.consume("proj", lambda ev: None, max_retries=0, retry_window=1, backoff_base=0, backoff_max=0.5)

    async def test_wait_cursor_is_a_checkpoint_and_checks_its_argument(self, store):
        """wait_cursor is a checkpoint also when the cursor is already reached; a bad cursor
        is InvalidInput."""
        mob = store.mob("m")
        await mob.events.append(_ev())
        c = mob.consume("proj", lambda ev: None)
        await c.wait_cursor(1)
        with trio.testing.assert_checkpoints():
            await c.wait_cursor(1)
        with pytest.raises(InvalidInput):
            await c.wait_cursor("1")

    async def test_statistics_and_duplicate_names(self, store):
        """Statistics show cursor and lag; one running consumer per name and mob."""
        mob = store.mob("m")
        gate = trio.Event()

        async def slow(ev):
            if ev.cursor == 2:
                await gate.wait()

        c = mob.consume("proj", slow)
        with pytest.raises(InvalidInput, match="already running"):
            mob.consume("proj", slow)
        await mob.events.append_batch([_ev() for _ in range(5)])
        await c.wait_cursor(1)
        await trio.testing.wait_all_tasks_blocked()
        [st] = store.statistics().consumers
        assert (st.name, st.cursor, st.lag, st.state) == ("proj", 1, 4, "running")
        assert mob.consumers() == (st,) and store.mob("other").consumers() == ()
        gate.set()
        await c.wait_cursor(5)
        assert c.statistics().lag == 0
