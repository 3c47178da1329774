"""A read-only look into a store file (``mobstore inspect``).

The file is opened with ``SQLITE_OPEN_READONLY`` and without the owner lock, so it can be
inspected while a store owns it; nothing here can write the database or its WAL (SQLite
refuses it on such a connection), and the marks are checked first, so a foreign or newer
file is refused. A closed store (no WAL beside it) is opened ``immutable``: no -wal or -shm
file appears. With a WAL (a store owns the file, or crashed), SQLite's reader uses the
``-shm`` wal-index beside it, and creates or rebuilds it if it is missing or stale (a crashed
store): an index SQLite derives from the WAL, never data, but a file that may change.

Everything is read in one read transaction, so the sections agree with each other. Lists
are bounded by :class:`~._inspect_decode.Limits` (counts always cover everything), so a
store with thousands of runs, frames or runtimes gives a readable report; ``run=`` gives
one run in full. Stored values are decoded one by one: one that cannot be decoded is shown
as a marker and listed under ``undecodable``, and the rest of the report is unaffected.
Runs: ``_inspect_runs``; runtimes: ``_inspect_runtimes``.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

import apsw
import attrs

from . import _events, _inspect_runtimes, _schema
from ._errors import NotFound, StoreIOError
from ._inspect_decode import Decoder, Limits, by_state, clip, is_marker, rows, scalar, short, size
from ._inspect_runs import find_run, mob_runs, render_run, run_detail

__all__ = ["Limits", "inspect_store", "render"]


def inspect_store(
    path: str | os.PathLike[str],
    *,
    tail: int = 5,
    mob: str | None = None,
    run: str | None = None,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """Everything worth seeing in the store at ``path``, as plain JSON-able data.

    Args:
        tail: how many of the newest events to show per mob.
        mob: show only this mob (and the runtimes linked to its runs; the realm-wide
            profiles and config still).
        run: show this one run in full instead (its frames, loops, ledgers, outputs and
            linked runtimes), under the key ``run``.
        limits: how many runs, frames, ledger entries and runtimes to list; by default
            :meth:`Limits.for_mode` (a few of each, or all of one ``run``).

    Raises:
        StoreIOError: the file does not exist or cannot be opened.
        IncompatibleStore: not a mobstore file, or a newer schema.
        NotFound: ``run`` is not a run of the store (or not of ``mob``).
    """
    if limits is None:
        limits = Limits.for_mode(run is not None)
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
            return _collect(conn, path, version, tail, mob, run, limits)
        finally:
            conn.execute("COMMIT")
    except apsw.Error as exc:
        raise StoreIOError(f"cannot read {path!r}: {exc}") from exc
    except UnicodeDecodeError as exc:
        # A TEXT value that is not UTF-8 cannot even be fetched: the file is damaged.
        raise StoreIOError(
            f"cannot read {path!r}: it holds text that is not UTF-8 ({exc.reason}); the file is "
            "damaged (check it with: sqlite3 FILE 'PRAGMA integrity_check')"
        ) from exc
    finally:
        conn.close()


def _collect(
    conn: apsw.Connection, path: str, version: int, tail: int, only: str | None, run: str | None, limits: Limits
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": path,
        "schema_version": version,
        "page_size": rows(conn, "PRAGMA page_size")[0][0],
        "size_bytes": os.path.getsize(path),
        "limits": {"tail": tail, **attrs.asdict(limits)},
    }
    dec = Decoder()
    if run is not None:
        row = find_run(conn, run, only) if version else None
        if row is None:
            raise NotFound("run", run, f"no such run in {path}" + ("" if only is None else f" for mob {only!r}"))
        out["run"] = run_detail(conn, dec, row, limits)
        out["runtimes"], out["runtimes_scope"] = _inspect_runtimes.collect(conn, dec, limits, run=run)
        out["undecodable"] = dec.errors
        return out
    if version == 0:
        return {**out, "mobs": [], "profiles": [], "profiles_deleted": 0, "config": None, "runtimes": [],
                "runtimes_scope": {"scope": "realm", "realm_total": 0, "in_scope": 0, "omitted": 0}, "undecodable": []}
    mob_ids = sorted(
        {r[0] for r in rows(conn, "SELECT mob_id FROM mob_heads")}
        | {r[0] for r in rows(conn, "SELECT mob_id FROM runs")}
        | {r[0] for r in rows(conn, "SELECT mob_id FROM mob_specs")}
        | {r[0] for r in rows(conn, "SELECT mob_id FROM mob_labels")}
        | {r[0] for r in rows(conn, "SELECT mob_id FROM mob_cursors")}
    )
    if only is not None:
        mob_ids = [m for m in mob_ids if m == only]
    out["mobs"] = [_mob(conn, dec, m, tail, limits) for m in mob_ids]
    out["profiles"] = [
        _profile(dec, *r)
        for r in rows(
            conn, "SELECT name, profile, revision, created_us, updated_us FROM realm_profiles WHERE profile IS NOT NULL ORDER BY name"
        )
    ]
    out["profiles_deleted"] = scalar(conn, "SELECT count(*) FROM realm_profiles WHERE profile IS NULL")
    cfg = rows(conn, "SELECT config, generation FROM realm_config WHERE id = 1")
    out["config"] = (
        {"generation": cfg[0][1], "config": dec.json(cfg[0][0], "realm config")} if cfg else {"generation": 0, "config": None}
    )
    out["runtimes"], out["runtimes_scope"] = _inspect_runtimes.collect(conn, dec, limits, mob=only)
    out["undecodable"] = dec.errors
    return out


def _profile(dec: Decoder, name: str, raw: Any, revision: int, created: Any, updated: Any) -> dict[str, Any]:
    what = f"profile {name!r}"
    summary = _json_summary(dec, raw, what)
    value = summary.pop("value")
    return {
        "name": name,
        "revision": revision,
        "model": value.get("model") if isinstance(value, dict) and not is_marker(value) else None,
        **summary,
        "created_at": dec.time(created, f"created_us of {what}"),
        "updated_at": dec.time(updated, f"updated_us of {what}"),
    }


def _json_summary(dec: Decoder, raw: Any, what: str) -> dict[str, Any]:
    """Size and top-level keys of stored JSON (``value``: the decoded JSON, for the caller)."""
    value = dec.json(raw, what)
    n = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw) if isinstance(raw, bytes) else None
    keys: Any = list(value) if isinstance(value, dict) and not is_marker(value) else None
    return {"bytes": n, "keys": value if is_marker(value) else keys, "value": value}


def _consumer(dec: Decoder, mob: str, name: str, cursor: Any, head: Any) -> dict[str, Any]:
    """A consumer's cursor and lag; ``stale`` if its cursor is past the log's head (the
    consumer will refuse to start: StaleCursor), so it never shows as caught up."""
    if type(cursor) is not int or type(head) is not int:
        return {"name": name, "cursor": dec.fail(f"cursor {name!r} of {mob}", f"stored as {cursor!r}, not an int"),
                "lag": None, "stale": False}
    stale = cursor > head
    return {"name": name, "cursor": cursor, "lag": None if stale else head - cursor, "stale": stale}


def _label_key(run: str | None) -> str:
    # The mob scope is "(mob)"; run ids of labels are free text, so every run id that starts
    # with "(" is wrapped as "(run ...)": no run id can then be shown as "(mob)" or as
    # another run's wrapped key.
    if not run:  # stored as '' for the mob scope
        return "(mob)"
    return f"(run {run})" if run.startswith("(") else run


def _mob(conn: apsw.Connection, dec: Decoder, mob: str, tail: int, limits: Limits) -> dict[str, Any]:
    head = _events.last_cursor(conn, mob)
    events = rows(
        conn, "SELECT cursor, ts_us, kind, payload FROM mob_events WHERE mob_id = ? ORDER BY cursor DESC LIMIT ?", mob, tail
    )
    spec_rows = rows(conn, "SELECT revision, definition FROM mob_specs WHERE mob_id = ?", mob)
    if not spec_rows:
        spec = None
    elif spec_rows[0][1] is None:
        spec = {"revision": spec_rows[0][0], "deleted": True, "bytes": None, "keys": None}
    else:
        summary = _json_summary(dec, spec_rows[0][1], f"spec of {mob}")
        summary.pop("value")
        spec = {"revision": spec_rows[0][0], "deleted": False, **summary}
    return {
        "mob_id": mob,
        "last_cursor": head,
        "retained_events": scalar(conn, "SELECT count(*) FROM mob_events WHERE mob_id = ?", mob),
        "tail": [
            {"cursor": c, "timestamp": dec.time(ts, f"ts_us of event {mob}#{c}"), "kind": k,
             "payload": dec.json(p, f"event {mob}#{c}")}
            for c, ts, k, p in reversed(events)
        ],
        "consumers": [
            _consumer(dec, mob, n, cur, head)
            for n, cur in rows(conn, "SELECT name, cursor FROM mob_cursors WHERE mob_id = ? ORDER BY name", mob)
        ],
        "labels": {
            _label_key(run): dec.json(text, f"labels of {mob}" + (f" run {run}" if run else ""))
            for run, text in rows(conn, "SELECT run_id, labels FROM mob_labels WHERE mob_id = ? ORDER BY run_id", mob)
        },
        "spec_revision": spec["revision"] if spec and not spec["deleted"] else None,
        "spec": spec,
        **mob_runs(conn, dec, mob, limits),
    }


# -- text ----------------------------------------------------------------------------------------


def render(info: dict[str, Any]) -> str:
    """A human-readable report of :func:`inspect_store`'s result."""
    lines = [
        f"store {info['path']}  schema v{info['schema_version']}  page {info['page_size']} B  "
        f"{info['size_bytes']:,} bytes"
    ]
    if "run" in info:
        r = info["run"]
        lines.append("")
        heading = (f"run {r['run_id']} of mob {r['mob_id']}, flow {r['flow_id']}: {r['status']}, created "
                   f"{_text(r['created_at'])}" + (f", completed {_text(r['completed_at'])}" if r["completed_at"] else "")
                   + f", schema v{r['schema_version']}")
        lines += render_run(r, "", heading=heading)
        lines += _inspect_runtimes.render(info["runtimes"], info["runtimes_scope"])
        return "\n".join(lines + _undecodable(info))
    for m in info["mobs"]:
        lines.append("")
        lines += _render_mob(m)
    lines.append("")
    if info["profiles"]:
        lines.append("realm profiles:" + (f" ({info['profiles_deleted']} deleted)" if info["profiles_deleted"] else ""))
        for p in info["profiles"]:
            lines.append(f"  {p['name']}: model {p['model']}, revision {p['revision']}, {_json_text(p)}, "
                         f"updated {_text(p['updated_at'])}")
    else:
        lines.append("realm profiles: none" + (f" ({info['profiles_deleted']} deleted)" if info["profiles_deleted"] else ""))
    cfg = info["config"]
    if cfg is not None:
        lines.append(f"realm config: generation {cfg['generation']}  "
                     + (short(cfg["config"]) if cfg["generation"] else "(never set)"))
    lines += _inspect_runtimes.render(info["runtimes"], info["runtimes_scope"])
    return "\n".join(lines + _undecodable(info))


def _render_mob(m: dict[str, Any]) -> list[str]:
    lines = [
        f"mob {m['mob_id']}: last cursor {m['last_cursor']}, {m['retained_events']} events retained, "
        f"spec revision {m['spec_revision'] if m['spec_revision'] is not None else '-'}, {m['runs_total']} runs"
    ]
    spec = m["spec"]
    if spec is not None:
        lines.append(f"  spec: deleted (revisions continue after {spec['revision']})" if spec["deleted"]
                     else f"  spec: {_json_text(spec)}")
    for ev in m["tail"]:
        lines.append(f"  #{ev['cursor']:<6} {_text(ev['timestamp'])}  {ev['kind']}  {short(ev['payload'])}")
    for c in m["consumers"]:
        if c.get("stale"):
            lines.append(f"  consumer {c['name']}: cursor {c['cursor']}, STALE: past the last cursor ({m['last_cursor']})")
        else:
            lines.append(f"  consumer {c['name']}: cursor {c['cursor']}, lag {c['lag']}")
    for scope, labels in m["labels"].items():
        lines.append(f"  labels {scope}: {short(labels)}")
    if m["runs_total"]:
        lines.append(f"  runs: {m['runs_total']} ({by_state(m['runs_by_status'])})"
                     + (f"; newest {len(m['runs'])} shown (--runs)" if m["runs_omitted"] else ""))
    for r in m["runs"]:
        lines += render_run(r, "  ")
    return lines


def _json_text(s: dict[str, Any]) -> str:
    keys = s["keys"]
    if is_marker(keys):
        return short(keys)
    what = "not an object" if keys is None else "keys " + clip(", ".join(keys), 80) if keys else "no keys"
    return f"{size(s['bytes']) if s['bytes'] is not None else '?'}, {what}"


def _text(value: Any) -> str:
    return short(value) if isinstance(value, dict) else str(value)


def _undecodable(info: dict[str, Any]) -> list[str]:
    errors = info["undecodable"]
    if not errors:
        return []
    lines = ["", f"undecodable values: {len(errors)}"]
    lines += [f"  {clip(e, 200)}" for e in errors[:20]]
    if len(errors) > 20:
        lines.append(f"  ... {len(errors) - 20} more (--json lists them all)")
    return lines
