"""The flow runs of one mob (``mob.runs``): the Rust ``MobRunStore`` trait, async.

Every mutation is one command, one message to the mob's actor, one SAVEPOINT in a group
commit: atomic (all of its parts or none, also across kill -9) and durable when it returns.
Input is validated on the caller's side before anything is queued.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from mobstore.storage import _run_reads
from mobstore.storage._codec import check_id
from mobstore.storage._kernel_state import KernelState
from mobstore.storage._run_cas import (
    CasCompleteBodyFrame,
    CasCompleteLoop,
    CasCompleteStepAndRecordOutput,
    CasFrameState,
    CasGrantBodyFrameStart,
    CasGrantNodeSlot,
    CasLoopRequestBodyFrame,
    CasStartLoop,
)
from mobstore.storage._run_records import (
    FailureLedgerEntry,
    FrameSnapshot,
    LoopIterationLedgerEntry,
    LoopSnapshot,
    MobRun,
    MobRunStatus,
    StepLedgerEntry,
    run_id_text,
)
from mobstore.storage._runs import (
    AppendFailureEntry,
    AppendStepEntry,
    AppendStepEntryIfAbsent,
    CasFlowState,
    CasRunSnapshot,
    CasRunStatus,
    CreateRun,
    PutStepOutput,
    UpsertLoopSnapshot,
)

if TYPE_CHECKING:
    from ._mob import Mob

RunId = uuid.UUID | str


class MobRuns:
    """The flow runs of one mob (``mob.runs``).

    Shared guarantees of every method:

    * **Atomic with respect to cancellation**: a call that raises ``Cancelled`` wrote
      nothing; a call that returns wrote everything it reports.
    * **CAS**: a ``cas_*`` method returns ``True`` if every precondition held and every part
      was applied, ``False`` if any precondition failed, and then nothing changed. Kernel
      states compare by their canonical encoding (structural equality).
    * **Missing run**: every method but :meth:`get_run` and :meth:`list_runs` raises
      ``NotFound`` (``kind="run"``) when this mob has no run with that id (a run of another
      mob counts as missing).
    * **Bad input** (a malformed run id, a wrong record type, non-JSON output, an illegal
      status pair) raises ``InvalidInput`` naming the field before anything is queued.

    Run ids are ``uuid.UUID`` values or their canonical strings; records carry the lowercase
    string.
    """

    __slots__ = ("_mob",)

    def __init__(self, mob: Mob) -> None:
        self._mob = mob

    async def _send(self, cmd: Any) -> Any:
        mob = self._mob
        return await mob._store._call(mob._key, (cmd,))

    # -- create and read ---------------------------------------------------------------------

    async def create_run(self, run: MobRun) -> MobRun:
        """Insert ``run``; return it as stored (``created_at`` and ledger timestamps that were
        ``None`` are stamped with the store clock).

        Raises:
            CasConflict: a run with this id exists (run ids are unique in the whole store);
                the existing run is unchanged.
            InvalidInput: ``run`` is not a MobRun, belongs to another mob, or holds non-JSON
                values.
        """
        return await self._send(CreateRun.of(self._mob.mob_id, run))

    async def get_run(self, run_id: RunId) -> MobRun | None:
        """This mob's run ``run_id``, or ``None``. Sees every acknowledged write."""
        mob = self._mob
        return await mob._store._read(_run_reads.get_run, run_id_text(run_id), mob.mob_id)

    async def list_runs(self, flow_id: str | None = None) -> list[MobRun]:
        """This mob's runs (of ``flow_id`` if given), ordered by ``(created_at, run_id)``."""
        mob = self._mob
        if flow_id is not None:
            check_id(flow_id, "flow_id")
        return await mob._store._read(_run_reads.list_runs, mob.mob_id, flow_id)

    # -- status and flow state ---------------------------------------------------------------

    async def cas_run_status(self, run_id: RunId, expected: MobRunStatus | str, next: MobRunStatus | str) -> bool:
        """Move the status ``expected -> next`` if the run is in ``expected`` (and not
        terminal). The first move to a terminal status stamps ``completed_at`` (store clock,
        never before ``created_at``). Concurrent calls with the same ``expected`` have
        exactly one winner.

        Raises:
            InvalidTransition: ``expected -> next`` is not a legal move (pending -> running,
                running -> completed, pending/running -> failed/canceled, or a non-terminal
                status to itself); raised before anything is read.
            NotFound: no such run.
        """
        return await self._send(CasRunStatus.of(self._mob.mob_id, run_id, expected, next))

    async def cas_flow_state(self, run_id: RunId, expected: KernelState, next: KernelState) -> bool:
        """``flow_state == expected`` -> ``flow_state = next`` (any status, as upstream).

        Raises:
            NotFound: no such run.
        """
        return await self._send(CasFlowState.of(self._mob.mob_id, run_id, expected, next))

    async def cas_run_snapshot(
        self,
        run_id: RunId,
        expected_status: MobRunStatus | str,
        expected_flow_state: KernelState,
        next_status: MobRunStatus | str,
        next_flow_state: KernelState,
    ) -> bool:
        """Status and flow state in one CAS: both must match (and the status not be
        terminal); then both are set, stamping ``completed_at`` as :meth:`cas_run_status`.

        Raises:
            InvalidTransition: an illegal status pair (before anything is read).
            NotFound: no such run.
        """
        cmd = CasRunSnapshot.of(
            self._mob.mob_id, run_id, expected_status, expected_flow_state, next_status, next_flow_state
        )
        return await self._send(cmd)

    # -- ledgers and outputs -----------------------------------------------------------------

    async def append_step_entry(self, run_id: RunId, entry: StepLedgerEntry) -> None:
        """Append ``entry`` to the step ledger (a timestamp of ``None`` is the store clock).

        Raises:
            NotFound: no such run.
        """
        await self._send(AppendStepEntry.of(self._mob.mob_id, run_id, entry))

    async def append_step_entry_if_absent(self, run_id: RunId, entry: StepLedgerEntry) -> bool:
        """Append ``entry`` unless the ledger has one with the same ``(step_id, meerkat_id,
        status)``; ``output`` and ``timestamp`` are not part of that key. Returns whether it
        appended.

        Raises:
            NotFound: no such run.
        """
        return await self._send(AppendStepEntryIfAbsent.of(self._mob.mob_id, run_id, entry))

    async def put_step_output(self, run_id: RunId, step_id: str, output: Any) -> None:
        """Set ``output`` on the most recent ledger entry of ``step_id`` (whatever its meerkat
        or status).

        Raises:
            NotFound: no such run (``kind="run"``), or no ledger entry for the step
                (``kind="step_ledger_entry"``).
        """
        await self._send(PutStepOutput.of(self._mob.mob_id, run_id, step_id, output))

    async def append_failure_entry(self, run_id: RunId, entry: FailureLedgerEntry) -> None:
        """Append ``entry`` to the failure ledger.

        Raises:
            NotFound: no such run.
        """
        await self._send(AppendFailureEntry.of(self._mob.mob_id, run_id, entry))

    async def upsert_loop_snapshot(
        self,
        run_id: RunId,
        loop_instance_id: str,
        snapshot: LoopSnapshot,
        ledger_entry: LoopIterationLedgerEntry | None = None,
    ) -> None:
        """``loops[loop_instance_id] = snapshot`` (not a CAS), and append ``ledger_entry``
        unless the same ``(loop_instance_id, iteration, frame_id)`` is recorded (a replay on
        resume does not duplicate it; another frame for the same iteration does append).

        Raises:
            NotFound: no such run.
        """
        await self._send(UpsertLoopSnapshot.of(self._mob.mob_id, run_id, loop_instance_id, snapshot, ledger_entry))

    # -- frame and loop CAS wrappers -----------------------------------------------------------

    async def cas_frame_state(
        self, run_id: RunId, frame_id: str, expected: FrameSnapshot | None, next: FrameSnapshot
    ) -> bool:
        """``expected is None``: insert (the frame must be absent); otherwise the frame must
        exist and equal ``expected``. Then ``frames[frame_id] = next``.

        Raises:
            NotFound: no such run.
        """
        mob = self._mob  # the hot CAS: one call layer fewer than _send
        return await mob._store._call(mob._key, (CasFrameState.of(mob.mob_id, run_id, frame_id, expected, next),))

    async def cas_grant_node_slot(
        self,
        run_id: RunId,
        expected_run_state: KernelState,
        next_run_state: KernelState,
        frame_id: str,
        expected_frame: FrameSnapshot,
        next_frame: FrameSnapshot,
    ) -> bool:
        """The flow state and the (existing) frame must match; then both are set, together.

        Raises:
            NotFound: no such run.
        """
        cmd = CasGrantNodeSlot.of(
            self._mob.mob_id, run_id, expected_run_state, next_run_state, frame_id, expected_frame, next_frame
        )
        return await self._send(cmd)

    async def cas_complete_step_and_record_output(
        self,
        run_id: RunId,
        frame_id: str,
        expected_frame: FrameSnapshot,
        next_frame: FrameSnapshot,
        step_output_key: str,
        step_output: Any,
        loop_context: tuple[str, int] | None = None,
    ) -> bool:
        """The (existing) frame must match (the flow state is not checked); then the frame is
        set and the output recorded, together: without ``loop_context`` in
        ``root_step_outputs``, with ``(loop_id, i)`` in ``loop_iteration_outputs[loop_id][i]``
        (earlier iterations padded with empty maps). Re-recording a key overwrites its value
        and keeps its position.

        Raises:
            NotFound: no such run.
            InvalidInput: ``step_output`` is not JSON, or ``i`` exceeds
                ``MAX_OUTPUT_ITERATION``.
        """
        cmd = CasCompleteStepAndRecordOutput.of(
            self._mob.mob_id, run_id, frame_id, expected_frame, next_frame, step_output_key, step_output, loop_context
        )
        return await self._send(cmd)

    async def cas_start_loop(
        self,
        run_id: RunId,
        loop_instance_id: str,
        expected_run_state: KernelState,
        next_run_state: KernelState,
        frame_id: str,
        expected_frame: FrameSnapshot,
        next_frame: FrameSnapshot,
        initial_loop: LoopSnapshot,
    ) -> bool:
        """The flow state and the parent frame must match and the loop must be absent; then
        the flow state, the frame and ``loops[loop_instance_id] = initial_loop`` are set.

        Raises:
            NotFound: no such run.
        """
        cmd = CasStartLoop.of(
            self._mob.mob_id, run_id, loop_instance_id, expected_run_state, next_run_state,
            frame_id, expected_frame, next_frame, initial_loop,
        )
        return await self._send(cmd)

    async def cas_loop_request_body_frame(
        self,
        run_id: RunId,
        loop_instance_id: str,
        expected_loop: LoopSnapshot,
        next_loop: LoopSnapshot,
        expected_run_state: KernelState,
        next_run_state: KernelState,
    ) -> bool:
        """The flow state and the (existing) loop must match; then both are set.

        Raises:
            NotFound: no such run.
        """
        cmd = CasLoopRequestBodyFrame.of(
            self._mob.mob_id, run_id, loop_instance_id, expected_loop, next_loop, expected_run_state, next_run_state
        )
        return await self._send(cmd)

    async def cas_grant_body_frame_start(
        self,
        run_id: RunId,
        loop_instance_id: str,
        expected_loop: LoopSnapshot,
        next_loop: LoopSnapshot,
        frame_id: str,
        initial_frame: FrameSnapshot,
        ledger_entry: LoopIterationLedgerEntry,
        expected_run_state: KernelState,
        next_run_state: KernelState,
    ) -> bool:
        """The flow state and the loop must match and the frame must be absent; then the flow
        state, the loop and ``frames[frame_id] = initial_frame`` are set, and
        ``ledger_entry`` is appended unless already recorded.

        Raises:
            NotFound: no such run.
        """
        cmd = CasGrantBodyFrameStart.of(
            self._mob.mob_id, run_id, loop_instance_id, expected_loop, next_loop,
            frame_id, initial_frame, ledger_entry, expected_run_state, next_run_state,
        )
        return await self._send(cmd)

    async def cas_complete_body_frame(
        self,
        run_id: RunId,
        loop_instance_id: str,
        expected_loop: LoopSnapshot,
        next_loop: LoopSnapshot,
        frame_id: str,
        expected_frame: FrameSnapshot,
        next_frame: FrameSnapshot,
        expected_run_state: KernelState,
        next_run_state: KernelState,
    ) -> bool:
        """The flow state, the loop and the (existing) body frame must match; then all three
        are set.

        Raises:
            NotFound: no such run.
        """
        cmd = CasCompleteBodyFrame.of(
            self._mob.mob_id, run_id, loop_instance_id, expected_loop, next_loop,
            frame_id, expected_frame, next_frame, expected_run_state, next_run_state,
        )
        return await self._send(cmd)

    async def cas_complete_loop(
        self,
        run_id: RunId,
        loop_instance_id: str,
        expected_loop: LoopSnapshot,
        next_loop: LoopSnapshot,
        frame_id: str,
        expected_frame: FrameSnapshot,
        next_frame: FrameSnapshot,
        expected_run_state: KernelState,
        next_run_state: KernelState,
    ) -> bool:
        """Loop completion: the flow state, the loop and the (existing) parent frame must
        match; then all three are set.

        Raises:
            NotFound: no such run.
        """
        cmd = CasCompleteLoop.of(
            self._mob.mob_id, run_id, loop_instance_id, expected_loop, next_loop,
            frame_id, expected_frame, next_frame, expected_run_state, next_run_state,
        )
        return await self._send(cmd)
