"""The runtime handle (``store.runtime(runtime_id)``): upstream's ``RuntimeStore`` trait.

Every mutation goes through the one actor that owns the runtime id (``"runtime:<id>"``), one
message per call, applied in mailbox order, each in its own SAVEPOINT: all of it or none of
it, also across kill -9. Arguments are validated and encoded in the caller's task, so bad
input is :class:`InvalidInput` before anything is queued. Reads go to a reader connection
and see every write acknowledged before them. Runtimes are isolated from each other.

Cancellation, for every mutation: if the call raises ``Cancelled`` nothing of it was
written; if it returns, all of it was (and is durable per the store's durability).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mobstore.storage import (
    AtomicApply,
    AtomicLifecycleCommit,
    CommitSessionBoundary,
    InputState,
    PersistInputState,
    PersistRuntimeState,
    RunApplyBoundary,
    RunBoundaryReceipt,
    RuntimeState,
    SessionDelta,
    _runtime_store,
)
from mobstore.storage._codec import check_count
from mobstore.storage._run_records import run_id_text

if TYPE_CHECKING:
    from ._store import Store


class Runtime:
    """Handle of one runtime id: its input states, boundary receipts, session snapshot and
    runtime state (SEMANTICS.md §6).

    Receipt sequences count from 0 per (runtime, run) and are assigned inside the commit, so
    ``commit_session_boundary`` never hands out a sequence twice and, when it is the only
    writer of a run's receipts, never skips one. Input states are listed in input-id order.
    """

    __slots__ = ("_store", "runtime_id", "_key")

    def __init__(self, store: Store, runtime_id: str) -> None:
        self._store = store
        self.runtime_id = runtime_id
        self._key = f"runtime:{runtime_id}"

    # -- mutations ---------------------------------------------------------------------------

    async def commit_session_boundary(
        self,
        session_delta: SessionDelta,
        run_id: uuid.UUID | str,
        boundary: RunApplyBoundary | str,
        contributing_input_ids: Sequence[uuid.UUID | str] = (),
        input_updates: Sequence[InputState] = (),
    ) -> RunBoundaryReceipt:
        """Commit a run boundary and return the receipt the store minted.

        In one transaction: ``sequence`` = 1 + the run's highest sequence in this runtime,
        or 0; the receipt carries the snapshot's conversation digest and message count;
        every input update is stored with ``last_run_id = run_id`` and
        ``last_boundary_sequence = sequence`` (``updated_at`` untouched); the session
        snapshot is replaced and the receipt inserted. The returned receipt equals what
        :meth:`load_boundary_receipt` returns for it. Atomic and durable when it returns;
        cancellation as in the module docstring.

        Args:
            session_delta: the new session snapshot (a :class:`SessionDelta`).
            run_id: the run (a UUID or its canonical string).
            boundary: a :class:`RunApplyBoundary` or its value.
            contributing_input_ids: the inputs that contributed, in order.
            input_updates: input states to upsert (by input id), stamped as above.

        Raises:
            InvalidInput: a bad argument (a snapshot that is not bytes of a JSON object with
                a ``messages`` list, a run id that is not a UUID...). Nothing is queued.
        """
        cmd = CommitSessionBoundary.of(
            self.runtime_id, session_delta, run_id, boundary, contributing_input_ids, input_updates
        )
        return await self._store._call(self._key, (cmd,))  # type: ignore[no-any-return]

    async def atomic_apply(
        self,
        session_delta: SessionDelta | None,
        receipt: RunBoundaryReceipt,
        input_updates: Sequence[InputState] = (),
        session_store_key: str | None = None,
    ) -> None:
        """Write a caller-minted receipt, the snapshot (if given) and the input states, in
        one transaction.

        The receipt is stored unchanged (no sequence or digest check) and the states as
        given (no stamping), as upstream. Atomic and durable when it returns; cancellation
        as in the module docstring.

        Args:
            session_delta: a new snapshot, or ``None`` to keep the current one.
            receipt: the receipt to store under (runtime, ``receipt.run_id``,
                ``receipt.sequence``).
            input_updates: input states to upsert by input id.
            session_store_key: accepted for upstream compatibility and ignored, as by every
                upstream backend (the shared sessions table is out of scope).

        Raises:
            CasConflict: a receipt with that key exists (``actual`` is it); nothing of the
                call was written (upstream's in-memory backend overwrote it).
            InvalidInput: a bad argument. Nothing is queued.
        """
        del session_store_key
        cmd = AtomicApply.of(self.runtime_id, session_delta, receipt, input_updates)
        await self._store._call(self._key, (cmd,))

    async def persist_input_state(self, state: InputState) -> None:
        """Upsert one input state (by input id). Durable when it returns; cancellation as in
        the module docstring.

        Raises:
            InvalidInput: ``state`` is not an :class:`InputState` of plain JSON. Nothing is
                queued.
        """
        await self._store._call(self._key, (PersistInputState.of(self.runtime_id, state),))

    async def persist_runtime_state(self, state: RuntimeState | str) -> None:
        """Upsert the runtime state. The store does not check the move (upstream neither).
        Durable when it returns; cancellation as in the module docstring.

        Raises:
            InvalidInput: ``state`` is not a :class:`RuntimeState` value. Nothing is queued.
        """
        await self._store._call(self._key, (PersistRuntimeState.of(self.runtime_id, state),))

    async def atomic_lifecycle_commit(self, runtime_state: RuntimeState | str, input_states: Sequence[InputState]) -> None:
        """Persist the runtime state and every input state in one transaction (retire,
        reset, stop, destroy): after a crash, both are stored or neither. Durable when it
        returns; cancellation as in the module docstring.

        Raises:
            InvalidInput: a bad argument. Nothing is queued.
        """
        cmd = AtomicLifecycleCommit.of(self.runtime_id, runtime_state, input_states)
        await self._store._call(self._key, (cmd,))

    # -- reads -----------------------------------------------------------------------------

    async def load_input_states(self) -> list[InputState]:
        """Every input state of this runtime, in input-id order (``[]`` if none)."""
        return await self._store._read(_runtime_store.load_input_states, self.runtime_id)

    async def load_input_state(self, input_id: uuid.UUID | str) -> InputState | None:
        """The input state ``input_id``, or ``None``.

        Raises:
            InvalidInput: ``input_id`` is not a UUID or its canonical string.
        """
        iid = run_id_text(input_id, "input_id")
        return await self._store._read(_runtime_store.load_input_state, self.runtime_id, iid)

    async def load_boundary_receipt(self, run_id: uuid.UUID | str, sequence: int) -> RunBoundaryReceipt | None:
        """The receipt of (``run_id``, ``sequence``), or ``None``.

        Raises:
            InvalidInput: a bad run id or sequence.
        """
        run = run_id_text(run_id)
        seq = check_count(sequence, "sequence")
        return await self._store._read(_runtime_store.load_boundary_receipt, self.runtime_id, run, seq)

    async def load_boundary_receipts(self, run_id: uuid.UUID | str) -> list[RunBoundaryReceipt]:
        """Every receipt of ``run_id`` in this runtime, by sequence (an addition to the
        upstream trait, for audits and recovery)."""
        run = run_id_text(run_id)
        return await self._store._read(_runtime_store.load_boundary_receipts, self.runtime_id, run)

    async def load_session_snapshot(self) -> bytes | None:
        """The latest session snapshot, byte for byte as written, or ``None``."""
        return await self._store._read(_runtime_store.load_session_snapshot, self.runtime_id)

    async def load_runtime_state(self) -> RuntimeState | None:
        """The persisted runtime state, or ``None`` if it was never written."""
        return await self._store._read(_runtime_store.load_runtime_state, self.runtime_id)

    def __repr__(self) -> str:
        return f"Runtime({self.runtime_id!r})"
