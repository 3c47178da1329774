"""The demo's verification: the reopened store against the ledger of acknowledged writes.

:func:`verify` reads everything the demo wrote and returns one ``(check, ok, detail)`` row
per invariant. A check whose reads fail (a damaged file) fails with the error as its
detail; it never raises.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mobstore.storage import SessionDelta

from ._demo_flow import CONSUMER, FLOW_ID, Ledger, agent_frame, flow_state, loop_state

if TYPE_CHECKING:
    from ._store import Store

Check = tuple[str, bool, str]


async def _get(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except Exception as exc:  # noqa: BLE001 - reported by the check that needs it
        return exc


def _v(value: Any) -> Any:
    if isinstance(value, Exception):
        raise value
    return value


def _run(name: str, fn: Callable[[], tuple[bool, str]]) -> Check:
    try:
        ok, detail = fn()
    except Exception as exc:  # noqa: BLE001 - a check that cannot be computed fails
        return (name, False, f"{type(exc).__name__}: {exc}")
    return (name, bool(ok), detail)


def _entry_key(e: Any) -> tuple[str, str, str, str]:
    return (e.step_id, e.meerkat_id, str(e.status), json.dumps(e.output, sort_keys=True))


async def verify(store: Store, ledger: Ledger) -> list[Check]:
    """Every invariant of the demo, checked on ``store`` against ``ledger``."""
    plan = ledger.plan
    mobs = plan.mob_ids()
    agents = [f"{m}/a{k}" for m in mobs for k in range(plan.agents)]

    # -- read everything ----------------------------------------------------------------------
    stored_events, heads, runs, specs, cursors, labels, scopes = {}, {}, {}, {}, {}, {}, {}
    for m in mobs:
        mob = store.mob(m)
        stored_events[m] = await _get(mob.events.replay_all())
        heads[m] = await _get(mob.events.last_cursor())
        run_id = ledger.run_ids.get(m)
        if run_id is not None:
            runs[m] = await _get(mob.runs.get_run(run_id))
        else:
            found = await _get(mob.runs.list_runs(FLOW_ID))
            runs[m] = found if isinstance(found, Exception) or len(found) != 1 else found[0]
        specs[m] = await _get(mob.spec.get_spec())
        cursors[m] = await _get(mob.cursors.get(CONSUMER))
        scopes[m] = await _get(mob.labels.list())
    for (m, run_id) in ledger.labels:
        labels[(m, run_id)] = await _get(store.mob(m).labels.get(run_id=run_id))
    receipts, snapshots, inputs, rt_states = {}, {}, {}, {}
    for a in agents:
        rt = store.runtime(a)
        run = runs.get(a.split("/")[0])
        run_id = getattr(run, "run_id", None) or ledger.run_ids.get(a.split("/")[0])
        receipts[a] = await _get(rt.load_boundary_receipts(run_id)) if run_id else ValueError("no run")
        snapshots[a] = await _get(rt.load_session_snapshot())
        inputs[a] = await _get(rt.load_input_states())
        rt_states[a] = await _get(rt.load_runtime_state())
    config = await _get(store.config.get())

    # -- the checks -----------------------------------------------------------------------------
    def events_present() -> tuple[bool, str]:
        lost = dup = wrong = extra = 0
        for m in mobs:
            stored = _v(stored_events[m])
            acked = ledger.events.get(m, {})
            by_cursor = {e.cursor: (e.kind, e.payload) for e in stored}
            dup += len(stored) - len(by_cursor)
            lost += sum(1 for c in acked if c not in by_cursor)
            wrong += sum(1 for c, kp in acked.items() if c in by_cursor and by_cursor[c] != kp)
            extra += sum(1 for c in by_cursor if c not in acked)
        # A cursor acknowledged twice (the store reused it) means an acknowledged event was
        # overwritten: the cursor-keyed ledger alone would not show it.
        reused = len(ledger.reused)
        ok = lost == dup == wrong == extra == reused == 0
        if ok:
            return True, f"{ledger.acknowledged:,} events in {len(mobs)} mobs"
        return False, f"{lost} missing, {dup} duplicated, {wrong} changed, {extra} never acknowledged, {reused} cursors acknowledged twice"

    def cursors_increasing() -> tuple[bool, str]:
        bad = []
        for m in mobs:
            cs = [e.cursor for e in _v(stored_events[m])]
            if not all(a < b for a, b in zip(cs, cs[1:])) or cs != list(range(1, len(cs) + 1)) or _v(heads[m]) != len(cs):
                bad.append(m)
        return not bad, "1..head, no gap, in every mob" if not bad else f"not 1..head in {', '.join(bad)}"

    def workload_complete() -> tuple[bool, str]:
        short = [a for a in agents if ledger.agent_events.get(a, 0) != plan.events]
        flows = [m for m in mobs if Counter(k for k, _ in ledger.events.get(m, {}).values())["flow_completed"] != 1]
        ok = not short and not flows
        detail = f"{len(agents)} agents x {plan.events} events ({plan.iterations} loop iterations each)"
        if short:
            detail = f"{len(short)} agents short, e.g. {short[0]}: {ledger.agent_events.get(short[0], 0)} of {plan.events}"
        elif flows:
            detail = f"no single flow_completed in {', '.join(flows)}"
        return ok, detail

    def runs_completed() -> tuple[bool, str]:
        bad = []
        for m in mobs:
            run = _v(runs[m])
            final = ("completed", flow_state("Completed", plan))
            if (run is None or run.status.value != "completed" or run.flow_state != final[1] or run.completed_at is None
                    or ledger.run_status.get(m) != final):
                bad.append(m)
        return not bad, f"{len(mobs)} runs of flow {FLOW_ID!r}" if not bad else f"not completed: {', '.join(bad)}"

    def frames_loops() -> tuple[bool, str]:
        bad, nf, nl = [], 0, 0
        done_frame, done_loop = agent_frame("Done", iterations=plan.iterations), loop_state("Done", plan.iterations)
        for m in mobs:
            run = _v(runs[m])
            nf, nl = nf + len(run.frames), nl + len(run.loops)
            final = all(run.frames.get(f"a{k}") == done_frame and run.loops.get(f"a{k}/loop") == done_loop
                        for k in range(plan.agents))
            if run.frames != ledger.frames.get(m) or run.loops != ledger.loops.get(m) or not final:
                bad.append(m)
        return not bad, f"{nf} frames, {nl} loops, all done" if not bad else f"differ in {', '.join(bad)}"

    def step_ledger() -> tuple[bool, str]:
        bad, n = [], 0
        for m in mobs:
            run = _v(runs[m])
            n += len(run.step_ledger)
            want = Counter(_entry_key(e) for e in ledger.steps.get(m, []))
            if Counter(_entry_key(e) for e in run.step_ledger) != want or max(want.values(), default=1) != 1 \
                    or len(run.step_ledger) != 2 * plan.agents * plan.iterations:
                bad.append(m)
        return not bad, f"{n} entries (dispatched + completed per iteration)" if not bad else f"differ in {', '.join(bad)}"

    def loop_ledger_outputs() -> tuple[bool, str]:
        bad, n = [], 0
        for m in mobs:
            run = _v(runs[m])
            n += len(run.loop_iteration_ledger)
            want_outputs = {
                loop: [its[i] for i in range(len(its))] for loop, its in sorted(ledger.outputs.get(m, {}).items())
            }
            if (Counter(run.loop_iteration_ledger) != Counter(ledger.loop_entries.get(m, []))
                    or len(set(run.loop_iteration_ledger)) != len(run.loop_iteration_ledger)
                    or run.loop_iteration_outputs != want_outputs):
                bad.append(m)
        return not bad, f"{n} iterations, each with its step output" if not bad else f"differ in {', '.join(bad)}"

    def labels_ok() -> tuple[bool, str]:
        bad = [f"{m}/{run or '(mob)'}" for (m, run), want in ledger.labels.items() if _v(labels[(m, run)]) != want]
        extra = [m for m in mobs if len(_v(scopes[m])) != sum(1 for (mm, _) in ledger.labels if mm == m)]
        ok = not bad and not extra
        return ok, f"{len(ledger.labels)} label sets (mob and run scopes)" if ok else f"differ: {', '.join(bad + extra)}"

    def spec_ok() -> tuple[bool, str]:
        bad = []
        for m in mobs:
            got = _v(specs[m])
            if got is None:
                bad.append(m)
                continue
            spec, rev = got
            if spec.get("flow") != ledger.spec_flow.get(m) or rev != 1 + spec["projection"]["count"]:
                bad.append(m)
        return not bad, "flow definition intact; revision = 1 + events projected" if not bad else f"differ in {', '.join(bad)}"

    def consumer_at_head() -> tuple[bool, str]:
        bad = [m for m in mobs if _v(cursors[m]) != _v(heads[m])]
        return not bad, f"{CONSUMER!r} at the head in {len(mobs)} mobs" if not bad else f"behind in {', '.join(bad)}"

    def exactly_once() -> tuple[bool, str]:
        bad = []
        for m in mobs:
            acked = ledger.events.get(m, {})
            p = _v(specs[m])[0]["projection"]
            kinds = Counter(k for k, _ in acked.values())
            if p["count"] != len(acked) or p["cursor_sum"] != sum(acked) or p["kinds"] != dict(kinds):
                bad.append(f"{m} (count {p['count']} of {len(acked)})")
        return not bad, f"count, cursor sum and per-kind counts = the log's" if not bad else "; ".join(bad)

    def consumers_resumed() -> tuple[bool, str]:
        # The first event a consumer handled after the reopen is the one after the cursor it
        # had persisted at the close (unless it had handled all of its mob's events by then).
        bad = []
        for m in mobs:
            closed_at, first = ledger.consumer_closed_at.get(m), ledger.consumer_first_after.get(m)
            caught_up = first is None and closed_at == len(ledger.events.get(m, {}))
            if closed_at is None or not (first == closed_at + 1 or caught_up):
                bad.append(m)
        resumed = len(ledger.consumer_first_after)
        at = ", ".join(f"{m}@{ledger.consumer_closed_at.get(m)}" for m in mobs[:3]) + (", ..." if len(mobs) > 3 else "")
        ok = not bad and resumed > 0
        return ok, f"first event after reopen = persisted + 1 ({at})" if ok else f"not in {', '.join(bad) or 'any mob'}"

    def receipts_ok() -> tuple[bool, str]:
        bad, n = [], 0
        for a in agents:
            got = _v(receipts[a])
            n += len(got)
            want = ledger.receipts.get(a, [])
            if got != want or [r.sequence for r in got] != list(range(plan.iterations)):
                bad.append(a)
        return not bad, f"{n} receipts, sequences 0..{plan.iterations - 1} per runtime" if not bad else f"differ in {', '.join(bad[:4])}"

    def snapshots_ok() -> tuple[bool, str]:
        bad = []
        for a in agents:
            raw = _v(snapshots[a])
            delta = SessionDelta(raw) if raw is not None else None
            want = ledger.sessions.get(a)
            last = (ledger.receipts.get(a) or [None])[-1]
            if (delta is None or (delta.conversation_digest, delta.message_count) != want or last is None
                    or last.conversation_digest != delta.conversation_digest or last.message_count != delta.message_count):
                bad.append(a)
        return not bad, f"{len(agents)} snapshots = their last receipt" if not bad else f"differ in {', '.join(bad[:4])}"

    def inputs_ok() -> tuple[bool, str]:
        bad, n = [], 0
        for a in agents:
            got = {s.input_id: (s.last_run_id, s.last_boundary_sequence) for s in _v(inputs[a])}
            n += len(got)
            if got != ledger.inputs.get(a, {}):
                bad.append(a)
        return not bad, f"{n} input states, each stamped with its run and sequence" if not bad else f"differ in {', '.join(bad[:4])}"

    def runtime_states() -> tuple[bool, str]:
        bad = [a for a in agents if _v(rt_states[a]) != ledger.runtime_states.get(a)]
        return not bad, f"{len(agents)} runtimes idle" if not bad else f"differ in {', '.join(bad[:4])}"

    def config_ok() -> tuple[bool, str]:
        snap, want = _v(config), ledger.config
        ok = want is not None and snap.generation == want.generation == ledger.config_writes and snap.config == want.config
        return ok, f"generation {snap.generation}" + ("" if ok else f", expected {ledger.config_writes}: {snap.config}")

    def crash_recovered() -> tuple[bool, str]:
        ok = ledger.actor_crashes == 1 and ledger.restarts >= 1
        return ok, f"{ledger.crashed_requests} requests got ActorCrashed and were retried; restarts={ledger.restarts}"

    def projector_recovered() -> tuple[bool, str]:
        ok = ledger.projector_crashes == 1 and ledger.projector_retries >= 1
        return ok, (f"injected crashes: {ledger.projector_crashes}; consumer restarts from the persisted cursor "
                    f"(all mobs): {ledger.projector_retries}")

    def midway_resume() -> tuple[bool, str]:
        # Every cancelled agent resumed where its acknowledged commits had left it: what the
        # store gave back after the reopen is what it had acknowledged before the close.
        stopped, resumed = set(ledger.stopped), set(ledger.resumed)
        moved = [a for a in stopped if ledger.resumed.get(a) != ledger.stopped_at.get(a)]
        ok = bool(stopped) and stopped <= resumed and not moved
        if moved:
            a = sorted(moved)[0]
            return False, f"{len(moved)} resumed elsewhere, e.g. {a}: stopped at {ledger.stopped_at.get(a)!r}, resumed at {ledger.resumed.get(a)!r}"
        return ok, f"{len(stopped)} agents cancelled mid-step, {len(resumed)} resumed from the store where they stopped"

    return [
        _run("every acknowledged event present once, at its cursor", events_present),
        _run("cursors strictly increasing per mob", cursors_increasing),
        _run("every agent appended all its planned events", workload_complete),
        _run("every run completed, flow state final", runs_completed),
        _run("frames and loops in their last acknowledged states", frames_loops),
        _run("step ledger: every acknowledged entry, once", step_ledger),
        _run("loop iteration ledger and step outputs complete", loop_ledger_outputs),
        _run("labels as last written", labels_ok),
        _run("mob specs as written", spec_ok),
        _run("consumer cursor == log head", consumer_at_head),
        _run("derived count == events (exactly once)", exactly_once),
        _run("consumers resumed after reopen at their cursor", consumers_resumed),
        _run("boundary receipts contiguous, as acknowledged", receipts_ok),
        _run("session snapshot = last acknowledged boundary", snapshots_ok),
        _run("input states stamped by their boundary", inputs_ok),
        _run("runtime states as last written", runtime_states),
        _run("realm config generation and content", config_ok),
        _run("the crashed actor restarted; callers retried", crash_recovered),
        _run("the crashed projector resumed", projector_recovered),
        _run("agents stopped midway resumed from the store", midway_resume),
    ]
