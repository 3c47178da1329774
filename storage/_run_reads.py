"""Flow runs: reads (run on a reader connection inside one read transaction).

A run is assembled from its row and its child tables with one query per table for any
number of runs (``list_runs`` costs eight queries whatever the count, not eight per run).
Stored kernel states are canonical text and are decoded keeping that text, so a CAS with a
state just read does not encode it again.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import apsw

from ._codec import decode_json, micros_to_time
from ._errors import DecodeError, InvalidInput
from ._kernel_state import KernelState
from ._run_records import (
    FailureLedgerEntry,
    FrameSnapshot,
    LoopIterationLedgerEntry,
    LoopSnapshot,
    MobRun,
    StepLedgerEntry,
)

_RUN_COLUMNS = (
    "run_id, mob_id, flow_id, status, flow_state, activation_params, created_us, completed_us, schema_version"
)


def _state(text: str, what: str) -> KernelState:
    try:
        return KernelState._from_stored(text)
    except InvalidInput as exc:
        raise DecodeError(what, str(exc)) from exc


def _grouped(conn: apsw.Connection, sql: str, where: str, params: tuple[Any, ...]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in conn.execute(sql.format(runs=f"SELECT run_id FROM runs WHERE {where}"), params):
        out[row[0]].append(row[1:])
    return out


def _load(conn: apsw.Connection, where: str, params: tuple[Any, ...]) -> list[MobRun]:
    rows = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY created_us, run_id", params
    ).fetchall()
    if not rows:
        return []

    def g(sql: str) -> dict[str, list[tuple[Any, ...]]]:
        return _grouped(conn, sql, where, params)

    steps = g("SELECT run_id, step_id, meerkat_id, status, output, ts_us FROM run_step_ledger"
              " WHERE run_id IN ({runs}) ORDER BY run_id, seq")
    failures = g("SELECT run_id, step_id, reason, ts_us FROM run_failure_ledger"
                 " WHERE run_id IN ({runs}) ORDER BY run_id, seq")
    frames = g("SELECT run_id, frame_id, state FROM run_frames WHERE run_id IN ({runs}) ORDER BY run_id, frame_id")
    loops = g("SELECT run_id, loop_instance_id, state FROM run_loops"
              " WHERE run_id IN ({runs}) ORDER BY run_id, loop_instance_id")
    ledger = g("SELECT run_id, loop_instance_id, iteration, frame_id FROM run_loop_ledger"
               " WHERE run_id IN ({runs}) ORDER BY run_id, seq")
    outputs = g("SELECT run_id, loop_id, iteration, step_id, output FROM run_outputs"
                " WHERE run_id IN ({runs}) ORDER BY run_id, loop_id, iteration, ord")
    lengths = g("SELECT run_id, loop_id, iterations FROM run_loop_outputs WHERE run_id IN ({runs})")
    return [
        _run(r, steps[r[0]], failures[r[0]], frames[r[0]], loops[r[0]], ledger[r[0]], outputs[r[0]], lengths[r[0]])
        for r in rows
    ]


def _run(
    row: tuple[Any, ...],
    steps: list[tuple[Any, ...]],
    failures: list[tuple[Any, ...]],
    frames: list[tuple[Any, ...]],
    loops: list[tuple[Any, ...]],
    ledger: list[tuple[Any, ...]],
    outputs: list[tuple[Any, ...]],
    lengths: list[tuple[Any, ...]],
) -> MobRun:
    run_id, mob_id, flow_id, status, flow_state, params, created, completed, version = row
    what = f"run {run_id}"
    root: dict[str, Any] = {}
    per_loop: dict[str, list[dict[str, Any]]] = {loop_id: [{} for _ in range(n)] for loop_id, n in lengths}
    for loop_id, iteration, step_id, text in outputs:
        value = decode_json(text, f"output {step_id!r} of {what}")
        if not loop_id:
            root[step_id] = value
            continue
        iterations = per_loop.setdefault(loop_id, [])
        while len(iterations) <= iteration:
            iterations.append({})
        iterations[iteration][step_id] = value
    try:
        return MobRun(
            run_id=run_id,
            mob_id=mob_id,
            flow_id=flow_id,
            status=status,
            flow_state=_state(flow_state, f"flow_state of {what}"),
            activation_params=decode_json(params, f"activation_params of {what}"),
            created_at=micros_to_time(created),
            completed_at=None if completed is None else micros_to_time(completed),
            step_ledger=[
                StepLedgerEntry(
                    step_id=s, meerkat_id=m, status=st,
                    output=None if o is None else decode_json(o, f"step output of {what}"),
                    timestamp=micros_to_time(t),
                )
                for s, m, st, o, t in steps
            ],
            failure_ledger=[
                FailureLedgerEntry(step_id=s, reason=r, timestamp=micros_to_time(t)) for s, r, t in failures
            ],
            frames={f: FrameSnapshot(_state(t, f"frame {f!r} of {what}")) for f, t in frames},
            loops={lp: LoopSnapshot(_state(t, f"loop {lp!r} of {what}")) for lp, t in loops},
            loop_iteration_ledger=[
                LoopIterationLedgerEntry(loop_instance_id=lp, iteration=i, frame_id=f) for lp, i, f in ledger
            ],
            schema_version=version,
            root_step_outputs=root,
            loop_iteration_outputs=per_loop,
        )
    except InvalidInput as exc:
        raise DecodeError(what, str(exc)) from exc


def get_run(conn: apsw.Connection, run_id: str, mob_id: str | None = None) -> MobRun | None:
    """The run ``run_id`` (canonical text), or ``None``; with ``mob_id``, only a run of that
    mob (another mob's run is ``None``)."""
    if mob_id is None:
        runs = _load(conn, "run_id = ?", (run_id,))
    else:
        runs = _load(conn, "run_id = ? AND mob_id = ?", (run_id, mob_id))
    return runs[0] if runs else None


def list_runs(conn: apsw.Connection, mob_id: str, flow_id: str | None = None) -> list[MobRun]:
    """The mob's runs (of ``flow_id`` if given), ordered by ``(created_at, run_id)``."""
    if flow_id is None:
        return _load(conn, "mob_id = ?", (mob_id,))
    return _load(conn, "mob_id = ? AND flow_id = ?", (mob_id, flow_id))
