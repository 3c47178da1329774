"""Strings that cannot be stored as UTF-8 (a lone surrogate, ``"\\ud800"``: Python strings can
hold one, SQLite text and JSON cannot) are bad input like any other: ``InvalidInput`` naming
the field, raised before anything is queued, nothing written, no actor restarted. Before,
they failed inside the commit as ``WriteFailed`` (an I/O error), which restarted the mob's
actor each time until it escalated, and reads raised a bare ``UnicodeEncodeError``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mobstore.actors import (
    FailureLedgerEntry,
    FrameSnapshot,
    InputState,
    InvalidInput,
    KernelState,
    KString,
    MobRun,
    NewMobEvent,
    Profile,
    SessionDelta,
    uuid7,
)
from mobstore.storage import Database, conversation_digest

BAD = "x\ud800y"
_T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


async def _run(store):
    runs = store.mob("m").runs
    run = await runs.create_run(MobRun.pending(mob_id="m", flow_id="f"))
    return runs, run.run_id


async def _frame_state(store):
    runs, rid = await _run(store)
    await runs.cas_frame_state(rid, "f1", None, FrameSnapshot(KernelState("Ready")))
    return runs.cas_frame_state(rid, "f1", FrameSnapshot(KernelState("Ready")), FrameSnapshot(KernelState("Go", {"n": KString(BAD)})))


async def _step_output(store):
    runs, rid = await _run(store)
    return runs.put_step_output(rid, "s", {"text": BAD})


async def _failure_reason(store):
    runs, rid = await _run(store)
    return runs.append_failure_entry(rid, FailureLedgerEntry("s", BAD))


async def _flow_id(store):
    return store.mob("m").runs.create_run(MobRun.pending(mob_id="m", flow_id=BAD))


async def _boundary(store):
    session = {"messages": [{"role": "user", "content": BAD}]}
    return store.runtime("r").commit_session_boundary(SessionDelta.from_session(session), uuid7(), "run_checkpoint")


async def _input_state(store):
    state = InputState(input_id=uuid7(), idempotency_key=BAD, created_at=_T0)
    return store.runtime("r").persist_input_state(state)


# (what, the field InvalidInput must name, an async function building the call). The call
# is built inside pytest.raises: most records refuse the string when they are built.
CASES = {
    "event kind": ("kind", lambda s: s.mob("m").events.append(NewMobEvent(BAD))),
    "event payload value": ("payload['k']", lambda s: s.mob("m").events.append(NewMobEvent("k", {"k": BAD}))),
    "event payload key": ("payload key", lambda s: s.mob("m").events.append(NewMobEvent("k", {BAD: 1}))),
    "mob id (write)": ("mob_id", lambda s: s.mob(BAD).events.append(NewMobEvent("k"))),
    "mob id (read)": ("mob_id", lambda s: s.mob(BAD).events.poll(0, 1)),
    "label value": ("labels", lambda s: s.mob("m").labels.set({"k": BAD})),
    "label key": ("labels", lambda s: s.mob("m").labels.set({BAD: "v"})),
    "cursor name": ("name", lambda s: s.mob("m").cursors.set(0, BAD)),
    "cursor name (read)": ("name", lambda s: s.mob("m").cursors.get(BAD)),
    "spec": ("definition", lambda s: s.mob("m").spec.put_spec({"id": "m", "x": BAD})),
    "profile name": ("name", lambda s: s.profiles.get(BAD)),
    "profile model": ("model", lambda s: s.profiles.create("p", Profile(BAD))),
    "config": ("config", lambda s: s.config.set({"k": BAD})),
    "config patch": ("delta", lambda s: s.config.patch({"k": BAD})),
    "flow id": ("flow_id", _flow_id),
    "frame state": ("next", _frame_state),
    "step output": ("output", _step_output),
    "failure reason": ("reason", _failure_reason),
    "session message": ("session", _boundary),
    "input state": ("idempotency_key", _input_state),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_lone_surrogate_is_invalid_input_and_nothing_breaks(store, case):
    field, call = CASES[case]
    await store.mob("m").events.append(NewMobEvent("before"))
    for _ in range(8):  # more than the supervisor's restart budget: no restarts at all
        with pytest.raises(InvalidInput) as info:
            out = await call(store)
            await out  # the builders that return the call itself
        assert field.split("[")[0].split(" ")[0] in info.value.field, (case, info.value.field)
        assert "surrogate" in str(info.value) or "UTF-8" in str(info.value), str(info.value)
    # Nothing was written, the mob's actor never restarted, and the mob still works.
    assert [e.kind for e in await store.mob("m").events.replay_all()] == ["before"]
    assert await store.mob("m").labels.get() == {}
    assert await store.mob("m").cursors.list() == {}
    assert sum(a.restarts for a in store.statistics().actors) == 0
    assert store.statistics().escalated == ()
    assert (await store.mob("m").events.append(NewMobEvent("after"))).cursor == 2


async def test_valid_non_ascii_text_is_stored():
    """The check refuses only unencodable text: every other non-ASCII string round-trips."""
    from mobstore.actors import open_store

    text = "héllo wörld ✓ 𝄞"
    async with open_store() as store:
        mob = store.mob(text)
        await mob.events.append(NewMobEvent(text, {text: text}))
        await mob.labels.set({text: text})
        await mob.cursors.set(1, text)
        (ev,) = await mob.events.replay_all()
        assert (ev.mob_id, ev.kind, ev.payload) == (text, text, {text: text})
        assert await mob.labels.get() == {text: text}
        assert await mob.cursors.get(text) == 1


def test_session_snapshot_bytes_with_an_escaped_lone_surrogate():
    """JSON text may spell a lone surrogate as an escape; such a session is refused."""
    with pytest.raises(InvalidInput, match="surrogate"):
        SessionDelta(b'{"messages":[{"content":"\\ud800"}]}')
    with pytest.raises(InvalidInput, match="surrogate"):
        conversation_digest([BAD])


def test_from_session_refuses_keys_that_are_not_strings():
    """At any depth (the C encoder would silently write 1 as "1", and {1: a, "1": b} as a
    duplicate key). Large integers stay accepted: the snapshot is bytes, not a SQL integer,
    and upstream's sessions may hold any u64."""
    with pytest.raises(InvalidInput, match=r"session\['messages'\]\[0\].*key 1 is a int"):
        SessionDelta.from_session({"messages": [{1: "a", "1": "b"}]})
    with pytest.raises(InvalidInput, match=r"invalid session: key None is a NoneType"):
        SessionDelta.from_session({"messages": [], None: 1})
    with pytest.raises(InvalidInput, match=r"session\['id'\]"):
        SessionDelta.from_session({"messages": [], "id": BAD})
    ok = SessionDelta.from_session({"messages": [{"role": "user", "content": "é"}], "n": 2**64 - 1})
    assert ok.session_snapshot == '{"messages":[{"role":"user","content":"é"}],"n":18446744073709551615}'.encode()


class _RawInsert:
    """A command that binds its text unchecked (as a buggy caller-side check would let
    through), to test the last line of defence at the transaction boundary."""

    def __init__(self, text: str) -> None:
        self.text = text

    def apply(self, tx):
        tx.execute("INSERT INTO mob_heads (mob_id, next_cursor) VALUES (?, 1)", (self.text,))


class _Unit:
    def __init__(self, *commands) -> None:
        self.commands, self.results, self.error = commands, None, None


def test_an_unchecked_string_is_invalid_input_at_commit_and_neighbours_commit(tmp_path):
    db = Database.open(str(tmp_path / "s.db"))
    try:
        units = [_Unit(_RawInsert("a")), _Unit(_RawInsert(BAD)), _Unit(_RawInsert("b"))]
        db.apply(units)
        assert units[0].error is None and units[2].error is None
        assert isinstance(units[1].error, InvalidInput), units[1].error
        assert "UTF-8" in str(units[1].error)
        with pytest.raises(InvalidInput, match="UTF-8"):
            db.read(lambda conn: conn.execute("SELECT 1 FROM mob_heads WHERE mob_id = ?", (BAD,)).fetchall())
        rows = db.read(lambda conn: conn.execute("SELECT mob_id FROM mob_heads ORDER BY mob_id").fetchall())
        assert rows == [("a",), ("b",)]
    finally:
        db.close()
