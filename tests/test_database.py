"""The storage engine without trio: schema, ownership, batches, error translation."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import apsw
import pytest

from mobstore.storage import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    AppendEvents,
    Database,
    IncompatibleStore,
    InvalidInput,
    NewMobEvent,
    NotFound,
    StoreClosed,
    StoreIOError,
    StoreLocked,
    WriteFailed,
    _events,
)



def _open_in_child(path) -> subprocess.CompletedProcess:
    """Open ``path`` in another process: exit 3 and ``LOCKED <path>`` if StoreLocked."""
    code = (
        "import sys\n"
        "from mobstore.storage import Database, StoreLocked\n"
        "try:\n    Database.open(sys.argv[1])\n"
        "except StoreLocked as e:\n    print('LOCKED', e.path); sys.exit(3)\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)

class Unit:
    def __init__(self, *commands):
        self.commands = commands
        self.results = None
        self.error = None


class Boom:
    """A command that writes, then fails: its write must be rolled back alone."""

    def __init__(self, exc=None):
        self.exc = exc or NotFound("run", "x")

    def apply(self, tx):
        tx.execute("INSERT INTO mob_heads VALUES ('boom', 99)")
        raise self.exc


def append(mob, kind="k"):
    return AppendEvents.of(mob, [NewMobEvent(kind)])


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(params=["memory", "file"])
def db(request, tmp_path):
    d = Database.open(None if request.param == "memory" else tmp_path / "s.db")
    yield d
    d.close()


class TestApply:
    def test_failing_unit_does_not_undo_neighbours(self, db):
        """In one batch, a unit that raises is rolled back alone; the others commit."""
        units = [Unit(append("a")), Unit(Boom()), Unit(append("a")), Unit(append("b"))]
        assert db.apply(units) == 1
        assert [u.results[0][0].cursor for u in (units[0], units[2], units[3])] == [1, 2, 1]
        assert isinstance(units[1].error, NotFound) and units[1].results is None
        assert [e.cursor for e in db.read(_events.replay_all, "a")] == [1, 2]
        assert db.read(lambda c: c.execute("SELECT count(*) FROM mob_heads WHERE mob_id='boom'").fetchall()[0][0]) == 0

    def test_multi_command_unit_is_all_or_nothing(self, db):
        """A unit of several commands commits all of them or none."""
        ok, bad = Unit(append("a"), append("b")), Unit(append("a"), Boom())
        db.apply([ok, bad])
        assert ok.error is None and len(ok.results) == 2
        assert bad.error is not None
        assert len(db.read(_events.replay_all, "a")) == 1

    def test_later_commands_see_earlier_ones(self, db):
        """A command sees the effects of earlier commands in the same batch."""
        units = [Unit(append("a")) for _ in range(5)]
        db.apply(units)
        assert [u.results[0][0].cursor for u in units] == [1, 2, 3, 4, 5]

    def test_without_group_commit_each_unit_commits(self, db):
        """group=False gives every unit its own transaction (same outcomes)."""
        units = [Unit(append("a")), Unit(Boom()), Unit(append("a"))]
        assert db.apply(units, group=False) == 3
        assert units[1].error is not None and units[2].results[0][0].cursor == 2

    def test_driver_errors_are_translated(self, db):
        """An apsw error inside a command reaches the caller as WriteFailed, with the cause."""
        u = Unit(Boom(apsw.ConstraintError("UNIQUE constraint failed")))
        db.apply([u])
        assert isinstance(u.error, WriteFailed) and "nothing of it was applied" in str(u.error)

    def test_closed_database(self, db):
        """After close, writes and reads raise StoreClosed; close is idempotent."""
        db.close()
        db.close()
        u = Unit(append("a"))
        db.apply([u])
        assert isinstance(u.error, StoreClosed)
        with pytest.raises(StoreClosed):
            db.read(_events.replay_all, "a")


class TestOpen:
    def test_marks_and_version(self, tmp_path):
        """A new file gets mobstore's application_id and the latest schema version."""
        Database.open(tmp_path / "s.db").close()
        c = apsw.Connection(str(tmp_path / "s.db"))
        assert c.execute("PRAGMA application_id").fetchall()[0][0] == APPLICATION_ID
        assert c.execute("PRAGMA user_version").fetchall()[0][0] == SCHEMA_VERSION
        assert c.execute("PRAGMA journal_mode").fetchall()[0][0] == "wal"

    def test_nested_directories_are_created(self, tmp_path):
        Database.open(tmp_path / "a" / "b" / "s.db").close()
        assert (tmp_path / "a" / "b" / "s.db").exists()

    def test_newer_schema_is_refused_untouched(self, tmp_path):
        """A file from a newer mobstore raises IncompatibleStore and is not modified."""
        p = tmp_path / "s.db"
        Database.open(p).close()
        c = apsw.Connection(str(p))
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        c.execute("PRAGMA journal_mode = DELETE")
        c.close()
        before = sha(p)
        with pytest.raises(IncompatibleStore, match="newer mobstore") as info:
            Database.open(p)
        assert info.value.path == str(p)
        assert sha(p) == before
        assert not (tmp_path / "s.db-wal").exists()

    def test_foreign_sqlite_file_is_refused(self, tmp_path):
        p = tmp_path / "other.db"
        c = apsw.Connection(str(p))
        c.execute("CREATE TABLE t(x)")
        c.close()
        before = sha(p)
        with pytest.raises(IncompatibleStore, match="another application"):
            Database.open(p)
        assert sha(p) == before

    def test_not_a_database(self, tmp_path):
        """A file that is not SQLite at all is IncompatibleStore (as documented for a
        foreign file; it used to be StoreIOError), naming the path, and is not touched."""
        p = tmp_path / "junk.db"
        p.write_bytes(b"this is not sqlite" * 100)
        before = sha(p)
        with pytest.raises(IncompatibleStore, match="junk.db.*not a SQLite database"):
            Database.open(p)
        assert sha(p) == before

    def test_bad_options(self, tmp_path):
        with pytest.raises(InvalidInput, match="durability"):
            Database.open(tmp_path / "s.db", durability="fast")
        with pytest.raises(InvalidInput, match="readers"):
            Database.open(tmp_path / "s.db", readers=0)

    def test_second_owner_in_process_is_locked(self, tmp_path):
        p = tmp_path / "s.db"
        d = Database.open(p)
        with pytest.raises(StoreLocked) as info:
            Database.open(p)
        assert info.value.path == str(p)
        d.close()
        Database.open(p).close()  # released on close

    def test_second_process_gets_store_locked(self, tmp_path):
        """Another process opening an owned file gets StoreLocked at once, naming the path."""
        p = tmp_path / "s.db"
        d = Database.open(p)
        try:
            r = _open_in_child(p)
            assert r.returncode == 3, r.stderr
            assert r.stdout.strip() == f"LOCKED {p}"
        finally:
            d.close()

    def test_a_symlink_to_an_owned_file_is_locked_too(self, tmp_path):
        """The owner lock belongs to the real file: opening it through a symlink (in this
        process or another) is StoreLocked, naming the path as given."""
        p, link = tmp_path / "s.db", tmp_path / "link.db"
        d = Database.open(p)
        link.symlink_to(p)
        try:
            with pytest.raises(StoreLocked) as info:
                Database.open(link)
            assert info.value.path == str(link)
            r = _open_in_child(link)
            assert r.returncode == 3, r.stderr
        finally:
            d.close()
        Database.open(link).close()  # released: the link opens the same store

    def test_a_path_that_cannot_be_created_is_store_io_error(self, tmp_path):
        """Not a bare OSError: a parent that is a file, or a directory that cannot exist."""
        (tmp_path / "file.txt").write_text("x")
        with pytest.raises(StoreIOError, match="cannot open store"):
            Database.open(tmp_path / "file.txt" / "s.db")
        with pytest.raises(StoreIOError, match="cannot open store"):
            Database.open("/proc/no-such-dir/s.db")


def test_a_second_close_waits_for_the_first(tmp_path):
    """close() while another close() waits for a read in flight returns only once the file
    is released (it used to return at once, with the connections open and the owner lock
    held: a reopen then got StoreLocked)."""
    import threading

    path = tmp_path / "s.db"
    db = Database.open(path)
    reading, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow_read(conn):
        reading.set()
        release.wait()
        order.append("read done")
        return 1

    reader = threading.Thread(target=db.read, args=(slow_read,))
    reader.start()
    reading.wait()
    pool, first_waiting = db._readers, threading.Event()

    class Pool:  # tells when the first closer has started to drain the reader pool
        def get(self):
            first_waiting.set()
            return pool.get()

        def put(self, entry):
            pool.put(entry)

    db._readers = Pool()
    first = threading.Thread(target=db.close)
    first.start()
    first_waiting.wait()
    second = threading.Thread(target=lambda: (db.close(), order.append("second close returned")))
    second.start()
    release.set()
    for t in (reader, first, second):
        t.join()
    assert order == ["read done", "second close returned"]
    Database.open(path).close()  # the file was released
