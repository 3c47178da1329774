"""Power loss at every sync (and at sampled writes) of the scripted workload, in a child
process: with ``durability="full"`` every acknowledged commit survives; with ``"normal"``
the survivors are a prefix of the acknowledged commits. Every run also checks that no
multi-part commit is half-visible and that the file passes ``integrity_check``.

The script (``_workload``, ``mode="script"``) runs 18 operations one at a time over events,
atomic batches, specs, the run CAS family, profiles, config and a runtime boundary.
"""

from __future__ import annotations

import pytest

from mobstore.actors.testing import count_io, power_loss_once


def _check(verdict, *, full: bool) -> None:
    assert verdict.ok, verdict.summary()
    assert verdict.outcome in ("power loss", "finished"), verdict.outcome
    if full:
        assert verdict.survivors == verdict.acked


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    d = tmp_path_factory.mktemp("counts")
    got = {dur: count_io(str(d / f"{dur}.db"), durability=dur) for dur in ("full", "normal")}
    got["batched"] = count_io(str(d / "batched.db"), durability="full", wal_batching=True)
    for dur in ("full", "normal"):
        got[f"checkpointed-{dur}"] = count_io(str(d / f"cp-{dur}.db"), durability=dur, checkpoint_frames=_FRAMES)
    return got


_FRAMES = 12  # checkpoint every few commits of the script (the default is every 1,000 frames)


def test_every_sync_full(tmp_path, counts):
    """Power loss at each sync, from the schema creation to the last commit: everything
    acknowledged before the cut is there."""
    n = counts["full"]["syncs"]
    assert n >= counts["full"]["acks"]  # at least one fsync per commit
    for i in range(n):
        v = power_loss_once(str(tmp_path / f"s{i}.db"), crash_at=("sync", i), durability="full", seed=i)
        _check(v, full=True)


def test_the_wal_batching_shim_is_in_the_stack(counts):
    """Through the shim the same script reaches the power-loss VFS with far fewer writes (one
    per commit for the WAL instead of two per page) and the same syncs."""
    assert counts["batched"]["acks"] == counts["full"]["acks"]
    assert counts["batched"]["syncs"] == counts["full"]["syncs"]
    assert counts["batched"]["writes"] * 2 < counts["full"]["writes"]


def test_every_sync_full_through_the_wal_batching_shim(tmp_path, counts):
    """Power loss at each sync with the WAL batching shim between SQLite and the disk:
    everything acknowledged before the cut is there."""
    for i in range(counts["batched"]["syncs"]):
        v = power_loss_once(str(tmp_path / f"s{i}.db"), crash_at=("sync", i), durability="full", seed=i,
                            wal_batching=True)
        _check(v, full=True)


def test_every_write_full_through_the_wal_batching_shim(tmp_path, counts):
    """Power loss at each write through the shim (a whole commit's WAL frames are one write,
    so a cut keeps, drops or garbles them together)."""
    for i in range(counts["batched"]["writes"]):
        v = power_loss_once(str(tmp_path / f"w{i}.db"), crash_at=("write", i), durability="full", seed=i,
                            weights=(10, 1, 1), wal_batching=True)
        _check(v, full=True)


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_every_sync_with_checkpoints_midway(tmp_path, counts, durability):
    """The store checkpoints its WAL every few commits (after the callers are answered, on
    the writer thread), so the cuts fall before, inside and after checkpoints (which write
    and sync the database file, then restart the WAL): with ``full`` every acknowledged
    commit survives, with ``normal`` a prefix."""
    got = counts[f"checkpointed-{durability}"]
    assert got["syncs"] > counts[durability]["syncs"]  # the checkpoints' syncs of the database file
    for i in range(got["syncs"]):
        v = power_loss_once(str(tmp_path / f"c{i}.db"), crash_at=("sync", i), durability=durability, seed=i,
                            checkpoint_frames=_FRAMES)
        _check(v, full=durability == "full")


def test_every_sync_normal(tmp_path, counts):
    """With ``normal`` the WAL is synced only at checkpoints: power loss at each of them
    leaves a prefix of the acknowledged commits."""
    for i in range(counts["normal"]["syncs"]):
        v = power_loss_once(str(tmp_path / f"s{i}.db"), crash_at=("sync", i), durability="normal", seed=i)
        _check(v, full=False)


@pytest.mark.parametrize("seed", range(6))
def test_normal_power_loss_after_the_last_ack_keeps_a_prefix(tmp_path, seed):
    """Nothing of the workload was synced (the schema was): each unsynced WAL write is kept,
    dropped or garbled; the survivors are a prefix (of varying length) of the acks."""
    v = power_loss_once(str(tmp_path / "s.db"), crash_at=None, at_end=True, durability="normal", seed=seed,
                        weights=(30, 1, 1), prepare=True)
    _check(v, full=False)
    assert v.outcome == "power loss" and v.acked == 18


def test_sampled_writes_normal(tmp_path, counts):
    """Power loss in the middle of WAL writes (every 25th write)."""
    for i in range(0, counts["normal"]["writes"], 25):
        v = power_loss_once(str(tmp_path / f"w{i}.db"), crash_at=("write", i), durability="normal", seed=i,
                            weights=(30, 1, 1), prepare=True)
        _check(v, full=False)


@pytest.mark.slow
@pytest.mark.parametrize("checkpointed", [False, True])
@pytest.mark.parametrize("durability", ["full", "normal"])
def test_every_write(tmp_path, durability, counts, checkpointed):
    """Power loss at every single write of the script (and, checkpointed, with the WAL
    checkpointed every few commits, so that writes to the database file are cut too)."""
    frames = _FRAMES if checkpointed else None
    n = counts[f"checkpointed-{durability}" if checkpointed else durability]["writes"]
    for i in range(n):
        v = power_loss_once(str(tmp_path / f"w{i}.db"), crash_at=("write", i), durability=durability, seed=i,
                            weights=(10, 1, 1), checkpoint_frames=frames)
        _check(v, full=durability == "full")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(40))
def test_normal_at_end_many_seeds(tmp_path, seed):
    v = power_loss_once(str(tmp_path / "s.db"), crash_at=None, at_end=True, durability="normal", seed=seed,
                        weights=(40, 1, 1), prepare=True, ops=40)
    _check(v, full=False)
