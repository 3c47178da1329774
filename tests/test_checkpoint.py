"""WAL checkpoints after the answers (storage/_checkpoint.py): a file store's writer
checkpoints its WAL once the batch that crossed the threshold was answered, not inside that
batch's COMMIT. These tests check that the WAL stays bounded (through the store and through
``Database.apply`` alone), that callers are answered while a checkpoint is still running, that
a failing checkpoint is counted and loses nothing, and the counters of ``store.statistics()``.
"""

from __future__ import annotations

import os
import threading

import apsw
import pytest
import trio

from mobstore.actors import NewMobEvent, open_store
from mobstore.actors.testing import Fault
from mobstore.storage import AppendEvents, Database, _checkpoint

FRAME = 1024 + 24  # a WAL frame of the default 1 KiB page


class Unit:
    def __init__(self, *commands):
        self.commands = commands
        self.results = None
        self.error = None


def _wal_size(path) -> int:
    return os.path.getsize(f"{path}-wal")


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(_checkpoint, "CHECKPOINT_FRAMES", 40)
    return 40


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_apply_alone_keeps_the_wal_bounded(tmp_path, small_threshold, durability):
    """Without a committer, ``apply`` runs the due checkpoint before its next transaction:
    the WAL restarts instead of growing with every commit."""
    path = tmp_path / "s.db"
    db = Database.open(path, durability=durability)
    try:
        biggest = 0
        for i in range(300):
            u = Unit(AppendEvents.of("m", [NewMobEvent("k", {"i": i, "pad": "x" * 200})]))
            db.apply([u])
            assert u.error is None, u.error
            biggest = max(biggest, _wal_size(path))
        completed, failed = db.checkpoints
        assert completed >= 5 and failed == 0
        # At most the threshold plus one commit's frames, plus the WAL header.
        assert biggest <= (small_threshold + 10) * FRAME + 32, biggest
    finally:
        db.close()


async def test_callers_are_answered_before_the_checkpoint_runs(store_path, small_threshold, monkeypatch):
    """The commit that brings the WAL over the threshold answers its callers first; the
    checkpoint runs afterwards on the writer thread. Here it blocks until released: if it
    ran before the answers, the append that triggered it would never return."""
    started, release = threading.Event(), threading.Event()
    run = _checkpoint.Checkpointer.run

    def blocking_run(self):
        started.set()
        assert release.wait(30)
        run(self)

    monkeypatch.setattr(_checkpoint.Checkpointer, "run", blocking_run)
    async with open_store(store_path) as store:
        log = store.mob("m").events
        checkpointer = store._db._checkpointer
        with trio.fail_after(30):
            n = 0
            while not checkpointer.due:  # set inside the COMMIT, before the answer
                await log.append(NewMobEvent("k", {"i": n, "pad": "x" * 500}))
                n += 1
            # That append has returned; the checkpoint it made due starts only now, on the
            # writer thread, and stays parked there until released.
            assert await trio.to_thread.run_sync(started.wait, 30)
            assert store.statistics().checkpoints == 0
            release.set()
            await log.append(NewMobEvent("k", {"i": -1}))
        stats = store.statistics()
        assert stats.checkpoints >= 1 and stats.checkpoint_failures == 0
        assert len(await log.replay_all()) == n + 1


async def test_a_failing_checkpoint_is_counted_and_loses_nothing(store_path, fault_vfs, small_threshold):
    """A commit syncs only the WAL; a checkpoint also syncs the database file. With every
    sync of the database file failing, commits still succeed, checkpoints fail (counted,
    retried), and once the disk recovers a checkpoint completes; every event is there."""
    async with open_store(store_path, vfs=fault_vfs.vfs_name) as store:
        log = store.mob("m").events
        fault_vfs.reset()
        fault_vfs.arm(Fault("sync", 0, persistent=True, files=("db",)))
        for i in range(60):
            await log.append(NewMobEvent("k", {"i": i, "pad": "x" * 500}))
        stats = store.statistics()
        assert stats.checkpoint_failures >= 1 and stats.checkpoints == 0
        assert {h.kind for h in fault_vfs.fired} == {"db"}
        fault_vfs.clear()
        for i in range(60, 120):
            await log.append(NewMobEvent("k", {"i": i, "pad": "x" * 500}))
        assert store.statistics().checkpoints >= 1
    conn = apsw.Connection(store_path, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        got = [r[0] for r in conn.execute("SELECT cursor FROM mob_events WHERE mob_id = 'm' ORDER BY cursor")]
        assert got == list(range(1, 121))
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


async def test_in_memory_stores_have_no_checkpoints():
    async with open_store() as store:
        for i in range(50):
            await store.mob("m").events.append(NewMobEvent("k", {"i": i}))
        stats = store.statistics()
        assert (stats.checkpoints, stats.checkpoint_failures) == (0, 0)


async def test_the_switch_keeps_sqlites_automatic_checkpoint(store_path, monkeypatch):
    """``_checkpoint.ENABLED = False`` (A/B measurements) leaves SQLite's automatic
    checkpoint inside the COMMIT: nothing counted, and the WAL is still bounded."""
    monkeypatch.setattr(_checkpoint, "ENABLED", False)
    async with open_store(store_path) as store:
        log = store.mob("m").events
        biggest = 0
        for i in range(600):
            await log.append(NewMobEvent("k", {"i": i, "pad": "x" * 500}))
            biggest = max(biggest, _wal_size(store_path))
        assert store.statistics().checkpoints == 0
        assert biggest <= 1100 * FRAME + 32, biggest
        assert _wal_size(store_path) < 600 * 2 * FRAME  # it restarted at least once
