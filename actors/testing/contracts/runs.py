"""The flow-run contract (SEMANTICS.md §3.6), against any backend.

:class:`RunStoreContract` covers the run-level operations (create, read, status and flow
state CAS, ledgers, outputs); the frame and loop CAS wrappers are in ``runs_cas`` and mixed
in, so one subclass runs all of it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import attrs
import pytest
import trio

from mobstore.actors import (
    CasConflict,
    FailureLedgerEntry,
    FrameSnapshot,
    InvalidInput,
    InvalidTransition,
    KernelState,
    KSet,
    KString,
    KU64,
    LoopIterationLedgerEntry,
    LoopSnapshot,
    MobRun,
    MobRunStatus,
    NotFound,
    StepLedgerEntry,
    StepRunStatus,
)
from mobstore.storage import RUN_STATUS_MOVES

from .runs_cas import RunCasContract, S, missing_run_id, new_run

P, R, C, F, X = (MobRunStatus(s) for s in ("pending", "running", "completed", "failed", "canceled"))


class RunStoreContract(RunCasContract):
    """``mob.runs``: create, read, status and flow-state CAS, ledgers and outputs (the
    frame and loop wrappers come from :class:`RunCasContract`)."""

    # -- create and read ------------------------------------------------------------------

    async def test_create_then_get_round_trips_every_field(self, store, clock):
        """A run with every field set (ordered outputs included) reads back equal."""
        t = clock.now - timedelta(hours=1)
        run = MobRun(
            run_id=uuid.uuid4(),
            mob_id="m",
            flow_id="f",
            status="running",
            flow_state=KernelState("Running", {"tags": KSet(["b", "a"]), "n": KU64(2**64 - 1)}),
            activation_params={"z": 1, "a": [1, 2.5, None, "x"]},
            created_at=t,
            completed_at=None,
            step_ledger=[
                StepLedgerEntry(step_id="s1", meerkat_id="k1", status="completed", output={"o": 1}, timestamp=t),
                StepLedgerEntry(step_id="s1", meerkat_id="k1", status="completed", timestamp=t),
            ],
            failure_ledger=[FailureLedgerEntry(step_id="__flow__", reason="boom", timestamp=t)],
            frames={"root": FrameSnapshot(S("Running", q=[1])), "a": FrameSnapshot(S("Completed"))},
            loops={"l": LoopSnapshot(S("Running", current_iteration=0))},
            loop_iteration_ledger=[LoopIterationLedgerEntry(loop_instance_id="l", iteration=0, frame_id="b0")],
            schema_version=4,
            root_step_outputs={"zeta": 1, "alpha": {"x": [1]}, "mid": None},
            loop_iteration_outputs={"L2": [], "L1": [{"b": 1, "a": 2}, {}]},
        )
        stored = await store.mob("m").runs.create_run(run)
        assert stored == run
        got = await store.mob("m").runs.get_run(run.run_id)
        assert got == run
        assert list(got.root_step_outputs) == ["zeta", "alpha", "mid"]
        assert list(got.loop_iteration_outputs["L1"][0]) == ["b", "a"]
        assert list(got.loop_iteration_outputs) == ["L1", "L2"]
        assert await store.get_run(run.run_uuid) == run

    async def test_defaults_and_store_stamped_times(self, store, clock):
        """A pending run built with defaults gets created_at and ledger timestamps from the
        store clock and reads back with empty ledgers, maps and outputs."""
        run = MobRun.pending(mob_id="m", flow_id="f")
        assert run.created_at is None and run.schema_version == 4 and run.status is P
        stored = await store.mob("m").runs.create_run(run)
        assert stored.created_at == clock.now
        got = await store.mob("m").runs.get_run(run.run_id)
        assert got == stored == attrs.evolve(run, created_at=clock.now)
        assert (got.step_ledger, got.failure_ledger, got.loop_iteration_ledger) == ((), (), ())
        assert (got.frames, got.loops, got.root_step_outputs, got.loop_iteration_outputs) == ({}, {}, {}, {})
        assert got.activation_params == {} and got.completed_at is None
        assert uuid.UUID(got.run_id).version == 4

    async def test_duplicate_create_is_cas_conflict_and_keeps_original(self, store):
        """A second create_run with the same id (in this mob or another) raises CasConflict;
        the original run is unchanged."""
        first = await new_run(store, flow_id="f1")
        for mob in ("m", "other"):
            dup = MobRun.pending(mob_id=mob, flow_id="f2", run_id=first.run_id, activation_params={"x": 1})
            with pytest.raises(CasConflict):
                await store.mob(mob).runs.create_run(dup)
        assert await store.mob("m").runs.get_run(first.run_id) == first
        assert await store.mob("other").runs.list_runs() == []

    async def test_create_for_another_mob_is_invalid_input(self, store):
        """create_run of a run whose mob_id is another mob raises InvalidInput; nothing stored."""
        run = MobRun.pending(mob_id="other", flow_id="f")
        with pytest.raises(InvalidInput, match="another mob") as info:
            await store.mob("m").runs.create_run(run)
        assert info.value.field == "run.mob_id"
        assert await store.get_run(run.run_id) is None

    async def test_get_run_unknown_and_other_mob(self, store):
        """get_run of an unknown id is None; a mob does not see another mob's run, the
        store-level get_run does."""
        run = await new_run(store, mob="a")
        assert await store.mob("a").runs.get_run(uuid.uuid4()) is None
        assert await store.get_run(uuid.uuid4()) is None
        assert await store.mob("b").runs.get_run(run.run_id) is None
        assert await store.get_run(run.run_id.upper()) == run

    async def test_list_runs_filters_and_orders(self, store, clock):
        """list_runs filters by mob and flow and orders by (created_at, run_id); an empty
        store lists []."""
        runs = store.mob("m").runs
        assert await runs.list_runs() == []
        t = clock.now
        made = []
        for i, (flow, dt) in enumerate([("f1", 3), ("f2", 1), ("f1", 1), ("f1", 2)]):
            made.append(await new_run(store, flow_id=flow, created_at=t + timedelta(seconds=dt), activation_params={"i": i}))
        await new_run(store, mob="other", flow_id="f1")
        key = lambda r: (r.created_at, r.run_id)  # noqa: E731
        assert await runs.list_runs() == sorted(made, key=key)
        assert await runs.list_runs("f1") == sorted([r for r in made if r.flow_id == "f1"], key=key)
        assert await runs.list_runs(flow_id="nope") == []
        assert len(await store.mob("other").runs.list_runs()) == 1

    async def test_run_ids(self, store):
        """Run ids may be UUIDs or canonical strings in either case; they are stored
        lowercase. Anything else is InvalidInput."""
        u = uuid.uuid4()
        run = await new_run(store, run_id=str(u).upper())
        assert run.run_id == str(u)
        assert await store.mob("m").runs.get_run(u) == run
        for bad in ["", "not-a-uuid", u.hex, "{" + str(u) + "}", 7, None]:
            with pytest.raises(InvalidInput, match="run_id"):
                await store.mob("m").runs.get_run(bad)
            with pytest.raises(InvalidInput, match="run_id"):
                await store.mob("m").runs.cas_run_status(bad, P, R)

    async def test_bad_records_are_refused_before_anything_is_stored(self, store):
        """Wrong record types, bad ids and non-JSON values raise InvalidInput naming the
        field; nothing is stored."""
        runs = store.mob("m").runs
        with pytest.raises(InvalidInput, match="MobRun"):
            await runs.create_run({"run_id": "x"})
        with pytest.raises(InvalidInput, match=r"activation_params\['x'\]"):
            await runs.create_run(MobRun.pending(mob_id="m", flow_id="f", activation_params={"x": float("nan")}))
        with pytest.raises(InvalidInput, match="flow_id"):
            MobRun.pending(mob_id="m", flow_id="")
        with pytest.raises(InvalidInput, match="status"):
            MobRun(run_id=uuid.uuid4(), mob_id="m", flow_id="f", status="done")
        with pytest.raises(InvalidInput, match="iteration"):
            LoopIterationLedgerEntry(loop_instance_id="l", iteration=-1, frame_id="f")
        with pytest.raises(InvalidInput, match="loop_iteration_outputs key"):  # was a TypeError from sorting
            MobRun(run_id=uuid.uuid4(), mob_id="m", flow_id="f", loop_iteration_outputs={1: [], "a": []})
        assert await runs.list_runs() == []
        run = await new_run(store)
        with pytest.raises(InvalidInput, match="StepLedgerEntry"):
            await runs.append_step_entry(run.run_id, FailureLedgerEntry(step_id="s"))
        with pytest.raises(InvalidInput, match="entry.output"):
            await runs.append_step_entry(run.run_id, StepLedgerEntry(step_id="s", meerkat_id="k", output={1: 2}))
        with pytest.raises(InvalidInput, match="KernelState"):
            await runs.cas_flow_state(run.run_id, "Pending", S("Running"))
        with pytest.raises(InvalidInput, match="not a run status") as info:
            await runs.cas_run_status(run.run_id, "done", "running")
        assert info.value.field == "expected"
        with pytest.raises(InvalidInput) as info:
            await runs.cas_run_snapshot(run.run_id, "pending", run.flow_state, "later", run.flow_state)
        assert info.value.field == "next_status"
        assert await runs.get_run(run.run_id) == run

    async def test_runs_survive_reopen(self, backend):
        """A file store keeps runs, their parts and their CAS state across close and reopen."""
        async with backend.open() as s:
            run = await new_run(s)
            runs = s.mob("m").runs
            assert await runs.cas_run_status(run.run_id, P, R)
            assert await runs.cas_frame_state(run.run_id, "f", None, FrameSnapshot(S("Running")))
            assert await runs.cas_complete_step_and_record_output(
                run.run_id, "f", FrameSnapshot(S("Running")), FrameSnapshot(S("Done")), "k", [1], ("L", 1)
            )
            before = await runs.get_run(run.run_id)
        async with backend.open() as s:
            got = await s.mob("m").runs.get_run(run.run_id)
            if backend.persistent:
                assert got == before
                assert got.loop_iteration_outputs == {"L": [{}, {"k": [1]}]}
                assert not await s.mob("m").runs.cas_run_status(run.run_id, P, R)
            else:
                assert got is None

    # -- cas_run_status ----------------------------------------------------------------------

    async def test_status_moves_and_stamps_completed_at_once(self, store, clock):
        """pending -> running -> completed applies; completed_at is the clock at the first
        terminal move and never changes afterwards."""
        run = await new_run(store)
        runs = store.mob("m").runs
        assert await runs.cas_run_status(run.run_id, P, R)
        assert (await runs.get_run(run.run_id)).completed_at is None
        clock.advance(5)
        assert await runs.cas_run_status(run.run_id, R, C)
        got = await runs.get_run(run.run_id)
        assert (got.status, got.completed_at) == (C, clock.now)
        stamped = clock.now
        clock.advance(5)
        assert not await runs.cas_run_status(run.run_id, R, F)
        assert not await runs.cas_run_snapshot(run.run_id, R, run.flow_state, X, run.flow_state)
        got = await runs.get_run(run.run_id)
        assert (got.status, got.completed_at) == (C, stamped)

    async def test_completed_at_never_before_created_at(self, store, clock):
        """A run created 'in the future' (clock behind) gets completed_at == created_at."""
        future = clock.now + timedelta(hours=1)
        run = await new_run(store, created_at=future)
        assert await store.mob("m").runs.cas_run_status(run.run_id, P, X)
        assert (await store.get_run(run.run_id)).completed_at == future

    async def test_self_moves_of_non_terminal_statuses(self, store):
        """pending -> pending and running -> running are legal and change nothing else."""
        run = await new_run(store)
        runs = store.mob("m").runs
        assert await runs.cas_run_status(run.run_id, P, P)
        assert await runs.cas_run_status(run.run_id, P, R)
        assert await runs.cas_run_status(run.run_id, R, R)
        assert await runs.get_run(run.run_id) == attrs.evolve(run, status=R)

    async def test_wrong_expected_is_false_and_changes_nothing(self, store):
        """A status CAS with the wrong expected status returns False; nothing changes."""
        run = await new_run(store)
        assert not await store.mob("m").runs.cas_run_status(run.run_id, R, C)
        assert await store.get_run(run.run_id) == run

    async def test_terminal_run_refuses_every_status_cas(self, store):
        """On a terminal run, a legal pair returns False (the run is not in expected) and a
        pair starting from the terminal status (expected == the terminal status) is an
        illegal move: InvalidTransition. Nothing changes."""
        run = await new_run(store)
        runs = store.mob("m").runs
        assert await runs.cas_run_status(run.run_id, P, F)
        before = await runs.get_run(run.run_id)
        for exp, nxt in [(P, R), (R, C), (P, F), (R, R)]:
            assert not await runs.cas_run_status(run.run_id, exp, nxt)
        for nxt in MobRunStatus:
            with pytest.raises(InvalidTransition):
                await runs.cas_run_status(run.run_id, F, nxt)
        assert await runs.get_run(run.run_id) == before

    @pytest.mark.parametrize("exp", list(MobRunStatus))
    @pytest.mark.parametrize("nxt", list(MobRunStatus))
    async def test_illegal_pairs_raise_before_anything_is_read(self, store, exp, nxt):
        """Every pair outside the transition table raises InvalidTransition (an InvalidInput)
        from cas_run_status and cas_run_snapshot, even for a missing run; legal pairs do not."""
        runs = store.mob("m").runs
        run = await new_run(store, status=exp)
        if nxt in RUN_STATUS_MOVES[exp]:
            assert await runs.cas_run_status(run.run_id, exp.value, nxt.value)
            with pytest.raises(NotFound):
                await runs.cas_run_status(missing_run_id(), exp, nxt)
            return
        for target in (run.run_id, missing_run_id()):
            with pytest.raises(InvalidTransition) as info:
                await runs.cas_run_status(target, exp, nxt)
            assert isinstance(info.value, InvalidInput)
            assert (info.value.from_state, info.value.to_state) == (exp, nxt)
            with pytest.raises(InvalidTransition):
                await runs.cas_run_snapshot(target, exp, run.flow_state, nxt, run.flow_state)
        assert await runs.get_run(run.run_id) == run

    async def test_concurrent_status_cas_has_one_winner(self, store, clock):
        """N concurrent running -> completed calls: exactly one True; the run is completed
        with completed_at set."""
        run = await new_run(store, status=R)
        results = []

        async def racer() -> None:
            results.append(await store.mob("m").runs.cas_run_status(run.run_id, R, C))

        async with trio.open_nursery() as n:
            for _ in range(10):
                n.start_soon(racer)
        assert sorted(results) == [False] * 9 + [True]
        got = await store.get_run(run.run_id)
        assert (got.status, got.completed_at) == (C, clock.now)

    async def test_missing_run_raises_not_found_everywhere(self, store):
        """Every mutating method raises NotFound(kind="run") for a missing run (port
        decision: also the three status/flow CAS methods), and for another mob's run."""
        other = await new_run(store, mob="other")
        runs = store.mob("m").runs
        st, fr, lp = S("A"), FrameSnapshot(S("A")), LoopSnapshot(S("A"))
        le = LoopIterationLedgerEntry(loop_instance_id="l", iteration=0, frame_id="f")
        calls = [
            lambda r: runs.cas_run_status(r, P, R),
            lambda r: runs.cas_flow_state(r, st, st),
            lambda r: runs.cas_run_snapshot(r, P, st, R, st),
            lambda r: runs.append_step_entry(r, StepLedgerEntry(step_id="s", meerkat_id="k")),
            lambda r: runs.append_step_entry_if_absent(r, StepLedgerEntry(step_id="s", meerkat_id="k")),
            lambda r: runs.put_step_output(r, "s", 1),
            lambda r: runs.append_failure_entry(r, FailureLedgerEntry(step_id="s", reason="x")),
            lambda r: runs.upsert_loop_snapshot(r, "l", lp, le),
            lambda r: runs.cas_frame_state(r, "f", None, fr),
        ]
        for call in calls:
            for target in (missing_run_id(), other.run_id):
                with pytest.raises(NotFound) as info:
                    await call(target)
                assert info.value.kind == "run"
        assert await store.get_run(other.run_id) == other

    # -- cas_flow_state and cas_run_snapshot ---------------------------------------------------

    async def test_flow_state_cas(self, store):
        """cas_flow_state: a match sets it; a mismatch returns False and changes nothing; it
        also works on a terminal run (as upstream)."""
        run = await new_run(store, flow_state=S("Pending", n=0))
        runs = store.mob("m").runs
        assert not await runs.cas_flow_state(run.run_id, S("Pending", n=1), S("Running"))
        assert not await runs.cas_flow_state(run.run_id, S("Other", n=0), S("Running"))
        assert await store.get_run(run.run_id) == run
        assert await runs.cas_flow_state(run.run_id, S("Pending", n=0), S("Running", n=1))
        assert await runs.cas_run_status(run.run_id, P, X)
        assert await runs.cas_flow_state(run.run_id, S("Running", n=1), S("Canceled"))
        got = await runs.get_run(run.run_id)
        assert (got.status, got.flow_state) == (X, S("Canceled"))

    async def test_set_and_map_order_do_not_affect_cas(self, store):
        """A state written with one Set/Map order matches an expected state written in
        another order."""
        a = KernelState("R", {"s": KSet([KString("x"), KU64(1), KString("a")]), "m": {"b": 1, "a": 2}})
        b = KernelState("R", {"m": {"a": 2, "b": 1}, "s": KSet([KString("a"), KU64(1), KString("x"), KU64(1)])})
        run = await new_run(store, flow_state=a)
        assert await store.mob("m").runs.cas_flow_state(run.run_id, b, S("Next"))

    async def test_run_snapshot_cas(self, store, clock):
        """cas_run_snapshot: a mismatch in either component returns False and changes
        nothing; a match sets both and a terminal next status stamps completed_at."""
        run = await new_run(store, status=R, flow_state=S("Running"))
        runs = store.mob("m").runs
        assert not await runs.cas_run_snapshot(run.run_id, P, S("Running"), F, S("Failed"))
        assert not await runs.cas_run_snapshot(run.run_id, R, S("Pending"), F, S("Failed"))
        assert await store.get_run(run.run_id) == run
        clock.advance(3)
        assert await runs.cas_run_snapshot(run.run_id, R, S("Running"), C, S("Completed"))
        got = await runs.get_run(run.run_id)
        assert (got.status, got.flow_state, got.completed_at) == (C, S("Completed"), clock.now)
        assert await runs.cas_run_snapshot(run.run_id, R, S("Completed"), R, S("x")) is False

    # -- ledgers and outputs -------------------------------------------------------------------

    async def test_step_entry_if_absent_key(self, store, clock):
        """True then False for the same (step, meerkat, status); changing any one of the
        three appends again; changing only output or timestamp is still a duplicate."""
        run = await new_run(store)
        runs = store.mob("m").runs
        e = StepLedgerEntry(step_id="s", meerkat_id="k", status="dispatched", output=None)
        assert await runs.append_step_entry_if_absent(run.run_id, e)
        assert not await runs.append_step_entry_if_absent(run.run_id, e)
        assert not await runs.append_step_entry_if_absent(
            run.run_id, attrs.evolve(e, output={"x": 1}, timestamp=clock.now - timedelta(days=1))
        )
        for change in ({"step_id": "s2"}, {"meerkat_id": "k2"}, {"status": StepRunStatus.COMPLETED}):
            assert await runs.append_step_entry_if_absent(run.run_id, attrs.evolve(e, **change))
        got = await runs.get_run(run.run_id)
        assert [(x.step_id, x.meerkat_id, x.status.value) for x in got.step_ledger] == [
            ("s", "k", "dispatched"), ("s2", "k", "dispatched"), ("s", "k2", "dispatched"), ("s", "k", "completed")
        ]
        assert all(x.timestamp == clock.now and x.output is None for x in got.step_ledger)

    async def test_append_step_entry_allows_duplicates_in_order(self, store, clock):
        """append_step_entry always appends (a retry needing a second dispatched row)."""
        run = await new_run(store)
        e = StepLedgerEntry(step_id="s", meerkat_id="k", timestamp=clock.now - timedelta(seconds=9))
        for _ in range(3):
            await store.mob("m").runs.append_step_entry(run.run_id, e)
        assert (await store.get_run(run.run_id)).step_ledger == (e, e, e)

    async def test_put_step_output_sets_the_latest_entry(self, store):
        """put_step_output sets the output of the most recent entry of the step, whatever its
        meerkat or status; an unknown step is NotFound(kind="step_ledger_entry")."""
        run = await new_run(store)
        runs = store.mob("m").runs
        entries = [
            StepLedgerEntry(step_id="s", meerkat_id="k1", status="dispatched"),
            StepLedgerEntry(step_id="s", meerkat_id="k2", status="failed"),
            StepLedgerEntry(step_id="t", meerkat_id="k1", status="completed"),
        ]
        for e in entries:
            await runs.append_step_entry(run.run_id, e)
        await runs.put_step_output(run.run_id, "s", {"result": [1, 2]})
        ledger = (await runs.get_run(run.run_id)).step_ledger
        assert [x.output for x in ledger] == [None, {"result": [1, 2]}, None]
        await runs.put_step_output(run.run_id, "s", "again")
        assert [x.output for x in (await runs.get_run(run.run_id)).step_ledger] == [None, "again", None]
        with pytest.raises(NotFound) as info:
            await runs.put_step_output(run.run_id, "nope", 1)
        assert (info.value.kind, info.value.id) == ("step_ledger_entry", "nope")
        with pytest.raises(InvalidInput, match="output"):
            await runs.put_step_output(run.run_id, "s", {"x": object()})

    async def test_failure_entries_append_in_order(self, store, clock):
        """append_failure_entry appends in call order; a None timestamp is the store clock."""
        run = await new_run(store)
        for i in range(3):
            await store.mob("m").runs.append_failure_entry(run.run_id, FailureLedgerEntry(step_id=f"s{i}", reason=f"r{i}"))
            clock.advance(1)
        got = (await store.get_run(run.run_id)).failure_ledger
        assert [(e.step_id, e.reason) for e in got] == [("s0", "r0"), ("s1", "r1"), ("s2", "r2")]
        assert [e.timestamp for e in got] == [clock.now - timedelta(seconds=3 - i) for i in range(3)]

    async def test_upsert_loop_snapshot(self, store):
        """upsert overwrites the snapshot; replaying the same (loop, iteration, frame) does
        not duplicate the ledger entry; another frame for the same iteration appends."""
        run = await new_run(store)
        runs = store.mob("m").runs
        e0 = LoopIterationLedgerEntry(loop_instance_id="l", iteration=0, frame_id="b0")
        await runs.upsert_loop_snapshot(run.run_id, "l", LoopSnapshot(S("Running", i=0)), e0)
        await runs.upsert_loop_snapshot(run.run_id, "l", LoopSnapshot(S("Running", i=1)), e0)
        await runs.upsert_loop_snapshot(run.run_id, "l", LoopSnapshot(S("Running", i=2)))
        e0b = attrs.evolve(e0, frame_id="b0-retry")
        await runs.upsert_loop_snapshot(run.run_id, "l", LoopSnapshot(S("Running", i=3)), e0b)
        got = await runs.get_run(run.run_id)
        assert got.loops == {"l": LoopSnapshot(S("Running", i=3))}
        assert got.loop_iteration_ledger == (e0, e0b)
