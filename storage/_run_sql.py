"""Flow runs: what every run command shares (encoding on the caller's side, SQL helpers on
the commit side). The commands are in ``_runs`` and ``_run_cas``.
"""

from __future__ import annotations

from typing import Any

from ._codec import check_id, check_time, check_utf8, encode_json, time_to_micros
from ._database import Transaction
from ._errors import InvalidInput, NotFound
from ._kernel_state import KernelState
from ._run_records import FrameSnapshot, LoopIterationLedgerEntry, LoopSnapshot

#: The largest loop iteration whose output may be recorded: outputs are padded with empty
#: maps up to the iteration, so an absurd index would make the run unreadable.
MAX_OUTPUT_ITERATION = 1_000_000

TERMINAL = ("completed", "failed", "canceled")

# -- encoding (caller side) -----------------------------------------------------------------


def kernel_text(value: Any, field: str) -> str:
    """The canonical text of a :class:`KernelState` argument."""
    if type(value) is not KernelState:
        raise InvalidInput(field, f"must be a KernelState, got {type(value).__name__}")
    return check_utf8(value.canonical(), field)


def frame_text(value: Any, field: str) -> str:
    """The canonical text of a :class:`FrameSnapshot` argument (its kernel state)."""
    if type(value) is not FrameSnapshot:
        raise InvalidInput(field, f"must be a FrameSnapshot, got {type(value).__name__}")
    return check_utf8(value.kernel_state.canonical(), field)


def loop_text(value: Any, field: str) -> str:
    """The canonical text of a :class:`LoopSnapshot` argument (its kernel state)."""
    if type(value) is not LoopSnapshot:
        raise InvalidInput(field, f"must be a LoopSnapshot, got {type(value).__name__}")
    return check_utf8(value.kernel_state.canonical(), field)


def opt_json(value: Any, field: str) -> str | None:
    return None if value is None else encode_json(value, field)


def micros(value: Any) -> int | None:
    return None if value is None else time_to_micros(value)


LoopRow = tuple[str, int, str]


def loop_entry(value: Any, field: str) -> LoopRow:
    """A :class:`LoopIterationLedgerEntry` argument as ``(loop_instance_id, iteration, frame_id)``."""
    if type(value) is not LoopIterationLedgerEntry:
        raise InvalidInput(field, f"must be a LoopIterationLedgerEntry, got {type(value).__name__}")
    return (value.loop_instance_id, value.iteration, value.frame_id)


def output_slot(loop_context: Any) -> tuple[str, int]:
    """``loop_context`` (``None`` or ``(loop_id, iteration)``) as the ``(loop_id, iteration)``
    key of ``run_outputs``: ``('', 0)`` for the root outputs."""
    if loop_context is None:
        return ("", 0)
    if type(loop_context) is not tuple or len(loop_context) != 2:
        raise InvalidInput("loop_context", f"must be None or a (loop_id, iteration) tuple, got {loop_context!r}")
    loop_id, iteration = loop_context
    check_id(loop_id, "loop_context[0] (loop_id)")
    if type(iteration) is not int or not 0 <= iteration <= MAX_OUTPUT_ITERATION:
        raise InvalidInput(
            "loop_context[1] (iteration)", f"must be an int in 0..{MAX_OUTPUT_ITERATION}, got {iteration!r}"
        )
    return (loop_id, iteration)


# -- SQL helpers (commit side) --------------------------------------------------------------


def run_row(tx: Transaction, mob_id: str, run_id: str) -> tuple[str, str]:
    """``(status, flow_state)`` of the mob's run.

    Raises:
        NotFound: ``kind="run"``, if the mob has no such run.
    """
    rows = tx.execute(
        "SELECT status, flow_state FROM runs WHERE run_id = ? AND mob_id = ?", (run_id, mob_id)
    ).fetchall()
    if not rows:
        raise NotFound("run", run_id, f"mob {mob_id!r} has no such run")
    return rows[0]


def missing_or_false(tx: Transaction, mob_id: str, run_id: str) -> bool:
    """After a conditional UPDATE changed nothing: raise NotFound, or answer ``False``."""
    run_row(tx, mob_id, run_id)
    return False


def next_seq(tx: Transaction, table: str, run_id: str) -> int:
    return tx.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {table} WHERE run_id = ?", (run_id,)).fetchall()[0][0]


def now_us(tx: Transaction) -> int:
    return time_to_micros(check_time(tx.now(), "clock()"))


def add_loop_entry(tx: Transaction, run_id: str, entry: LoopRow) -> None:
    """Append a loop-iteration ledger row unless the same triple is already there."""
    tx.execute(
        "INSERT INTO run_loop_ledger (run_id, seq, loop_instance_id, iteration, frame_id)"
        " VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id, loop_instance_id, iteration, frame_id) DO NOTHING",
        (run_id, next_seq(tx, "run_loop_ledger", run_id), *entry),
    )


def record_output(tx: Transaction, run_id: str, loop_id: str, iteration: int, step_id: str, text: str) -> None:
    """Set one step output: overwrite in place (keeping its position) or append it last;
    a loop output also extends the loop's iteration list to ``iteration + 1``."""
    tx.execute(
        "UPDATE run_outputs SET output = ? WHERE run_id = ? AND loop_id = ? AND iteration = ? AND step_id = ?",
        (text, run_id, loop_id, iteration, step_id),
    )
    if not tx.conn.changes():
        tx.execute(
            "INSERT INTO run_outputs (run_id, loop_id, iteration, step_id, ord, output)"
            " SELECT ?1, ?2, ?3, ?4, COALESCE(MAX(ord), -1) + 1, ?5 FROM run_outputs"
            " WHERE run_id = ?1 AND loop_id = ?2 AND iteration = ?3",
            (run_id, loop_id, iteration, step_id, text),
        )
    if loop_id:
        tx.execute(
            "INSERT INTO run_loop_outputs (run_id, loop_id, iterations) VALUES (?, ?, ?)"
            " ON CONFLICT (run_id, loop_id) DO UPDATE SET iterations = MAX(iterations, excluded.iterations)",
            (run_id, loop_id, iteration + 1),
        )


def put_frame(tx: Transaction, run_id: str, frame_id: str, state: str) -> None:
    tx.execute(
        "INSERT INTO run_frames (run_id, frame_id, state) VALUES (?, ?, ?)"
        " ON CONFLICT (run_id, frame_id) DO UPDATE SET state = excluded.state",
        (run_id, frame_id, state),
    )


def put_loop(tx: Transaction, run_id: str, loop_instance_id: str, state: str) -> None:
    tx.execute(
        "INSERT INTO run_loops (run_id, loop_instance_id, state) VALUES (?, ?, ?)"
        " ON CONFLICT (run_id, loop_instance_id) DO UPDATE SET state = excluded.state",
        (run_id, loop_instance_id, state),
    )
