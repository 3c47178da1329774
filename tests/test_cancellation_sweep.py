"""A cancellation sweep over every mutating call: cancel at each checkpoint (of the caller,
and of every task of the run: while the request is queued, just taken, committing, answered)
and check all or nothing: a call that raised ``Cancelled`` left the store exactly as before;
a call that returned left it exactly as an uncancelled call does. Then the same actor serves
the next call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from mobstore.actors import (
    FailureLedgerEntry,
    InputLifecycleState,
    InputState,
    MobRun,
    NewMobEvent,
    Profile,
    RunApplyBoundary,
    RunBoundaryReceipt,
    RuntimeState,
    SessionDelta,
    StepLedgerEntry,
    open_store,
)
from mobstore.actors.testing import call_cancelled_at
from mobstore.actors.testing.contracts.runs_cas import F0, F1, L0, R0, R1, WRAPPERS
from mobstore.storage import (
    _config,
    _cursors,
    _events,
    _labels,
    _profiles,
    _run_reads,
    _runtime_store,
    _specs,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
RUN = "44444444-4444-4444-8444-444444444444"
NEW_RUN = "55555555-5555-4555-8555-555555555555"
RT_RUN = "66666666-6666-4666-8666-666666666666"
INPUT = "77777777-7777-4777-8777-777777777777"


def _delta(n: int) -> SessionDelta:
    return SessionDelta.from_session({"version": 1, "id": "s", "messages": [{"n": i} for i in range(n)]})


def _input(state: InputLifecycleState = InputLifecycleState.ACCEPTED) -> InputState:
    return InputState(input_id=INPUT, current_state=state, created_at=T0)


async def setup(store) -> None:
    """The state every case starts from: a little of everything."""
    mob = store.mob("m")
    await mob.events.append_batch([NewMobEvent("a", {"i": 1}), NewMobEvent("a", {"i": 2})])
    await mob.spec.put_spec({"v": 1})
    await mob.runs.create_run(MobRun(run_id=RUN, mob_id="m", flow_id="f", status="running", flow_state=R0,
                                     frames={"f": F0}, loops={"l": L0}, created_at=T0))
    await mob.runs.append_step_entry(RUN, StepLedgerEntry(step_id="s", meerkat_id="k", timestamp=T0))
    await mob.labels.set({"a": "1"})
    await mob.cursors.set(1, "c")
    await store.profiles.create("p", Profile("m1"))
    await store.config.set({"x": {"n": 1}})
    await store.runtime("rt").commit_session_boundary(_delta(1), RT_RUN, RunApplyBoundary.RUN_START, [INPUT], [_input()])


def _read_all(conn) -> tuple[Any, ...]:
    return (
        _events.replay_all(conn, "m"), _events.last_cursor(conn, "m"), _specs.get_spec(conn, "m"),
        _run_reads.list_runs(conn, "m", None), _labels.list_labels(conn, "m"), _cursors.list_cursors(conn, "m"),
        _profiles.list_profiles(conn), _config.get_config(conn, "{}"),
        _runtime_store.load_boundary_receipts(conn, "rt", RT_RUN), _runtime_store.load_session_snapshot(conn, "rt"),
        _runtime_store.load_input_states(conn, "rt"), _runtime_store.load_runtime_state(conn, "rt"),
    )


async def observe(store) -> tuple[Any, ...]:
    return await store._read(_read_all)


Call = Callable[[Any], Awaitable[Any]]


def _wrapper(name: str) -> Call:
    args = WRAPPERS[name][0]
    return lambda s: getattr(s.mob("m").runs, name)(RUN, **args)


#: every mutating call of the API, on the state of ``setup``, with the actor it goes to.
CASES: dict[str, tuple[str, Call]] = {
    "events.append": ("mob", lambda s: s.mob("m").events.append(NewMobEvent("b"))),
    "events.append_batch": ("mob", lambda s: s.mob("m").events.append_batch([NewMobEvent("b"), NewMobEvent("c")])),
    "events.clear": ("mob", lambda s: s.mob("m").events.clear()),
    "events.prune": ("mob", lambda s: s.mob("m").events.prune(T0 + timedelta(days=1), force=True)),
    "spec.put_spec": ("mob", lambda s: s.mob("m").spec.put_spec({"v": 2}, revision=1)),
    "spec.delete_spec": ("mob", lambda s: s.mob("m").spec.delete_spec(1)),
    "runs.create_run": ("mob", lambda s: s.mob("m").runs.create_run(
        MobRun(run_id=NEW_RUN, mob_id="m", flow_id="f", created_at=T0))),
    "runs.cas_run_status": ("mob", lambda s: s.mob("m").runs.cas_run_status(RUN, "running", "completed")),
    "runs.cas_flow_state": ("mob", lambda s: s.mob("m").runs.cas_flow_state(RUN, R0, R1)),
    "runs.cas_run_snapshot": ("mob", lambda s: s.mob("m").runs.cas_run_snapshot(RUN, "running", R0, "failed", R1)),
    "runs.append_step_entry": ("mob", lambda s: s.mob("m").runs.append_step_entry(
        RUN, StepLedgerEntry(step_id="t", meerkat_id="k", timestamp=T0))),
    "runs.append_step_entry_if_absent": ("mob", lambda s: s.mob("m").runs.append_step_entry_if_absent(
        RUN, StepLedgerEntry(step_id="t", meerkat_id="k", timestamp=T0))),
    "runs.put_step_output": ("mob", lambda s: s.mob("m").runs.put_step_output(RUN, "s", {"out": 1})),
    "runs.append_failure_entry": ("mob", lambda s: s.mob("m").runs.append_failure_entry(
        RUN, FailureLedgerEntry(step_id="s", reason="boom", timestamp=T0))),
    "runs.upsert_loop_snapshot": ("mob", lambda s: s.mob("m").runs.upsert_loop_snapshot(RUN, "l2", L0)),
    "runs.cas_frame_state": ("mob", lambda s: s.mob("m").runs.cas_frame_state(RUN, "f", F0, F1)),
    **{f"runs.{name}": ("mob", _wrapper(name)) for name in WRAPPERS},
    "mob.commit": ("mob", lambda s: s.mob("m").commit(
        s.mob("m").cmd.put_spec({"v": 3}, revision=1), s.mob("m").cmd.append(NewMobEvent("spec")),
        s.mob("m").cmd.cas_run_status(RUN, "running", "completed"))),
    "labels.set": ("mob", lambda s: s.mob("m").labels.set({"b": "2"}, run_id=RUN)),
    "labels.delete": ("mob", lambda s: s.mob("m").labels.delete()),
    "cursors.set": ("mob", lambda s: s.mob("m").cursors.set(2, "c")),
    "cursors.reset": ("mob", lambda s: s.mob("m").cursors.reset(None, "c")),
    "profiles.create": ("realm", lambda s: s.profiles.create("q", Profile("m2"))),
    "profiles.update": ("realm", lambda s: s.profiles.update("p", Profile("m3"), 1)),
    "profiles.delete": ("realm", lambda s: s.profiles.delete("p", 1)),
    "config.set": ("realm", lambda s: s.config.set({"y": {"n": 2}}, expected_generation=1)),
    "config.patch": ("realm", lambda s: s.config.patch({"y": {"n": 3}}, expected_generation=1)),
    "runtime.commit_session_boundary": ("runtime", lambda s: s.runtime("rt").commit_session_boundary(
        _delta(2), RT_RUN, RunApplyBoundary.RUN_START, [INPUT], [_input(InputLifecycleState.QUEUED)])),
    "runtime.atomic_apply": ("runtime", lambda s: s.runtime("rt").atomic_apply(
        _delta(3), RunBoundaryReceipt(run_id=RT_RUN, boundary=RunApplyBoundary.RUN_START, sequence=5), [_input()])),
    "runtime.persist_input_state": ("runtime", lambda s: s.runtime("rt").persist_input_state(
        _input(InputLifecycleState.QUEUED))),
    "runtime.persist_runtime_state": ("runtime", lambda s: s.runtime("rt").persist_runtime_state(RuntimeState.RUNNING)),
    "runtime.atomic_lifecycle_commit": ("runtime", lambda s: s.runtime("rt").atomic_lifecycle_commit(
        RuntimeState.RETIRED, [_input(InputLifecycleState.QUEUED)])),
}

#: a call that must succeed on the same actor after the sweep point (the actor keeps serving)
NEXT: dict[str, Call] = {
    "mob": lambda s: s.mob("m").events.append(NewMobEvent("next")),
    "realm": lambda s: s.profiles.create("next", Profile("n")),
    "runtime": lambda s: s.runtime("rt").persist_runtime_state(RuntimeState.IDLE),
}


def _open():
    return open_store(clock=lambda: T0, idle_timeout=None)


def _outcome(result: Any, error: BaseException | None) -> Any:
    if error is not None:
        return ("error", type(error).__name__, str(error))
    return ("ok", attrs.asdict(result) if attrs.has(type(result)) else result)


@pytest.mark.parametrize("count", ["task", "all"])
@pytest.mark.parametrize("name", list(CASES))
async def test_cancel_at_every_checkpoint(name, count):
    """All or nothing at every cancellation point, and the actor keeps serving."""
    actor, call = CASES[name]
    async with _open() as store:  # the reference: the call, uncancelled
        await setup(store)
        before = await observe(store)
        ref = await call_cancelled_at(10**9, lambda: call(store))
        after = await observe(store)
    assert ref.completed and after != before, "the case must change something"
    seen = {"cancelled": 0, "completed": 0}
    for k in range(200):
        async with _open() as store:
            await setup(store)
            got = await call_cancelled_at(k, lambda: call(store), count=count)
            state = await observe(store)
            if got.completed:
                seen["completed"] += 1
                assert _outcome(got.result, got.error) == _outcome(ref.result, ref.error), k
                assert state == after, f"{name}: returned at k={k} but not everything was written"
            else:
                seen["cancelled"] += 1
                assert state == before, f"{name}: cancelled at k={k} but something was written"
            await NEXT[actor](store)  # the actor keeps serving
        if not got.cancel_issued:
            break
    else:
        pytest.fail(f"{name}: still cancellable after 200 steps")
    assert seen["cancelled"] >= 1 and seen["completed"] >= 1
