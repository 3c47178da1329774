"""Properties under concurrency: receipt sequences and config generations.

* Receipt sequences per (runtime, run) are gapless from 0 however many trio tasks commit
  boundaries concurrently, across runtimes and runs, and every returned receipt is exactly
  the stored one.
* Config generations grow by exactly one per successful write: the successful writes of a
  whole history hold generations 1..N with no gap or repeat; of writers released together
  with the same expected generation exactly one wins (and gets expected + 1).

Writers are released together (they park on an event, the test waits until every task is
blocked, then sets it), so their requests land in the same mailbox drains and group commits.
"""

from __future__ import annotations

import tempfile
import uuid
from collections import defaultdict
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mobstore.actors import (
    ConfigSnapshot,
    GenerationConflict,
    InputState,
    RunBoundaryReceipt,
    SessionDelta,
    Store,
    open_store,
    uuid7,
)

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


@asynccontextmanager
async def fresh_store(kind: str) -> AsyncIterator[Store]:
    if kind == "memory":
        async with open_store() as store:
            yield store
        return
    with tempfile.TemporaryDirectory(prefix="mobstore-prop-") as d:
        async with open_store(f"{d}/store.db", durability="normal") as store:
            yield store


async def release_together(*jobs) -> None:  # type: ignore[no-untyped-def]
    go = trio.Event()

    async def run(job) -> None:  # type: ignore[no-untyped-def]
        await go.wait()
        await job()

    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(run, job)
        await trio.testing.wait_all_tasks_blocked()
        go.set()


# A task's plan: the (runtime, run) of each of its commits, in order.
commit_plans = st.lists(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=6), min_size=2, max_size=10
)


@pytest.mark.parametrize("kind", ["memory", "file"])
@SETTINGS
@given(plans=commit_plans)
async def test_receipt_sequences_are_gapless_per_runtime_and_run(kind, plans):
    """Concurrent commit_session_boundary calls: per (runtime, run) the sequences are exactly
    0..n-1, each task sees its own commits in increasing order, the stamps on each input
    match its receipt, and load_boundary_receipts returns exactly what the calls returned."""
    runs = [uuid.uuid4() for _ in range(3)]
    returned: dict[tuple[int, int], list[RunBoundaryReceipt]] = defaultdict(list)
    stamped: list[tuple[int, str, RunBoundaryReceipt]] = []
    async with fresh_store(kind) as store:

        def task(plan: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
            async def job() -> None:
                last: dict[tuple[int, int], int] = {}
                for rt, run in plan:
                    inp = InputState(input_id=uuid7())
                    d = SessionDelta.from_session({"messages": [{"rt": rt, "run": run}]})
                    r = await store.runtime(f"rt{rt}").commit_session_boundary(d, runs[run], "run_checkpoint", [inp.input_id], [inp])
                    assert r.sequence > last.get((rt, run), -1)
                    last[(rt, run)] = r.sequence
                    returned[(rt, run)].append(r)
                    stamped.append((rt, inp.input_id, r))

            return job

        await release_together(*[task(p) for p in plans])
        for (rt, run), got in returned.items():
            assert sorted(r.sequence for r in got) == list(range(len(got)))
            stored = await store.runtime(f"rt{rt}").load_boundary_receipts(runs[run])
            assert stored == sorted(got, key=lambda r: r.sequence)
        for rt, iid, r in stamped:
            s = await store.runtime(f"rt{rt}").load_input_state(iid)
            assert (s.last_run_id, s.last_boundary_sequence) == (r.run_id, r.sequence)


# A history: rounds of writers released together. Each writer is (kind, conditional):
# conditional writers pass the generation read at the start of the round.
rounds = st.lists(
    st.lists(st.tuples(st.sampled_from(["set", "patch"]), st.booleans()), min_size=1, max_size=6),
    min_size=1,
    max_size=5,
)


@pytest.mark.parametrize("kind", ["memory", "file"])
@SETTINGS
@given(history=rounds)
async def test_config_generations_grow_by_exactly_one(kind, history):
    """Every successful write gets a distinct generation, together exactly 1..N; in a round
    of only conditional writers exactly one wins (at expected + 1); a conditional winner
    always gets expected + 1; the final config is the one written at generation N."""
    successes: list[ConfigSnapshot] = []
    async with fresh_store(kind) as store:
        cfg = store.config
        for r, writers in enumerate(history):
            g = (await cfg.get()).generation
            won: list[ConfigSnapshot] = []

            def writer(w: int, op: str, conditional: bool):  # type: ignore[no-untyped-def]
                async def job() -> None:
                    expected = g if conditional else None
                    tag = {"round": r, "writer": w}
                    try:
                        if op == "set":
                            snap = await cfg.set(tag, expected)
                        else:
                            snap = await cfg.patch({"round": r, "writer": w, "n": {"w": w}}, expected)
                    except GenerationConflict as exc:
                        assert conditional and (exc.expected, exc.current) != (g, g)
                        return
                    successes.append(snap)
                    if conditional:
                        won.append(snap)
                        assert snap.generation == g + 1

                return job

            await release_together(*[writer(w, op, c) for w, (op, c) in enumerate(writers)])
            n_conditional = sum(c for _, c in writers)
            if n_conditional == len(writers):
                assert len(won) == 1
            else:
                assert len(won) <= 1
        gens = sorted(s.generation for s in successes)
        assert gens == list(range(1, len(successes) + 1))
        final = await cfg.get()
        assert final.generation == len(successes)
        assert final.config == next(s.config for s in successes if s.generation == final.generation)


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5), max_size=4).map(lambda d: {"messages": [d, {"role": "user"}], "id": "s"}))
def test_from_session_digest_equals_parsed_digest(session):
    """SessionDelta.from_session (no re-parse) gives the same digest and count as building
    the delta from its stored bytes (which parses them)."""
    from mobstore.storage import SessionDelta

    fast = SessionDelta.from_session(session)
    parsed = SessionDelta(fast.session_snapshot)
    assert (fast.conversation_digest, fast.message_count) == (parsed.conversation_digest, parsed.message_count)
    assert fast == parsed
