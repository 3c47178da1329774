"""``mobstore inspect``: runtimes (state, input states, boundary receipts, session snapshot).

Runtime ids are realm-wide, not keyed by mob. The link to a mob is indirect: a boundary
receipt names a run (``runtime_receipts.run_id``), and an input state its last run
(``last_run_id``); runs belong to mobs. So ``--mob`` shows the runtimes linked to that mob's
runs that way (and says how many runtimes the realm has); ``--run`` those linked to that run.
"""

from __future__ import annotations

from typing import Any

import apsw

from ._inspect_decode import (
    Decoder,
    Limits,
    by_state,
    counts,
    is_marker,
    json_field_sql,
    plural,
    rows,
    scalar,
    short,
    size,
    sql_limit,
)

_TABLES = ("runtime_states", "runtime_input_states", "runtime_snapshots", "runtime_receipts")
_CURRENT_STATE = json_field_sql("state", "$.current_state")
_LAST_RUN = json_field_sql("state", "$.last_run_id")
DIGEST_PREFIX = 12


def collect(
    conn: apsw.Connection, dec: Decoder, limits: Limits, *, mob: str | None = None, run: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The runtimes in scope (all; those linked to ``mob``'s runs; those linked to ``run``),
    the first ``limits.runtimes`` by id, and a description of the scope."""
    realm = sorted({r[0] for t in _TABLES for r in rows(conn, f"SELECT DISTINCT runtime_id FROM {t}")})
    if run is not None:
        runs_sql, args, scope = "SELECT ?", (run,), {"scope": "run", "run_id": run}
    elif mob is not None:
        runs_sql, args, scope = "SELECT run_id FROM runs WHERE mob_id = ?", (mob,), {"scope": "mob", "mob_id": mob}
    else:
        runs_sql, args, scope = None, (), {"scope": "realm"}
    if runs_sql is None:
        ids = realm
    else:
        linked = rows(
            conn,
            f"SELECT runtime_id FROM runtime_receipts WHERE run_id IN ({runs_sql})"
            f" UNION SELECT runtime_id FROM runtime_input_states WHERE {_LAST_RUN} IN ({runs_sql})",
            *args, *args,
        )
        ids = sorted(r[0] for r in linked)
        scope["linked_by"] = "boundary receipts or input states (last_run_id) naming the run" + (
            "" if run is not None else "s of the mob"
        )
    shown = ids if limits.runtimes is None else ids[: limits.runtimes]
    scope.update(realm_total=len(realm), in_scope=len(ids), omitted=len(ids) - len(shown))
    return [_runtime(conn, dec, rid, limits, run) for rid in shown], scope


def _runtime(conn: apsw.Connection, dec: Decoder, rid: str, limits: Limits, run: str | None) -> dict[str, Any]:
    state = rows(conn, "SELECT state FROM runtime_states WHERE runtime_id = ?", rid)
    snap = rows(conn, "SELECT snapshot FROM runtime_snapshots WHERE runtime_id = ?", rid)
    receipts = scalar(conn, "SELECT count(*) FROM runtime_receipts WHERE runtime_id = ?", rid)
    # Per run: the newest runs first (by the last receipt written), each with its range.
    per_run = rows(
        conn,
        "SELECT r.run_id, runs.mob_id, count(*), min(r.sequence), max(r.sequence) FROM runtime_receipts r"
        " LEFT JOIN runs ON runs.run_id = r.run_id WHERE r.runtime_id = ?"
        + (" AND r.run_id = ?" if run is not None else "")
        + " GROUP BY r.run_id ORDER BY max(r.rowid) DESC LIMIT ?",
        *((rid, run) if run is not None else (rid,)), sql_limit(limits.runs),
    )
    runs_total = scalar(conn, "SELECT count(DISTINCT run_id) FROM runtime_receipts WHERE runtime_id = ?", rid)
    last = rows(
        conn,
        "SELECT run_id, sequence, boundary, digest, message_count FROM runtime_receipts"
        " WHERE runtime_id = ? ORDER BY rowid DESC LIMIT 1",
        rid,
    )
    out: dict[str, Any] = {
        "runtime_id": rid,
        "state": state[0][0] if state else None,
        "input_states": scalar(conn, "SELECT count(*) FROM runtime_input_states WHERE runtime_id = ?", rid),
        "input_states_by_state": counts(
            conn, f"SELECT {_CURRENT_STATE} AS s, count(*) FROM runtime_input_states WHERE runtime_id = ? GROUP BY s", rid
        ),
        "receipts": receipts,
        "receipt_runs_total": runs_total,
        "receipt_runs": [
            {
                "run_id": run_id,
                "mob_id": mob_id,
                "receipts": n,
                "first_sequence": lo,
                "last_sequence": hi,
                # (False, not a crash, if a damaged row holds a sequence that is not an int)
                "contiguous": type(hi) is int and type(lo) is int and hi - lo + 1 == n,
                "last_boundary": _boundary(conn, rid, run_id, hi),
            }
            for run_id, mob_id, n, lo, hi in reversed(per_run)
        ],
        "last_boundary": _receipt_row(last[0]) if last else None,
        "snapshot_bytes": len(snap[0][0]) if snap else None,
        "snapshot_messages": _messages(dec, snap[0][0], rid) if snap else None,
    }
    if run is not None:
        got = rows(
            conn,
            "SELECT run_id, sequence, boundary, digest, message_count, contributing FROM runtime_receipts"
            " WHERE runtime_id = ? AND run_id = ? ORDER BY sequence DESC LIMIT ?",
            rid, run, sql_limit(limits.ledger),
        )
        out["receipts_of_run"] = [
            {**_receipt_row(r[:5]),
             "contributing": dec.json(r[5], f"contributing inputs of receipt #{r[1]} (run {run}) of runtime {rid!r}")}
            for r in reversed(got)
        ]
    return out


def _receipt_row(row: tuple[Any, ...]) -> dict[str, Any]:
    run_id, seq, boundary, digest, count = row
    return {"run_id": run_id, "sequence": seq, "boundary": boundary, "digest": digest, "message_count": count}


def _boundary(conn: apsw.Connection, rid: str, run_id: str, seq: int) -> dict[str, Any]:
    got = rows(
        conn,
        "SELECT run_id, sequence, boundary, digest, message_count FROM runtime_receipts"
        " WHERE runtime_id = ? AND run_id = ? AND sequence = ?",
        rid, run_id, seq,
    )
    return _receipt_row(got[0])


def _messages(dec: Decoder, raw: Any, rid: str) -> Any:
    """How many messages the session snapshot holds, or the marker."""
    what = f"session snapshot of runtime {rid!r}"
    session = dec.json(raw, what)
    if is_marker(session):
        return session
    if type(session) is not dict or type(session.get("messages")) is not list:
        return dec.fail(what, "not a session (an object with a 'messages' list)")
    return len(session["messages"])


# -- text ----------------------------------------------------------------------------------------


def render(runtimes: list[dict[str, Any]], scope: dict[str, Any]) -> list[str]:
    if not scope["realm_total"]:
        return []
    kind = scope["scope"]
    if kind == "realm":
        head = f"runtimes: {scope['in_scope']} (realm-wide: runtime ids are not keyed by mob)"
    else:
        target = f"mob {scope['mob_id']}" if kind == "mob" else f"run {scope['run_id']}"
        head = (f"runtimes linked to {target} by {scope['linked_by']}: "
                f"{scope['in_scope']} of {scope['realm_total']} in the realm")
    if scope["omitted"]:
        head += f"; first {len(runtimes)} by id shown"
    lines = ["", head]
    for r in runtimes:
        snap = "-" if r["snapshot_bytes"] is None else size(r["snapshot_bytes"])
        msgs = r["snapshot_messages"]
        if r["snapshot_bytes"] is not None:
            snap += f", {plural(msgs, 'message')}" if not is_marker(msgs) else f" {short(msgs)}"
        inputs = f"; inputs {by_state(r['input_states_by_state'])}" if r["input_states"] else ""
        lines.append(f"  {r['runtime_id']}: state {r['state'] or '-'}, {r['input_states']} input states, "
                     f"{r['receipts']} receipts, snapshot {snap}{inputs}")
        for p in r["receipt_runs"]:
            b = p["last_boundary"]
            gaps = "contiguous" if p["contiguous"] else "NOT contiguous"
            lines.append(
                f"    run {p['run_id']} ({p['mob_id'] or 'no such run'}): receipts {p['first_sequence']}..{p['last_sequence']} "
                f"({p['receipts']}, {gaps}), last {b['boundary']} {_digest(b['digest'])} {plural(b['message_count'], 'message')}"
            )
        more = r["receipt_runs_total"] - len(r["receipt_runs"])
        if more and "receipts_of_run" not in r:
            lines.append(f"    ... receipts of {plural(more, 'more run')} (--runs)")
        for e in r.get("receipts_of_run", ()):
            lines.append(f"      #{e['sequence']:<4} {e['boundary']:<15} {_digest(e['digest'])} {plural(e['message_count'], 'message')}, "
                         f"inputs {short(e['contributing'], 80)}")
    return lines


def _digest(digest: str | None) -> str:
    return "digest -" if digest is None else f"digest {str(digest)[:DIGEST_PREFIX]}"
