"""A read-only look into a store file (``mobstore inspect``).

The file is opened with ``SQLITE_OPEN_READONLY`` and without the owner lock, so it can be
inspected while a store owns it; nothing here can write (SQLite refuses it on such a
connection; a closed store is opened ``immutable`` so not even -wal/-shm files appear), and
the marks are checked first, so a foreign or newer file is refused.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

import apsw

from . import _events, _schema
from ._codec import decode_json, micros_to_time
from ._errors import StoreIOError


def _iso(us: int | None) -> str | None:
    return None if us is None else micros_to_time(us).isoformat()


def _rows(conn: apsw.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return conn.execute(sql, args).fetchall()


def inspect_store(path: str | os.PathLike[str], *, tail: int = 5, mob: str | None = None) -> dict[str, Any]:
    """Everything worth seeing in the store at ``path``, as plain JSON-able data.

    Args:
        tail: how many of the newest events to show per mob.
        mob: show only this mob (and still the realm-wide sections).

    Raises:
        StoreIOError: the file does not exist or cannot be opened.
        IncompatibleStore: not a mobstore file, or a newer schema.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise StoreIOError(f"no store file at {path!r}")
    # With no WAL beside it (the store is closed and checkpointed) the file is opened
    # "immutable": SQLite then creates no -wal/-shm files either. With a WAL (a store owns
    # it, or crashed), a plain read-only connection reads the WAL too.
    uri = "file:" + urllib.parse.quote(path) + ("?mode=ro" if os.path.exists(path + "-wal") else "?mode=ro&immutable=1")
    try:
        conn = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    except apsw.Error as exc:
        raise StoreIOError(f"cannot open {path!r} read-only: {exc}") from exc
    try:
        version = _schema.check_file(conn, path)
        conn.execute("BEGIN")
        try:
            return _collect(conn, path, version, tail, mob)
        finally:
            conn.execute("COMMIT")
    except apsw.Error as exc:
        raise StoreIOError(f"cannot read {path!r}: {exc}") from exc
    finally:
        conn.close()


def _collect(conn: apsw.Connection, path: str, version: int, tail: int, only: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": path,
        "schema_version": version,
        "page_size": _rows(conn, "PRAGMA page_size")[0][0],
        "size_bytes": os.path.getsize(path),
    }
    if version == 0:
        return {**out, "mobs": [], "profiles": [], "config": None, "runtimes": []}
    mob_ids = sorted(
        {r[0] for r in _rows(conn, "SELECT mob_id FROM mob_heads")}
        | {r[0] for r in _rows(conn, "SELECT mob_id FROM runs")}
        | {r[0] for r in _rows(conn, "SELECT mob_id FROM mob_specs")}
        | {r[0] for r in _rows(conn, "SELECT mob_id FROM mob_labels")}
    )
    if only is not None:
        mob_ids = [m for m in mob_ids if m == only]
    out["mobs"] = [_mob(conn, m, tail) for m in mob_ids]
    out["profiles"] = [
        {"name": n, "revision": rev, "model": (decode_json(p, f"profile {n!r}") or {}).get("model"), "updated_at": _iso(u)}
        for n, p, rev, u in _rows(
            conn, "SELECT name, profile, revision, updated_us FROM realm_profiles WHERE profile IS NOT NULL ORDER BY name"
        )
    ]
    cfg = _rows(conn, "SELECT config, generation FROM realm_config WHERE id = 1")
    out["config"] = {"generation": cfg[0][1], "config": decode_json(cfg[0][0], "realm config")} if cfg else {"generation": 0, "config": None}
    runtimes = sorted(
        {r[0] for r in _rows(conn, "SELECT runtime_id FROM runtime_states")}
        | {r[0] for r in _rows(conn, "SELECT runtime_id FROM runtime_input_states")}
        | {r[0] for r in _rows(conn, "SELECT runtime_id FROM runtime_snapshots")}
    )
    out["runtimes"] = [_runtime(conn, r) for r in runtimes]
    return out


def _mob(conn: apsw.Connection, mob: str, tail: int) -> dict[str, Any]:
    head = _events.last_cursor(conn, mob)
    retained = _rows(conn, "SELECT count(*) FROM mob_events WHERE mob_id = ?", mob)[0][0]
    events = _rows(
        conn, "SELECT cursor, ts_us, kind, payload FROM mob_events WHERE mob_id = ? ORDER BY cursor DESC LIMIT ?", mob, tail
    )
    spec = _rows(conn, "SELECT revision, definition IS NOT NULL FROM mob_specs WHERE mob_id = ?", mob)
    runs = [
        {"run_id": rid, "flow_id": flow, "status": status, "created_at": _iso(c), "completed_at": _iso(done)}
        for rid, flow, status, c, done in _rows(
            conn,
            "SELECT run_id, flow_id, status, created_us, completed_us FROM runs WHERE mob_id = ? ORDER BY created_us, run_id",
            mob,
        )
    ]
    return {
        "mob_id": mob,
        "last_cursor": head,
        "retained_events": retained,
        "tail": [
            {"cursor": c, "timestamp": _iso(ts), "kind": k, "payload": decode_json(p, f"event {mob}#{c}")}
            for c, ts, k, p in reversed(events)
        ],
        "consumers": [
            {"name": n, "cursor": cur, "lag": max(head - cur, 0)}
            for n, cur in _rows(conn, "SELECT name, cursor FROM mob_cursors WHERE mob_id = ? ORDER BY name", mob)
        ],
        "labels": {
            (run or "(mob)"): decode_json(text, f"labels of {mob}")
            for run, text in _rows(conn, "SELECT run_id, labels FROM mob_labels WHERE mob_id = ? ORDER BY run_id", mob)
        },
        "spec_revision": spec[0][0] if spec and spec[0][1] else None,
        "runs": runs,
    }


def _runtime(conn: apsw.Connection, rid: str) -> dict[str, Any]:
    state = _rows(conn, "SELECT state FROM runtime_states WHERE runtime_id = ?", rid)
    snap = _rows(conn, "SELECT length(snapshot) FROM runtime_snapshots WHERE runtime_id = ?", rid)
    return {
        "runtime_id": rid,
        "state": state[0][0] if state else None,
        "input_states": _rows(conn, "SELECT count(*) FROM runtime_input_states WHERE runtime_id = ?", rid)[0][0],
        "receipts": _rows(conn, "SELECT count(*) FROM runtime_receipts WHERE runtime_id = ?", rid)[0][0],
        "snapshot_bytes": snap[0][0] if snap else None,
    }


def render(info: dict[str, Any]) -> str:
    """A human-readable report of :func:`inspect_store`'s result."""
    lines = [
        f"store {info['path']}  schema v{info['schema_version']}  page {info['page_size']} B  "
        f"{info['size_bytes']:,} bytes"
    ]
    for m in info["mobs"]:
        lines.append("")
        lines.append(
            f"mob {m['mob_id']}: last cursor {m['last_cursor']}, {m['retained_events']} events retained, "
            f"spec revision {m['spec_revision'] if m['spec_revision'] is not None else '-'}, {len(m['runs'])} runs"
        )
        for ev in m["tail"]:
            lines.append(f"  #{ev['cursor']:<6} {ev['timestamp']}  {ev['kind']}  {_short(ev['payload'])}")
        for c in m["consumers"]:
            lines.append(f"  consumer {c['name']}: cursor {c['cursor']}, lag {c['lag']}")
        for scope, labels in m["labels"].items():
            lines.append(f"  labels {scope}: {_short(labels)}")
        for r in m["runs"]:
            lines.append(f"  run {r['run_id']} flow {r['flow_id']}: {r['status']}")
    if info["profiles"]:
        lines.append("")
        lines.append("realm profiles:")
        for p in info["profiles"]:
            lines.append(f"  {p['name']}: model {p['model']}, revision {p['revision']}, updated {p['updated_at']}")
    cfg = info["config"]
    if cfg is not None:
        lines.append("")
        lines.append(f"realm config: generation {cfg['generation']}  {_short(cfg['config'])}")
    if info["runtimes"]:
        lines.append("")
        lines.append("runtimes:")
        for r in info["runtimes"]:
            lines.append(
                f"  {r['runtime_id']}: state {r['state'] or '-'}, {r['input_states']} input states, "
                f"{r['receipts']} receipts, snapshot {r['snapshot_bytes'] or 0} B"
            )
    return "\n".join(lines)


def _short(value: Any, limit: int = 100) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."
