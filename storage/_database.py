"""The database: connections, file ownership, transactions and error translation.

Everything here is synchronous and blocking; ``mobstore.actors`` calls it from worker threads
(``trio.to_thread.run_sync``), never on the trio loop.

Connections
    One *writer* connection, used only by the committer, and a small pool of *reader*
    connections (WAL readers see every committed transaction and never block the writer).
    The in-memory backend is one private SQLite in-memory database, so its readers share the
    writer connection; a ``threading.Lock`` per connection keeps uses one at a time.

Ownership
    A file store is owned by one open store at a time: an exclusive ``flock`` on
    ``<path>.lock``, taken before the database is opened. The kernel drops it when the owner
    dies (also on kill -9), so a crashed owner never leaves a stale lock behind.

Durability
    ``full``: WAL + ``synchronous=FULL``; every commit fsyncs the WAL before it returns, so
    it survives power loss. ``normal``: WAL + ``synchronous=NORMAL``; a commit survives a
    crash of the process, but the last commits may be lost on power loss.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import apsw

from . import _checkpoint, _schema, _wal_batching
from ._codec import utc_now
from ._errors import (
    CommitInDoubt,
    DecodeError,
    InvalidInput,
    MobStoreError,
    ReadFailed,
    StoreClosed,
    StoreIOError,
    StoreLocked,
    WriteFailed,
)

T = TypeVar("T")
DURABILITIES = ("full", "normal")
_BUSY_TIMEOUT_MS = 5_000


class Command(Protocol):
    """A mutation: a value object whose ``apply`` runs inside an open write transaction.

    ``apply`` may raise a :class:`MobStoreError` (a lost CAS, a missing run...); the
    committer then rolls back only this command's unit (its SAVEPOINT).
    """

    def apply(self, tx: Transaction) -> Any: ...


class Unit(Protocol):
    """One message to the committer: commands applied all-or-nothing in one SAVEPOINT.

    The committer sets ``results`` (one per command) or ``error``.
    """

    commands: Sequence[Command]
    results: list[Any] | None
    error: BaseException | None


def _apply_coalesced(tx: Transaction, units: Sequence[Unit]) -> None:
    """Apply units in order; runs of single-command units whose command class offers
    ``apply_many`` (e.g. appends to many mobs) are applied by one call, which may share
    statements between them. Same results as applying them one by one."""
    i, n = 0, len(units)
    while i < n:
        u = units[i]
        cmds = u.commands
        many = getattr(type(cmds[0]), "apply_many", None) if len(cmds) == 1 else None
        if many is None:
            u.results = [c.apply(tx) for c in cmds]
            i += 1
            continue
        cls, j = type(cmds[0]), i + 1
        while j < n and len(units[j].commands) == 1 and type(units[j].commands[0]) is cls:
            j += 1
        for v, res in zip(units[i:j], many(tx, [v.commands[0] for v in units[i:j]])):
            v.results = [res]
        i = j


class Transaction:
    """What a command sees: the writer connection inside an open transaction, and the clock.

    A command sees the effects of every command applied before it in the same batch.
    """

    __slots__ = ("conn", "now", "execute", "executemany")

    def __init__(self, conn: apsw.Connection, clock: Callable[[], datetime]) -> None:
        self.conn = conn
        self.now = clock
        self.execute = conn.execute
        self.executemany = conn.executemany


def translate(exc: BaseException, *, writing: bool) -> MobStoreError:
    """Map an apsw error to the mobstore hierarchy (the one place this happens)."""
    if isinstance(exc, MobStoreError):
        return exc
    if isinstance(exc, UnicodeEncodeError):
        # A str that cannot be bound as UTF-8 (a lone surrogate) got past the callers'
        # checks: bad input, not a failing disk (so no actor restarts for it).
        err = InvalidInput("a string argument", f"cannot be stored as UTF-8 ({exc.reason}: {exc.object[exc.start:exc.end]!r})")
        err.__cause__ = exc
        return err
    if isinstance(exc, apsw.ConnectionClosedError):
        return StoreClosed("the store's database connection is closed")
    cls = WriteFailed if writing else ReadFailed
    verb = "write" if writing else "read"
    err = cls(f"database {verb} failed, nothing of it was applied: {_describe(exc)}")
    err.__cause__ = exc
    return err


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "extendedresult", None)
    text = str(exc).strip() or "(no message)"
    return f"{type(exc).__name__} (SQLite code {code}): {text}" if code is not None else f"{type(exc).__name__}: {text}"


def _lock_file(real_path: str, path: str) -> int:
    """Take the store's owner lock (``<real path>.lock``, flock); :class:`StoreLocked`
    naming ``path`` (as the caller spelled it) if another open store holds it."""
    lock_path = real_path + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLocked(path) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _connect(name: str, durability: str, *, flags: int, vfs: str | None = None) -> apsw.Connection:
    conn = apsw.Connection(name, flags=flags, vfs=vfs) if vfs else apsw.Connection(name, flags=flags)
    conn.set_busy_timeout(_BUSY_TIMEOUT_MS)
    return conn


def _configure(conn: apsw.Connection, durability: str, *, memory: bool) -> None:
    # Pragmas set explicitly per connection rather than with apsw.bestpractice.apply(), which
    # installs process-wide hooks that would also change the embedding app's own connections.
    if not memory:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA recursive_triggers = ON")
    conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
    conn.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)
    # A stable query plan: this SQLite is built with STAT4, so without QPSG every statement
    # whose plan could depend on a bound value (a MAX(...) probe, ORDER BY ... LIMIT ?) is
    # re-prepared at each execution (~3-4 us instead of ~0.5 us for a poll). The store keeps
    # no stat tables and binds no LIKE/GLOB patterns, so no plan is lost by pinning them.
    conn.config(apsw.SQLITE_DBCONFIG_ENABLE_QPSG, 1)


class Database:
    """An open store database. Create it with :meth:`open`; every method blocks."""

    def __init__(
        self,
        path: str | None,
        writer: apsw.Connection,
        readers: list[apsw.Connection],
        lock_fd: int | None,
        clock: Callable[[], datetime],
        durability: str,
        wal_batching: bool = False,
    ) -> None:
        self.path = path
        self.durability = durability
        #: True if the writer writes the WAL through the batching shim (``_wal_batching``).
        self.wal_batching = wal_batching
        self.clock = clock
        self._writer = writer
        self._writer_lock = threading.Lock()
        self._close_lock = threading.Lock()  # one closer at a time; the others wait for it
        self._tx = Transaction(writer, clock)
        # A pool of (connection, lock); the in-memory reader is the writer with its lock.
        self._readers: queue.SimpleQueue[tuple[apsw.Connection, threading.Lock]] = queue.SimpleQueue()
        for r in readers:
            self._readers.put((r, self._writer_lock if r is writer else threading.Lock()))
        self._n_readers = len(readers)
        self._all = {id(c): c for c in [writer, *readers]}
        self._lock_fd = lock_fd
        self._closed = False
        self._released = False  # connections closed and the owner lock let go
        # File stores checkpoint the WAL after a commit's callers are answered, not inside
        # that COMMIT (see ``_checkpoint``); an in-memory store has no WAL.
        self._checkpointer: _checkpoint.Checkpointer | None = None
        if path is not None and _checkpoint.ENABLED:
            self._checkpointer = _checkpoint.Checkpointer(writer)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        durability: str = "full",
        clock: Callable[[], datetime] | None = None,
        readers: int = 2,
        page_size: int = 1024,
        vfs: str | None = None,
        wal_batching: bool = True,
    ) -> Database:
        """Open (creating and migrating if needed) the store at ``path``; ``None`` opens a
        private in-memory store.

        ``page_size`` applies to new files only. ``vfs`` names a registered SQLite VFS for
        the file's connections (fault injection: ``mobstore.actors.testing``). Without one,
        a file store at ``durability="full"`` writes its WAL through the batching shim when
        it was built (``wal_batching=False`` turns that off; see ``_wal_batching``).

        Raises:
            InvalidInput: bad durability, readers, page_size, wal_batching or clock, or the
                WAL batching shim named as ``vfs`` with ``durability="normal"``.
            StoreLocked: another open store owns the file.
            IncompatibleStore: a foreign file, or one written by a newer schema (untouched).
            StoreIOError: the file cannot be opened.
        """
        if durability not in DURABILITIES:
            raise InvalidInput("durability", f"must be one of {DURABILITIES}, got {durability!r}")
        if type(readers) is not int or readers < 1:
            raise InvalidInput("readers", f"must be a positive int, got {readers!r}")
        if page_size not in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
            raise InvalidInput("page_size", f"must be a power of two from 512 to 65536, got {page_size!r}")
        if type(wal_batching) is not bool:
            raise InvalidInput("wal_batching", f"must be True or False, got {wal_batching!r}")
        if clock is not None and not callable(clock):
            raise InvalidInput("clock", f"must be a callable returning a UTC datetime, or None; got {type(clock).__name__}")
        if durability != "full" and _wal_batching.is_shim(vfs):
            # Without xSync before a commit is published, other connections could read WAL
            # bytes still in the shim's buffer (see storage/_walbatch.c).
            raise InvalidInput("vfs", f"{vfs!r} is the WAL batching shim, which is safe only with durability='full'")
        clock = clock or utc_now
        if path is None:
            writer = _connect(":memory:", durability, flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
            _configure(writer, durability, memory=True)
            _schema.migrate(writer, _schema.check_file(writer, ":memory:"))
            return cls(None, writer, [writer], None, clock, durability)

        path = os.path.abspath(os.fspath(path))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # The lock sits beside the real file: opened through a symlink (or by another
            # spelling of the path), the store is still owned by one process at a time.
            lock_fd = _lock_file(os.path.realpath(path), path)
        except StoreIOError:  # StoreLocked
            raise
        except OSError as exc:
            raise StoreIOError(f"cannot open store {path!r}: {type(exc).__name__}: {exc}") from exc
        conns: list[apsw.Connection] = []
        try:
            flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
            # Only the writer writes the WAL, so only the writer needs the batching shim.
            writer_vfs = vfs or (_wal_batching.vfs_for(durability) if wal_batching else None)
            writer = _connect(path, durability, flags=flags, vfs=writer_vfs)
            conns.append(writer)
            # Read the marks before any pragma that writes (journal_mode writes the header).
            version = _schema.check_file(writer, path)
            if version == 0:
                # A new file. Small pages: a group commit dirties about one page per mob it
                # touches, and the WAL bytes written (then fsynced) per commit are what a
                # durable commit costs here; 1 KiB pages measured ~40% faster than 4 KiB on
                # the 64-writer append benchmark. Existing files keep their page size.
                writer.execute(f"PRAGMA page_size = {page_size}")
            _configure(writer, durability, memory=False)
            _schema.migrate(writer, version)
            for _ in range(readers):
                r = _connect(path, durability, flags=apsw.SQLITE_OPEN_READWRITE, vfs=vfs)
                _configure(r, durability, memory=False)
                r.execute("PRAGMA query_only = ON")
                conns.append(r)
        except BaseException as exc:
            for c in conns:
                c.close()
            os.close(lock_fd)
            if isinstance(exc, apsw.Error):
                raise StoreIOError(f"cannot open store {path!r}: {type(exc).__name__}: {exc}") from exc
            raise
        return cls(path, writer, conns[1:], lock_fd, clock, durability, writer_vfs == _wal_batching.VFS_NAME)

    # -- writes -----------------------------------------------------------------------------

    def apply(self, units: Sequence[Unit], *, group: bool = True) -> int:
        """Apply ``units`` and commit; set each unit's ``results`` or ``error``.

        With ``group`` (group commit), all units share one ``BEGIN IMMEDIATE`` ... ``COMMIT``
        and each runs in its own SAVEPOINT: a unit that raises is rolled back alone and its
        neighbours still commit. Without it, each unit is its own transaction (the baseline
        that group commit is measured against). Nothing is reported successful before the
        COMMIT that holds it has returned. Returns the number of COMMITs executed.
        """
        with self._writer_lock:
            if self._closed:
                err = StoreClosed()
                for u in units:
                    u.results, u.error = None, err
                return 0
            cp = self._checkpointer
            if cp is not None and cp.due:  # nobody ran it after the previous commit
                cp.run()
            if group:
                self._transaction(units)
                return 1
            for u in units:
                self._transaction((u,))
            return len(units)

    def checkpoint_if_due(self) -> bool:
        """Checkpoint the WAL if the last commit left it over the threshold; True if it ran.

        The committer calls this on its thread right after it handed a batch's answers to the
        trio loop, so no caller waits for a checkpoint (``_checkpoint``). A failed checkpoint
        is counted, never raised.
        """
        cp = self._checkpointer
        if cp is None or not cp.due:
            return False
        with self._writer_lock:
            if self._closed or not cp.due:
                return False
            cp.run()
            return True

    @property
    def checkpoints(self) -> tuple[int, int]:
        """``(completed, failed)`` WAL checkpoints of the writer since the store opened."""
        cp = self._checkpointer
        return (0, 0) if cp is None else (cp.runs, cp.failures)

    def _transaction(self, units: Sequence[Unit]) -> None:
        # Optimistic first: the whole batch without savepoints (two statements fewer per
        # unit: the common case, since input is validated before it is queued and a lost CAS
        # is a result, not an error). If any unit raises, the batch is rolled back whole and
        # replayed with one SAVEPOINT per unit, so the failing unit is isolated and its
        # neighbours commit. Nothing is reported before COMMIT either way.
        if len(units) > 1 and self._run(units, isolated=False):
            return
        for u in units:
            u.results = u.error = None
        self._run(units, isolated=True)

    def _run(self, units: Sequence[Unit], *, isolated: bool) -> bool:
        """One transaction over ``units``. Returns False (rolled back, nothing reported) if
        not ``isolated`` and a unit raised; otherwise every unit is answered."""
        conn, tx = self._writer, self._tx
        try:
            conn.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            self._fail(units, translate(exc, writing=True))
            return True
        try:
            if not isolated:
                try:
                    _apply_coalesced(tx, units)
                except Exception:  # noqa: BLE001 - replayed unit by unit, isolated
                    if not conn.getautocommit():
                        conn.execute("ROLLBACK")
                    return False
            else:
                for u in units:
                    conn.execute("SAVEPOINT unit")
                    try:
                        u.results = [c.apply(tx) for c in u.commands]
                    except Exception as exc:  # noqa: BLE001 - every failure is reported to its caller
                        u.results, u.error = None, translate(exc, writing=True)
                        if conn.getautocommit():
                            # An I/O error made SQLite roll back the whole transaction: the
                            # units before this one are gone too.
                            self._fail(units, u.error)
                            return True
                        conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
        except apsw.Error as exc:
            # One of our own statements (ROLLBACK, SAVEPOINT, RELEASE...) failed: the disk. The
            # transaction is abandoned whole; nobody is told "applied" (results set by the
            # optimistic pass are cleared by _fail).
            if not conn.getautocommit():
                with contextlib.suppress(apsw.Error):
                    conn.execute("ROLLBACK")
            self._fail(units, translate(exc, writing=True))
            return True
        try:
            conn.execute("COMMIT")
        except apsw.Error as exc:
            # The COMMIT itself failed (typically its fsync): the frames may already be in the
            # WAL, so the outcome is in doubt, not "nothing applied" (a crash before the next
            # commit lets recovery replay them). Say so, to every unit of the batch (the
            # optimistic pass included: each of them holds results it must not report).
            err = CommitInDoubt(
                f"the disk failed while this commit was being made durable ({_describe(exc)}); "
                "it is not visible now but may still be stored after a crash: read back before retrying"
            )
            err.__cause__ = exc
            if not conn.getautocommit():
                with contextlib.suppress(apsw.Error):
                    conn.execute("ROLLBACK")
            self._fail(units, err)
        return True

    @staticmethod
    def _fail(units: Sequence[Unit], err: MobStoreError) -> None:
        for u in units:
            if u.error is None:  # applied (now rolled back) or never reached
                u.results, u.error = None, err

    # -- reads ------------------------------------------------------------------------------

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one read transaction on a reader connection.

        It sees every transaction committed before it started, and nothing uncommitted.
        """
        entry = self._readers.get()  # blocks this worker thread until a reader is free
        try:
            with entry[1]:
                if self._closed:
                    raise StoreClosed()
                return self._read_on(entry[0], fn, args)
        finally:
            self._readers.put(entry)

    def _read_on(self, conn: apsw.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn, *args)
            finally:
                conn.execute("COMMIT")
        except (apsw.Error, UnicodeEncodeError) as exc:
            raise translate(exc, writing=False) from exc
        except UnicodeDecodeError as exc:  # a TEXT value that is not UTF-8: a damaged row
            raise DecodeError("stored text", f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc

    @contextlib.contextmanager
    def writer(self) -> Iterator[apsw.Connection]:
        """The writer connection, for maintenance outside the committer (tests, tools)."""
        with self._writer_lock:
            yield self._writer

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection and release the file. Idempotent: every caller returns
        only once the file is released (a second closer waits for the first)."""
        with self._close_lock:
            if self._released:
                return
            self._closed = True  # new reads and writes are refused from here on
            # Wait for reads in flight: take every reader out of the pool, then the writer.
            held = [self._readers.get() for _ in range(self._n_readers)]
            for entry in held:
                self._readers.put(entry)
            with self._writer_lock:
                for c in self._all.values():
                    with contextlib.suppress(apsw.Error):
                        c.close()
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None
            self._released = True

    @property
    def closed(self) -> bool:
        return self._closed
