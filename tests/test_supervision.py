"""The actor kernel and the supervisor: request/reply, crashes, restarts, escalation,
passivation. Virtual time (MockClock) drives backoff and idleness: no real sleeps.

With ``autojump_clock``, virtual time also jumps while a commit runs in its worker thread (all
trio tasks are blocked then), so tests that are not about idleness pass ``idle_timeout=None``.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mobstore.actors import ActorCrashed, InvalidInput, NewMobEvent, StoreClosed, open_store


class CrashOn:
    """A crash hook: raises inside the actor for the chosen keys while ``armed``."""

    def __init__(self, key: str, times: int = 1) -> None:
        self.key = key
        self.times = times
        self.fired = 0

    def __call__(self, key, requests):
        if key == self.key and self.fired < self.times:
            self.fired += 1
            raise RuntimeError(f"injected crash #{self.fired}")


def ev(i: int = 0) -> NewMobEvent:
    return NewMobEvent("k", {"i": i})


async def test_request_reply_and_statistics():
    """A call is answered with the command's result; the actor counts what it handled."""
    async with open_store() as store:
        mob = store.mob("a")
        assert mob.statistics() is None  # not started before first use
        await mob.events.append(ev())
        await mob.events.append_batch([ev(), ev()])
        await trio.testing.wait_all_tasks_blocked()  # the actor books a group after its callers resume
        stats = mob.statistics()
        assert (stats.key, stats.state, stats.handled, stats.failed, stats.restarts) == ("mob:a", "running", 2, 0, 0)
        assert stats.queue_depth == 0 and stats.queue_peak >= 1
        s = store.statistics()
        assert s.actors_alive == 1 and s.committer.requests == 2 and s.committer.commits >= 1


async def test_crash_answers_in_flight_with_actor_crashed_and_restarts(autojump_clock):
    """Requests the crashing incarnation held get ActorCrashed (not applied); the actor is
    restarted and later calls succeed, resuming the cursor from the database."""
    hook = CrashOn("mob:a")
    async with open_store(crash_hook=hook, idle_timeout=None) as store:
        log = store.mob("a").events
        with pytest.raises(ActorCrashed) as info:
            await log.append(ev(1))
        assert info.value.actor == "mob:a" and not info.value.escalated
        assert "injected crash #1" in str(info.value)
        assert (await log.append(ev(2))).cursor == 1  # the crashed request was not applied
        assert [e.payload["i"] for e in await log.replay_all()] == [2]
        assert store.mob("a").statistics().restarts == 1
        assert store.statistics().restarts == 1


async def test_queued_requests_are_served_by_the_next_incarnation(autojump_clock):
    """Requests still in the mailbox when the actor crashes are served after the restart,
    in order."""
    hook = CrashOn("mob:a")
    async with open_store(crash_hook=hook, max_batch=1, idle_timeout=None) as store:
        log = store.mob("a").events
        outcomes: dict[int, object] = {}

        async def call(i):
            try:
                outcomes[i] = (await log.append(ev(i))).cursor
            except ActorCrashed as exc:
                outcomes[i] = exc

        async with trio.open_nursery() as n:
            for i in range(4):
                n.start_soon(call, i)
                await trio.testing.wait_all_tasks_blocked()
        crashed = [i for i, o in outcomes.items() if isinstance(o, ActorCrashed)]
        assert len(crashed) == 1
        served = sorted(o for o in outcomes.values() if isinstance(o, int))
        assert served == [1, 2, 3]
        assert [e.payload["i"] for e in await log.replay_all()] == sorted(set(range(4)) - set(crashed))


async def test_escalation_after_too_many_crashes(autojump_clock):
    """Crashing more than max_restarts times within the window escalates: the call whose
    crash escalates, and every queued and later call for that actor, get
    ActorCrashed(escalated=True) (the escalating one used to be told "retry it"); other
    actors carry on."""
    hook = CrashOn("mob:bad", times=10**6)
    async with open_store(crash_hook=hook, max_restarts=2, restart_window=60, idle_timeout=None) as store:
        bad = store.mob("bad").events
        errors = []
        for _ in range(3):
            with pytest.raises(ActorCrashed) as info:
                await bad.append(ev())
            errors.append(info.value.escalated)
        assert errors == [False, False, True]
        with pytest.raises(ActorCrashed, match="crashed too often") as info:
            await bad.append(ev())
        assert info.value.escalated and hook.fired == 3
        assert store.statistics().escalated == ("mob:bad",)
        assert store.mob("bad").statistics().state == "escalated"
        assert (await store.mob("good").events.append(ev())).cursor == 1


async def test_revive_gives_an_escalated_actor_a_fresh_start(autojump_clock):
    """``store.revive(key)`` forgets an escalated actor: the next call starts a new one with
    its restart count at zero, and what was stored before stays. Keys that are not escalated
    are left alone; a blocked sender to the escalated mailbox moves to the new actor."""
    hook = CrashOn("mob:bad", times=3)
    async with open_store(crash_hook=hook, max_restarts=1, restart_window=60, idle_timeout=None) as store:
        bad = store.mob("bad")
        hook.fired = 3  # not armed: one good append first
        assert (await bad.events.append(ev(0))).cursor == 1
        hook.fired = 0
        for _ in range(2):
            with pytest.raises(ActorCrashed):
                await bad.events.append(ev())
        with pytest.raises(ActorCrashed, match=r"store\.revive\('mob:bad'\)") as info:
            await bad.events.append(ev())
        assert info.value.escalated and store.statistics().escalated == ("mob:bad",)
        assert store.revive("mob:good") is False  # never started
        await store.mob("good").events.append(ev())
        assert store.revive("mob:good") is False  # running
        assert store.mob("good").statistics().state == "running"
        with pytest.raises(ActorCrashed):  # still escalated: nothing restarted it by itself
            await bad.events.append(ev())

        assert store.revive("mob:bad") is True
        assert store.statistics().escalated == () and bad.statistics() is None
        assert store.revive("mob:bad") is False  # already revived
        # Two crashes escalated it; the hook has one crash left, which the new actor takes
        # as a plain restart (its own count starts at zero), then it serves.
        with pytest.raises(ActorCrashed) as info:
            await bad.events.append(ev(1))
        assert not info.value.escalated
        assert (await bad.events.append(ev(2))).cursor == 2
        stats = bad.statistics()
        assert (stats.state, stats.restarts) == ("running", 1)
        assert [e.payload["i"] for e in await bad.events.replay_all()] == [0, 2]
        with pytest.raises(InvalidInput, match="actor"):
            store.revive(None)
    with pytest.raises(StoreClosed):
        store.revive("mob:bad")


async def test_a_sender_blocked_on_an_escalating_mailbox_lands_on_the_revived_actor(autojump_clock):
    """A caller blocked on a full mailbox when the actor escalates gets the escalation; after
    revive, new callers reach a fresh actor (backpressure never strands a request)."""
    hook = CrashOn("mob:a", times=1)
    async with open_store(crash_hook=hook, max_restarts=0, mailbox_size=1, max_batch=1, idle_timeout=None) as store:
        log = store.mob("a").events
        outcomes: list[object] = []

        async def call(i):
            try:
                outcomes.append((await log.append(ev(i))).cursor)
            except ActorCrashed as exc:
                outcomes.append(("crashed", exc.escalated))

        async with trio.open_nursery() as n:
            for i in range(3):
                n.start_soon(call, i)
        assert outcomes == [("crashed", True)] * 3  # max_restarts=0: the first crash escalates
        assert store.revive("mob:a")
        assert (await log.append(ev(9))).cursor == 1


async def test_crashes_outside_the_window_are_forgotten(autojump_clock):
    """The restart-intensity window forgets old crashes: spaced-out crashes never escalate."""
    hook = CrashOn("mob:a", times=10**6)
    async with open_store(crash_hook=hook, max_restarts=1, restart_window=5, idle_timeout=None) as store:
        for _ in range(4):
            with pytest.raises(ActorCrashed) as info:
                await store.mob("a").events.append(ev())
            assert not info.value.escalated
            await trio.sleep(10)  # virtual time: let the window pass
        assert store.statistics().escalated == ()


async def test_backoff_grows_exponentially(autojump_clock):
    """Each crash within the window doubles the restart delay (virtual time)."""
    hook = CrashOn("mob:a", times=3)
    async with open_store(crash_hook=hook, backoff_base=1.0, backoff_max=100, max_restarts=5, idle_timeout=None) as store:
        log = store.mob("a").events
        t0 = trio.current_time()
        for _ in range(3):
            with pytest.raises(ActorCrashed):
                await log.append(ev())
        await log.append(ev())
        # restarts after 1 + 2 + 4 seconds of backoff
        assert 7 <= trio.current_time() - t0 < 8


async def test_idle_actor_is_passivated_and_reactivated(autojump_clock):
    """An actor idle for idle_timeout stops (found by a sweep every idle_timeout / 4); the next
    call starts a fresh one that resumes from the database."""
    async with open_store(idle_timeout=40) as store:
        log = store.mob("a").events
        await log.append(ev())
        await trio.sleep(39)
        assert store.mob("a").statistics() is not None
        await trio.sleep(11)
        assert store.mob("a").statistics() is None
        assert store.statistics().passivated == 1
        assert (await log.append(ev())).cursor == 2
        assert store.statistics().actors_started == 2


class _SweepAfterSend(trio.abc.Instrument):
    """Runs the idle sweep right after the step of ``task`` in which its append handed the
    request to the parked actor, before the actor ran (the race of a sweep falling in the
    same scheduler batch as a send)."""

    def __init__(self, supervisor, task, key: str) -> None:
        self.supervisor, self.task, self.key, self.fired = supervisor, task, key, False

    def after_task_step(self, task) -> None:
        slot = self.supervisor._slots.get(self.key)
        if task is not self.task or self.fired or slot is None:
            return
        stats = slot.receive.statistics()
        if not slot.busy and stats.current_buffer_used == 0 and stats.tasks_waiting_receive == 0:
            self.fired = True  # handed over, the actor has not run yet
            self.supervisor._sweep(float("inf"))


async def test_a_sweep_racing_a_send_does_not_lose_the_commits_wake_ups(mock_clock):
    """An idle sweep that lands after a request was handed to the parked actor but before
    the actor ran must not passivate it: before, it cancelled the actor in its wait for the
    commit, so ``committed`` never ran and a waiter on that cursor hung for ever. (A clock
    that does not jump: no sweep but the forced one.)"""
    async with open_store(idle_timeout=1000) as store:
        log = store.mob("m").events
        await log.append(ev())
        woken = trio.Event()

        async def waiter() -> None:
            await log.wait_cursor(2)
            woken.set()

        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            # Until the waiter is parked on the tail (it reads the head in a worker thread
            # first, which wait_all_tasks_blocked counts as blocked), then the actor in receive().
            while "m" not in store._tails or store._tails["m"]._moved.statistics().tasks_waiting == 0:
                await trio.testing.wait_all_tasks_blocked()
                await trio.lowlevel.checkpoint()
            await trio.testing.wait_all_tasks_blocked()
            inst = _SweepAfterSend(store._supervisor, trio.lowlevel.current_task(), "mob:m")
            trio.lowlevel.add_instrument(inst)
            try:
                assert (await log.append(ev())).cursor == 2
            finally:
                trio.lowlevel.remove_instrument(inst)
            await trio.testing.wait_all_tasks_blocked()
            if not woken.is_set():
                n.cancel_scope.cancel()
        assert inst.fired, "the race was not set up"
        assert woken.is_set(), "the commit of cursor 2 never woke its waiter"
        assert store.statistics().passivated == 0


async def test_mailbox_is_bounded(autojump_clock):
    """A flooded actor makes callers wait in send (backpressure), never grows its queue
    beyond mailbox_size."""
    async with open_store(mailbox_size=4, max_batch=1, idle_timeout=None) as store:
        done = []

        async def call(i):
            await store.mob("a").events.append(ev(i))
            done.append(i)

        async with trio.open_nursery() as n:
            for i in range(40):
                n.start_soon(call, i)
            await trio.testing.wait_all_tasks_blocked()
            assert store.mob("a").statistics().queue_depth <= 4
        assert len(done) == 40
        assert [e.cursor for e in await store.mob("a").events.replay_all()] == list(range(1, 41))


@pytest.mark.parametrize(
    "option, value",
    [("mailbox_size", 0), ("max_batch", -1), ("idle_timeout", 0), ("backoff_base", -1),
     ("max_restarts", 1.5), ("restart_window", "10"), ("no_such_option", 1),
     ("group_commit", "off"), ("wal_batching", 0)],
)
async def test_bad_tuning_is_invalid_input(option, value):
    """A bad or unknown open_store option is InvalidInput naming it; nothing is opened."""
    from mobstore.actors import InvalidInput

    with pytest.raises(InvalidInput, match=option):
        async with open_store(**{option: value}):
            pass  # pragma: no cover


async def test_subscribers_survive_actor_crash_and_passivation(autojump_clock):
    """A live subscription keeps receiving events across an actor crash and a passivation:
    the committed head it waits on belongs to the store, not to the actor incarnation."""
    hook = CrashOn("mob:a")
    async with open_store(crash_hook=hook, idle_timeout=40) as store:
        log = store.mob("a").events
        got: list[int] = []

        async def reader():
            async for e in log.subscribe():
                got.append(e.cursor)
                if len(got) == 2:
                    return

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            with pytest.raises(ActorCrashed):
                await log.append(ev(0))
            await log.append(ev(1))  # served by the restarted actor
            await trio.sleep(100)  # idle: passivated
            assert store.statistics().passivated == 1
            await log.append(ev(2))  # a fresh actor
        assert got == [1, 2]


async def test_a_mob_actor_starts_without_reading_and_tails_still_follow(tmp_path, monkeypatch):
    """Starting (or restarting) a mob actor reads nothing: cursors come from the database
    inside the commit, and a tail learns the durable head with its own read. After a reopen,
    appends continue the cursors and a waiter and a subscriber opened before the first
    append of this process see it."""
    path = tmp_path / "s.db"
    async with open_store(path) as store:
        for i in range(3):
            await store.mob("a").events.append(ev(i))
    async with open_store(path, crash_hook=CrashOn("mob:a")) as store:
        reads: list[object] = []
        real_read = store._read

        async def counting_read(fn, *args):
            reads.append(fn)
            return await real_read(fn, *args)

        monkeypatch.setattr(store, "_read", counting_read)
        log = store.mob("a").events
        with pytest.raises(ActorCrashed):  # the first incarnation crashes on its first group
            await log.append(ev(-1))
        assert (await log.append(ev(3))).cursor == 4  # served by the restarted incarnation
        assert reads == []  # neither incarnation read anything to start
        got: list[int] = []

        async def subscriber():
            async for e in log.subscribe(after_cursor=4):
                got.append(e.cursor)
                return

        async with trio.open_nursery() as n:
            n.start_soon(subscriber)
            n.start_soon(log.wait_cursor, 5)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            assert (await log.append(ev(4))).cursor == 5
        assert got == [5]


async def test_queue_peak_counts_what_a_full_batch_left_behind():
    """queue_peak is the deepest the mailbox was, also when the actor takes max_batch at a
    time (it used to report the batch size: 1 here)."""
    async with open_store(max_batch=1, idle_timeout=None) as store:
        mob = store.mob("m")
        await mob.events.append(ev())
        async with trio.open_nursery() as n:
            for i in range(10):
                n.start_soon(mob.events.append, ev(i))
            await trio.testing.wait_all_tasks_blocked()
            depth = mob.statistics().queue_depth
        assert depth >= 8
        assert mob.statistics().queue_peak >= depth


async def test_a_crash_hook_that_is_not_callable_is_invalid_input():
    with pytest.raises(InvalidInput, match="crash_hook"):
        async with open_store(crash_hook="x"):
            pass


async def test_crash_points_at_can_be_set_later_with_a_bare_number():
    """CrashPoints.at set after construction takes a number alone, as the constructor does
    (it used to make every message crash with a TypeError)."""
    from mobstore.actors.testing import CrashPoints

    hook = CrashPoints()
    async with open_store(crash_hook=hook, idle_timeout=None) as store:
        log = store.mob("m").events
        hook.at = {"mob:m": 1}
        await log.append(ev(0))
        with pytest.raises(ActorCrashed):
            await log.append(ev(1))
        await log.append(ev(2))
        assert [c.message for c in hook.fired] == [1]


async def test_a_call_to_a_slot_left_stopped_is_store_closed_not_a_spin():
    """A slot still registered but stopped (its actor ended without a passivation: the
    system tasks were torn down) has no actor and never gets one: a call is StoreClosed.
    (It used to loop in Store._call without a checkpoint: send refused, the same slot looked
    up again, forever.) White-box: the state is set by hand to reach that window exactly."""
    async with open_store(idle_timeout=None) as store:
        log = store.mob("m").events
        await log.append(ev())
        slot = store._supervisor.get("mob:m")
        slot.receive.close()  # as when the actor's task is gone
        slot.state = "stopped"
        with trio.fail_after(5):
            with pytest.raises(StoreClosed, match="system tasks have stopped"):
                await log.append(ev())
        slot.state = "running"  # let close drain normally
