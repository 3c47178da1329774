"""WAL checkpoints, taken out of the commit that happens to cross the threshold.

Theory of operation
-------------------
A WAL grows with every commit until a *checkpoint* copies its pages back into the database
file, after which the next writer starts the WAL over from its beginning. By default SQLite
checkpoints automatically, inside the ``COMMIT`` that brings the WAL to 1,000 frames: that
commit's step copies every page and fsyncs the database file before it returns. On the
64-writer append benchmark that is one group commit in ~15, and it takes 1.2-2 ms of CPU
instead of ~0.45 ms: every caller in that batch waits for a checkpoint that has nothing to
do with its write (the writer's commit p99 was 2.2-2.6 ms against a median of ~0.65 ms).

The writer connection therefore replaces the automatic checkpoint with a WAL hook
(``sqlite3_wal_hook``; installing one turns the automatic checkpoint off) that only records
how many frames the WAL holds after each commit. The committer calls
``Database.checkpoint_if_due`` on its writer thread *after* it handed the batch's answers
to the trio loop: the callers are answered first, and the checkpoint (C code, apsw releases
the GIL around it) overlaps the loop's work of serving those callers and collecting the next
batch. Whoever uses ``Database.apply`` without a committer still gets bounded WAL growth:
``apply`` runs a due checkpoint before its next transaction.

The checkpoint is ``PASSIVE``, as SQLite's automatic one: it never waits for readers, copies
what no reader still needs, and is retried after the next commit while the WAL stays over the
threshold. Its errors are counted and otherwise ignored, as SQLite ignores those of the
automatic checkpoint: the commits it follows are already durable in the WAL (an I/O error
there means a failing disk, which the next commit reports to its caller).
"""

from __future__ import annotations

import apsw

#: WAL frames after which the writer checkpoints (SQLite's default autocheckpoint).
CHECKPOINT_FRAMES = 1000
#: False: stores opened from now on keep SQLite's automatic checkpoint inside the COMMIT
#: (for A/B measurements only; docs/benchmarks.md).
ENABLED = True


class Checkpointer:
    """Tracks the WAL size of one writer connection and checkpoints it when due.

    Not thread safe by itself: the caller holds the writer connection's lock.
    """

    __slots__ = ("_conn", "frames", "threshold", "runs", "failures")

    def __init__(self, conn: apsw.Connection) -> None:
        self._conn = conn
        self.frames = 0  #: frames in the WAL after the last commit
        self.threshold = CHECKPOINT_FRAMES
        self.runs = 0  #: checkpoints that completed
        self.failures = 0  #: checkpoints that raised (ignored, see the module docstring)
        conn.set_wal_hook(self._on_commit)

    def _on_commit(self, _conn: apsw.Connection, _db: str, frames: int) -> int:
        # Called by SQLite inside every COMMIT of the writer (with the GIL): keep it tiny.
        self.frames = frames
        return apsw.SQLITE_OK

    @property
    def due(self) -> bool:
        return self.frames >= self.threshold

    def run(self) -> None:
        """Checkpoint now (``PASSIVE``); count a failure instead of raising it."""
        self.frames = 0  # the next commit's hook reports the WAL's real size again
        try:
            self._conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
        except apsw.Error:
            self.failures += 1
        else:
            self.runs += 1
