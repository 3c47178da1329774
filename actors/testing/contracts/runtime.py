"""The runtime-store contract (SEMANTICS.md §6.6: upstream's memory, sqlite and redb tests
plus the port's rules), against any backend."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone

import attrs
import pytest
import trio

from mobstore.actors import (
    CasConflict,
    InputDurability,
    InputLifecycleState,
    InputState,
    InputStateHistoryEntry,
    InputTerminalOutcome,
    InvalidInput,
    PolicySnapshot,
    ReconstructionSource,
    RunApplyBoundary,
    RunBoundaryReceipt,
    RuntimeState,
    SessionDelta,
    uuid7,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def state(input_id: str | None = None, current: InputLifecycleState = InputLifecycleState.ACCEPTED, **kw: object) -> InputState:
    return InputState(input_id=input_id or uuid7(), current_state=current, created_at=T0, **kw)  # type: ignore[arg-type]


def delta(*messages: object, **extra: object) -> SessionDelta:
    return SessionDelta.from_session({"version": 1, "id": "s", "messages": list(messages), **extra})


def receipt(run_id: uuid.UUID | str, seq: int) -> RunBoundaryReceipt:
    return RunBoundaryReceipt(run_id=run_id, boundary=RunApplyBoundary.RUN_START, sequence=seq)


def full_state() -> InputState:
    """An input state with every optional field set."""
    return InputState(
        input_id=uuid7(),
        current_state=InputLifecycleState.ABANDONED,
        policy=PolicySnapshot(version=3, decision={"apply_mode": "stage_run_start", "record_transcript": True}),
        terminal_outcome=InputTerminalOutcome.abandoned("retired"),
        durability=InputDurability.DURABLE,
        idempotency_key="idem-1",
        attempt_count=2,
        recovery_count=1,
        history=(
            InputStateHistoryEntry(timestamp=T0, from_state="accepted", to_state="queued", reason="policy"),
            InputStateHistoryEntry(timestamp=T0 + timedelta(seconds=1), from_state="queued", to_state="abandoned"),
        ),
        reconstruction_source=ReconstructionSource.coalescing([uuid7(), uuid7()]),
        persisted_input={"kind": "prompt", "text": "héllo", "n": [1, 2.5, None]},
        last_run_id=uuid.uuid4(),
        last_boundary_sequence=7,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=1, microseconds=5),
    )


class RuntimeStoreContract:
    """``store.runtime(id)``: boundaries, receipts, input states, snapshots, runtime state."""

    # -- upstream's tests --------------------------------------------------------------------

    async def test_atomic_apply_roundtrip(self, store):
        """atomic_apply(snapshot, receipt seq 0, [accepted input]) stores the input and the
        receipt."""
        rt, run, s = store.runtime("test-runtime"), uuid.uuid4(), state()
        await rt.atomic_apply(delta(), receipt(run, 0), [s])
        states = await rt.load_input_states()
        assert [x.input_id for x in states] == [s.input_id]
        assert await rt.load_boundary_receipt(run, 0) == receipt(run, 0)

    async def test_persist_and_load_single_state(self, store):
        """persist_input_state then load_input_state returns it."""
        rt, s = store.runtime("test"), state()
        await rt.persist_input_state(s)
        assert await rt.load_input_state(s.input_id) == s

    async def test_load_nonexistent(self, store):
        """Nothing stored: [] states, and None for a state, receipt, snapshot, runtime state."""
        rt = store.runtime("test")
        assert await rt.load_input_states() == []
        assert await rt.load_input_state(uuid7()) is None
        assert await rt.load_boundary_receipt(uuid.uuid4(), 0) is None
        assert await rt.load_session_snapshot() is None
        assert await rt.load_runtime_state() is None

    async def test_atomic_apply_updates_existing(self, store):
        """Two applies of the same input id (accepted, then queued) leave one state, queued."""
        rt, iid = store.runtime("test"), uuid7()
        await rt.atomic_apply(None, receipt(uuid.uuid4(), 0), [state(iid)])
        await rt.atomic_apply(None, receipt(uuid.uuid4(), 1), [state(iid, InputLifecycleState.QUEUED)])
        [only] = await rt.load_input_states()
        assert only.current_state is InputLifecycleState.QUEUED

    async def test_commit_session_boundary_returns_authoritative_receipt(self, store):
        """A new run gets sequence 0 with the run id echoed and a digest; the stored receipt
        equals the returned one."""
        rt, run, iid = store.runtime("test"), uuid.uuid4(), uuid7()
        got = await rt.commit_session_boundary(delta(), run, RunApplyBoundary.IMMEDIATE, [iid], [state(iid)])
        assert (got.sequence, got.run_id, got.boundary) == (0, str(run), RunApplyBoundary.IMMEDIATE)
        assert got.contributing_input_ids == (iid,)
        assert got.conversation_digest is not None and got.message_count == 0
        assert await rt.load_boundary_receipt(got.run_id, got.sequence) == got

    async def test_multiple_runtimes_isolated(self, store):
        """runtime-1 with one state and runtime-2 with two load one and two; snapshots,
        receipts and runtime states do not leak either."""
        r1, r2, run = store.runtime("runtime-1"), store.runtime("runtime-2"), uuid.uuid4()
        await r1.persist_input_state(state())
        await r2.persist_input_state(state())
        await r2.persist_input_state(state())
        assert len(await r1.load_input_states()) == 1
        assert len(await r2.load_input_states()) == 2
        await r1.commit_session_boundary(delta({"n": 1}), run, "run_start")
        await r1.persist_runtime_state(RuntimeState.RUNNING)
        assert await r2.load_session_snapshot() is None
        assert await r2.load_boundary_receipt(run, 0) is None
        assert await r2.load_runtime_state() is None
        assert (await r2.commit_session_boundary(delta(), run, "run_start")).sequence == 0

    async def test_load_session_snapshot_roundtrip(self, store):
        """The snapshot comes back byte for byte (whitespace, key order, escapes kept)."""
        rt = store.runtime("runtime")
        raw = b'{ "messages" : [ {"b": 1, "a": "\\u00e9"} ],\n "id": "x" }'
        await rt.atomic_apply(SessionDelta(raw), receipt(uuid.uuid4(), 0), [])
        assert await rt.load_session_snapshot() == raw

    # -- sequences, stamping, digest ---------------------------------------------------------

    async def test_sequences_per_run_count_from_zero(self, store):
        """A second commit of a run gets 1; another run starts at 0; after a caller-minted
        receipt at 5, the next commit of that run gets 6 (1 + the highest)."""
        rt, a, b = store.runtime("rt"), uuid.uuid4(), uuid.uuid4()
        assert [(await rt.commit_session_boundary(delta(), a, "run_checkpoint")).sequence for _ in range(3)] == [0, 1, 2]
        assert (await rt.commit_session_boundary(delta(), b, "run_start")).sequence == 0
        await rt.atomic_apply(None, receipt(b, 5), [])
        assert (await rt.commit_session_boundary(delta(), b, "run_checkpoint")).sequence == 6
        assert [r.sequence for r in await rt.load_boundary_receipts(a)] == [0, 1, 2]

    async def test_commit_stamps_every_input_update(self, store):
        """Every input update is stored with last_run_id and last_boundary_sequence of the
        receipt; every other field, updated_at included, is stored as given."""
        rt, run = store.runtime("rt"), uuid.uuid4()
        updates = [state(), full_state(), state(current=InputLifecycleState.STAGED)]
        await rt.commit_session_boundary(delta(), run, "run_start", [], updates[:1])
        got = await rt.commit_session_boundary(delta(), run, "run_checkpoint", [u.input_id for u in updates], updates)
        assert got.sequence == 1
        for u in updates:
            back = await rt.load_input_state(u.input_id)
            assert back == InputState(**{**_fields(u), "last_run_id": str(run), "last_boundary_sequence": 1})
            assert back.updated_at == u.updated_at

    async def test_digest_is_sha256_of_compact_messages(self, store):
        """The digest is the SHA-256 of the messages' compact JSON (non-ASCII unescaped, key
        order kept), the same for equal messages whatever the snapshot's formatting, and
        different when a message changes; message_count counts them."""
        rt, run = store.runtime("rt"), uuid.uuid4()
        msgs = [{"role": "user", "content": "héllo"}, {"role": "assistant", "content": [1, 2.5]}]
        expected = hashlib.sha256(
            json.dumps(msgs, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        ).hexdigest()
        pretty = SessionDelta(json.dumps({"messages": msgs, "other": 1}, indent=2).encode())
        r1 = await rt.commit_session_boundary(pretty, run, "immediate")
        r2 = await rt.commit_session_boundary(delta(*msgs), run, "immediate")
        r3 = await rt.commit_session_boundary(delta(msgs[0], {"role": "assistant", "content": [1, 2.6]}), run, "immediate")
        assert r1.conversation_digest == r2.conversation_digest == expected
        assert r3.conversation_digest != expected
        assert r1.message_count == r3.message_count == 2
        assert r1.conversation_digest == r1.conversation_digest.lower() and len(expected) == 64

    # -- the port's rules ----------------------------------------------------------------------

    async def test_duplicate_receipt_is_cas_conflict_and_writes_nothing(self, store):
        """A second atomic_apply with an existing receipt key, a snapshot and a new input
        fails with CasConflict: the snapshot is still absent, the input count still 1 and
        the receipt unchanged (upstream's sqlite rule, here on every backend)."""
        rt, run = store.runtime("rt"), uuid.uuid4()
        first = receipt(run, 0)
        await rt.atomic_apply(None, first, [state()])
        dup = RunBoundaryReceipt(run_id=run, boundary="immediate", message_count=3, sequence=0)
        with pytest.raises(CasConflict) as info:
            await rt.atomic_apply(delta({"x": 1}), dup, [state()])
        assert info.value.actual == first
        assert await rt.load_session_snapshot() is None
        assert len(await rt.load_input_states()) == 1
        assert await rt.load_boundary_receipt(run, 0) == first

    async def test_the_last_sequence_is_2_63_minus_1(self, store):
        """A run whose receipts reached 2**63 - 1 (atomic_apply takes caller-minted
        sequences) refuses the next boundary with InvalidInput and writes nothing; before,
        SQLite's MAX + 1 overflowed into a float receipt that made the runtime unreadable.
        Other runs of the runtime, and the boundaries batched with it, are unaffected."""
        rt, full, other = store.runtime("rt"), uuid.uuid4(), uuid.uuid4()
        last = RunBoundaryReceipt(run_id=full, boundary="immediate", sequence=2**63 - 1)
        await rt.atomic_apply(None, last)
        async with trio.open_nursery() as n:  # likely one group commit: isolation inside it
            n.start_soon(rt.commit_session_boundary, delta({"o": 1}), other, "immediate")
            with pytest.raises(InvalidInput, match="used every receipt sequence") as info:
                await rt.commit_session_boundary(delta({"x": 1}), full, "immediate", [], [state()])
        assert info.value.field == "run_id"
        assert await rt.load_boundary_receipts(full) == [last]
        assert [r.sequence for r in await rt.load_boundary_receipts(other)] == [0]
        assert json.loads(await rt.load_session_snapshot())["messages"] == [{"o": 1}]
        assert await rt.load_input_states() == []

    async def test_atomic_lifecycle_commit_persists_state_and_inputs(self, store):
        """The runtime state and every input state are stored by one call."""
        rt = store.runtime("rt")
        inputs = [state(current=InputLifecycleState.QUEUED) for _ in range(3)]
        await rt.persist_input_state(inputs[0])
        abandoned = [
            InputState(**{**_fields(s), "current_state": "abandoned", "terminal_outcome": InputTerminalOutcome.abandoned("destroyed")})
            for s in inputs
        ]
        await rt.atomic_lifecycle_commit(RuntimeState.DESTROYED, abandoned)
        assert await rt.load_runtime_state() is RuntimeState.DESTROYED
        assert await rt.load_input_states() == sorted(abandoned, key=lambda s: s.input_id)

    @pytest.mark.parametrize(
        "snapshot, problem",
        [
            (b"session-data", "not UTF-8 JSON"),
            (b"\xff\xfe{}", "not UTF-8 JSON"),
            (b"[1, 2]", "JSON object"),
            (b'{"id": "s"}', "no 'messages' key"),
            (b'{"messages": {"a": 1}}', "'messages' is dict"),
            (b'{"messages": [NaN]}', "not UTF-8 JSON"),
            ('{"messages": []}', "must be bytes"),
            (None, "must be bytes"),
        ],
    )
    async def test_invalid_snapshot_is_invalid_input_and_writes_nothing(self, store, snapshot, problem):
        """A snapshot that is not bytes of a JSON object with a messages list is InvalidInput
        naming session_snapshot; nothing is written."""
        with pytest.raises(InvalidInput, match=problem) as info:
            SessionDelta(snapshot)
        assert info.value.field == "session_snapshot"
        rt = store.runtime("rt")
        for bad in ("not a delta", b'{"messages": []}'):
            with pytest.raises(InvalidInput, match="session_delta"):
                await rt.commit_session_boundary(bad, uuid.uuid4(), "immediate", [], [state()])
            with pytest.raises(InvalidInput, match="session_delta"):
                await rt.atomic_apply(bad, receipt(uuid.uuid4(), 0), [state()])
        assert await rt.load_input_states() == [] and await rt.load_session_snapshot() is None

    async def test_bad_arguments_are_invalid_input_naming_the_field(self, store):
        """Bad run ids, boundaries, input ids, states and non-JSON payloads are refused
        before anything is queued, naming the field."""
        rt, run = store.runtime("rt"), uuid.uuid4()
        cases = [
            ("run_id", lambda: rt.commit_session_boundary(delta(), "run-1", "immediate")),
            ("run_id", lambda: rt.commit_session_boundary(delta(), "", "immediate")),
            ("boundary", lambda: rt.commit_session_boundary(delta(), run, "sometime")),
            ("contributing_input_ids[1]", lambda: rt.commit_session_boundary(delta(), run, "immediate", [uuid7(), "x"])),
            ("input_updates[0]", lambda: rt.commit_session_boundary(delta(), run, "immediate", [], [{"input_id": uuid7()}])),
            (
                "input_updates[0]['persisted_input']['f']",
                lambda: rt.commit_session_boundary(delta(), run, "immediate", [], [state(persisted_input={"f": float("inf")})]),
            ),
            ("state", lambda: rt.persist_input_state("nope")),
            ("state", lambda: rt.persist_runtime_state("sleeping")),
            ("runtime_state", lambda: rt.atomic_lifecycle_commit("sleeping", [])),
            ("receipt", lambda: rt.atomic_apply(None, {"run_id": str(run)}, [])),
            ("input_id", lambda: rt.load_input_state("nope")),
            ("sequence", lambda: rt.load_boundary_receipt(run, -1)),
        ]
        for field, call in cases:
            with pytest.raises(InvalidInput) as info:
                await call()
            assert info.value.field == field, (field, info.value)
        with pytest.raises(InvalidInput, match="input_id"):
            InputState(input_id="not-a-uuid")
        record_cases = [
            ("attempt_count", dict(attempt_count=-1)),
            ("recovery_count", dict(recovery_count=1.5)),
            ("current_state", dict(current_state="sleeping")),
            ("durability", dict(durability="forever")),
            ("policy", dict(policy={"version": 1})),
            ("history[0]", dict(history=[{"from": "accepted"}])),
            ("created_at", dict(created_at=datetime(2026, 1, 1))),
            ("updated_at", dict(updated_at="2026-01-01")),
            ("last_run_id", dict(last_run_id="run-1")),
            ("last_boundary_sequence", dict(last_boundary_sequence=-2)),
            ("idempotency_key", dict(idempotency_key=5)),
        ]
        for field, kw in record_cases:
            with pytest.raises(InvalidInput) as info:
                InputState(input_id=uuid7(), **kw)
            assert info.value.field == field
        with pytest.raises(InvalidInput, match="superseded_by"):
            InputTerminalOutcome(outcome_type="superseded")
        with pytest.raises(InvalidInput, match="reason"):
            InputTerminalOutcome.abandoned("bored")
        with pytest.raises(InvalidInput, match="runtime_id"):
            store.runtime("")
        assert await rt.load_input_states() == [] and await rt.load_boundary_receipts(run) == []

    async def test_input_states_are_listed_by_input_id(self, store):
        """load_input_states is in input-id order whatever the insertion order; an update
        keeps one entry per id."""
        rt = store.runtime("rt")
        ids = sorted(str(uuid.uuid4()) for _ in range(6))
        for iid in reversed(ids):
            await rt.persist_input_state(state(iid))
        await rt.persist_input_state(state(ids[3], InputLifecycleState.QUEUED))
        assert [s.input_id for s in await rt.load_input_states()] == ids

    async def test_uuid_ids_are_canonical(self, store):
        """A UUID object, its lowercase and its uppercase string address the same input and
        run; ids come back lowercase."""
        rt, iid, run = store.runtime("rt"), uuid.uuid4(), uuid.uuid4()
        await rt.persist_input_state(state(str(iid).upper()))
        assert (await rt.load_input_state(iid)).input_id == str(iid)
        assert await rt.load_input_state(str(iid).upper()) == await rt.load_input_state(str(iid))
        got = await rt.commit_session_boundary(delta(), str(run).upper(), "immediate")
        assert got.run_id == str(run) and await rt.load_boundary_receipt(run, 0) == got

    async def test_every_field_round_trips(self, store):
        """An input state with every optional field set comes back equal, and its JSON form
        round-trips through from_json."""
        rt, s = store.runtime("rt"), full_state()
        await rt.persist_input_state(s)
        assert await rt.load_input_state(s.input_id) == s
        assert InputState.from_json(json.loads(json.dumps(s.to_json()))) == s
        r = RunBoundaryReceipt(run_id=uuid.uuid4(), contributing_input_ids=[uuid7()], conversation_digest="ab", message_count=2, sequence=4)
        assert RunBoundaryReceipt.from_json(r.to_json()) == r
        wire = state().to_json()
        assert set(wire) == {"input_id", "current_state", "attempt_count", "recovery_count", "created_at", "updated_at"}
        assert wire["created_at"] == "2026-01-01T00:00:00Z"

    async def test_runtime_state_is_upserted(self, store):
        """persist_runtime_state overwrites; every value round-trips (moves not checked)."""
        rt = store.runtime("rt")
        for st in RuntimeState:
            await rt.persist_runtime_state(st.value)
            assert await rt.load_runtime_state() is st
        await rt.persist_runtime_state(RuntimeState.INITIALIZING)  # from destroyed: allowed [UP]
        assert await rt.load_runtime_state() is RuntimeState.INITIALIZING

    async def test_cancelled_before_taken_writes_nothing(self, store):
        """A call cancelled while its request is still queued raises Cancelled and writes
        nothing."""
        rt, run = store.runtime("rt"), uuid.uuid4()
        with trio.CancelScope() as scope:
            scope.cancel()
            await rt.commit_session_boundary(delta(), run, "immediate", [], [state()])
        assert scope.cancelled_caught
        assert await rt.load_boundary_receipts(run) == [] and await rt.load_input_states() == []
        assert (await rt.commit_session_boundary(delta(), run, "immediate")).sequence == 0

    async def test_data_survives_reopen(self, backend):
        """A file store keeps receipts, states, snapshot and runtime state, and the next
        sequence continues after a reopen."""
        run, s, d = uuid.uuid4(), full_state(), delta({"m": 1})
        async with backend.open() as st:
            rt = st.runtime("rt")
            first = await rt.commit_session_boundary(d, run, "run_start", [], [s])
            await rt.persist_runtime_state("idle")
        async with backend.open() as st:
            rt = st.runtime("rt")
            if backend.persistent:
                assert await rt.load_boundary_receipt(run, 0) == first
                assert await rt.load_session_snapshot() == d.session_snapshot
                assert await rt.load_runtime_state() is RuntimeState.IDLE
                assert (await rt.load_input_state(s.input_id)).last_boundary_sequence == 0
                assert (await rt.commit_session_boundary(d, run, "run_checkpoint")).sequence == 1
            else:
                assert await rt.load_boundary_receipt(run, 0) is None

    async def test_concurrent_commits_get_distinct_gapless_sequences(self, store):
        """32 tasks committing boundaries of one run: sequences 0..31, each receipt stored
        as returned."""
        rt, run = store.runtime("rt"), uuid.uuid4()
        got: list[RunBoundaryReceipt] = []

        async def one(i: int) -> None:
            got.append(await rt.commit_session_boundary(delta({"i": i}), run, "run_checkpoint", [], [state()]))

        async with trio.open_nursery() as nursery:
            for i in range(32):
                nursery.start_soon(one, i)
        assert sorted(r.sequence for r in got) == list(range(32))
        assert await rt.load_boundary_receipts(run) == sorted(got, key=lambda r: r.sequence)


def _fields(s: InputState) -> dict[str, object]:
    return attrs.asdict(s, recurse=False)
