"""The runtime store (SEMANTICS.md §6): commands and reads, SQL over an open transaction.

Theory of operation
-------------------
Everything is scoped to one runtime id; the tables are keyed by it, so runtimes are fully
isolated. One actor per runtime id sends these commands, so per-runtime order is its
mailbox order; each command is one SAVEPOINT, so every operation is all or nothing.

``CommitSessionBoundary`` is the authoritative boundary write. Inside the transaction it

1. allocates ``sequence`` = 1 + the highest sequence of (runtime, run), or 0 (the primary
   key index answers this without a scan), so sequences are gapless from 0 per runtime and
   run when only this command writes receipts, and can never collide;
2. mints the receipt: the digest and message count of the snapshot were computed when the
   command was built (``SessionDelta`` parses the snapshot once, on the caller's side);
3. stamps ``last_run_id`` and ``last_boundary_sequence`` on every input update (never
   ``updated_at``);
4. replaces the session snapshot, inserts the receipt, upserts the input states.

To keep the writer thread cheap, everything is encoded when the command is built: the input
states as JSON without the two fields that depend on the sequence (``apply`` appends them to
the text), the receipt as the columns of its row. Consecutive boundary commits in one group
commit are applied together (``apply_many``): one probe statement for the next sequence of
every (runtime, run) among them (one index probe each), then one executemany per table.
Input states are written as text directly (``_state_text``, byte-identical to encoding
``to_json()``), not through a dict and the encoder.
Receipts are stored as columns, not JSON: they are the one row every boundary inserts,
and the columns are about half the bytes.

``AtomicApply`` writes a caller-minted receipt unchanged (upstream: no sequence or digest
check) with the states as given. Unlike upstream's in-memory and redb backends, which
silently overwrite, a receipt key that exists is :class:`CasConflict` on every backend and
nothing of the call is written (SEMANTICS.md §6.2, API.md decision 4).

Input states are listed in ``input_id`` order (canonical lowercase UUID text, so for
UUIDv7 ids, creation order), on every backend (SEMANTICS.md §6.2 [PROP]). The store does
not validate lifecycle moves [UP]. ``session_store_key`` is accepted by the handle for
upstream compatibility and ignored, as by every upstream backend; the shared ``sessions``
table is out of scope (§6.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from json.encoder import encode_basestring as _quote
from typing import Any

import apsw
import attrs

from ._codec import MAX_INT as _MAX_INT
from ._codec import MAX_JSON_BYTES, _check_json, _dumps, _plain, check_utf8, decode_json
from ._database import Transaction
from ._errors import CasConflict, DecodeError, InvalidInput
from ._run_records import run_id_text
from ._input_state import InputState, _enum, _uuids, _wire_time
from ._runtime_records import RunApplyBoundary, RunBoundaryReceipt, RuntimeState, SessionDelta

_UPSERT_INPUT = (
    "INSERT INTO runtime_input_states (runtime_id, input_id, state) VALUES (?, ?, ?)"
    " ON CONFLICT (runtime_id, input_id) DO UPDATE SET state = excluded.state"
)
_UPSERT_SNAPSHOT = (
    "INSERT INTO runtime_snapshots (runtime_id, snapshot) VALUES (?, ?)"
    " ON CONFLICT (runtime_id) DO UPDATE SET snapshot = excluded.snapshot"
)
_UPSERT_STATE = (
    "INSERT INTO runtime_states (runtime_id, state) VALUES (?, ?)"
    " ON CONFLICT (runtime_id) DO UPDATE SET state = excluded.state"
)
_RECEIPT_COLUMNS = "boundary, contributing, digest, message_count"
_INSERT_RECEIPT = (
    f"INSERT INTO runtime_receipts (runtime_id, run_id, sequence, {_RECEIPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
)

# (input_id, JSON text) of one input state, encoded on the caller's side.
_Encoded = tuple[str, str]


def _delta(value: Any, field: str, *, optional: bool = False) -> SessionDelta | None:
    if value is None and optional:
        return None
    if type(value) is not SessionDelta:
        raise InvalidInput(field, f"must be a SessionDelta, got {type(value).__name__}")
    return value


def _states(values: Any, field: str) -> Sequence[InputState]:
    if type(values) is not list and type(values) is not tuple:
        if isinstance(values, (str, bytes, InputState)) or not isinstance(values, Sequence):
            raise InvalidInput(field, f"must be a list of InputState, got {type(values).__name__}")
        values = list(values)
    for i, s in enumerate(values):
        if type(s) is not InputState:
            raise InvalidInput(f"{field}[{i}]", f"must be an InputState, got {type(s).__name__}")
    return values


#: Recently written times (an aware ``isoformat`` costs ~0.8 µs, and the times of an input
#: state are written again at every boundary that stamps it). Keys are exact UTC datetimes
#: only: equal ones then have equal fields, so equal text. Cleared when full.
_TIMES: dict[datetime, str] = {}


def _time_text(t: datetime) -> str:
    """``_wire_time(t)``: RFC 3339 with a ``Z`` suffix."""
    if type(t) is datetime and t.tzinfo is timezone.utc:
        text = _TIMES.get(t)
        if text is None:
            if len(_TIMES) >= 1024:
                _TIMES.clear()
            text = _TIMES[t] = _wire_time(t)
        return text
    return _wire_time(t)


def _state_text(s: InputState, field: str, index: int | None, stamps: bool) -> str:
    """``_dumps(s.to_json())``, written directly (without building the dict), validated for
    a write. Without ``stamps``: no ``last_run_id`` and ``last_boundary_sequence`` and no
    closing brace (a boundary commit appends both with its sequence).

    Byte-identical to encoding ``to_json()`` (property-tested against it): every value is
    either text that needs no escaping (a canonical UUID, an enum value, an int, a UTC time)
    or the C encoder's own output for that value, which is what it writes for it inside the
    object. Only the opaque parts (a persisted input, a policy decision) can hold non-JSON
    values: everything else was validated by the records themselves, so only they are
    checked, in that order; ``field[index]`` names the state in an error.
    """
    persisted, policy = s.persisted_input, s.policy
    if persisted is not None and not _plain(persisted, 1):
        _check_json(persisted, f"{_at(field, index)}['persisted_input']", 1)
    if policy is not None and not _plain(policy.decision, 2):
        _check_json(policy.decision, f"{_at(field, index)}['policy']['decision']", 2)
    parts = ['{"input_id":"', s.input_id, '","current_state":"', s.current_state._value_, '"']
    if policy is not None:
        parts += (',"policy":', _dumps(policy.to_json()))
    if s.terminal_outcome is not None:
        parts += (',"terminal_outcome":', _dumps(s.terminal_outcome.to_json()))
    if s.durability is not None:
        parts += (',"durability":"', s.durability.value, '"')
    if s.idempotency_key is not None:
        parts += (',"idempotency_key":', _quote(s.idempotency_key))
    parts += (',"attempt_count":', str(s.attempt_count), ',"recovery_count":', str(s.recovery_count))
    if s.history:
        parts += (',"history":', _dumps([e.to_json() for e in s.history]))
    if s.reconstruction_source is not None:
        parts += (',"reconstruction_source":', _dumps(s.reconstruction_source.to_json()))
    if persisted is not None:
        parts += (',"persisted_input":', _dumps(persisted))
    if stamps:
        if s.last_run_id is not None:
            parts += (',"last_run_id":"', s.last_run_id, '"')
        if s.last_boundary_sequence is not None:
            parts += (',"last_boundary_sequence":', str(s.last_boundary_sequence))
    created = _time_text(s.created_at)
    updated = created if s.updated_at is s.created_at else _time_text(s.updated_at)
    parts += (',"created_at":"', created, '","updated_at":"', updated, '"' if not stamps else '"}')
    text = "".join(parts)
    n = len(text) + (not stamps)  # the size of the whole object
    if not text.isascii():
        # A lone surrogate in any string of the state (the opaque parts' strings were
        # encoded by the C encoder unchecked) cannot be stored: name the state.
        check_utf8(text, _at(field, index))
        if n * 4 > MAX_JSON_BYTES and len(text.encode("utf-8")) + (not stamps) > MAX_JSON_BYTES:
            raise InvalidInput(_at(field, index), f"encodes to more than {MAX_JSON_BYTES} bytes of JSON")
    elif n > MAX_JSON_BYTES:
        raise InvalidInput(_at(field, index), f"encodes to more than {MAX_JSON_BYTES} bytes of JSON")
    return text


def _at(field: str, index: int | None) -> str:
    return field if index is None else f"{field}[{index}]"


def _encode_state(s: InputState, field: str, *, stamps: bool = True) -> str:
    text = _state_text(s, field, None, stamps)
    return text if stamps else text + "}"


def encode_states(values: Any, field: str) -> tuple[_Encoded, ...]:
    """Validate and encode input states for a write (deep JSON check, with paths)."""
    return tuple((s.input_id, _state_text(s, field, i, True)) for i, s in enumerate(_states(values, field)))


def _stampable(values: Any, field: str) -> tuple[tuple[str, str], ...]:
    # The states without the two stamped fields, as JSON text without its closing brace.
    if not values and type(values) is tuple:
        return ()
    return tuple([(s.input_id, _state_text(s, field, i, False)) for i, s in enumerate(_states(values, field))])


def _runtime_state(value: Any, field: str = "runtime_state") -> RuntimeState:
    return _enum(RuntimeState, field)(value)  # type: ignore[no-any-return]


# -- commands ---------------------------------------------------------------------------------


@attrs.frozen
class CommitSessionBoundary:
    """Commit a session boundary: allocate the receipt's sequence, mint the receipt, stamp
    the input updates, and write snapshot, receipt and input states in one transaction.
    Returns the :class:`RunBoundaryReceipt`. Build it with :meth:`of`."""

    runtime_id: str
    snapshot: bytes
    run_id: str
    boundary: RunApplyBoundary
    contributing: tuple[str, ...]
    receipt_row: tuple[str, str, str | None, int]  # boundary, contributing (JSON), digest, count
    updates: tuple[tuple[str, str], ...]  # (input_id, JSON without the stamps and '}')

    @classmethod
    def of(
        cls,
        runtime_id: str,
        session_delta: SessionDelta,
        run_id: Any,
        boundary: RunApplyBoundary | str,
        contributing_input_ids: Sequence[Any] = (),
        input_updates: Sequence[InputState] = (),
    ) -> CommitSessionBoundary:
        """Validate and encode on the caller's side; :class:`InvalidInput` naming the field."""
        if type(session_delta) is not SessionDelta:
            _delta(session_delta, "session_delta")  # raises
        run = run_id_text(run_id)
        bound = _BOUNDARIES.get(boundary) if type(boundary) is str else None
        if bound is None:
            bound = _enum(RunApplyBoundary, "boundary")(boundary)
        contributing = _ids(contributing_input_ids, "contributing_input_ids")
        row = (bound.value, _ids_json(contributing), session_delta.conversation_digest, session_delta.message_count)
        updates = _stampable(input_updates, "input_updates")
        return cls(runtime_id, session_delta.session_snapshot, run, bound, contributing, row, updates)

    def apply(self, tx: Transaction) -> RunBoundaryReceipt:
        return self.apply_many(tx, (self,))[0]

    @staticmethod
    def apply_many(tx: Transaction, cmds: Sequence[CommitSessionBoundary]) -> list[RunBoundaryReceipt]:
        """Apply several boundary commits (any runtimes) in order, with one executemany per
        table: the same outcome as applying them one at a time. The next sequence of each
        (runtime, run) is read once (one statement probes them all), then counted on; of
        several snapshots of one runtime only the last is written (the earlier ones would be
        overwritten anyway)."""
        keys = list(dict.fromkeys([(c.runtime_id, c.run_id) for c in cmds]))
        nxt = dict(zip(keys, [row[0] for row in tx.executemany(_NEXT_SEQUENCE, keys)]))
        receipts = []
        inputs = []
        out = []
        for c in cmds:
            rid, run = c.runtime_id, c.run_id
            seq = nxt[rid, run]
            if type(seq) is not int or seq > _MAX_INT:
                # SQLite's MAX(sequence) + 1 past 2**63 - 1 turns into a float: refuse it
                # (the unit rolls back) rather than store a receipt nothing can read back.
                raise InvalidInput("run_id", f"run {run} of runtime {rid!r} has used every receipt sequence (up to {_MAX_INT})")
            nxt[rid, run] = seq + 1
            receipts.append((rid, run, seq, *c.receipt_row))
            if c.updates:
                stamps = f',"last_run_id":"{run}","last_boundary_sequence":{seq}}}'
                inputs += [(rid, iid, text + stamps) for iid, text in c.updates]
            row = c.receipt_row
            out.append(_receipt_of(run, c.boundary, c.contributing, row[2], row[3], seq))
        tx.executemany(_INSERT_RECEIPT, receipts)
        tx.executemany(_UPSERT_SNAPSHOT, list({c.runtime_id: c.snapshot for c in cmds}.items()))
        if inputs:
            tx.executemany(_UPSERT_INPUT, inputs)
        return out


# 1 + the highest sequence of (runtime, run), or 0: one probe of the key index (SQLite's
# min/max optimisation; always exactly one row). The parameters are written ``+?``: a bare
# ``?`` compared with an index column in a MIN/MAX or ORDER BY query lets SQLite (built with
# STAT4) plan with the bound value, so the statement is compiled again at every execution
# with new bindings (five authorizer passes per call; 4.4 µs instead of 0.85 µs per probe).
# Unary plus changes nothing else: a parameter has no affinity either way, and the index is
# still searched on both columns. (An INSERT ... SELECT MAX from the same table was measured
# 4x slower: SQLite stages the SELECT's rows in a temporary table when source and target
# are the same table; a scalar subquery in VALUES with RETURNING sequence, 1.6x slower:
# RETURNING stages its rows too.)
_NEXT_SEQUENCE = "SELECT COALESCE(MAX(sequence) + 1, 0) FROM runtime_receipts WHERE runtime_id = +? AND run_id = +?"

_BOUNDARIES = {m.value: m for m in RunApplyBoundary}


def _ids(values: Any, field: str) -> tuple[str, ...]:
    # _uuids(field)(values), without building a field name per id unless one is bad.
    if type(values) is not list and type(values) is not tuple:
        return _uuids(field)(values)  # type: ignore[no-any-return]
    try:
        return tuple([run_id_text(v, field) for v in values])
    except InvalidInput:
        return _uuids(field)(values)  # type: ignore[no-any-return]  # raises, naming the index


def _ids_json(ids: tuple[str, ...]) -> str:
    # Canonical UUIDs need no escaping.
    return '["' + '","'.join(ids) + '"]' if ids else "[]"


_new = object.__new__
_SET_RUN_ID = RunBoundaryReceipt.__dict__["run_id"].__set__
_SET_BOUNDARY = RunBoundaryReceipt.__dict__["boundary"].__set__
_SET_CONTRIBUTING = RunBoundaryReceipt.__dict__["contributing_input_ids"].__set__
_SET_DIGEST = RunBoundaryReceipt.__dict__["conversation_digest"].__set__
_SET_COUNT = RunBoundaryReceipt.__dict__["message_count"].__set__
_SET_SEQUENCE = RunBoundaryReceipt.__dict__["sequence"].__set__


def _receipt_of(
    run_id: str, boundary: RunApplyBoundary, contributing: tuple[str, ...], digest: str | None, count: int, seq: int
) -> RunBoundaryReceipt:
    # A receipt from parts already validated (the hot path: no converters or validators;
    # the slots' own setters, since the class is frozen).
    r = _new(RunBoundaryReceipt)
    _SET_RUN_ID(r, run_id)
    _SET_BOUNDARY(r, boundary)
    _SET_CONTRIBUTING(r, contributing)
    _SET_DIGEST(r, digest)
    _SET_COUNT(r, count)
    _SET_SEQUENCE(r, seq)
    return r


def _check_receipt_free(tx: Transaction, rid: str, receipt: RunBoundaryReceipt) -> None:
    row = tx.execute(
        f"SELECT run_id, sequence, {_RECEIPT_COLUMNS} FROM runtime_receipts"
        " WHERE runtime_id = ? AND run_id = ? AND sequence = ?",
        (rid, receipt.run_id, receipt.sequence),
    ).fetchall()
    if row:
        raise CasConflict(
            f"boundary receipt (run {receipt.run_id}, sequence {receipt.sequence}) of runtime {rid!r}",
            None,
            _receipt(row[0], rid),
            "receipts are never overwritten",
        )


@attrs.frozen
class AtomicApply:
    """Write a caller-supplied receipt unchanged, the snapshot (if any) and the input states
    as given, in one transaction. Returns ``None``.

    Raises :class:`CasConflict` (nothing written) if the receipt's key exists.
    """

    runtime_id: str
    snapshot: bytes | None
    receipt: RunBoundaryReceipt
    updates: tuple[_Encoded, ...]

    @classmethod
    def of(
        cls,
        runtime_id: str,
        session_delta: SessionDelta | None,
        receipt: RunBoundaryReceipt,
        input_updates: Sequence[InputState] = (),
    ) -> AtomicApply:
        """Validate and encode on the caller's side; :class:`InvalidInput` naming the field."""
        delta = _delta(session_delta, "session_delta", optional=True)
        if type(receipt) is not RunBoundaryReceipt:
            raise InvalidInput("receipt", f"must be a RunBoundaryReceipt, got {type(receipt).__name__}")
        return cls(
            runtime_id,
            None if delta is None else delta.session_snapshot,
            receipt,
            encode_states(input_updates, "input_updates"),
        )

    def apply(self, tx: Transaction) -> None:
        rid, r = self.runtime_id, self.receipt
        _check_receipt_free(tx, rid, r)
        if self.snapshot is not None:
            tx.execute(_UPSERT_SNAPSHOT, (rid, self.snapshot))
        row = (r.boundary.value, _ids_json(r.contributing_input_ids), r.conversation_digest, r.message_count)
        tx.execute(_INSERT_RECEIPT, (rid, r.run_id, r.sequence, *row))
        if self.updates:
            tx.executemany(_UPSERT_INPUT, [(rid, iid, text) for iid, text in self.updates])


@attrs.frozen
class PersistInputState:
    """Upsert one input state (by input id). Returns ``None``."""

    runtime_id: str
    updates: tuple[_Encoded, ...]

    @classmethod
    def of(cls, runtime_id: str, state: InputState) -> PersistInputState:
        if type(state) is not InputState:
            raise InvalidInput("state", f"must be an InputState, got {type(state).__name__}")
        return cls(runtime_id, ((state.input_id, _encode_state(state, "state")),))

    def apply(self, tx: Transaction) -> None:
        rid = self.runtime_id
        tx.executemany(_UPSERT_INPUT, [(rid, iid, text) for iid, text in self.updates])


@attrs.frozen
class PersistRuntimeState:
    """Upsert the runtime's state. Returns ``None``."""

    runtime_id: str
    state: RuntimeState

    @classmethod
    def of(cls, runtime_id: str, state: RuntimeState | str) -> PersistRuntimeState:
        return cls(runtime_id, _runtime_state(state, "state"))

    def apply(self, tx: Transaction) -> None:
        tx.execute(_UPSERT_STATE, (self.runtime_id, self.state.value))


@attrs.frozen
class AtomicLifecycleCommit:
    """The runtime state and every given input state, in one transaction (retire, reset,
    stop, destroy). Returns ``None``."""

    runtime_id: str
    state: RuntimeState
    updates: tuple[_Encoded, ...]

    @classmethod
    def of(cls, runtime_id: str, runtime_state: RuntimeState | str, input_states: Sequence[InputState]) -> AtomicLifecycleCommit:
        return cls(runtime_id, _runtime_state(runtime_state), encode_states(input_states, "input_states"))

    def apply(self, tx: Transaction) -> None:
        rid = self.runtime_id
        tx.execute(_UPSERT_STATE, (rid, self.state.value))
        if self.updates:
            tx.executemany(_UPSERT_INPUT, [(rid, iid, text) for iid, text in self.updates])


# -- reads (run on a reader connection) ------------------------------------------------------


def _decode(cls: Any, text: str, what: str) -> Any:
    try:
        return cls.from_json(decode_json(text, what))
    except InvalidInput as exc:
        raise DecodeError(what, str(exc)) from None


def _receipt(row: tuple[Any, ...], rid: str) -> RunBoundaryReceipt:
    run_id, seq, boundary, contributing, digest, count = row
    what = f"boundary receipt (run {run_id}, sequence {seq}) of runtime {rid!r}"
    try:
        return RunBoundaryReceipt(
            run_id=run_id,
            boundary=boundary,
            contributing_input_ids=decode_json(contributing, what),
            conversation_digest=digest,
            message_count=count,
            sequence=seq,
        )
    except InvalidInput as exc:
        raise DecodeError(what, str(exc)) from None


def load_input_states(conn: apsw.Connection, runtime_id: str) -> list[InputState]:
    """Every input state of the runtime, in input-id order."""
    rows = conn.execute(
        # +?: see _NEXT_SEQUENCE (an ORDER BY on the key index: compiled again per call otherwise)
        "SELECT input_id, state FROM runtime_input_states WHERE runtime_id = +? ORDER BY input_id", (runtime_id,)
    ).fetchall()
    return [_decode(InputState, text, f"input state {iid} of runtime {runtime_id!r}") for iid, text in rows]


def load_input_state(conn: apsw.Connection, runtime_id: str, input_id: str) -> InputState | None:
    """One input state, or ``None``."""
    rows = conn.execute(
        "SELECT state FROM runtime_input_states WHERE runtime_id = ? AND input_id = ?", (runtime_id, input_id)
    ).fetchall()
    return _decode(InputState, rows[0][0], f"input state {input_id} of runtime {runtime_id!r}") if rows else None


def load_boundary_receipt(conn: apsw.Connection, runtime_id: str, run_id: str, sequence: int) -> RunBoundaryReceipt | None:
    """The receipt of (run, sequence), or ``None``."""
    rows = conn.execute(
        f"SELECT run_id, sequence, {_RECEIPT_COLUMNS} FROM runtime_receipts"
        " WHERE runtime_id = ? AND run_id = ? AND sequence = ?",
        (runtime_id, run_id, sequence),
    ).fetchall()
    return _receipt(rows[0], runtime_id) if rows else None


def load_boundary_receipts(conn: apsw.Connection, runtime_id: str, run_id: str) -> list[RunBoundaryReceipt]:
    """Every receipt of the run, by sequence."""
    rows = conn.execute(
        f"SELECT run_id, sequence, {_RECEIPT_COLUMNS} FROM runtime_receipts"
        " WHERE runtime_id = +? AND run_id = +? ORDER BY sequence",  # +?: see _NEXT_SEQUENCE
        (runtime_id, run_id),
    ).fetchall()
    return [_receipt(r, runtime_id) for r in rows]


def load_session_snapshot(conn: apsw.Connection, runtime_id: str) -> bytes | None:
    """The latest snapshot bytes, exactly as written, or ``None``."""
    rows = conn.execute("SELECT snapshot FROM runtime_snapshots WHERE runtime_id = ?", (runtime_id,)).fetchall()
    return bytes(rows[0][0]) if rows else None


def load_runtime_state(conn: apsw.Connection, runtime_id: str) -> RuntimeState | None:
    """The persisted runtime state, or ``None`` if it was never written."""
    rows = conn.execute("SELECT state FROM runtime_states WHERE runtime_id = ?", (runtime_id,)).fetchall()
    if not rows:
        return None
    try:
        return RuntimeState(rows[0][0])
    except ValueError:
        raise DecodeError(f"runtime state of {runtime_id!r}", f"{rows[0][0]!r} is not a runtime state") from None
