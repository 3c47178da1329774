"""The atomic-batch contract (``mob.commit``, SEMANTICS.md §9 and API.md decision 5),
against any backend."""

from __future__ import annotations

import pytest
import trio

import uuid

from mobstore.actors import (
    CasConflict,
    CommitResult,
    InvalidInput,
    KernelState,
    MobEvent,
    MobRun,
    NewMobEvent,
    NotFound,
    SpecRevisionConflict,
)
from mobstore.storage import Atomic, CreateProfile, Profile


def _ev(kind: str = "k", **payload: object) -> NewMobEvent:
    return NewMobEvent(kind, dict(payload))


class AtomicCommitContract:
    """``mob.commit(*commands)``: one message, one transaction, all or nothing."""

    async def test_commit_applies_all_commands_in_order(self, store, clock):
        """A commit returns ok with one result per command, typed like the handle methods,
        and every effect is visible afterwards."""
        mob = store.mob("m")
        res = await mob.commit(
            mob.cmd.append(_ev("a")),
            mob.cmd.put_spec({"v": 1}),
            mob.cmd.append_batch([_ev("b"), _ev("c")]),
            mob.cmd.put_spec({"v": 2}, revision=1),
        )
        assert res.ok and res.failed_index is None
        first, rev1, batch, rev2 = res.results
        assert first == MobEvent(1, clock.now, "m", "a", {})
        assert [e.cursor for e in batch] == [2, 3] and (rev1, rev2) == (1, 2)
        assert [e.kind for e in await mob.events.replay_all()] == ["a", "b", "c"]
        assert await mob.spec.get_spec() == ({"id": "m", "v": 2}, 2)

    async def test_commands_see_earlier_commands_of_the_same_commit(self, store):
        """Within a commit, each command sees the effects of those before it (a delete then
        a create-only put; the tombstone rule holds inside the batch too)."""
        mob = store.mob("m")
        await mob.spec.put_spec({"v": 1})
        res = await mob.commit(mob.cmd.delete_spec(revision=1), mob.cmd.put_spec({"v": 2}, revision=0))
        assert res == CommitResult(True, [True, 2], None)
        assert await mob.spec.get_spec() == ({"id": "m", "v": 2}, 2)

    async def test_lost_cas_in_the_middle_commits_nothing(self, store):
        """A command returning False (a stale delete_spec) makes ok False with its index;
        nothing of the commit is stored, not the commands before it nor after it."""
        mob = store.mob("m")
        await mob.spec.put_spec({"v": 1})
        await mob.events.append(_ev("before"))
        res = await mob.commit(
            mob.cmd.append(_ev("a")),
            mob.cmd.put_spec({"v": 2}, revision=1),
            mob.cmd.delete_spec(revision=1),  # stale now: the spec is at 2 inside the batch
            mob.cmd.append(_ev("never")),
        )
        assert (res.ok, res.failed_index) == (False, 2)
        assert len(res.results) == 3 and res.results[1:] == [2, False]
        assert [e.kind for e in await mob.events.replay_all()] == ["before"]
        assert await mob.spec.get_spec() == ({"id": "m", "v": 1}, 1)
        assert (await mob.events.append(_ev())).cursor == 2
        assert await mob.spec.put_spec({"v": 3}, revision=1) == 2

    async def test_error_in_the_middle_commits_nothing_and_propagates(self, store):
        """A command that raises rolls the whole commit back and its error reaches the
        caller, with a note naming the command."""
        mob = store.mob("m")
        with pytest.raises(SpecRevisionConflict) as info:
            await mob.commit(
                mob.cmd.append(_ev("a")),
                mob.cmd.put_spec({"v": 1}),
                mob.cmd.put_spec({"v": 2}, revision=5),
                mob.cmd.append(_ev("b")),
            )
        assert (info.value.expected, info.value.actual) == (5, 1)
        assert any("command 2" in n for n in info.value.__notes__)
        assert await mob.events.replay_all() == []
        assert await mob.spec.get_spec() is None
        assert await store.list_specs() == []

    async def test_terminal_run_cas_and_its_event_commit_together(self, store):
        """A run's terminal CAS and its flow_completed event: both or neither. A second
        completer's CAS loses (the run is terminal), so no duplicate event is appended; a
        CAS with a stale flow state appends nothing either."""
        mob = store.mob("m")
        running, done = KernelState("Running"), KernelState("Completed")
        run = await mob.runs.create_run(
            MobRun(run_id=uuid.uuid4(), mob_id="m", flow_id="f", status="running", flow_state=running)
        )

        async def complete(expected_state: KernelState) -> CommitResult:
            return await mob.commit(
                mob.cmd.cas_run_snapshot(run.run_id, "running", expected_state, "completed", done),
                mob.cmd.append(_ev("flow_completed", run_id=run.run_id)),
            )

        lost = await complete(KernelState("Pending"))  # a stale flow state
        assert (lost.ok, lost.failed_index, lost.results) == (False, 0, [False])
        assert (await mob.runs.get_run(run.run_id)).status.value == "running"
        assert await mob.events.replay_all() == []
        res = await complete(running)
        assert res.ok and res.results[0] is True and res.results[1].kind == "flow_completed"
        again = await complete(running)
        assert (again.ok, again.failed_index) == (False, 0)
        stored = await mob.runs.get_run(run.run_id)
        assert (stored.status.value, stored.flow_state) == ("completed", done)
        assert [e.kind for e in await mob.events.replay_all()] == ["flow_completed"]

    async def test_run_errors_roll_back_the_commit(self, store):
        """A run command that raises (a missing run; a duplicate create_run) rolls back
        the events committed with it."""
        mob = store.mob("m")
        with pytest.raises(NotFound):
            await mob.commit(
                mob.cmd.append(_ev("flow_completed")),
                mob.cmd.cas_run_status(uuid.uuid4(), "running", "completed"),
            )
        run = MobRun(run_id=uuid.uuid4(), mob_id="m", flow_id="f")
        res = await mob.commit(mob.cmd.create_run(run), mob.cmd.append(_ev("flow_started")))
        assert res.ok and res.results[0].run_id == run.run_id
        with pytest.raises(CasConflict):
            await mob.commit(mob.cmd.append(_ev("flow_started")), mob.cmd.create_run(run))
        assert [e.kind for e in await mob.events.replay_all()] == ["flow_started"]
        assert [r.run_id for r in await mob.runs.list_runs()] == [run.run_id]

    async def test_run_builders_validate_like_the_handle(self, store):
        """mob.cmd run builders take the handle methods' arguments and validate at once."""
        cmd = store.mob("m").cmd
        with pytest.raises(InvalidInput):
            cmd.cas_run_status("not-a-uuid", "running", "completed")
        with pytest.raises(InvalidInput):
            cmd.create_run(MobRun(run_id=uuid.uuid4(), mob_id="other", flow_id="f"))
        with pytest.raises(TypeError):
            cmd.cas_flow_state(uuid.uuid4(), KernelState("A"))  # missing `next`
        built = cmd.cas_flow_state(run_id=uuid.uuid4(), expected=KernelState("A"), next=KernelState("B"))
        assert built.mob_id == "m"

    async def test_guarded_completion_event(self, store):
        """The terminal-transition shape: a CAS plus its completion event commit together
        or not at all. Here the CAS is a spec put at the expected revision; a stale one
        leaves neither the new spec nor the event."""
        mob = store.mob("m")
        await mob.spec.put_spec({"phase": "running"})

        async def finish(expected: int) -> CommitResult:
            return await mob.commit(
                mob.cmd.put_spec({"phase": "completed"}, revision=expected),
                mob.cmd.append(_ev("flow_completed", at=expected)),
            )

        with pytest.raises(SpecRevisionConflict):
            await finish(7)
        assert await mob.events.replay_all() == []
        assert (await finish(1)).ok
        with pytest.raises(SpecRevisionConflict):
            await finish(1)  # a second completer loses: no duplicate event
        assert [e.payload for e in await mob.events.replay_all()] == [{"at": 1}]
        assert await mob.spec.get_spec() == ({"id": "m", "phase": "completed"}, 2)

    async def test_result_types_match_the_handle_methods(self, store, clock):
        """append gives a MobEvent, append_batch a list, clear None, prune a count,
        put_spec a revision, delete_spec True."""
        mob = store.mob("m")
        await mob.events.append_batch([_ev(), _ev()])
        await mob.spec.put_spec({})
        clock.advance(1)
        res = await mob.commit(
            mob.cmd.prune(clock.now),
            mob.cmd.append(_ev("x")),
            mob.cmd.append_batch([]),
            mob.cmd.clear(),
            mob.cmd.delete_spec(),
        )
        assert res.ok
        pruned, ev, empty, cleared, deleted = res.results
        assert (pruned, ev.cursor, empty, cleared, deleted) == (2, 3, [], None, True)
        assert await mob.events.replay_all() == [] and await mob.spec.get_spec() is None

    async def test_empty_commit(self, store):
        """commit() with no commands is ok with no results and writes nothing."""
        assert await store.mob("m").commit() == CommitResult(True, [], None)
        assert await store.mob("m").events.last_cursor() == 0

    async def test_other_mobs_commands_are_invalid_input(self, store):
        """A command of another mob, a non-command, a list of commands, a nested batch or a
        realm command is InvalidInput naming its position; nothing is stored."""
        mob, other = store.mob("m"), store.mob("o")
        ok = mob.cmd.append(_ev())
        cases = [
            ((ok, other.cmd.append(_ev())), "commands[1]", "'o'"),
            ((ok, "append"), "commands[1]", "command"),
            (([ok, ok],), "commands[0]", "separate arguments"),
            ((Atomic("m", (ok,)),), "commands[0]", "atomic batch"),
            ((ok, CreateProfile.of("p", Profile("x"))), "commands[1]", "no mob"),
        ]
        for args, field, words in cases:
            with pytest.raises(InvalidInput) as info:
                await mob.commit(*args)
            assert info.value.field == field and words in str(info.value)
        with pytest.raises(InvalidInput, match="mob_id"):
            mob.cmd.append(NewMobEvent("k", mob_id="o"))
        with pytest.raises(InvalidInput) as info:
            mob.cmd.put_spec({"id": "o"})
        assert info.value.field == "definition['id']"
        assert await mob.events.replay_all() == [] and await other.events.replay_all() == []
        assert await store.profiles.list() == []

    async def test_builders_validate_on_the_spot(self, store):
        """mob.cmd builders raise InvalidInput at once, before anything is sent."""
        cmd = store.mob("m").cmd
        with pytest.raises(InvalidInput):
            cmd.append({"kind": "k"})
        with pytest.raises(InvalidInput, match="revision"):
            cmd.put_spec({}, revision=-1)
        with pytest.raises(InvalidInput, match="revision"):
            cmd.delete_spec(revision="2")
        with pytest.raises(InvalidInput, match="older_than"):
            cmd.prune("yesterday")
        with pytest.raises(InvalidInput, match="payload"):
            cmd.append_batch([_ev(), NewMobEvent("k", {"x": float("nan")})])

    async def test_failing_commits_do_not_disturb_neighbours(self, store):
        """Commits that fail (raise or lose a CAS), sent together with other requests of
        other mobs and of the same mob, roll back alone: every other request commits."""
        await store.mob("m").spec.put_spec({})

        async def bad_raise(i: int) -> None:
            mob = store.mob("m")
            with pytest.raises(SpecRevisionConflict):
                await mob.commit(mob.cmd.append(_ev("bad", i=i)), mob.cmd.put_spec({}, revision=99))

        async def bad_false(i: int) -> None:
            mob = store.mob("m")
            res = await mob.commit(mob.cmd.append(_ev("bad", i=i)), mob.cmd.delete_spec(revision=99))
            assert (res.ok, res.failed_index) == (False, 1)

        async def good(i: int) -> None:
            await store.mob(f"n{i % 3}").events.append(_ev("good", i=i))
            mob = store.mob("m")
            assert (await mob.commit(mob.cmd.append(_ev("good", i=i)))).ok

        async with trio.open_nursery() as n:
            for i in range(12):
                n.start_soon((bad_raise, bad_false, good)[i % 3], i)
        kinds = [e.kind for e in await store.mob("m").events.replay_all()]
        assert kinds == ["good"] * 4
        assert sum([len(await store.mob(f"n{k}").events.replay_all()) for k in range(3)]) == 4
        assert await store.mob("m").spec.get_spec() == ({"id": "m"}, 1)

    async def test_concurrent_guarded_commits_have_one_winner(self, store):
        """Many tasks committing (put_spec at revision 1, append their event): exactly one
        commits, and exactly one event is stored: the winner's."""
        mob = store.mob("m")
        await mob.spec.put_spec({"owner": None})
        winners: list[int] = []

        async def claim(i: int) -> None:
            try:
                res = await mob.commit(
                    mob.cmd.put_spec({"owner": i}, revision=1),
                    mob.cmd.append(_ev("claimed", by=i)),
                )
            except SpecRevisionConflict:
                return
            assert res.ok
            winners.append(i)

        async with trio.open_nursery() as n:
            for i in range(16):
                n.start_soon(claim, i)
        assert len(winners) == 1
        [ev] = await mob.events.replay_all()
        assert ev.payload == {"by": winners[0]}
        assert await mob.spec.get_spec() == ({"id": "m", "owner": winners[0]}, 2)

    async def test_missing_entity_error_rolls_back(self, store):
        """An error of any kind from a command (here NotFound from a hand-built command)
        rolls the commit back."""
        mob = store.mob("m")

        class Missing:
            mob_id = "m"

            def apply(self, tx):
                raise NotFound("run", "r1")

        with pytest.raises(NotFound):
            await mob.commit(mob.cmd.append(_ev()), Missing())
        assert await mob.events.replay_all() == []

    async def test_commits_survive_reopen(self, backend):
        """A file store keeps what a commit stored and nothing of an aborted one."""
        async with backend.open() as s:
            mob = s.mob("m")
            assert (await mob.commit(mob.cmd.put_spec({"v": 1}), mob.cmd.append(_ev("a")))).ok
            res = await mob.commit(mob.cmd.append(_ev("lost")), mob.cmd.delete_spec(revision=9))
            assert not res.ok
        async with backend.open() as s:
            mob = s.mob("m")
            if backend.persistent:
                assert [e.kind for e in await mob.events.replay_all()] == ["a"]
                assert await mob.spec.get_spec() == ({"id": "m", "v": 1}, 1)
                assert (await mob.events.append(_ev())).cursor == 2
            else:
                assert await mob.events.replay_all() == [] and await mob.spec.get_spec() is None
