"""Run CAS against a plain-Python model (hypothesis state machine and a trio-level run).

The model is SEMANTICS.md §3.3 written as the obvious Python over dicts and lists: one run's
status, flow state, frames, loops, loop-iteration ledger, step ledger and outputs. Each step
draws an operation (mostly with expected values equal to the model's current ones, so CAS
succeeds often, sometimes stale or absent ones, so it fails), applies it to the store and to
the model, and compares the result and then the whole run.

``TestRunMachine*`` drive ``storage.Database`` and the commands directly (synchronous, fast),
on memory and on a file that a rule closes and reopens. ``test_trio_api_follows_the_model``
drives the same operations through ``store.mob(...).runs`` under trio.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mobstore.actors import open_store
from mobstore.storage import (
    Database,
    FrameSnapshot,
    InvalidTransition,
    KernelState,
    KMap,
    KSeq,
    KSet,
    LoopIterationLedgerEntry,
    LoopSnapshot,
    MobRun,
    MobRunStatus,
    NotFound,
    StepLedgerEntry,
    WriteFailed,
    _run_cas,
    _run_reads,
    _runs,
)
from mobstore.storage._run_status import LEGAL_MOVES

from strategies import kernel_states

STATES = [KernelState("A"), KernelState("B"), KernelState("A", {"n": 1}), KernelState("C", {"t": frozenset({"x", "y"})})]
FRAMES = [FrameSnapshot(s) for s in STATES]
LOOPS = [LoopSnapshot(s) for s in STATES]
FRAME_IDS, LOOP_IDS, KEYS, LOOP_NAMES = ["f1", "f2", "f3"], ["l1", "l2", "l3"], ["a", "b", "c"], ["L1", "L2"]

_COMMANDS = {
    "cas_run_status": _runs.CasRunStatus,
    "cas_flow_state": _runs.CasFlowState,
    "cas_run_snapshot": _runs.CasRunSnapshot,
    "append_step_entry_if_absent": _runs.AppendStepEntryIfAbsent,
    "put_step_output": _runs.PutStepOutput,
    "upsert_loop_snapshot": _runs.UpsertLoopSnapshot,
    "cas_frame_state": _run_cas.CasFrameState,
    "cas_grant_node_slot": _run_cas.CasGrantNodeSlot,
    "cas_complete_step_and_record_output": _run_cas.CasCompleteStepAndRecordOutput,
    "cas_start_loop": _run_cas.CasStartLoop,
    "cas_loop_request_body_frame": _run_cas.CasLoopRequestBodyFrame,
    "cas_grant_body_frame_start": _run_cas.CasGrantBodyFrameStart,
    "cas_complete_body_frame": _run_cas.CasCompleteBodyFrame,
    "cas_complete_loop": _run_cas.CasCompleteLoop,
}


@attrs.define
class RunModel:
    """One run, as SEMANTICS.md §3.3 says it evolves."""

    status: MobRunStatus = MobRunStatus.PENDING
    flow: KernelState = STATES[0]
    frames: dict[str, FrameSnapshot] = attrs.Factory(lambda: {"f1": FRAMES[0]})
    loops: dict[str, LoopSnapshot] = attrs.Factory(lambda: {"l1": LOOPS[0]})
    loop_ledger: list[tuple[str, int, str]] = attrs.Factory(list)
    steps: list[list[Any]] = attrs.Factory(list)  # [step, meerkat, status, output]
    root: dict[str, Any] = attrs.Factory(dict)
    loop_outputs: dict[str, list[dict[str, Any]]] = attrs.Factory(dict)

    def apply(self, name: str, args: tuple[Any, ...]) -> Any:
        """The expected result; raises the expected error type."""
        return getattr(self, name)(*args)

    def cas_run_status(self, exp, nxt, exp_flow=None, next_flow=None):
        if nxt not in LEGAL_MOVES[exp]:
            raise InvalidTransition("run status", exp, nxt)
        if self.status != exp or (exp_flow is not None and self.flow != exp_flow):
            return False
        self.status = nxt
        if next_flow is not None:
            self.flow = next_flow
        return True

    def cas_flow_state(self, exp, nxt):
        ok = self.flow == exp
        if ok:
            self.flow = nxt
        return ok

    def cas_run_snapshot(self, es, ef, ns, nf):
        return self.cas_run_status(es, ns, ef, nf)

    def append_step_entry_if_absent(self, e):
        if any(s[:3] == [e.step_id, e.meerkat_id, e.status] for s in self.steps):
            return False
        self.steps.append([e.step_id, e.meerkat_id, e.status, e.output])
        return True

    def put_step_output(self, step_id, output):
        rows = [s for s in self.steps if s[0] == step_id]
        if not rows:
            raise NotFound("step_ledger_entry", step_id)
        rows[-1][3] = output

    def _ledger(self, e):
        key = (e.loop_instance_id, e.iteration, e.frame_id)
        if key not in self.loop_ledger:
            self.loop_ledger.append(key)

    def upsert_loop_snapshot(self, lid, snap, entry):
        self.loops[lid] = snap
        if entry is not None:
            self._ledger(entry)

    def cas_frame_state(self, fid, exp, nxt):
        if self.frames.get(fid) != exp:
            return False
        self.frames[fid] = nxt
        return True

    def cas_grant_node_slot(self, er, nr, fid, ef, nf):
        if self.flow != er or self.frames.get(fid) != ef:
            return False
        self.flow, self.frames[fid] = nr, nf
        return True

    def cas_complete_step_and_record_output(self, fid, ef, nf, key, out, ctx):
        if self.frames.get(fid) != ef:
            return False
        self.frames[fid] = nf
        if ctx is None:
            self.root[key] = out
        else:
            its = self.loop_outputs.setdefault(ctx[0], [])
            its.extend({} for _ in range(ctx[1] + 1 - len(its)))
            its[ctx[1]][key] = out
        return True

    def cas_start_loop(self, lid, er, nr, fid, ef, nf, init):
        if self.flow != er or self.frames.get(fid) != ef or lid in self.loops:
            return False
        self.flow, self.frames[fid], self.loops[lid] = nr, nf, init
        return True

    def cas_loop_request_body_frame(self, lid, el, nl, er, nr):
        if self.flow != er or self.loops.get(lid) != el:
            return False
        self.flow, self.loops[lid] = nr, nl
        return True

    def cas_grant_body_frame_start(self, lid, el, nl, fid, init, entry, er, nr):
        if self.flow != er or self.loops.get(lid) != el or fid in self.frames:
            return False
        self.flow, self.loops[lid], self.frames[fid] = nr, nl, init
        self._ledger(entry)
        return True

    def cas_complete_body_frame(self, lid, el, nl, fid, ef, nf, er, nr):
        if self.flow != er or self.loops.get(lid) != el or self.frames.get(fid) != ef:
            return False
        self.flow, self.loops[lid], self.frames[fid] = nr, nl, nf
        return True

    cas_complete_loop = cas_complete_body_frame

    def check(self, run: MobRun) -> None:
        """The stored run equals the model."""
        assert run.status == self.status
        assert run.flow_state == self.flow
        assert run.frames == self.frames and run.loops == self.loops
        assert [(e.loop_instance_id, e.iteration, e.frame_id) for e in run.loop_iteration_ledger] == self.loop_ledger
        assert [[e.step_id, e.meerkat_id, e.status, e.output] for e in run.step_ledger] == self.steps
        assert list(run.root_step_outputs.items()) == list(self.root.items())
        assert run.loop_iteration_outputs == self.loop_outputs
        for loop_id, its in self.loop_outputs.items():
            assert [list(d) for d in run.loop_iteration_outputs[loop_id]] == [list(d) for d in its]
        assert (run.completed_at is not None) == self.status.is_terminal


def draw_op(data: st.DataObject, m: RunModel) -> tuple[str, tuple[Any, ...]]:
    """An operation and its arguments; expected values are mostly the model's current ones."""
    d = data.draw

    def pick(current: Any, pool: list[Any], absent: bool = False) -> Any:
        # The current value (None: absent, where that is a valid expectation) 2 times in 3.
        if current is None and not absent:
            return d(st.sampled_from(pool))
        return d(st.sampled_from([current] * 8 + pool))

    def state() -> KernelState:
        return d(st.sampled_from(STATES))

    # Ids of existing frames and loops mostly (most preconditions need them), any id sometimes.
    fid = d(st.sampled_from(sorted(m.frames) * 3 + FRAME_IDS))
    lid = d(st.sampled_from(sorted(m.loops) * 3 + LOOP_IDS))
    cur_f, cur_l = m.frames.get(fid), m.loops.get(lid)
    er, nr = pick(m.flow, STATES), state()
    name = d(st.sampled_from(sorted(_COMMANDS)))
    statuses = list(MobRunStatus)
    if name in ("cas_run_status", "cas_run_snapshot"):
        es = pick(m.status, statuses)
        legal = sorted(LEGAL_MOVES[es]) or statuses
        ns = d(st.sampled_from(legal)) if d(st.integers(0, 4)) else d(st.sampled_from(statuses))
        return name, ((es, ns) if name == "cas_run_status" else (es, er, ns, nr))
    entry = LoopIterationLedgerEntry(loop_instance_id=lid, iteration=d(st.integers(0, 2)), frame_id=fid)
    nf, nl = FrameSnapshot(state()), LoopSnapshot(state())
    args = {
        "cas_flow_state": lambda: (er, nr),
        "append_step_entry_if_absent": lambda: (StepLedgerEntry(
            step_id=d(st.sampled_from(KEYS)), meerkat_id=d(st.sampled_from(["k1", "k2"])),
            status=d(st.sampled_from(["dispatched", "completed"])), output=d(st.none() | st.integers(0, 3)),
            timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc)),),
        "put_step_output": lambda: (d(st.sampled_from(KEYS)), d(st.integers(0, 9) | st.lists(st.integers(-5, 5), max_size=2))),
        "upsert_loop_snapshot": lambda: (lid, nl, d(st.none() | st.just(entry))),
        "cas_frame_state": lambda: (fid, pick(cur_f, FRAMES, absent=True), nf),
        "cas_grant_node_slot": lambda: (er, nr, fid, pick(cur_f, FRAMES), nf),
        "cas_complete_step_and_record_output": lambda: (
            fid, pick(cur_f, FRAMES), nf, d(st.sampled_from(KEYS)), d(st.integers(0, 9)),
            d(st.none() | st.tuples(st.sampled_from(LOOP_NAMES), st.integers(0, 3)))),
        "cas_start_loop": lambda: (lid, er, nr, fid, pick(cur_f, FRAMES), nf, nl),
        "cas_loop_request_body_frame": lambda: (lid, pick(cur_l, LOOPS), nl, er, nr),
        "cas_grant_body_frame_start": lambda: (lid, pick(cur_l, LOOPS), nl, fid, nf, entry, er, nr),
        "cas_complete_body_frame": lambda: (lid, pick(cur_l, LOOPS), nl, fid, pick(cur_f, FRAMES), nf, er, nr),
        "cas_complete_loop": lambda: (lid, pick(cur_l, LOOPS), nl, fid, pick(cur_f, FRAMES), nf, er, nr),
    }
    return name, args[name]()


def expect(model: RunModel, name: str, args: tuple[Any, ...]) -> tuple[Any, type[BaseException] | None]:
    try:
        return model.apply(name, args), None
    except (InvalidTransition, NotFound) as exc:
        return None, type(exc)


class _Unit:
    def __init__(self, *commands: Any) -> None:
        self.commands, self.results, self.error = commands, None, None


def _apply(db: Database, *commands: Any) -> Any:
    unit = _Unit(*commands)
    db.apply([unit])
    if unit.error is not None:
        raise unit.error
    return unit.results[0]


class _RunMachine(RuleBasedStateMachine):
    """The storage-level machine; subclasses pick memory or a file."""

    persistent = False

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp() if self.persistent else None
        self.path = os.path.join(self.dir, "runs.db") if self.dir else None
        ticks = itertools.count()
        self.clock = lambda: datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=next(ticks))
        self.db = self._open()
        self.model = RunModel()
        m = self.model
        run = MobRun(run_id=uuid.uuid4(), mob_id="m", flow_id="f", flow_state=m.flow, frames=m.frames, loops=m.loops)
        self.run_id = _apply(self.db, _runs.CreateRun.of("m", run)).run_id
        self.completed_at: datetime | None = None

    def _open(self) -> Database:
        return Database.open(self.path, durability="normal", clock=self.clock, readers=1)

    @rule(data=st.data())
    def operate(self, data: st.DataObject) -> None:
        name, args = draw_op(data, self.model)
        want, error = expect(self.model, name, args)
        event(f"{name} -> {error.__name__ if error else want}")
        if error is not None:
            with pytest.raises(error):
                _apply(self.db, _COMMANDS[name].of("m", self.run_id, *args))
        else:
            assert _apply(self.db, _COMMANDS[name].of("m", self.run_id, *args)) == want

    @rule(data=st.data())
    def missing_run(self, data: st.DataObject) -> None:
        """Any operation on a run that does not exist raises NotFound (or an illegal status
        pair raises InvalidTransition first)."""
        name, args = draw_op(data, self.model)
        with pytest.raises((NotFound, InvalidTransition)):
            _apply(self.db, _COMMANDS[name].of("m", uuid.uuid4(), *args))

    @precondition(lambda self: self.persistent)
    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = self._open()

    @invariant()
    def matches_model(self) -> None:
        run = self.db.read(_run_reads.get_run, self.run_id, "m")
        self.model.check(run)
        if run.completed_at is not None:
            assert run.completed_at >= run.created_at
            if self.completed_at is not None:
                assert run.completed_at == self.completed_at  # stamped once, never changed
            self.completed_at = run.completed_at

    def teardown(self) -> None:
        self.db.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


_MACHINE_SETTINGS = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class _MemoryMachine(_RunMachine):
    persistent = False


class _FileMachine(_RunMachine):
    persistent = True


TestRunMachineMemory = _MemoryMachine.TestCase
TestRunMachineMemory.settings = _MACHINE_SETTINGS
TestRunMachineFile = _FileMachine.TestCase
TestRunMachineFile.settings = _MACHINE_SETTINGS


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_trio_api_follows_the_model(data: st.DataObject) -> None:
    """The same operations through the trio API (``store.mob("m").runs``) give the model's
    results, and the run read back equals the model after every step."""

    async def main() -> None:
        async with open_store() as store:
            runs, model = store.mob("m").runs, RunModel()
            run = await runs.create_run(
                MobRun(run_id=uuid.uuid4(), mob_id="m", flow_id="f", flow_state=model.flow, frames=model.frames, loops=model.loops)
            )
            for _ in range(20):
                name, args = draw_op(data, model)
                want, error = expect(model, name, args)
                if error is not None:
                    with pytest.raises(error):
                        await getattr(runs, name)(run.run_id, *args)
                else:
                    assert await getattr(runs, name)(run.run_id, *args) == want
                model.check(await runs.get_run(run.run_id))

    trio.run(main)


def test_failure_midway_leaves_no_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """A multi-part CAS whose last write fails (after the frame was written) is rolled back
    whole: the frame is unchanged, and a neighbour in the same group commit still commits."""
    db = Database.open(None)
    run = _apply(db, _runs.CreateRun.of("m", MobRun.pending(mob_id="m", flow_id="f")))
    _apply(db, _run_cas.CasFrameState.of("m", run.run_id, "f", None, FRAMES[0]))

    def broken(*_args: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(_run_cas, "record_output", broken)
    bad = _Unit(_run_cas.CasCompleteStepAndRecordOutput.of("m", run.run_id, "f", FRAMES[0], FRAMES[1], "k", 1, ("L", 2)))
    good = _Unit(_runs.CasRunStatus.of("m", run.run_id, "pending", "running"))
    db.apply([bad, good])
    assert isinstance(bad.error, WriteFailed) and good.results == [True]
    got = db.read(_run_reads.get_run, run.run_id, "m")
    assert got.frames == {"f": FRAMES[0]}
    assert got.loop_iteration_outputs == {} and got.status is MobRunStatus.RUNNING
    db.close()


def _reordered(v: Any) -> Any:
    """The same kernel value, rebuilt from its Set items and Map entries in reverse order."""
    if isinstance(v, KSet):
        return KSet([_reordered(x) for x in reversed(v.items)])
    if isinstance(v, KMap):
        return KMap([(_reordered(k), _reordered(x)) for k, x in reversed(v.entries)])
    if isinstance(v, KSeq):
        return KSeq([_reordered(x) for x in v.items])
    return v


@settings(max_examples=50, deadline=None)
@given(state=kernel_states)
def test_cas_ignores_set_and_map_order(state: KernelState) -> None:
    """A CAS whose expected state was built with Set items, Map entries and fields in
    another order matches the stored state (byte equality of canonical encodings)."""
    expected = KernelState(state.phase, {k: _reordered(v) for k, v in reversed(list(state.fields.items()))})
    db = Database.open(None)
    try:
        run = _apply(db, _runs.CreateRun.of("m", MobRun.pending(mob_id="m", flow_id="f", flow_state=state)))
        assert _apply(db, _runs.CasFlowState.of("m", run.run_id, expected, KernelState("Next")))
        assert _apply(db, _run_cas.CasFrameState.of("m", run.run_id, "f", None, FrameSnapshot(state)))
        assert _apply(db, _run_cas.CasFrameState.of("m", run.run_id, "f", FrameSnapshot(expected), FrameSnapshot(state)))
    finally:
        db.close()
