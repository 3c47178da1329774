"""``mobstore inspect``: flow runs, as a summary per run and as one run in full.

A run shows its flow state and activation params; its frames and loops as counts by phase
plus the first and last few (by id); its step, failure and loop-iteration ledgers as counts
plus the last few entries; its step outputs as counts (and, for one run in full, every
output). Counts come from SQL over all rows (a phase that cannot be read counts as
``<undecodable>``); only the rows shown are decoded.
"""

from __future__ import annotations

from typing import Any

import apsw

from ._inspect_decode import (
    Decoder,
    Limits,
    by_state,
    clip,
    counts,
    json_field_sql,
    rows,
    scalar,
    short,
    sql_limit,
    state_text,
)

RUN_COLUMNS = "run_id, mob_id, flow_id, status, flow_state, activation_params, created_us, completed_us, schema_version"
_PHASE = json_field_sql("state", "$.phase")


def mob_runs(conn: apsw.Connection, dec: Decoder, mob: str, limits: Limits) -> dict[str, Any]:
    """The mob's runs: the total, counts by status and the newest ``limits.runs`` runs (in
    creation order), each summarised."""
    total = scalar(conn, "SELECT count(*) FROM runs WHERE mob_id = ?", mob)
    newest = rows(
        conn,
        f"SELECT {RUN_COLUMNS} FROM runs WHERE mob_id = ? ORDER BY created_us DESC, run_id DESC LIMIT ?",
        mob, sql_limit(limits.runs),
    )
    return {
        "runs_total": total,
        "runs_by_status": counts(conn, "SELECT status, count(*) FROM runs WHERE mob_id = ? GROUP BY status", mob),
        "runs_omitted": total - len(newest),
        "runs": [run_summary(conn, dec, r, limits) for r in reversed(newest)],
    }


def find_run(conn: apsw.Connection, run_id: str, mob: str | None) -> tuple[Any, ...] | None:
    run_id = run_id.strip().lower()  # run ids are stored as canonical (lowercase) UUID text
    sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?" + ("" if mob is None else " AND mob_id = ?")
    got = rows(conn, sql, *((run_id,) if mob is None else (run_id, mob)))
    return got[0] if got else None


def run_summary(conn: apsw.Connection, dec: Decoder, row: tuple[Any, ...], limits: Limits) -> dict[str, Any]:
    run_id, mob_id, flow_id, status, flow_state, params, created, completed, version = row
    what = f"run {run_id}"
    return {
        "run_id": run_id,
        "mob_id": mob_id,
        "flow_id": flow_id,
        "status": status,
        "created_at": dec.time(created, f"created_us of {what}"),
        "completed_at": dec.time(completed, f"completed_us of {what}"),
        "schema_version": version,
        "flow_state": dec.kernel(flow_state, f"flow_state of {what}"),
        "activation_params": dec.json(params, f"activation_params of {what}"),
        "frames": _states(conn, dec, "run_frames", "frame_id", run_id, limits.frames, "frame"),
        "loops": _states(conn, dec, "run_loops", "loop_instance_id", run_id, limits.frames, "loop"),
        "step_ledger": _step_ledger(conn, dec, run_id, limits.ledger),
        "failure_ledger": _failure_ledger(conn, dec, run_id, limits.ledger),
        "loop_ledger": _loop_ledger(conn, run_id, limits.ledger),
        "outputs": _output_counts(conn, run_id),
    }


def run_detail(conn: apsw.Connection, dec: Decoder, row: tuple[Any, ...], limits: Limits) -> dict[str, Any]:
    """:func:`run_summary` plus the run's labels and its step outputs (the first
    ``limits.ledger`` of them, in loop, iteration and insertion order)."""
    out = run_summary(conn, dec, row, limits)
    run_id, mob_id = row[0], row[1]
    labels = rows(conn, "SELECT labels FROM mob_labels WHERE mob_id = ? AND run_id = ?", mob_id, run_id)
    out["labels"] = dec.json(labels[0][0], f"labels of run {run_id}") if labels else None
    items = rows(
        conn,
        "SELECT loop_id, iteration, step_id, output FROM run_outputs WHERE run_id = ?"
        " ORDER BY loop_id, iteration, ord LIMIT ?",
        run_id, sql_limit(limits.ledger),
    )
    out["outputs"]["items"] = [
        {
            "loop_id": loop or None,
            "iteration": i if loop else None,
            "step_id": step,
            "output": dec.json(text, f"output {step!r} ({loop or 'root'}[{i}]) of run {run_id}"),
        }
        for loop, i, step, text in items
    ]
    out["outputs"]["omitted"] = out["outputs"]["total"] - len(items)
    return out


def _window(
    conn: apsw.Connection, select: str, order: str, args: tuple[Any, ...], total: int, limit: int | None
) -> tuple[list[tuple[Any, ...]], int | None]:
    """All rows if at most ``limit``, else the first ceil(limit/2) and the last floor(limit/2)
    by ``order``; and how many rows come before the gap (``None``: no gap)."""
    if limit is None or total <= limit:
        return rows(conn, f"{select} ORDER BY {order}", *args), None
    head = (limit + 1) // 2
    first = rows(conn, f"{select} ORDER BY {order} LIMIT ?", *args, head)
    last = rows(conn, f"{select} ORDER BY {order} DESC LIMIT ?", *args, limit - head)
    return first + last[::-1], head


def _states(
    conn: apsw.Connection, dec: Decoder, table: str, key: str, run_id: str, limit: int | None, noun: str
) -> dict[str, Any]:
    total = scalar(conn, f"SELECT count(*) FROM {table} WHERE run_id = ?", run_id)
    shown, gap = _window(conn, f"SELECT {key}, state FROM {table} WHERE run_id = ?", key, (run_id,), total, limit)
    return {
        "total": total,
        "by_phase": counts(conn, f"SELECT {_PHASE} AS phase, count(*) FROM {table} WHERE run_id = ? GROUP BY phase", run_id),
        "items": [{key: k, **dec.kernel(s, f"{noun} {k!r} of run {run_id}")} for k, s in shown],
        "omitted": total - len(shown),
        "gap_after": gap,
    }


def _last(conn: apsw.Connection, table: str, columns: str, run_id: str, limit: int | None) -> tuple[int, list[tuple[Any, ...]]]:
    total = scalar(conn, f"SELECT count(*) FROM {table} WHERE run_id = ?", run_id)
    got = rows(conn, f"SELECT {columns} FROM {table} WHERE run_id = ? ORDER BY seq DESC LIMIT ?", run_id, sql_limit(limit))
    return total, got[::-1]


def _step_ledger(conn: apsw.Connection, dec: Decoder, run_id: str, limit: int | None) -> dict[str, Any]:
    total, last = _last(conn, "run_step_ledger", "seq, step_id, meerkat_id, status, output, ts_us", run_id, limit)
    what = f"step ledger entry {{}} of run {run_id}"
    return {
        "total": total,
        "by_status": counts(conn, "SELECT status, count(*) FROM run_step_ledger WHERE run_id = ? GROUP BY status", run_id),
        "items": [
            {
                "seq": seq, "step_id": step, "meerkat_id": meerkat, "status": status,
                "output": None if output is None else dec.json(output, what.format(f"#{seq} output")),
                "timestamp": dec.time(ts, what.format(f"#{seq} ts_us")),
            }
            for seq, step, meerkat, status, output, ts in last
        ],
        "omitted": total - len(last),
    }


def _failure_ledger(conn: apsw.Connection, dec: Decoder, run_id: str, limit: int | None) -> dict[str, Any]:
    total, last = _last(conn, "run_failure_ledger", "seq, step_id, reason, ts_us", run_id, limit)
    return {
        "total": total,
        "items": [
            {"seq": seq, "step_id": step, "reason": reason,
             "timestamp": dec.time(ts, f"failure ledger entry #{seq} ts_us of run {run_id}")}
            for seq, step, reason, ts in last
        ],
        "omitted": total - len(last),
    }


def _loop_ledger(conn: apsw.Connection, run_id: str, limit: int | None) -> dict[str, Any]:
    total, last = _last(conn, "run_loop_ledger", "seq, loop_instance_id, iteration, frame_id", run_id, limit)
    return {
        "total": total,
        "items": [{"seq": s, "loop_instance_id": lp, "iteration": i, "frame_id": f} for s, lp, i, f in last],
        "omitted": total - len(last),
    }


def _output_counts(conn: apsw.Connection, run_id: str) -> dict[str, Any]:
    total, root = rows(
        conn, "SELECT count(*), count(*) FILTER (WHERE loop_id = '') FROM run_outputs WHERE run_id = ?", run_id
    )[0]
    loops, iterations = rows(
        conn, "SELECT count(*), coalesce(sum(iterations), 0) FROM run_loop_outputs WHERE run_id = ?", run_id
    )[0]
    return {"total": total, "root": root, "loops": loops, "loop_iterations": iterations}


# -- text ----------------------------------------------------------------------------------------


def render_run(r: dict[str, Any], indent: str, *, heading: str | None = None) -> list[str]:
    """Text lines of a run summary (or detail), each starting with ``indent``."""
    lines = [heading or f"{indent}run {r['run_id']} flow {r['flow_id']}: {r['status']}, created {_t(r['created_at'])}"
             + (f", completed {_t(r['completed_at'])}" if r["completed_at"] is not None else "")]
    i2 = indent + "  "
    lines.append(f"{i2}flow state {state_text(r['flow_state'])}; params {short(r['activation_params'], 80)}")
    if "labels" in r:
        lines.append(f"{i2}labels {short(r['labels'])}" if r["labels"] is not None else f"{i2}labels -")
    for noun, key in (("frames", "frame_id"), ("loops", "loop_instance_id")):
        s = r[noun]
        lines.append(f"{i2}{noun} {s['total']}" + (f": {by_state(s['by_phase'])}" if s["total"] else ""))
        width = min(max((len(it[key]) for it in s["items"]), default=0), 40)
        for n, it in enumerate(s["items"]):
            if n == s["gap_after"]:
                lines.append(f"{i2}  ... {s['omitted']} more")
            lines.append(f"{i2}  {clip(it[key], 40):<{width}}  {state_text(it)}")
        if s["gap_after"] is not None and s["gap_after"] >= len(s["items"]) and s["omitted"]:
            lines.append(f"{i2}  ... {s['omitted']} more")
    led = r["step_ledger"]
    lines.append(f"{i2}step ledger {led['total']}" + (f": {by_state(led['by_status'])}" if led["total"] else "")
                 + _last_note(led))
    for e in led["items"]:
        out = "" if e["output"] is None else "  " + short(e["output"], 70)
        lines.append(f"{i2}  #{e['seq']:<5} {e['step_id']}  {e['meerkat_id']}  {e['status']}{out}")
    fail = r["failure_ledger"]
    lines.append(f"{i2}failure ledger {fail['total']}" + _last_note(fail))
    for e in fail["items"]:
        lines.append(f"{i2}  #{e['seq']:<5} {e['step_id']}  {clip(e['reason'], 80)}")
    lp = r["loop_ledger"]
    lines.append(f"{i2}loop ledger {lp['total']}" + _last_note(lp))
    for e in lp["items"]:
        lines.append(f"{i2}  #{e['seq']:<5} {e['loop_instance_id']}[{e['iteration']}] -> {e['frame_id']}")
    o = r["outputs"]
    lines.append(f"{i2}step outputs {o['total']} (root {o['root']}; {o['loops']} loops, {o['loop_iterations']} iterations)"
                 + (f"; first {len(o['items'])} shown" if o.get("omitted") else ""))
    for e in o.get("items", ()):
        where = "root" if e["loop_id"] is None else f"{e['loop_id']}[{e['iteration']}]"
        lines.append(f"{i2}  {where} {e['step_id']}: {short(e['output'], 80)}")
    return lines


def _last_note(section: dict[str, Any]) -> str:
    return f"; last {len(section['items'])} shown" if section["omitted"] and section["items"] else ""


def _t(value: Any) -> str:
    return short(value) if isinstance(value, dict) else str(value)
