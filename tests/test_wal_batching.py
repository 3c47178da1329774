"""WAL write batching (storage/_walbatch.c): the writer of a durable file store hands each
commit's WAL frames to the kernel as one write. These tests check that it is in use where
it should be and nowhere else, that it changes nothing stored (same rows, same file
format, readers see every commit, checkpoints and large transactions work), that a write
error still reaches the caller as a typed error without losing acknowledged data, and that
a store opens on SQLite's default VFS when the shim is missing.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import apsw
import pytest

from mobstore.actors import NewMobEvent, open_store
from mobstore.storage import AppendEvents, Database, _wal_batching

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Unit:
    def __init__(self, *commands):
        self.commands = commands
        self.results = None
        self.error = None


def _clock():
    n = iter(range(10**9))
    return lambda: T0 + timedelta(microseconds=next(n))


def _append(db, mob, payloads):
    u = Unit(AppendEvents.of(mob, [NewMobEvent("k", p) for p in payloads]))
    db.apply([u])
    assert u.error is None, u.error
    return u.results[0]


def _rows(path):
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        events = conn.execute("SELECT * FROM mob_events ORDER BY mob_id, cursor").fetchall()
        heads = conn.execute("SELECT * FROM mob_heads ORDER BY mob_id").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return events, heads
    finally:
        conn.close()


def test_the_extension_was_built_and_loads():
    """The install builds the shim (gcc and sqlite3ext.h are on the target machine); if this
    fails, stores still work, on the default VFS, but durable commits cost more CPU."""
    assert _wal_batching.vfs_for("full") == _wal_batching.VFS_NAME, _wal_batching.status()
    assert _wal_batching.status() == "active"
    assert _wal_batching.VFS_NAME in apsw.vfs_names()
    assert "sqlite3_walbatch_init" not in dir(apsw)  # registered as a VFS, not as the default
    assert apsw.vfs_names()[0] != _wal_batching.VFS_NAME


def test_only_the_durable_writer_uses_it(tmp_path):
    d = Database.open(tmp_path / "full.db")
    try:
        assert d.wal_batching
        assert d._writer.vfsname("main") == f"{_wal_batching.VFS_NAME}/unix"
        reader = d._readers.get()
        assert reader[0].vfsname("main") == "unix"  # readers never write the WAL
        d._readers.put(reader)
    finally:
        d.close()
    for kwargs in ({"durability": "normal"}, {"wal_batching": False}):
        d = Database.open(tmp_path / f"{sorted(kwargs)[0]}.db", **kwargs)
        try:
            assert not d.wal_batching
            assert d._writer.vfsname("main") == "unix"
        finally:
            d.close()
    d = Database.open(None)
    try:
        assert not d.wal_batching
    finally:
        d.close()


async def test_store_statistics_say_whether_it_is_used(tmp_path):
    async with open_store(tmp_path / "a.db") as store:
        await store.mob("m").events.append(NewMobEvent("k"))
        assert store.statistics().wal_batching is True
    async with open_store(tmp_path / "b.db", wal_batching=False) as store:
        assert store.statistics().wal_batching is False
    async with open_store() as store:
        assert store.statistics().wal_batching is False


def test_same_rows_with_and_without_it(tmp_path):
    """A deterministic workload (fixed clock; small, large and over-the-buffer batches, enough
    commits for automatic checkpoints and WAL restarts) stores exactly the same rows."""
    results = []
    for on in (True, False):
        path = tmp_path / f"{on}.db"
        d = Database.open(path, clock=_clock(), wal_batching=on)
        assert d.wal_batching is on
        try:
            for i in range(600):
                _append(d, f"mob-{i % 7}", [{"i": i, "pad": "x" * (i % 50)}])
                if i % 100 == 0:  # ~300 KiB of frames in one commit: more than the buffer
                    _append(d, "big", [{"i": i, "blob": "y" * 20_000} for _ in range(15)])
            d._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _append(d, "after-truncate", [{"ok": True}])
        finally:
            d.close()
        results.append(_rows(path))
    assert results[0] == results[1]
    events, heads = results[0]
    assert len(events) == 600 + 6 * 15 + 1
    assert ("big", 90 + 1) in heads


def test_a_file_written_with_it_reopens_without_it_and_back(tmp_path):
    path = tmp_path / "s.db"
    for round_, on in enumerate((True, False, True)):
        d = Database.open(path, wal_batching=on)
        try:
            got = _append(d, "m", [{"round": round_}])
            assert got[0].cursor == round_ + 1
        finally:
            d.close()
    events, _ = _rows(path)
    assert [e[1] for e in events] == [1, 2, 3]


def test_readers_see_every_commit_while_the_writer_batches(tmp_path):
    """A reader thread polls while the writer commits: it only ever sees whole commits, in
    order, and each commit as soon as apply() has returned."""
    from mobstore.storage._events import poll

    d = Database.open(tmp_path / "s.db")
    seen: list[int] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def reader():
        try:
            last = 0
            while last < 1500 and not done.is_set():  # until the last commit (or a failure)
                events = d.read(poll, "m", last, 1000)
                for e in events:
                    assert e.cursor == last + 1, (e.cursor, last)
                    assert e.payload == {"n": e.cursor, "tail": "z" * 300}
                    last = e.cursor
                seen.append(last)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for n in range(1, 1501, 3):
            _append(d, "m", [{"n": c, "tail": "z" * 300} for c in range(n, n + 3)])
            assert d.read(poll, "m", n - 1, 10)[-1].cursor == n + 2  # visible at once
        t.join()
    finally:
        done.set()  # stops the reader only if the writer failed
        t.join()
        d.close()
    assert not errors, errors
    assert seen[-1] == 1500 and seen == sorted(seen) and all(s % 3 == 0 for s in seen)


async def test_two_stores_in_one_process(tmp_path):
    """Two durable stores commit concurrently (two writer threads, two WALs batching)."""
    async with open_store(tmp_path / "a.db") as a, open_store(tmp_path / "b.db") as b:
        import trio

        async def work(store, tag):
            for i in range(200):
                await store.mob("m").events.append(NewMobEvent("k", {"tag": tag, "i": i}))

        async with trio.open_nursery() as n:
            for _ in range(4):
                n.start_soon(work, a, "a")
                n.start_soon(work, b, "b")
    for name, tag in (("a.db", "a"), ("b.db", "b")):
        events, heads = _rows(tmp_path / name)
        assert len(events) == 800 and heads == [("m", 801)]
        assert all(f'"tag":"{tag}"' in e[4] for e in events)


_FULL_DISK = """
import resource, signal, sys
from mobstore.storage import AppendEvents, Database, NewMobEvent
class Unit:
    def __init__(self, *c): self.commands, self.results, self.error = c, None, None
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
d = Database.open(sys.argv[1], wal_batching=sys.argv[2] == "on")
assert d.wal_batching is (sys.argv[2] == "on")
resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
acked = 0
for i in range(10_000):
    u = Unit(AppendEvents.of("m", [NewMobEvent("k", {"i": i, "pad": "p" * 3000})]))
    d.apply([u])
    if u.error is not None:
        print(acked, type(u.error).__name__, u.error)
        break
    acked += 1
d.close()
"""


@pytest.mark.parametrize("batching", ["on", "off"])
def test_a_failing_write_is_a_typed_error_and_loses_nothing_acknowledged(tmp_path, batching):
    """The WAL cannot grow (RLIMIT_FSIZE): the commit that hits the limit fails with a typed
    error, as without the shim, and every acknowledged append is in the file afterwards."""
    path = tmp_path / "s.db"
    r = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(path), batching], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    acked_s, error, *message = r.stdout.split()
    acked = int(acked_s)
    assert acked > 20  # it wrote a while before the limit
    assert error in ("CommitInDoubt", "WriteFailed"), r.stdout
    events, _ = _rows(path)
    cursors = [e[1] for e in events]
    assert cursors[:acked] == list(range(1, acked + 1))
    assert len(cursors) in (acked, acked + 1)  # the in-doubt commit may or may not be there


def _forget(monkeypatch):
    monkeypatch.setattr(_wal_batching, "_loaded", None)
    monkeypatch.setattr(_wal_batching, "_reason", "")


def _works_on_the_default_vfs(path):
    d = Database.open(path)
    try:
        assert not d.wal_batching
        assert d._writer.vfsname("main") == "unix"
        assert _append(d, "m", [{}])[0].cursor == 1
    finally:
        d.close()


def test_without_the_extension_stores_use_the_default_vfs(tmp_path, monkeypatch):
    import mobstore.storage as package

    _forget(monkeypatch)
    monkeypatch.delattr(package, "_walbatch", raising=False)
    monkeypatch.setitem(sys.modules, "mobstore.storage._walbatch", None)  # "not installed"
    assert _wal_batching.vfs_for("full") is None
    assert _wal_batching.status().startswith("the C extension was not built at install time")
    _works_on_the_default_vfs(tmp_path / "s.db")


def test_an_extension_sqlite_refuses_is_reported_and_skipped(tmp_path, monkeypatch):
    import types

    import mobstore.storage as package

    _forget(monkeypatch)
    bogus = tmp_path / "_walbatch.so"
    bogus.write_bytes(b"not a shared library")
    monkeypatch.setattr(package, "_walbatch", types.SimpleNamespace(__file__=str(bogus)), raising=False)
    assert _wal_batching.vfs_for("full") is None
    assert _wal_batching.status().startswith("SQLite refused to load it")
    _works_on_the_default_vfs(tmp_path / "s.db")


@pytest.mark.parametrize("bad", ["yes", 1, None])
async def test_a_non_bool_option_is_invalid_input(tmp_path, bad):
    from mobstore.storage import InvalidInput

    with pytest.raises(InvalidInput, match="wal_batching"):
        async with open_store(tmp_path / "s.db", wal_batching=bad):
            pass
    assert not (tmp_path / "s.db").exists()  # refused before anything was created


def test_the_shim_stacks_over_another_vfs(tmp_path):
    """``stack(name, base)`` registers the shim over a named VFS (the test kit puts it over
    its power-loss VFS); writes through it reach that VFS gathered; ``unstack`` removes it.
    Bad names are typed errors."""
    seen = []

    class Counting(apsw.VFS):
        def __init__(self):
            super().__init__("counting-base", "")

        def xOpen(self, name, flags):  # noqa: N802 - apsw API
            return CountingFile(name, flags)

    class CountingFile(apsw.VFSFile):
        def __init__(self, name, flags):
            super().__init__("", name, flags)
            self.wal = bool(flags[0] & apsw.SQLITE_OPEN_WAL)

        def xWrite(self, data, offset):  # noqa: N802
            if self.wal:
                seen.append(len(data))
            super().xWrite(data, offset)

    base = Counting()
    try:
        _wal_batching.stack("counting-walbatch", "counting-base")
        with pytest.raises(ValueError, match="already registered"):
            _wal_batching.stack("counting-walbatch", "counting-base")
        with pytest.raises(LookupError, match="no VFS named 'nope'"):
            _wal_batching.stack("other", "nope")
        conn = apsw.Connection(str(tmp_path / "s.db"), vfs="counting-walbatch")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (x)")
        seen.clear()
        with conn:
            conn.executemany("INSERT INTO t VALUES (?)", [("x" * 300,)] * 30)  # a few pages
        assert len(seen) == 1 and seen[0] > 2 * 4096  # one gathered write for the commit
        conn.close()
        _wal_batching.unstack("counting-walbatch")
        assert "counting-walbatch" not in apsw.vfs_names()
        with pytest.raises(LookupError, match="no stacked"):
            _wal_batching.unstack("counting-walbatch")
        with pytest.raises(LookupError, match="no stacked"):
            _wal_batching.unstack(_wal_batching.VFS_NAME)  # the built-in instance stays
    finally:
        if "counting-walbatch" in apsw.vfs_names():
            _wal_batching.unstack("counting-walbatch")
        base.unregister()


def test_the_shim_is_refused_below_full_durability(tmp_path):
    """The shim is safe only when every commit is synced before it is published: a store
    opened on it (or on a stacked instance) at durability="normal" is InvalidInput, and the
    kit's power-loss runs refuse wal_batching at normal. (Such a store used to fail to open,
    or could let a reader see WAL bytes still in the buffer.)"""
    from mobstore.actors.testing import count_io, power_loss_once
    from mobstore.storage import InvalidInput, _wal_batching
    from mobstore.storage._database import Database

    if _wal_batching.status() != "active":
        pytest.skip("the C extension is not built here")
    with pytest.raises(InvalidInput, match="durability='full'"):
        Database.open(str(tmp_path / "a.db"), durability="normal", vfs=_wal_batching.VFS_NAME)
    _wal_batching.stack("mobstore-test-stacked", "unix")
    try:
        with pytest.raises(InvalidInput, match="durability='full'"):
            Database.open(str(tmp_path / "b.db"), durability="normal", vfs="mobstore-test-stacked")
        Database.open(str(tmp_path / "c.db"), durability="full", vfs="mobstore-test-stacked").close()
    finally:
        _wal_batching.unstack("mobstore-test-stacked")
    assert not _wal_batching.is_shim("mobstore-test-stacked")
    for call in (lambda: power_loss_once(tmp_path / "d.db", crash_at=None, durability="normal", wal_batching=True),
                 lambda: count_io(tmp_path / "e.db", durability="normal", wal_batching=True)):
        with pytest.raises(ValueError, match="durability='full'"):
            call()
