"""I/O fault injection: an apsw VFS shim that fails chosen reads, writes, syncs and locks.

Theory of operation
-------------------
SQLite does all of its file I/O through a VFS. :class:`FaultVFS` registers a VFS that
*inherits* the default one (every call goes to the real file) and counts, per operation kind,
every ``read``, ``write``, ``sync``, ``lock`` and ``truncate`` on the files it watches (the
main database, its WAL and its rollback journal; temporary files are left alone). A
:class:`Fault` names one operation by kind and index (0-based, counted since the last
:meth:`FaultVFS.reset`) and the error to raise there: an I/O error, disk full or busy, once
(*transient*) or for that and every later operation of the kind (*persistent*, until
:meth:`FaultVFS.clear`).

A sweep therefore runs a workload once to count (``vfs.counts()["write"] == N``), then runs
it N more times on fresh files with the fault at index 0, 1, ..., N-1, and checks each time
what the caller saw and what the file holds (``mobstore.actors.testing.sweep_io_faults``
does exactly this).

Route a store through the shim with ``open_store(path, vfs=vfs.vfs_name)``. Everything is
synchronous and thread safe (SQLite calls it from the commit thread and the reader threads).

Rejected: patching ``os`` functions (SQLite does not use Python's), and ``LD_PRELOAD``
shims (not portable, not per store). A Python VFS costs a few microseconds per I/O call,
which is fine for tests and never present in production (``vfs=None``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from typing import Any

import apsw
import attrs

OPS = ("read", "write", "sync", "lock", "truncate")
ERRORS = ("ioerr", "full", "busy")
#: The files a shim watches by default (temporary files are never watched).
DEFAULT_FILES = ("db", "wal", "journal")

_IOERR = {
    "read": apsw.SQLITE_IOERR_READ,
    "write": apsw.SQLITE_IOERR_WRITE,
    "sync": apsw.SQLITE_IOERR_FSYNC,
    "lock": apsw.SQLITE_IOERR_LOCK,
    "truncate": apsw.SQLITE_IOERR_TRUNCATE,
}
_ids = itertools.count(1)


def file_kind(name: Any, flags: list[int]) -> str:
    """``"db"``, ``"wal"``, ``"journal"`` or ``"other"`` for a file SQLite opens."""
    f = flags[0]
    if f & apsw.SQLITE_OPEN_MAIN_DB:
        return "db"
    if f & apsw.SQLITE_OPEN_WAL:
        return "wal"
    if f & apsw.SQLITE_OPEN_MAIN_JOURNAL:
        return "journal"
    return "other"


def file_path(name: Any) -> str | None:
    """The path of a file SQLite opens (``None`` for an anonymous temporary file)."""
    if name is None:
        return None
    return name if isinstance(name, str) else name.filename()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def _check_op(op: str) -> str:
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    return op


def _check_files(files: Any) -> tuple[str, ...] | None:
    # A fault restricted to files that never exist would silently never fire (a test of
    # the user's passing without injecting anything): refuse what cannot match.
    if files is None:
        return None
    if isinstance(files, str):
        raise ValueError(f"files must be a collection of file kinds such as ('wal',), got the str {files!r}")
    kinds = tuple(files)
    bad = [k for k in kinds if k not in DEFAULT_FILES]
    if bad or not kinds:
        raise ValueError(f"files must name some of {DEFAULT_FILES}, got {kinds!r}")
    return kinds


@attrs.frozen
class Fault:
    """Fail the ``nth`` operation of kind ``op`` (0-based, counted since the last reset).

    Attributes:
        op: ``"read"``, ``"write"``, ``"sync"``, ``"lock"`` or ``"truncate"``.
        nth: the index of the operation to fail: among the operations of kind ``op`` on
            every watched file, or, with ``files``, on those files only
            (``Fault("sync", 0, files=("db",))`` is the next sync of the database file).
        error: ``"ioerr"`` (an I/O error with the fitting extended code), ``"full"``
            (``SQLITE_FULL``, disk full) or ``"busy"`` (``SQLITE_BUSY``; SQLite's busy
            handler retries a busy lock before it gives up).
        persistent: fail every later operation of the kind too, until ``FaultVFS.clear()``.
        files: restrict to these file kinds (``"db"``, ``"wal"``, ``"journal"``); ``None``
            means every watched file. ``nth`` then counts only their operations.
    """

    op: str = attrs.field(validator=lambda _i, _a, v: _check_op(v))
    nth: int = attrs.field(validator=attrs.validators.ge(0))
    error: str = attrs.field(default="ioerr", validator=attrs.validators.in_(ERRORS))
    persistent: bool = False
    files: tuple[str, ...] | None = attrs.field(default=None, converter=_check_files)

    def exception(self) -> apsw.Error:
        """The apsw exception this fault raises into SQLite."""
        if self.error == "full":
            return apsw.exception_for(apsw.SQLITE_FULL)
        if self.error == "busy":
            return apsw.exception_for(apsw.SQLITE_BUSY)
        return apsw.exception_for(_IOERR[self.op])


@attrs.frozen
class FaultHit:
    """A fault that fired: on which operation, at which index, on which file."""

    op: str
    index: int
    kind: str
    path: str | None
    error: str


class ManagedVFS(apsw.VFS):
    """Lifecycle shared by the test VFSs: counts open files, unregisters on close (refusing
    while files are open), usable as a context manager."""

    vfs_name: str
    open_files: int = 0
    _registered: bool = False

    def close(self) -> None:
        """Unregister the VFS. Close every connection that uses it first."""
        if not self._registered:
            return
        if self.open_files:
            raise RuntimeError(f"VFS {self.vfs_name!r} still has {self.open_files} open files; close the store first")
        self.unregister()
        self._registered = False

    def __enter__(self):  # noqa: ANN204 - returns the subclass instance
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FaultVFS(ManagedVFS):
    """A registered SQLite VFS that counts I/O operations and fails the armed ones.

    Example::

        with FaultVFS() as vfs:
            async with open_store(path, vfs=vfs.vfs_name) as store:
                vfs.reset()
                vfs.arm(Fault("sync", 0))
                with pytest.raises(WriteFailed):
                    await store.mob("m").events.append(NewMobEvent("k"))

    Args:
        name: the VFS name to register (unique by default).
        files: the file kinds to count and fail (default: db, wal, journal).
    """

    def __init__(self, name: str | None = None, *, files: Iterable[str] = DEFAULT_FILES) -> None:
        self.vfs_name = name or unique_name("mobstore-fault")
        self.files = frozenset(files)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(OPS, 0)
        self._by_kind: dict[tuple[str, str], int] = {}  # (op, file kind) -> operations
        self._faults: list[Fault] = []
        self._persistent: list[Fault] = []
        self.fired: list[FaultHit] = []
        self.open_files = 0
        self._registered = True
        super().__init__(self.vfs_name, "")

    # -- control -------------------------------------------------------------------------

    def arm(self, *faults: Fault) -> None:
        """Add faults (indices count from the last :meth:`reset`)."""
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        """Disarm every fault, persistent ones included (the "disk" is healthy again)."""
        with self._lock:
            self._faults.clear()
            self._persistent.clear()

    def reset(self) -> None:
        """Zero the counters, disarm every fault and forget the hits."""
        with self._lock:
            self._counts = dict.fromkeys(OPS, 0)
            self._by_kind = {}
            self._faults.clear()
            self._persistent.clear()
            self.fired = []

    def counts(self) -> dict[str, int]:
        """Operations seen per kind since the last :meth:`reset`."""
        with self._lock:
            return dict(self._counts)

    # -- called by the files -------------------------------------------------------------

    def _tick(self, op: str, kind: str, path: str | None) -> None:
        if kind not in self.files:
            return
        with self._lock:
            index = self._counts[op]
            self._counts[op] = index + 1
            by_kind = self._by_kind
            hit = None
            for f in self._persistent:
                if f.op == op and (f.files is None or kind in f.files):
                    hit = f
                    break
            else:
                for f in self._faults:
                    if f.op != op or (f.files is not None and kind not in f.files):
                        continue
                    nth = index if f.files is None else sum(by_kind.get((op, k), 0) for k in f.files)
                    if f.nth == nth:
                        hit = f
                        self._faults.remove(f)
                        if f.persistent:
                            self._persistent.append(f)
                        break
            by_kind[op, kind] = by_kind.get((op, kind), 0) + 1
            if hit is None:
                return
            self.fired.append(FaultHit(op, index, kind, path, hit.error))
        raise hit.exception()

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:  # noqa: N802 - apsw API
        return _FaultFile(self, name, flags)


class _FaultFile(apsw.VFSFile):
    def __init__(self, vfs: FaultVFS, name: Any, flags: list[int]) -> None:
        super().__init__("", name, flags)
        self._vfs = vfs
        self._kind = file_kind(name, flags)
        self._path = file_path(name)
        with vfs._lock:
            vfs.open_files += 1
        self._open = True

    def xRead(self, amount: int, offset: int) -> bytes:  # noqa: N802
        self._vfs._tick("read", self._kind, self._path)
        return super().xRead(amount, offset)

    def xWrite(self, data: bytes, offset: int) -> None:  # noqa: N802
        self._vfs._tick("write", self._kind, self._path)
        super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:  # noqa: N802
        self._vfs._tick("sync", self._kind, self._path)
        super().xSync(flags)

    def xLock(self, level: int) -> None:  # noqa: N802
        self._vfs._tick("lock", self._kind, self._path)
        super().xLock(level)

    def xTruncate(self, newsize: int) -> None:  # noqa: N802
        self._vfs._tick("truncate", self._kind, self._path)
        super().xTruncate(newsize)

    def xClose(self) -> None:  # noqa: N802
        if self._open:
            self._open = False
            with self._vfs._lock:
                self._vfs.open_files -= 1
        super().xClose()
