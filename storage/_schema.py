"""The schema and its migration ladder.

A store file is marked with ``PRAGMA application_id`` (:data:`APPLICATION_ID`) and versioned
with ``PRAGMA user_version``. :func:`check_file` reads both *before anything writes to the
file*, so a foreign file or one written by a newer mobstore is refused untouched.
:func:`migrate` applies every missing step of :data:`MIGRATIONS` in one ``BEGIN IMMEDIATE``
transaction: a crash during a migration leaves the file at its old version.

To change the schema, append a step; never edit a step that has shipped.
"""

from __future__ import annotations

import apsw

from ._errors import IncompatibleStore

#: 'MOBS' in ASCII: marks a SQLite file as a mobstore file.
APPLICATION_ID = 0x4D4F4253

_V1_EVENTS = """
-- The event log. Cursors are per mob; timestamps are UTC microseconds so prune is an
-- indexed range delete instead of a JSON scan (SEMANTICS.md 2.6).
CREATE TABLE mob_events (
    mob_id  TEXT    NOT NULL,
    cursor  INTEGER NOT NULL,
    ts_us   INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    payload TEXT    NOT NULL,
    PRIMARY KEY (mob_id, cursor)
) WITHOUT ROWID;
CREATE INDEX mob_events_by_time ON mob_events (mob_id, ts_us);

-- The per-mob cursor high-water mark, written in the same transaction as every append. It
-- never decreases (not on clear, prune or restart), so cursors are never reused.
CREATE TABLE mob_heads (
    mob_id      TEXT    PRIMARY KEY,
    next_cursor INTEGER NOT NULL CHECK (next_cursor >= 1)
) WITHOUT ROWID;
"""

# Flow runs (storage/_runs.py holds the SQL that uses these tables).
_V1_RUNS = ""

# Mob specs and realm profiles (storage/_specs.py, storage/_profiles.py).
_V1_SPECS_PROFILES = ""

#: The ladder: ``MIGRATIONS[i]`` takes a file from ``user_version`` i to i + 1.
MIGRATIONS: tuple[str, ...] = (_V1_EVENTS + _V1_RUNS + _V1_SPECS_PROFILES,)
LATEST_VERSION = len(MIGRATIONS)


def read_marks(conn: apsw.Connection) -> tuple[int, int]:
    """Return ``(application_id, user_version)``; reads only."""
    app = conn.execute("PRAGMA application_id").fetchall()[0][0]
    ver = conn.execute("PRAGMA user_version").fetchall()[0][0]
    return app, ver


def check_file(conn: apsw.Connection, path: str) -> int:
    """Refuse foreign or newer files before anything writes to them.

    Returns the file's schema version (0 for a new, empty file).

    Raises:
        IncompatibleStore: the file belongs to another application, or its schema is newer
            than this mobstore understands.
    """
    app, ver = read_marks(conn)
    if app == 0 and ver == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()[0][0]
        if tables:
            raise IncompatibleStore(path, f"it is a SQLite database of another application ({tables} objects, no mobstore mark)")
        return 0
    if app != APPLICATION_ID:
        raise IncompatibleStore(path, f"its application_id is {app:#x}, not mobstore's {APPLICATION_ID:#x}")
    if ver > LATEST_VERSION:
        raise IncompatibleStore(
            path,
            f"it was written by a newer mobstore (schema version {ver}; this one supports up to "
            f"{LATEST_VERSION}); upgrade mobstore to open it",
        )
    return ver


def migrate(conn: apsw.Connection, current: int) -> int:
    """Bring the schema from ``current`` to :data:`LATEST_VERSION` in one transaction."""
    if current == LATEST_VERSION:
        return current
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read inside the write lock: another opener may have migrated meanwhile.
        _, current = read_marks(conn)
        for step in MIGRATIONS[current:]:
            conn.execute(step)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if not conn.getautocommit():
            conn.execute("ROLLBACK")
        raise
    return LATEST_VERSION
