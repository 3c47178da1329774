"""Run CAS under contention: many trio tasks racing the same transition on one run.

Every race releases all contenders at once (they park on an event; the test waits until all
are blocked, then sets it), so their requests land in the same mailbox drain and the same
group commit. Linearisability per run means: for each transition exactly one contender wins,
and the final run equals applying each transition once, in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import trio
import trio.testing

from mobstore.actors import (
    FrameSnapshot,
    KernelState,
    KU64,
    LoopIterationLedgerEntry,
    LoopSnapshot,
    MobRun,
    MobRunStatus,
)

N = 32


def S(phase: str, n: int = 0) -> KernelState:  # noqa: N802
    return KernelState(phase, {"n": KU64(n)})


async def race(call: Callable[[], Awaitable[bool]], n: int = N) -> list[bool]:
    """Run ``call`` in ``n`` tasks released together; return their results."""
    go = trio.Event()
    results: list[bool] = []

    async def contender() -> None:
        await go.wait()
        results.append(await call())

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(contender)
        await trio.testing.wait_all_tasks_blocked()
        go.set()
    return results


async def test_each_transition_has_exactly_one_winner(store):
    """A run driven through status, flow, frame and loop transitions, each raced by 32
    tasks: one True per transition, and the final run equals the sequential model."""
    runs = store.mob("m").runs
    run = await runs.create_run(MobRun.pending(mob_id="m", flow_id="f", flow_state=S("Pending")))
    rid = run.run_id
    f0, f1, f2 = (FrameSnapshot(S("Frame", i)) for i in range(3))
    l0, l1, l2, l3 = (LoopSnapshot(S("Loop", i)) for i in range(4))
    body0, body1 = FrameSnapshot(S("Body", 0)), FrameSnapshot(S("Body", 1))
    entry = LoopIterationLedgerEntry(loop_instance_id="li", iteration=0, frame_id="b0")
    flows = [S("Running", i) for i in range(8)]
    transitions: list[Callable[[], Awaitable[bool]]] = [
        lambda: runs.cas_run_snapshot(rid, "pending", S("Pending"), "running", flows[0]),
        lambda: runs.cas_frame_state(rid, "root", None, f0),
        lambda: runs.cas_grant_node_slot(rid, flows[0], flows[1], "root", f0, f1),
        lambda: runs.cas_start_loop(rid, "li", flows[1], flows[2], "root", f1, f2, l0),
        lambda: runs.cas_loop_request_body_frame(rid, "li", l0, l1, flows[2], flows[3]),
        lambda: runs.cas_grant_body_frame_start(rid, "li", l1, l2, "b0", body0, entry, flows[3], flows[4]),
        lambda: runs.cas_complete_step_and_record_output(rid, "b0", body0, body1, "s", {"ok": True}, ("L", 0)),
        lambda: runs.cas_complete_body_frame(rid, "li", l2, l3, "b0", body1, body0, flows[4], flows[5]),
        lambda: runs.cas_complete_loop(rid, "li", l3, l0, "root", f2, f0, flows[5], flows[6]),
        lambda: runs.cas_flow_state(rid, flows[6], flows[7]),
        lambda: runs.cas_run_status(rid, "running", "completed"),
    ]
    for i, transition in enumerate(transitions):
        results = await race(transition)
        assert results.count(True) == 1, f"transition {i}: {results.count(True)} winners"
        assert len(results) == N
    got = await runs.get_run(rid)
    assert got == MobRun(
        run_id=rid,
        mob_id="m",
        flow_id="f",
        status=MobRunStatus.COMPLETED,
        flow_state=flows[7],
        created_at=run.created_at,
        completed_at=got.completed_at,
        frames={"root": f0, "b0": body0},
        loops={"li": l0},
        loop_iteration_ledger=[entry],
        loop_iteration_outputs={"L": [{"s": {"ok": True}}]},
    )
    assert got.completed_at is not None


async def test_competing_terminal_moves_have_one_winner(store):
    """Tasks racing different terminal moves from the same status: exactly one wins, and
    the stored status is the winner's target."""
    runs = store.mob("m").runs
    run = await runs.create_run(MobRun(run_id=uuid.uuid4(), mob_id="m", flow_id="f", status="running"))
    targets = ["completed", "failed", "canceled"]
    outcome: dict[str, int] = {t: 0 for t in targets}
    go = trio.Event()

    async def contender(target: str) -> None:
        await go.wait()
        if await runs.cas_run_status(run.run_id, "running", target):
            outcome[target] += 1

    async with trio.open_nursery() as nursery:
        for i in range(N):
            nursery.start_soon(contender, targets[i % 3])
        await trio.testing.wait_all_tasks_blocked()
        go.set()
    assert sum(outcome.values()) == 1
    [winner] = [t for t, n in outcome.items() if n]
    assert (await runs.get_run(run.run_id)).status.value == winner


async def test_read_cas_retry_loses_no_update(store):
    """The upstream caller pattern (read the run, compute the next state, CAS, retry on
    False) from 32 tasks: every increment lands exactly once."""
    runs = store.mob("m").runs
    run = await runs.create_run(MobRun.pending(mob_id="m", flow_id="f", flow_state=S("Count", 0)))
    per_task = 3
    attempts = 0

    async def incrementer() -> None:
        nonlocal attempts
        for _ in range(per_task):
            while True:
                attempts += 1
                current = (await runs.get_run(run.run_id)).flow_state
                nxt = S("Count", current.fields["n"].value + 1)
                if await runs.cas_flow_state(run.run_id, current, nxt):
                    break

    async with trio.open_nursery() as nursery:
        for _ in range(N):
            nursery.start_soon(incrementer)
    assert (await runs.get_run(run.run_id)).flow_state == S("Count", N * per_task)
    assert attempts >= N * per_task


async def test_runs_of_different_mobs_do_not_interfere(store):
    """Concurrent transitions on runs of different mobs all succeed (one winner each)."""
    ids = {}
    for m in range(8):
        run = await store.mob(f"m{m}").runs.create_run(MobRun.pending(mob_id=f"m{m}", flow_id="f", run_id=uuid.uuid4()))
        ids[m] = run.run_id
    results: dict[int, list[bool]] = {m: [] for m in ids}
    go = trio.Event()

    async def contender(m: int) -> None:
        await go.wait()
        results[m].append(await store.mob(f"m{m}").runs.cas_run_status(ids[m], "pending", "running"))

    async with trio.open_nursery() as nursery:
        for i in range(N):
            nursery.start_soon(contender, i % 8)
        await trio.testing.wait_all_tasks_blocked()
        go.set()
    assert all(r.count(True) == 1 and len(r) == N // 8 for r in results.values())
    for m, rid in ids.items():
        assert (await store.get_run(rid)).status is MobRunStatus.RUNNING
