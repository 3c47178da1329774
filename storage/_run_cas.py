"""Flow runs: the frame and loop CAS commands (SEMANTICS.md §3.3, "CAS wrappers").

Each wrapper moves several parts of a run together (its flow state, one frame, one loop,
the loop-iteration ledger, the step outputs). Atomicity is by construction:

1. every precondition is read and compared first (kernel states as canonical text, so
   "equal" is byte equality; an expected ``None`` frame or loop means "must be absent");
2. only if all hold are the parts written, and the command returns ``True``;
3. otherwise it returns ``False`` having written nothing.

(:class:`CasFrameState`, which moves one part only, does all three in one conditional
statement: the comparison is its ``WHERE`` clause.)

A failure while writing (I/O) raises, and the committer rolls back the command's SAVEPOINT,
so no reader ever sees some parts moved and others not, also across kill -9 (the parts
commit in one transaction). Input is validated and encoded by ``of`` before anything is
queued, so no conversion can fail half-way through ``apply`` (upstream's in-memory store
updated the frame before a conversion that could fail).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import attrs

from ._codec import check_id, encode_json
from ._database import Transaction
from ._run_records import run_id_text
from ._run_sql import (
    add_loop_entry,
    frame_text,
    kernel_text,
    loop_entry,
    loop_text,
    missing_or_false,
    output_slot,
    put_frame,
    put_loop,
    record_output,
    run_row,
)


def _frame(tx: Transaction, run_id: str, frame_id: str) -> str | None:
    rows = tx.execute("SELECT state FROM run_frames WHERE run_id = ? AND frame_id = ?", (run_id, frame_id)).fetchall()
    return rows[0][0] if rows else None


def _loop(tx: Transaction, run_id: str, loop_instance_id: str) -> str | None:
    rows = tx.execute(
        "SELECT state FROM run_loops WHERE run_id = ? AND loop_instance_id = ?", (run_id, loop_instance_id)
    ).fetchall()
    return rows[0][0] if rows else None


_NO_CHECK = object()


def holds(
    tx: Transaction,
    mob_id: str,
    run_id: str,
    *,
    flow: Any = _NO_CHECK,
    frame: tuple[str, str | None] | None = None,
    loop: tuple[str, str | None] | None = None,
) -> bool:
    """Whether every given precondition holds, reading and writing nothing else.

    ``flow``: the expected flow state text. ``frame``/``loop``: ``(id, expected text)``,
    where an expected ``None`` means the frame or loop must be absent.

    Raises:
        NotFound: the mob has no such run (checked first, whatever the preconditions).
    """
    _, flow_state = run_row(tx, mob_id, run_id)
    if flow is not _NO_CHECK and flow_state != flow:
        return False
    if frame is not None and _frame(tx, run_id, frame[0]) != frame[1]:
        return False
    if loop is not None and _loop(tx, run_id, loop[0]) != loop[1]:
        return False
    return True


def _set_flow(tx: Transaction, run_id: str, text: str) -> None:
    tx.execute("UPDATE runs SET flow_state = ? WHERE run_id = ?", (text, run_id))


@attrs.frozen
class CasFrameState:
    """``expected is None``: the frame must be absent (an insert); otherwise it must exist
    and equal ``expected``. Then ``frames[frame_id] = next``."""

    mob_id: str
    run_id: str
    frame_id: str
    expected: str | None
    next: str

    @classmethod
    def of(cls, mob_id: str, run_id: Any, frame_id: Any, expected: Any, next: Any) -> CasFrameState:
        return cls(
            mob_id,
            run_id_text(run_id),
            check_id(frame_id, "frame_id"),
            None if expected is None else frame_text(expected, "expected"),
            frame_text(next, "next"),
        )

    def apply(self, tx: Transaction) -> bool:
        # One statement on the success path (the hot one: a frame moving through its
        # machine): the CAS is the WHERE clause, the run-of-this-mob check an EXISTS in it.
        # Only when nothing changed is the run looked up, to tell NotFound from False.
        if self.expected is None:
            tx.execute(_INSERT_FRAME, (self.run_id, self.frame_id, self.next, self.mob_id))
        else:
            tx.execute(_SWAP_FRAME, (self.next, self.run_id, self.frame_id, self.expected, self.mob_id))
        return bool(tx.conn.changes()) or missing_or_false(tx, self.mob_id, self.run_id)

    @staticmethod
    def apply_many(tx: Transaction, cmds: Sequence[CasFrameState]) -> list[bool]:
        """Apply several frame CAS in order (the committer's coalesced path): the same
        statements and results as :meth:`apply` one by one, through one reused cursor
        (a cursor per statement costs about a fifth of the statement)."""
        execute, changes = tx.conn.cursor().execute, tx.conn.changes
        out = []
        for c in cmds:
            if c.expected is None:
                execute(_INSERT_FRAME, (c.run_id, c.frame_id, c.next, c.mob_id))
            else:
                execute(_SWAP_FRAME, (c.next, c.run_id, c.frame_id, c.expected, c.mob_id))
            out.append(bool(changes()) or missing_or_false(tx, c.mob_id, c.run_id))
        return out


_OF_MOB = "EXISTS (SELECT 1 FROM runs WHERE run_id = ?{run} AND mob_id = ?{mob})"
#: expected None: insert if absent (and the run is this mob's).
_INSERT_FRAME = (
    "INSERT INTO run_frames (run_id, frame_id, state) SELECT ?1, ?2, ?3 WHERE " + _OF_MOB.format(run=1, mob=4)
    + " ON CONFLICT (run_id, frame_id) DO NOTHING"
)
#: expected given: replace if present and equal (and the run is this mob's).
_SWAP_FRAME = (
    "UPDATE run_frames SET state = ?1 WHERE run_id = ?2 AND frame_id = ?3 AND state = ?4 AND "
    + _OF_MOB.format(run=2, mob=5)
)


@attrs.frozen
class CasGrantNodeSlot:
    """``flow_state == expected_run_state`` and the frame exists and equals
    ``expected_frame`` -> set both."""

    mob_id: str
    run_id: str
    expected_run_state: str
    next_run_state: str
    frame_id: str
    expected_frame: str
    next_frame: str

    @classmethod
    def of(
        cls, mob_id: str, run_id: Any, expected_run_state: Any, next_run_state: Any,
        frame_id: Any, expected_frame: Any, next_frame: Any,
    ) -> CasGrantNodeSlot:
        return cls(
            mob_id, run_id_text(run_id),
            kernel_text(expected_run_state, "expected_run_state"), kernel_text(next_run_state, "next_run_state"),
            check_id(frame_id, "frame_id"),
            frame_text(expected_frame, "expected_frame"), frame_text(next_frame, "next_frame"),
        )

    def apply(self, tx: Transaction) -> bool:
        if not holds(tx, self.mob_id, self.run_id, flow=self.expected_run_state,
                     frame=(self.frame_id, self.expected_frame)):
            return False
        _set_flow(tx, self.run_id, self.next_run_state)
        put_frame(tx, self.run_id, self.frame_id, self.next_frame)
        return True


@attrs.frozen
class CasCompleteStepAndRecordOutput:
    """The frame exists and equals ``expected_frame`` (the flow state is not checked) ->
    set the frame and record the step output: in ``root_step_outputs`` without a loop
    context, else in ``loop_iteration_outputs[loop_id][iteration]`` (padding the list with
    empty maps). Re-recording a key overwrites it in place."""

    mob_id: str
    run_id: str
    frame_id: str
    expected_frame: str
    next_frame: str
    step_output_key: str
    step_output: str
    loop_id: str  #: '' for the root outputs
    iteration: int

    @classmethod
    def of(
        cls, mob_id: str, run_id: Any, frame_id: Any, expected_frame: Any, next_frame: Any,
        step_output_key: Any, step_output: Any, loop_context: Any = None,
    ) -> CasCompleteStepAndRecordOutput:
        loop_id, iteration = output_slot(loop_context)
        return cls(
            mob_id, run_id_text(run_id), check_id(frame_id, "frame_id"),
            frame_text(expected_frame, "expected_frame"), frame_text(next_frame, "next_frame"),
            check_id(step_output_key, "step_output_key"), encode_json(step_output, "step_output"),
            loop_id, iteration,
        )

    def apply(self, tx: Transaction) -> bool:
        if not holds(tx, self.mob_id, self.run_id, frame=(self.frame_id, self.expected_frame)):
            return False
        put_frame(tx, self.run_id, self.frame_id, self.next_frame)
        record_output(tx, self.run_id, self.loop_id, self.iteration, self.step_output_key, self.step_output)
        return True


@attrs.frozen
class CasStartLoop:
    """``flow_state == expected_run_state``, the frame equals ``expected_frame`` and the loop
    is **absent** -> set the flow state, the frame and ``loops[loop_instance_id] =
    initial_loop``."""

    mob_id: str
    run_id: str
    loop_instance_id: str
    expected_run_state: str
    next_run_state: str
    frame_id: str
    expected_frame: str
    next_frame: str
    initial_loop: str

    @classmethod
    def of(
        cls, mob_id: str, run_id: Any, loop_instance_id: Any, expected_run_state: Any, next_run_state: Any,
        frame_id: Any, expected_frame: Any, next_frame: Any, initial_loop: Any,
    ) -> CasStartLoop:
        return cls(
            mob_id, run_id_text(run_id), check_id(loop_instance_id, "loop_instance_id"),
            kernel_text(expected_run_state, "expected_run_state"), kernel_text(next_run_state, "next_run_state"),
            check_id(frame_id, "frame_id"),
            frame_text(expected_frame, "expected_frame"), frame_text(next_frame, "next_frame"),
            loop_text(initial_loop, "initial_loop"),
        )

    def apply(self, tx: Transaction) -> bool:
        if not holds(tx, self.mob_id, self.run_id, flow=self.expected_run_state,
                     frame=(self.frame_id, self.expected_frame), loop=(self.loop_instance_id, None)):
            return False
        _set_flow(tx, self.run_id, self.next_run_state)
        put_frame(tx, self.run_id, self.frame_id, self.next_frame)
        put_loop(tx, self.run_id, self.loop_instance_id, self.initial_loop)
        return True


@attrs.frozen
class CasLoopRequestBodyFrame:
    """``flow_state == expected_run_state`` and the loop equals ``expected_loop`` -> set
    both."""

    mob_id: str
    run_id: str
    loop_instance_id: str
    expected_loop: str
    next_loop: str
    expected_run_state: str
    next_run_state: str

    @classmethod
    def of(
        cls, mob_id: str, run_id: Any, loop_instance_id: Any, expected_loop: Any, next_loop: Any,
        expected_run_state: Any, next_run_state: Any,
    ) -> CasLoopRequestBodyFrame:
        return cls(
            mob_id, run_id_text(run_id), check_id(loop_instance_id, "loop_instance_id"),
            loop_text(expected_loop, "expected_loop"), loop_text(next_loop, "next_loop"),
            kernel_text(expected_run_state, "expected_run_state"), kernel_text(next_run_state, "next_run_state"),
        )

    def apply(self, tx: Transaction) -> bool:
        if not holds(tx, self.mob_id, self.run_id, flow=self.expected_run_state,
                     loop=(self.loop_instance_id, self.expected_loop)):
            return False
        _set_flow(tx, self.run_id, self.next_run_state)
        put_loop(tx, self.run_id, self.loop_instance_id, self.next_loop)
        return True


@attrs.frozen
class CasGrantBodyFrameStart:
    """``flow_state == expected_run_state``, the loop equals ``expected_loop`` and the frame
    is **absent** -> set the flow state, the loop, ``frames[frame_id] = initial_frame``, and
    append ``ledger_entry`` unless its (loop, iteration, frame) is already recorded."""

    mob_id: str
    run_id: str
    loop_instance_id: str
    expected_loop: str
    next_loop: str
    frame_id: str
    initial_frame: str
    ledger_entry: tuple[str, int, str]
    expected_run_state: str
    next_run_state: str

    @classmethod
    def of(
        cls, mob_id: str, run_id: Any, loop_instance_id: Any, expected_loop: Any, next_loop: Any,
        frame_id: Any, initial_frame: Any, ledger_entry: Any, expected_run_state: Any, next_run_state: Any,
    ) -> CasGrantBodyFrameStart:
        return cls(
            mob_id, run_id_text(run_id), check_id(loop_instance_id, "loop_instance_id"),
            loop_text(expected_loop, "expected_loop"), loop_text(next_loop, "next_loop"),
            check_id(frame_id, "frame_id"), frame_text(initial_frame, "initial_frame"),
            loop_entry(ledger_entry, "ledger_entry"),
            kernel_text(expected_run_state, "expected_run_state"), kernel_text(next_run_state, "next_run_state"),
        )

    def apply(self, tx: Transaction) -> bool:
        if not holds(tx, self.mob_id, self.run_id, flow=self.expected_run_state,
                     loop=(self.loop_instance_id, self.expected_loop), frame=(self.frame_id, None)):
            return False
        _set_flow(tx, self.run_id, self.next_run_state)
        put_loop(tx, self.run_id, self.loop_instance_id, self.next_loop)
        put_frame(tx, self.run_id, self.frame_id, self.initial_frame)
        add_loop_entry(tx, self.run_id, self.ledger_entry)
        return True


@attrs.frozen
class CasCompleteBodyFrame:
    """``flow_state == expected_run_state``, the loop equals ``expected_loop`` and the frame
    exists and equals ``expected_frame`` -> set all three."""

    mob_id: str
    run_id: str
    loop_instance_id: str
    expected_loop: str
    next_loop: str
    frame_id: str
    expected_frame: str
    next_frame: str
    expected_run_state: str
    next_run_state: str

    @classmethod
    def of(
        cls, mob_id: str, run_id: Any, loop_instance_id: Any, expected_loop: Any, next_loop: Any,
        frame_id: Any, expected_frame: Any, next_frame: Any, expected_run_state: Any, next_run_state: Any,
    ) -> Self:
        return cls(
            mob_id, run_id_text(run_id), check_id(loop_instance_id, "loop_instance_id"),
            loop_text(expected_loop, "expected_loop"), loop_text(next_loop, "next_loop"),
            check_id(frame_id, "frame_id"),
            frame_text(expected_frame, "expected_frame"), frame_text(next_frame, "next_frame"),
            kernel_text(expected_run_state, "expected_run_state"), kernel_text(next_run_state, "next_run_state"),
        )

    def apply(self, tx: Transaction) -> bool:
        if not holds(tx, self.mob_id, self.run_id, flow=self.expected_run_state,
                     loop=(self.loop_instance_id, self.expected_loop), frame=(self.frame_id, self.expected_frame)):
            return False
        _set_flow(tx, self.run_id, self.next_run_state)
        put_loop(tx, self.run_id, self.loop_instance_id, self.next_loop)
        put_frame(tx, self.run_id, self.frame_id, self.next_frame)
        return True


@attrs.frozen
class CasCompleteLoop(CasCompleteBodyFrame):
    """Loop completion: the same three checks and writes as :class:`CasCompleteBodyFrame`;
    the frame is the loop's parent frame."""
