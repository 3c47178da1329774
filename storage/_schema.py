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
-- The event log. Cursors are per mob; timestamps are UTC microseconds in a column, so prune
-- is a range delete over the mob's rows in SQL instead of a JSON decode of every event
-- (SEMANTICS.md 2.6). There is deliberately no (mob_id, ts_us) index: every append would
-- then dirty one more page per mob per commit, and measured on the target machine that cost
-- 15-25% of durable append throughput; prune, a maintenance call, scans one mob's rows.
CREATE TABLE mob_events (
    mob_id  TEXT    NOT NULL,
    cursor  INTEGER NOT NULL,
    ts_us   INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    payload TEXT    NOT NULL,
    PRIMARY KEY (mob_id, cursor)
) WITHOUT ROWID;

-- The per-mob cursor high-water mark, written in the same transaction as every append. It
-- never decreases (not on clear, prune or restart), so cursors are never reused.
CREATE TABLE mob_heads (
    mob_id      TEXT    PRIMARY KEY,
    next_cursor INTEGER NOT NULL CHECK (next_cursor >= 1)
) WITHOUT ROWID;
"""

# Flow runs (storage/_runs.py holds the SQL that uses these tables).
_V1_RUNS = """
-- Flow runs (SEMANTICS.md 3.5). One row per run; run ids are unique across the store.
-- Kernel states (flow_state, frame and loop states) are canonical JSON text, so a CAS is a
-- byte comparison in SQL. Times are UTC microseconds. Children are keyed by run_id; runs
-- are never deleted, so there are no foreign keys to pay for on the hot path.
CREATE TABLE runs (
    run_id            TEXT    PRIMARY KEY,
    mob_id            TEXT    NOT NULL,
    flow_id           TEXT    NOT NULL,
    status            TEXT    NOT NULL
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'canceled')),
    flow_state        TEXT    NOT NULL,
    activation_params TEXT    NOT NULL,
    created_us        INTEGER NOT NULL,
    completed_us      INTEGER,
    schema_version    INTEGER NOT NULL
) WITHOUT ROWID;
-- list_runs(mob) and list_runs(mob, flow), both ordered by (created_at, run_id).
CREATE INDEX runs_by_mob ON runs (mob_id, created_us);
CREATE INDEX runs_by_flow ON runs (mob_id, flow_id, created_us);

CREATE TABLE run_frames (
    run_id   TEXT NOT NULL,
    frame_id TEXT NOT NULL,
    state    TEXT NOT NULL,
    PRIMARY KEY (run_id, frame_id)
) WITHOUT ROWID;

CREATE TABLE run_loops (
    run_id           TEXT NOT NULL,
    loop_instance_id TEXT NOT NULL,
    state            TEXT NOT NULL,
    PRIMARY KEY (run_id, loop_instance_id)
) WITHOUT ROWID;

-- Append-only ledgers, ordered by a per-run seq. output NULL: no output recorded.
CREATE TABLE run_step_ledger (
    run_id     TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    step_id    TEXT    NOT NULL,
    meerkat_id TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    output     TEXT,
    ts_us      INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
-- The idempotency key of append_step_entry_if_absent (not unique: append_step_entry may
-- repeat it), and the lookup of put_step_output.
CREATE INDEX run_step_ledger_by_key ON run_step_ledger (run_id, step_id, meerkat_id, status);

CREATE TABLE run_failure_ledger (
    run_id  TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    step_id TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    ts_us   INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE run_loop_ledger (
    run_id           TEXT    NOT NULL,
    seq              INTEGER NOT NULL,
    loop_instance_id TEXT    NOT NULL,
    iteration        INTEGER NOT NULL,
    frame_id         TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq),
    UNIQUE (run_id, loop_instance_id, iteration, frame_id)
) WITHOUT ROWID;

-- Step outputs: loop_id '' and iteration 0 hold root_step_outputs (not NULL: SQLite keys
-- treat NULLs as distinct). ord keeps insertion order within one (loop_id, iteration);
-- re-recording a step keeps its ord.
CREATE TABLE run_outputs (
    run_id    TEXT    NOT NULL,
    loop_id   TEXT    NOT NULL,
    iteration INTEGER NOT NULL,
    step_id   TEXT    NOT NULL,
    ord       INTEGER NOT NULL,
    output    TEXT    NOT NULL,
    PRIMARY KEY (run_id, loop_id, iteration, step_id)
) WITHOUT ROWID;
-- The length of each loop's iteration list (iterations padded with empty maps have no
-- output rows, and a run may be created with empty iterations).
CREATE TABLE run_loop_outputs (
    run_id     TEXT    NOT NULL,
    loop_id    TEXT    NOT NULL,
    iterations INTEGER NOT NULL CHECK (iterations >= 0),
    PRIMARY KEY (run_id, loop_id)
) WITHOUT ROWID;
"""

# Mob specs and realm profiles (storage/_specs.py, storage/_profiles.py).
_V1_SPECS_PROFILES = """
-- One row per mob that ever had a spec. definition NULL is a tombstone: the spec was
-- deleted and revision is then the high-water mark the next put continues from, so a
-- revision is never reused (API.md decision 6; SEMANTICS.md 4.3).
CREATE TABLE mob_specs (
    mob_id     TEXT    PRIMARY KEY,
    revision   INTEGER NOT NULL CHECK (revision >= 1),
    definition TEXT
) WITHOUT ROWID;

-- Realm profiles; profile NULL is a tombstone, as for mob_specs. Times are UTC
-- microseconds (NULL only in a tombstone).
CREATE TABLE realm_profiles (
    name       TEXT    PRIMARY KEY,
    revision   INTEGER NOT NULL CHECK (revision >= 1),
    profile    TEXT,
    created_us INTEGER,
    updated_us INTEGER,
    CHECK (profile IS NULL OR (created_us IS NOT NULL AND updated_us IS NOT NULL))
) WITHOUT ROWID;
"""

# Runtime store, realm config, labels and subscription cursors (storage/_runtime_store.py,
# storage/_config.py, storage/_labels.py, storage/_cursors.py).
_V1_RUNTIME_CONFIG_METADATA = """
-- Runtime store (SEMANTICS.md 6.4), keyed by runtime id. Ids are canonical lowercase UUID
-- text; input states are upstream's serde JSON. A receipt key is never overwritten (the
-- command refuses a duplicate with CasConflict before writing anything).
-- Input states and receipts are rowid tables with a UNIQUE key index, not WITHOUT ROWID:
-- their rows (200-300 bytes) are large for 1 KiB pages, and a boundary commit inserts
-- them at one point per runtime and run; appended to a rowid table they fill pages densely
-- and only the small index entries split. Measured on the 64-writer boundary benchmark:
-- -40% writer time and WAL bytes per commit.
CREATE TABLE runtime_input_states (
    runtime_id TEXT NOT NULL,
    input_id   TEXT NOT NULL,
    state      TEXT NOT NULL,
    UNIQUE (runtime_id, input_id)
);

-- Receipts as columns (about half the bytes of the JSON form: every boundary commit inserts
-- one). contributing: JSON array of input ids, in order.
CREATE TABLE runtime_receipts (
    runtime_id    TEXT    NOT NULL,
    run_id        TEXT    NOT NULL,
    sequence      INTEGER NOT NULL CHECK (sequence >= 0),
    boundary      TEXT    NOT NULL,
    contributing  TEXT    NOT NULL,
    digest        TEXT,
    message_count INTEGER NOT NULL,
    UNIQUE (runtime_id, run_id, sequence)
);

-- Session snapshots can be large: a rowid table keeps them out of the key B-tree.
CREATE TABLE runtime_snapshots (
    runtime_id TEXT PRIMARY KEY,
    snapshot   BLOB NOT NULL
);

CREATE TABLE runtime_states (
    runtime_id TEXT PRIMARY KEY,
    state      TEXT NOT NULL
) WITHOUT ROWID;

-- The realm config: one row holding the config AND its generation, so one statement
-- changes both (SEMANTICS.md 7.3 [PROP]). No row: the initial config, generation 0.
CREATE TABLE realm_config (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    config     TEXT    NOT NULL,
    generation INTEGER NOT NULL CHECK (generation >= 1)
);

-- Mob- and run-scoped labels (SEMANTICS.md 8.1); run_id '' is the mob scope (not NULL:
-- NULLs in a key are distinct from each other).
CREATE TABLE mob_labels (
    mob_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    labels TEXT NOT NULL,
    PRIMARY KEY (mob_id, run_id)
) WITHOUT ROWID;

-- Named subscription cursors per mob (SEMANTICS.md 8.2).
CREATE TABLE mob_cursors (
    mob_id TEXT    NOT NULL,
    name   TEXT    NOT NULL,
    cursor INTEGER NOT NULL,
    PRIMARY KEY (mob_id, name)
) WITHOUT ROWID;
"""

#: The ladder: ``MIGRATIONS[i]`` takes a file from ``user_version`` i to i + 1.
MIGRATIONS: tuple[str, ...] = (_V1_EVENTS + _V1_RUNS + _V1_SPECS_PROFILES + _V1_RUNTIME_CONFIG_METADATA,)
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
    try:
        app, ver = read_marks(conn)
    except apsw.NotADBError:
        raise IncompatibleStore(path, "it is not a SQLite database (a foreign or damaged file)") from None
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
