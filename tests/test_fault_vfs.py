"""The fault-injection kit itself: the I/O fault VFS, the power-loss VFS in-process, crash
points, and the mob actor's restart after an I/O error."""

from __future__ import annotations

import apsw
import pytest
import trio
import trio.testing

from mobstore.actors import ActorCrashed, NewMobEvent, ReadFailed, WriteFailed, open_store
from mobstore.actors.testing import CrashPoints, Fault, FaultVFS, InjectedCrash, PowerLossVFS
from mobstore.storage import _checkpoint


def ev(i: int = 0) -> NewMobEvent:
    return NewMobEvent("k", {"i": i})


async def kinds(log) -> list[int]:
    return [e.payload["i"] for e in await log.replay_all()]


class TestFaultVFS:
    async def test_counts_operations_per_kind(self, store_path, fault_vfs):
        """Every durable append writes the WAL and syncs it once; reset() zeroes the counters."""
        async with open_store(store_path, vfs=fault_vfs.vfs_name) as store:
            assert fault_vfs.counts()["write"] > 0  # the schema
            fault_vfs.reset()
            assert set(fault_vfs.counts().values()) == {0}
            await store.mob("m").events.append(ev())
            counts = fault_vfs.counts()
            assert counts["sync"] == 1 and counts["write"] >= 2

    @pytest.mark.parametrize("error", ["ioerr", "full"])
    async def test_transient_write_fault_fails_one_call(self, store_path, fault_vfs, error):
        """A transient fault fails exactly the call whose commit hit it, with WriteFailed
        naming the SQLite error; nothing of it is stored; the next call succeeds."""
        async with open_store(store_path, vfs=fault_vfs.vfs_name, backoff_base=0) as store:
            log = store.mob("m").events
            await log.append(ev(1))
            fault_vfs.reset()
            fault_vfs.arm(Fault("write", 0, error=error))
            with pytest.raises(WriteFailed) as info:
                await log.append(ev(2))
            cause = apsw.FullError if error == "full" else apsw.IOError
            assert isinstance(info.value.__cause__, cause)
            assert [(h.op, h.index, h.kind) for h in fault_vfs.fired] == [("write", 0, "wal")]
            assert (await log.append(ev(3))).cursor == 2
            assert await kinds(log) == [1, 3]

    async def test_persistent_sync_fault_until_cleared(self, store_path, fault_vfs):
        """A persistent fault fails every later operation of its kind until clear()."""
        async with open_store(store_path, vfs=fault_vfs.vfs_name, backoff_base=0) as store:
            log = store.mob("m").events
            fault_vfs.reset()
            fault_vfs.arm(Fault("sync", 0, persistent=True))
            for i in range(3):
                with pytest.raises(WriteFailed):
                    await log.append(ev(i))
            assert len(fault_vfs.fired) == 3
            fault_vfs.clear()
            await log.append(ev(9))
            assert await kinds(log) == [9]

    async def test_a_fault_restricted_to_files_counts_only_their_operations(self, store_path, fault_vfs, monkeypatch):
        """``Fault("sync", 0, files=("db",))`` is the first sync of the database file (a
        checkpoint's), however many syncs of the WAL come before it."""
        monkeypatch.setattr(_checkpoint, "CHECKPOINT_FRAMES", 40)
        async with open_store(store_path, vfs=fault_vfs.vfs_name) as store:
            log = store.mob("m").events
            fault_vfs.reset()
            fault_vfs.arm(Fault("sync", 0, files=("db",)))
            for i in range(40):
                await log.append(NewMobEvent("k", {"i": i, "pad": "x" * 500}))
            assert [(h.op, h.kind) for h in fault_vfs.fired] == [("sync", "db")]
            assert fault_vfs.fired[0].index > 0  # WAL syncs came first
            stats = store.statistics()
            assert stats.checkpoint_failures == 1 and stats.checkpoints >= 1

    async def test_read_fault_is_read_failed(self, store_path, fault_vfs):
        """A failed read raises ReadFailed from the read call; the store reads again after."""
        async with open_store(store_path, vfs=fault_vfs.vfs_name) as store:
            log = store.mob("m").events
            await log.append(ev(1))  # the readers' caches are stale now: the next read reads
            fault_vfs.reset()
            fault_vfs.arm(Fault("read", 0))
            with pytest.raises(ReadFailed):
                await log.replay_all()
            assert fault_vfs.fired and fault_vfs.fired[0].op == "read"
            assert await kinds(log) == [1]

    def test_fault_validates_its_fields(self):
        """Unknown operations and errors are refused at construction."""
        with pytest.raises(ValueError):
            Fault("fsync", 0)
        with pytest.raises(ValueError):
            Fault("write", 0, error="eio")
        with pytest.raises(ValueError):
            Fault("write", -1)
        # files that can never match would make a fault that silently never fires
        for files in ("wal", ("wall",), ()):
            with pytest.raises(ValueError, match="files"):
                Fault("sync", 0, files=files)
        assert Fault("sync", 0, files=["wal", "db"]).files == ("wal", "db")

    async def test_unregister_refuses_while_files_are_open(self, store_path):
        """close() unregisters the VFS, but not under an open store."""
        vfs = FaultVFS()
        async with open_store(store_path, vfs=vfs.vfs_name):
            assert vfs.vfs_name in apsw.vfs_names()
            with pytest.raises(RuntimeError, match="open files"):
                vfs.close()
        vfs.close()
        assert vfs.vfs_name not in apsw.vfs_names()
        vfs.close()  # idempotent


class TestPowerLossVFSInProcess:
    """``halt="freeze"``: the power goes out, every later I/O fails, the file keeps only what
    was synced plus the seeded choice of pending writes."""

    async def _run(self, path: str, durability: str, seed: int, weights=(1, 1, 1)):
        vfs = PowerLossVFS(seed=seed, halt="freeze", weights=weights)
        acked = []
        async with open_store(path, vfs=vfs.vfs_name, durability=durability) as store:
            log = store.mob("m").events
            for i in range(12):
                acked.append((await log.append(ev(i))).cursor)
            pending = sum(vfs.pending().values())
            vfs.power_loss()
            with pytest.raises(WriteFailed):
                await log.append(ev(99))
        vfs.close()
        async with open_store(path) as store:
            got = [e.cursor for e in await store.mob("m").events.replay_all()]
        return acked, got, pending, vfs

    async def test_full_durability_keeps_every_acknowledged_append(self, tmp_path):
        """With fsync per commit nothing acknowledged is pending at the power cut."""
        acked, got, pending, _ = await self._run(str(tmp_path / "s.db"), "full", seed=1)
        assert pending == 0 and got == acked

    @pytest.mark.parametrize("seed", range(4))
    async def test_normal_durability_keeps_a_prefix(self, tmp_path, seed):
        """Without fsync per commit the survivors are a prefix of the acknowledged appends;
        the pending writes were applied as the seed chose."""
        acked, got, pending, vfs = await self._run(str(tmp_path / "s.db"), "normal", seed, weights=(20, 1, 1))
        assert pending > 0 and got == acked[: len(got)]
        assert {o[3] for o in vfs.outcomes} <= {"written", "dropped", "garbage"}
        assert len(vfs.outcomes) == pending

    async def test_reads_see_pending_writes_and_syncs_write_them_through(self, tmp_path):
        """Readers (other connections) see unsynced writes through the shared overlay; a sync
        empties that file's pending list."""
        vfs = PowerLossVFS(halt="freeze")
        async with open_store(str(tmp_path / "s.db"), vfs=vfs.vfs_name, durability="normal") as store:
            log = store.mob("m").events
            await log.append(ev(1))
            assert vfs.pending()
            assert await kinds(log) == [1]  # a reader connection, through the overlay
        assert not vfs.pending()  # the close checkpoint synced everything
        vfs.close()

    def test_crash_at_is_validated(self):
        with pytest.raises(ValueError):
            PowerLossVFS(crash_at=("read", 1))
        with pytest.raises(ValueError):
            PowerLossVFS(halt="later")


class TestCrashPoints:
    async def test_crash_at_a_chosen_message(self, crash_points):
        """``at={key: n}`` crashes the actor when it hands over its n-th message: that call
        gets ActorCrashed (not applied), the others are served in order."""
        crash_points.at = {"mob:m": frozenset({1})}
        async with open_store(crash_hook=crash_points, backoff_base=0) as store:
            log = store.mob("m").events
            assert (await log.append(ev(0))).cursor == 1
            with pytest.raises(ActorCrashed) as info:
                await log.append(ev(1))
            assert isinstance(info.value.cause, InjectedCrash) and info.value.cause.message == 1
            assert (await log.append(ev(2))).cursor == 2
            assert await kinds(log) == [0, 2]
            assert [(c.actor, c.message) for c in crash_points.fired] == [("mob:m", 1)]

    async def test_probability_is_seeded_and_filtered_by_key(self):
        """The same seed crashes the same messages; ``keys`` limits the actors; crashes stop
        at ``max_crashes``."""

        async def run(seed):
            hook = CrashPoints(seed, probability=0.3, keys=["mob:a"], max_crashes=4)
            outcomes = []
            async with open_store(crash_hook=hook, backoff_base=0, max_restarts=10) as store:
                for i in range(30):
                    try:
                        await store.mob("a").events.append(ev(i))
                        outcomes.append(True)
                    except ActorCrashed:
                        outcomes.append(False)
                    await store.mob("b").events.append(ev(i))  # never crashes
            return outcomes, hook

        first, hook = await run(7)
        second, _ = await run(7)
        assert first == second and first.count(False) == len(hook.fired) == 4
        assert all(c.actor == "mob:a" for c in hook.fired)

    async def test_disabled_hook_does_nothing(self, crash_points):
        crash_points.probability = 1.0
        crash_points.enabled = False
        async with open_store(crash_hook=crash_points) as store:
            await store.mob("m").events.append(ev())
        assert crash_points.fired == []

    def test_probability_is_validated(self):
        with pytest.raises(ValueError):
            CrashPoints(probability=1.5)


class TestRestartAfterIOError:
    async def test_mob_actor_restarts_and_rebuilds_its_head(self, store_path, fault_vfs):
        """After a group with a StoreIOError the mob actor restarts (the caller already had
        WriteFailed) and the next incarnation recovers the head from the database."""
        async with open_store(store_path, vfs=fault_vfs.vfs_name, backoff_base=0) as store:
            mob = store.mob("m")
            await mob.events.append(ev(0))
            fault_vfs.reset()
            fault_vfs.arm(Fault("sync", 0))
            with pytest.raises(WriteFailed):
                await mob.events.append(ev(1))
            assert (await mob.events.append(ev(2))).cursor == 2
            assert mob.statistics().restarts == 1
            assert store.statistics().escalated == ()

    async def test_queued_requests_survive_the_restart(self, store_path, fault_vfs):
        """Requests queued behind the failed group are served by the next incarnation."""
        async with open_store(store_path, vfs=fault_vfs.vfs_name, backoff_base=0, max_batch=1) as store:
            log = store.mob("m").events
            await log.append(ev(0))
            fault_vfs.reset()
            fault_vfs.arm(Fault("sync", 0))
            results: dict[int, object] = {}

            async def call(i):
                try:
                    results[i] = (await log.append(ev(i))).cursor
                except WriteFailed as exc:
                    results[i] = exc

            async with trio.open_nursery() as nursery:
                for i in (1, 2, 3):
                    nursery.start_soon(call, i)
                    await trio.testing.wait_all_tasks_blocked()
            assert isinstance(results[1], WriteFailed)
            assert (results[2], results[3]) == (2, 3)
            assert store.mob("m").statistics().restarts == 1
