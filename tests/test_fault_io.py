"""I/O fault sweeps: an I/O error at every write and at every sync of a scripted workload
over every store family. Each: a typed error to the caller, nothing half-applied, the mob
actor restarted, the store working once the fault clears, the file intact (also reopened).
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest
import trio

from mobstore.actors import open_store

from mobstore.actors.testing import sweep_io_faults
from mobstore.actors.testing._sweep import scripted_snapshot, scripted_steps


def _assert_sweep(report, *, expect_hits: bool = True):
    assert report.total > 0
    assert report.ok, "\n".join(report.problems()[:20])
    if expect_hits:
        hit = [o for o in report.outcomes if o.step is not None]
        assert hit, "no fault ever fired"
        assert all(o.error in ("WriteFailed", "ReadFailed", "CommitInDoubt") for o in hit)


class TestEveryWrite:
    async def test_transient_io_error_at_every_write(self, tmp_path):
        """Every WAL/database write of the script, failed once, one at a time."""
        report = await sweep_io_faults(tmp_path, scripted_steps(), scripted_snapshot, op="write")
        _assert_sweep(report)
        steps = {o.step for o in report.outcomes}
        assert {s.name for s in scripted_steps()} <= steps  # every step got hit somewhere

    async def test_disk_full_at_every_fourth_write(self, tmp_path):
        """SQLITE_FULL instead of an I/O error (a sample of the writes; all under -m slow)."""
        total = await _count(tmp_path, "write")
        report = await sweep_io_faults(tmp_path, scripted_steps(), scripted_snapshot, op="write", error="full",
                                       indices=range(0, total, 4))
        _assert_sweep(report)

    async def test_persistent_io_error_at_every_fourth_write(self, tmp_path):
        """A disk that keeps failing until it is repaired: the call fails again on retry,
        still without a trace, and succeeds once the fault clears."""
        total = await _count(tmp_path, "write")
        report = await sweep_io_faults(tmp_path, scripted_steps(), scripted_snapshot, op="write", persistent=True,
                                       indices=range(1, total, 4))
        _assert_sweep(report)


class TestEverySync:
    @pytest.mark.parametrize("persistent", [False, True], ids=["transient", "persistent"])
    async def test_io_error_at_every_sync(self, tmp_path, persistent):
        """Every fsync of the script fails (each commit's WAL sync): the commit is reported
        failed and is not visible, also after a clean close and reopen."""
        report = await sweep_io_faults(tmp_path, scripted_steps(), scripted_snapshot, op="sync", persistent=persistent)
        _assert_sweep(report)
        assert report.total == len(scripted_steps())  # one fsync per commit

    async def test_disk_full_at_every_sync(self, tmp_path):
        report = await sweep_io_faults(tmp_path, scripted_steps(), scripted_snapshot, op="sync", error="full")
        _assert_sweep(report)


@pytest.mark.slow
@pytest.mark.parametrize("op", ["write", "sync"])
@pytest.mark.parametrize("error", ["ioerr", "full"])
@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("durability", ["full", "normal"])
async def test_full_matrix(tmp_path, op, error, persistent, durability):
    """Every index, every error kind, transient and persistent, both durabilities."""
    report = await sweep_io_faults(tmp_path, scripted_steps(), scripted_snapshot, op=op, error=error,
                                   persistent=persistent, durability=durability)
    if durability == "normal" and op == "sync":
        assert report.total == 0  # "normal" never fsyncs a commit (only checkpoints do)
        return
    _assert_sweep(report)


async def _count(tmp_path, op: str) -> int:
    report = await sweep_io_faults(tmp_path, scripted_steps(), scripted_snapshot, op=op, indices=[])
    return report.total


_IN_DOUBT = textwrap.dedent(
    """
    import os, sys, trio
    from mobstore.actors import CommitInDoubt, NewMobEvent, open_store
    from mobstore.actors.testing import Fault, FaultVFS

    async def main(path):
        vfs = FaultVFS()
        async with open_store(path, vfs=vfs.vfs_name) as store:
            log = store.mob("m").events
            await log.append(NewMobEvent("a"))
            vfs.reset()
            vfs.arm(Fault("sync", 0))
            try:
                await log.append_batch([NewMobEvent("b"), NewMobEvent("c")])
            except CommitInDoubt:
                assert [e.kind for e in await log.replay_all()] == ["a"]  # not visible now
                os._exit(3)   # crash right after the caller was told "in doubt"
        os._exit(0)

    trio.run(main, sys.argv[1])
    """
)


async def test_failed_sync_is_reported_in_doubt_and_stays_atomic_across_a_crash(tmp_path):
    """A commit whose fsync failed is reported as CommitInDoubt (not "nothing applied"): its
    frames may be in the WAL, so after a crash it is either wholly back or wholly absent."""
    path = str(tmp_path / "s.db")
    proc = await trio.run_process([sys.executable, "-c", _IN_DOUBT, path], check=False,
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 3, proc
    async with open_store(path) as store:
        kinds = [e.kind for e in await store.mob("m").events.replay_all()]
    assert kinds in (["a"], ["a", "b", "c"])



def test_an_io_error_inside_a_statement_fails_every_unit_of_the_batch(tmp_path):
    """An I/O error in the middle of a unit's statement (a page-cache spill to the WAL) makes
    SQLite roll back the whole transaction: every unit of the batch, also the ones applied
    before it, is answered with the error, and nothing of the batch is stored. (No sweep
    reached this branch: they fail writes at COMMIT.)"""
    from mobstore.actors.testing import Fault, FaultVFS
    from mobstore.storage import AppendEvents, Database, NewMobEvent, WriteFailed, _events

    class Unit:
        def __init__(self, *commands):
            self.commands, self.results, self.error = commands, None, None

    vfs = FaultVFS()
    db = Database.open(str(tmp_path / "s.db"), vfs=vfs.vfs_name, durability="normal")
    try:
        with db.writer() as conn:
            conn.execute("PRAGMA cache_size = 10")  # a small cache: a big unit spills mid-statement
        small = Unit(AppendEvents.of("a", [NewMobEvent("k", {"i": 1})]))
        big = Unit(AppendEvents.of("b", [NewMobEvent("k", {"pad": "x" * 4000, "i": i}) for i in range(300)]))
        vfs.reset()
        vfs.arm(Fault("write", 0, persistent=True))
        db.apply([small, big])
        vfs.clear()
        assert vfs.fired, "the fault never fired"
        assert isinstance(small.error, WriteFailed) and small.results is None
        assert isinstance(big.error, WriteFailed)
        assert db.read(_events.replay_all, "a") == [] and db.read(_events.replay_all, "b") == []
    finally:
        db.close()
        vfs.close()


class _Put:
    """A command inserting one event (``fail``: then raising, as a bad command would)."""

    def __init__(self, key, fail=False, pad=0):
        self.key, self.fail, self.pad = key, fail, pad

    def apply(self, tx):
        tx.execute("INSERT INTO mob_events VALUES (?, 1, 0, 'k', ?)", (self.key, "x" * self.pad))
        if self.fail:
            raise ValueError("a bad command")
        return self.key


class _Unit:
    def __init__(self, *commands):
        self.commands, self.results, self.error = commands, None, None


def _stored(db):
    return db.read(lambda c: c.execute("SELECT mob_id FROM mob_events ORDER BY mob_id").fetchall())


def test_a_failed_commit_of_an_optimistic_batch_is_in_doubt_for_every_unit(tmp_path):
    """The WAL's fsync fails at the COMMIT of a batch of several units (the optimistic path,
    no savepoints): every unit is CommitInDoubt, none is reported applied. (Every unit used
    to keep its results, error None: the callers were told their writes were durable, and
    after a reopen they were gone.)"""
    from mobstore.actors.testing import Fault, FaultVFS
    from mobstore.storage import CommitInDoubt, Database

    with FaultVFS() as vfs:
        db = Database.open(str(tmp_path / "s.db"), vfs=vfs.vfs_name)
        try:
            units = [_Unit(_Put("a")), _Unit(_Put("b"))]
            vfs.reset()
            vfs.arm(Fault("sync", 0, files=("wal",)))
            db.apply(units)
            vfs.clear()
            assert vfs.fired
            assert all(u.results is None and isinstance(u.error, CommitInDoubt) for u in units)
            assert _stored(db) == []
        finally:
            db.close()


def test_a_failed_rollback_or_savepoint_fails_the_batch_typed(tmp_path):
    """A unit raises, so the optimistic batch is rolled back, and that ROLLBACK meets a read
    error: every unit is WriteFailed, nothing is stored, the writer is out of its
    transaction, and the next batch commits. (A bare apsw.IOError used to escape
    Database.apply, which the committer takes for its own crash, with units unanswered.)"""
    from mobstore.actors.testing import Fault, FaultVFS
    from mobstore.storage import Database, WriteFailed

    with FaultVFS() as vfs:
        db = Database.open(str(tmp_path / "s.db"), vfs=vfs.vfs_name)
        try:
            units = [_Unit(_Put(f"k{i}", fail=i == 1, pad=3000)) for i in range(4)]
            vfs.reset()
            vfs.arm(Fault("read", 0))
            db.apply(units)
            vfs.clear()
            assert vfs.fired
            assert all(u.results is None and isinstance(u.error, WriteFailed) for u in units)
            with db.writer() as conn:
                assert conn.getautocommit()
            assert _stored(db) == []
            after = [_Unit(_Put("x")), _Unit(_Put("y"))]
            db.apply(after)
            assert [u.results for u in after] == [["x"], ["y"]] and _stored(db) == [("x",), ("y",)]
        finally:
            db.close()
