"""Flow runs: the run-level commands (SQL over an open write transaction).

One command class per mutating method of ``mob.runs``: here create, the status and flow
state CAS and the ledger commands; the frame and loop CAS wrappers are in ``_run_cas``, the
helpers both share in ``_run_sql``, the reads in ``_run_reads``, the tables in
``_schema._V1_RUNS``.

Rules every command here follows:

* It is built with ``of(mob_id, ...)`` on the caller's side, which validates and encodes all
  input (kernel states to canonical text, JSON to text, times to microseconds). Bad input
  raises :class:`InvalidInput` naming the field, or :class:`InvalidTransition` for an illegal
  status pair, before anything is queued or read.
* ``apply`` first finds the run *of this mob* (a run of another mob is not found: each mob's
  actor owns only its runs) and raises ``NotFound(kind="run")`` if it is missing, from every
  method (SEMANTICS.md §3.3, port decision W3).
* A CAS checks every precondition before it writes anything: ``False`` means nothing
  changed. A write that fails (I/O) raises, and the committer rolls the command's SAVEPOINT
  back, so a command is applied whole or not at all.
* Times stamped by the store come from ``tx.now()``; ``completed_at`` is stamped once, on the
  first terminal move, and never before ``created_at``.
"""

from __future__ import annotations

from typing import Any, Self

import attrs

from ._codec import check_id, encode_json, micros_to_time, time_to_micros
from ._database import Transaction
from ._errors import CasConflict, InvalidInput, NotFound
from ._run_records import FailureLedgerEntry, MobRun, StepLedgerEntry, run_id_text
from ._run_sql import (
    MAX_OUTPUT_ITERATION,
    TERMINAL,
    LoopRow,
    add_loop_entry,
    frame_text,
    kernel_text,
    loop_entry,
    loop_text,
    micros,
    missing_or_false,
    next_seq,
    now_us,
    opt_json,
    put_loop,
    run_row,
)
from ._run_status import check_move


# -- create ---------------------------------------------------------------------------------


@attrs.frozen
class CreateRun:
    """Insert a new run; returns the :class:`MobRun` as stored (times stamped).

    Raises (at apply): ``CasConflict`` if a run with this id exists (in any mob).
    """

    mob_id: str
    run: MobRun
    params: str
    steps: tuple[tuple[str, str, str, str | None, int | None], ...]
    failures: tuple[tuple[str, str, int | None], ...]
    frames: tuple[tuple[str, str], ...]
    loops: tuple[tuple[str, str], ...]
    loop_ledger: tuple[LoopRow, ...]
    outputs: tuple[tuple[str, int, str, int, str], ...]
    loop_lengths: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, mob_id: str, run: MobRun) -> CreateRun:
        if type(run) is not MobRun:
            raise InvalidInput("run", f"must be a MobRun, got {type(run).__name__}")
        if run.mob_id != mob_id:
            raise InvalidInput("run.mob_id", f"{run.mob_id!r} is another mob; this handle is for {mob_id!r}")
        kernel_text(run.flow_state, "run.flow_state")
        steps = tuple(
            (e.step_id, e.meerkat_id, e.status.value,
             opt_json(e.output, f"run.step_ledger[{i}].output"), micros(e.timestamp))
            for i, e in enumerate(run.step_ledger)
        )
        failures = tuple((e.step_id, e.reason, micros(e.timestamp)) for e in run.failure_ledger)
        seen: dict[LoopRow, int] = {}
        for i, e in enumerate(run.loop_iteration_ledger):
            key = loop_entry(e, f"run.loop_iteration_ledger[{i}]")
            if key in seen:
                raise InvalidInput(
                    f"run.loop_iteration_ledger[{i}]", f"repeats entry {seen[key]} (same loop, iteration and frame)"
                )
            seen[key] = i
        outputs = []
        for i, (k, v) in enumerate(run.root_step_outputs.items()):
            outputs.append(("", 0, k, i, encode_json(v, f"run.root_step_outputs[{k!r}]")))
        lengths = []
        for loop_id, iterations in run.loop_iteration_outputs.items():
            if len(iterations) > MAX_OUTPUT_ITERATION + 1:
                raise InvalidInput(
                    f"run.loop_iteration_outputs[{loop_id!r}]", f"has more than {MAX_OUTPUT_ITERATION + 1} iterations"
                )
            lengths.append((loop_id, len(iterations)))
            for it, outs in enumerate(iterations):
                for i, (k, v) in enumerate(outs.items()):
                    field = f"run.loop_iteration_outputs[{loop_id!r}][{it}][{k!r}]"
                    outputs.append((loop_id, it, k, i, encode_json(v, field)))
        return cls(
            mob_id,
            run,
            encode_json(run.activation_params, "run.activation_params"),
            steps,
            failures,
            tuple((k, frame_text(v, f"run.frames[{k!r}]")) for k, v in run.frames.items()),
            tuple((k, loop_text(v, f"run.loops[{k!r}]")) for k, v in run.loops.items()),
            tuple(seen),
            tuple(outputs),
            tuple(lengths),
        )

    def apply(self, tx: Transaction) -> MobRun:
        run, rid = self.run, self.run.run_id
        got = tx.execute("SELECT mob_id FROM runs WHERE run_id = ?", (rid,)).fetchall()
        if got:
            raise CasConflict(f"run {rid}", "no run with this id", f"a run of mob {got[0][0]!r}", "create_run")
        now: int | None = None
        if run.created_at is None or any(s[4] is None for s in self.steps) or any(f[2] is None for f in self.failures):
            now = now_us(tx)
        created = now if run.created_at is None else time_to_micros(run.created_at)
        tx.execute(
            "INSERT INTO runs (run_id, mob_id, flow_id, status, flow_state, activation_params,"
            " created_us, completed_us, schema_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rid, run.mob_id, run.flow_id, run.status.value, run.flow_state.canonical(), self.params,
             created, micros(run.completed_at), run.schema_version),
        )
        ex = tx.executemany
        ex("INSERT INTO run_step_ledger (run_id, seq, step_id, meerkat_id, status, output, ts_us)"
           " VALUES (?, ?, ?, ?, ?, ?, ?)",
           [(rid, i, s, m, st, o, now if t is None else t) for i, (s, m, st, o, t) in enumerate(self.steps, 1)])
        ex("INSERT INTO run_failure_ledger (run_id, seq, step_id, reason, ts_us) VALUES (?, ?, ?, ?, ?)",
           [(rid, i, s, r, now if t is None else t) for i, (s, r, t) in enumerate(self.failures, 1)])
        ex("INSERT INTO run_frames (run_id, frame_id, state) VALUES (?, ?, ?)", [(rid, *f) for f in self.frames])
        ex("INSERT INTO run_loops (run_id, loop_instance_id, state) VALUES (?, ?, ?)",
           [(rid, *lp) for lp in self.loops])
        ex("INSERT INTO run_loop_ledger (run_id, seq, loop_instance_id, iteration, frame_id) VALUES (?, ?, ?, ?, ?)",
           [(rid, i, *e) for i, e in enumerate(self.loop_ledger, 1)])
        ex("INSERT INTO run_outputs (run_id, loop_id, iteration, step_id, ord, output) VALUES (?, ?, ?, ?, ?, ?)",
           [(rid, *o) for o in self.outputs])
        ex("INSERT INTO run_loop_outputs (run_id, loop_id, iterations) VALUES (?, ?, ?)",
           [(rid, *n) for n in self.loop_lengths])
        if now is None:
            return run
        t = micros_to_time(now)
        return attrs.evolve(
            run,
            created_at=t if run.created_at is None else run.created_at,
            step_ledger=[e if e.timestamp is not None else attrs.evolve(e, timestamp=t) for e in run.step_ledger],
            failure_ledger=[e if e.timestamp is not None else attrs.evolve(e, timestamp=t) for e in run.failure_ledger],
        )


# -- status and flow state ------------------------------------------------------------------


@attrs.frozen
class CasRunStatus:
    """``status == expected`` (and not terminal) -> ``status = next``; stamps
    ``completed_at`` on the first terminal move. Returns whether it applied."""

    mob_id: str
    run_id: str
    expected: str
    next: str

    @classmethod
    def of(cls, mob_id: str, run_id: Any, expected: Any, next: Any) -> CasRunStatus:
        exp, nxt = check_move(expected, next)
        return cls(mob_id, run_id_text(run_id), exp.value, nxt.value)

    def apply(self, tx: Transaction) -> bool:
        return _set_status(tx, self.mob_id, self.run_id, self.expected, self.next, None, None)


def _set_status(
    tx: Transaction, mob_id: str, run_id: str, expected: str, next: str, exp_state: str | None, next_state: str | None
) -> bool:
    # One conditional UPDATE: the CAS is the WHERE clause. The legal-move table guarantees
    # `expected` is not terminal, so `status = expected` also checks "not terminal".
    stamp = now_us(tx) if next in TERMINAL else None
    sql = (
        "UPDATE runs SET status = ?1,"
        " completed_us = CASE WHEN ?2 IS NOT NULL AND completed_us IS NULL"
        " THEN MAX(?2, created_us) ELSE completed_us END"
    )
    where = " WHERE run_id = ?3 AND mob_id = ?4 AND status = ?5"
    args: tuple[Any, ...] = (next, stamp, run_id, mob_id, expected)
    if exp_state is not None:
        sql += ", flow_state = ?6"
        where += " AND flow_state = ?7"
        args += (next_state, exp_state)
    tx.execute(sql + where, args)
    return bool(tx.conn.changes()) or missing_or_false(tx, mob_id, run_id)


@attrs.frozen
class CasFlowState:
    """``flow_state == expected`` -> ``flow_state = next`` (any status, as upstream)."""

    mob_id: str
    run_id: str
    expected: str
    next: str

    @classmethod
    def of(cls, mob_id: str, run_id: Any, expected: Any, next: Any) -> CasFlowState:
        return cls(mob_id, run_id_text(run_id), kernel_text(expected, "expected"), kernel_text(next, "next"))

    def apply(self, tx: Transaction) -> bool:
        tx.execute(
            "UPDATE runs SET flow_state = ? WHERE run_id = ? AND mob_id = ? AND flow_state = ?",
            (self.next, self.run_id, self.mob_id, self.expected),
        )
        return bool(tx.conn.changes()) or missing_or_false(tx, self.mob_id, self.run_id)


@attrs.frozen
class CasRunSnapshot:
    """Status and flow state together: ``status == expected_status`` (not terminal) and
    ``flow_state == expected_flow_state`` -> both set; stamps ``completed_at`` as
    :class:`CasRunStatus`."""

    mob_id: str
    run_id: str
    expected_status: str
    expected_flow_state: str
    next_status: str
    next_flow_state: str

    @classmethod
    def of(
        cls, mob_id: str, run_id: Any,
        expected_status: Any, expected_flow_state: Any, next_status: Any, next_flow_state: Any,
    ) -> CasRunSnapshot:
        exp, nxt = check_move(expected_status, next_status, ("expected_status", "next_status"))
        return cls(
            mob_id,
            run_id_text(run_id),
            exp.value,
            kernel_text(expected_flow_state, "expected_flow_state"),
            nxt.value,
            kernel_text(next_flow_state, "next_flow_state"),
        )

    def apply(self, tx: Transaction) -> bool:
        return _set_status(
            tx, self.mob_id, self.run_id, self.expected_status, self.next_status,
            self.expected_flow_state, self.next_flow_state,
        )


# -- ledgers and outputs --------------------------------------------------------------------


@attrs.frozen
class AppendStepEntry:
    """Append to the step ledger (duplicates allowed). Returns ``None``."""

    mob_id: str
    run_id: str
    step_id: str
    meerkat_id: str
    status: str
    output: str | None
    ts_us: int | None

    @classmethod
    def of(cls, mob_id: str, run_id: Any, entry: Any) -> Self:
        if type(entry) is not StepLedgerEntry:
            raise InvalidInput("entry", f"must be a StepLedgerEntry, got {type(entry).__name__}")
        return cls(
            mob_id, run_id_text(run_id), entry.step_id, entry.meerkat_id, entry.status.value,
            opt_json(entry.output, "entry.output"), micros(entry.timestamp),
        )

    def _insert(self, tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO run_step_ledger (run_id, seq, step_id, meerkat_id, status, output, ts_us)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.run_id, next_seq(tx, "run_step_ledger", self.run_id), self.step_id, self.meerkat_id,
             self.status, self.output, now_us(tx) if self.ts_us is None else self.ts_us),
        )

    def apply(self, tx: Transaction) -> Any:
        run_row(tx, self.mob_id, self.run_id)
        self._insert(tx)
        return None


@attrs.frozen
class AppendStepEntryIfAbsent(AppendStepEntry):
    """Append unless an entry with the same ``(step_id, meerkat_id, status)`` exists
    (``output`` and ``timestamp`` are not part of the key). Returns whether it appended."""

    def apply(self, tx: Transaction) -> bool:
        run_row(tx, self.mob_id, self.run_id)
        dup = tx.execute(
            "SELECT 1 FROM run_step_ledger WHERE run_id = ? AND step_id = ? AND meerkat_id = ? AND status = ? LIMIT 1",
            (self.run_id, self.step_id, self.meerkat_id, self.status),
        ).fetchall()
        if dup:
            return False
        self._insert(tx)
        return True


@attrs.frozen
class PutStepOutput:
    """Set ``output`` on the most recent step-ledger entry of ``step_id`` (whatever its
    meerkat or status). Returns ``None``; raises ``NotFound(kind="step_ledger_entry")`` if the
    step has no entry."""

    mob_id: str
    run_id: str
    step_id: str
    output: str | None

    @classmethod
    def of(cls, mob_id: str, run_id: Any, step_id: Any, output: Any) -> PutStepOutput:
        return cls(mob_id, run_id_text(run_id), check_id(step_id, "step_id"), opt_json(output, "output"))

    def apply(self, tx: Transaction) -> None:
        run_row(tx, self.mob_id, self.run_id)
        tx.execute(
            "UPDATE run_step_ledger SET output = ?1 WHERE run_id = ?2 AND seq ="
            " (SELECT MAX(seq) FROM run_step_ledger WHERE run_id = ?2 AND step_id = ?3)",
            (self.output, self.run_id, self.step_id),
        )
        if not tx.conn.changes():
            raise NotFound("step_ledger_entry", self.step_id, f"run {self.run_id} has no ledger entry for this step")


@attrs.frozen
class AppendFailureEntry:
    """Append to the failure ledger. Returns ``None``."""

    mob_id: str
    run_id: str
    step_id: str
    reason: str
    ts_us: int | None

    @classmethod
    def of(cls, mob_id: str, run_id: Any, entry: Any) -> AppendFailureEntry:
        if type(entry) is not FailureLedgerEntry:
            raise InvalidInput("entry", f"must be a FailureLedgerEntry, got {type(entry).__name__}")
        return cls(mob_id, run_id_text(run_id), entry.step_id, entry.reason, micros(entry.timestamp))

    def apply(self, tx: Transaction) -> None:
        run_row(tx, self.mob_id, self.run_id)
        tx.execute(
            "INSERT INTO run_failure_ledger (run_id, seq, step_id, reason, ts_us) VALUES (?, ?, ?, ?, ?)",
            (self.run_id, next_seq(tx, "run_failure_ledger", self.run_id), self.step_id, self.reason,
             now_us(tx) if self.ts_us is None else self.ts_us),
        )


@attrs.frozen
class UpsertLoopSnapshot:
    """``loops[loop_instance_id] = snapshot`` (not a CAS), and append ``ledger_entry`` unless
    the same ``(loop_instance_id, iteration, frame_id)`` is already in the ledger."""

    mob_id: str
    run_id: str
    loop_instance_id: str
    snapshot: str
    ledger_entry: LoopRow | None

    @classmethod
    def of(
        cls, mob_id: str, run_id: Any, loop_instance_id: Any, snapshot: Any, ledger_entry: Any = None
    ) -> UpsertLoopSnapshot:
        return cls(
            mob_id,
            run_id_text(run_id),
            check_id(loop_instance_id, "loop_instance_id"),
            loop_text(snapshot, "snapshot"),
            None if ledger_entry is None else loop_entry(ledger_entry, "ledger_entry"),
        )

    def apply(self, tx: Transaction) -> None:
        run_row(tx, self.mob_id, self.run_id)
        put_loop(tx, self.run_id, self.loop_instance_id, self.snapshot)
        if self.ledger_entry is not None:
            add_loop_entry(tx, self.run_id, self.ledger_entry)
