"""Power-loss simulation: a VFS shim that keeps unsynced writes in memory and "loses power".

Theory of operation
-------------------
What survives a power cut is what was synced, plus any subset of what was written since,
some of it possibly torn. :class:`PowerLossVFS` models exactly that. It inherits the
default VFS, but a ``write`` does not reach the file: it is kept in memory, per file path
(shared by every connection of the process, so readers see it as they would see the OS page
cache). A ``sync`` of a file first writes that file's pending writes through, in order, then
syncs it for real.

At the chosen moment (the n-th sync or the n-th write, counted from registration, or an
explicit :meth:`PowerLossVFS.power_loss`), the power goes out: every pending write of every
file is applied as *written*, *dropped* or *garbage* (random bytes over exactly the written
range: SQLite's files are "powersafe overwrite", a torn write never damages bytes outside
its range), chosen with a seeded RNG, and then the process ends at once with
``os._exit(POWER_LOSS_EXIT)`` (``halt="exit"``, for a child process), or every later I/O
call fails and nothing more reaches the file (``halt="freeze"``, for in-process tests). The
parent then reopens the file with the real VFS: SQLite recovers from the WAL and the checks
run against what a real machine could have kept.

Deliberate simplifications: truncates and deletes are applied at once (SQLite syncs before
it relies on either), and the ``-shm`` wal-index is not simulated (it is rebuilt from the
WAL when the first connection opens the file after a crash).
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Iterable
from typing import Any

import apsw

from ._vfs import ManagedVFS, DEFAULT_FILES, file_kind, file_path, unique_name

#: The exit status of a child that lost power (``halt="exit"``).
POWER_LOSS_EXIT = 86
OUTCOMES = ("written", "dropped", "garbage")


class PowerLossVFS(ManagedVFS):
    """A registered SQLite VFS that buffers unsynced writes and can lose power.

    Args:
        name: the VFS name to register (unique by default).
        seed: seeds the choice of written / dropped / garbage per pending write.
        crash_at: ``("sync", n)`` or ``("write", n)``: lose power when the n-th (0-based)
            sync or write of a watched file starts; ``None``: only by :meth:`power_loss`.
        weights: relative odds of written, dropped, garbage.
        halt: ``"exit"`` ends the process with :data:`POWER_LOSS_EXIT`; ``"freeze"`` makes
            every later I/O call fail (in-process tests).
        files: the file kinds to buffer and count (default: db, wal, journal).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        seed: int = 0,
        crash_at: tuple[str, int] | None = None,
        weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        halt: str = "exit",
        files: Iterable[str] = DEFAULT_FILES,
        on_power_loss: Callable[[PowerLossVFS], None] | None = None,
    ) -> None:
        if crash_at is not None and (crash_at[0] not in ("sync", "write") or crash_at[1] < 0):
            raise ValueError(f"crash_at must be ('sync', n) or ('write', n) with n >= 0, got {crash_at!r}")
        if halt not in ("exit", "freeze"):
            raise ValueError(f"halt must be 'exit' or 'freeze', got {halt!r}")
        self.vfs_name = name or unique_name("mobstore-powerloss")
        self.seed = seed
        self.crash_at = crash_at
        self.weights = weights
        self.halt = halt
        self.files = frozenset(files)
        self.on_power_loss = on_power_loss
        self.syncs = 0
        self.writes = 0
        self.lost = False
        #: (path, offset, length, outcome) of every pending write at the power loss.
        self.outcomes: list[tuple[str, int, int, str]] = []
        self._pending: dict[str, list[tuple[int, bytes]]] = {}
        self._lock = threading.RLock()
        self.open_files = 0
        self._registered = True
        super().__init__(self.vfs_name, "")

    # -- control -------------------------------------------------------------------------

    def power_loss(self) -> None:
        """Cut the power now: apply each pending write as written, dropped or garbage,
        then halt (see the class docstring)."""
        with self._lock:
            if not self.lost:
                self.lost = True
                rng = random.Random(self.seed)
                for path, writes in sorted(self._pending.items()):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
                    try:
                        for offset, data in writes:
                            outcome = rng.choices(OUTCOMES, self.weights)[0]
                            self.outcomes.append((path, offset, len(data), outcome))
                            if outcome == "written":
                                os.pwrite(fd, data, offset)
                            elif outcome == "garbage":
                                os.pwrite(fd, rng.randbytes(len(data)), offset)
                    finally:
                        os.close(fd)
                self._pending.clear()
                if self.on_power_loss is not None:
                    self.on_power_loss(self)
                if self.halt == "exit":
                    os._exit(POWER_LOSS_EXIT)

    def flush_all(self) -> None:
        """Write every pending write through (what the OS does eventually on a clean exit)."""
        with self._lock:
            for path, writes in self._pending.items():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    for offset, data in writes:
                        os.pwrite(fd, data, offset)
                finally:
                    os.close(fd)
            self._pending.clear()

    def pending(self) -> dict[str, int]:
        """The number of unsynced writes per file path."""
        with self._lock:
            return {p: len(w) for p, w in self._pending.items()}

    # -- apsw ----------------------------------------------------------------------------

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:  # noqa: N802 - apsw API
        if self.lost:
            raise apsw.exception_for(apsw.SQLITE_IOERR)
        return _PowerLossFile(self, name, flags)

    def xDelete(self, name: str, syncdir: bool) -> None:  # noqa: N802
        with self._lock:
            if self.lost:
                raise apsw.exception_for(apsw.SQLITE_IOERR_DELETE)
            self._pending.pop(name, None)
            super().xDelete(name, syncdir)

    # -- used by the files ---------------------------------------------------------------

    def _count(self, op: str) -> None:
        """Count a write or sync; cut the power if it is the chosen one. Holds the lock."""
        if self.lost:
            raise apsw.exception_for(apsw.SQLITE_IOERR)
        n = self.syncs if op == "sync" else self.writes
        if op == "sync":
            self.syncs += 1
        else:
            self.writes += 1
        if self.crash_at == (op, n):
            self.power_loss()
            raise apsw.exception_for(apsw.SQLITE_IOERR)


class _PowerLossFile(apsw.VFSFile):
    def __init__(self, vfs: PowerLossVFS, name: Any, flags: list[int]) -> None:
        super().__init__("", name, flags)
        self._vfs = vfs
        self._path = file_path(name)
        self._watched = self._path is not None and file_kind(name, flags) in vfs.files
        with vfs._lock:
            vfs.open_files += 1
        self._open = True

    def _pending(self) -> list[tuple[int, bytes]] | None:
        return self._vfs._pending.get(self._path) if self._watched else None  # type: ignore[arg-type]

    def xRead(self, amount: int, offset: int) -> bytes:  # noqa: N802
        vfs = self._vfs
        with vfs._lock:
            if vfs.lost:
                raise apsw.exception_for(apsw.SQLITE_IOERR_READ)
            writes = self._pending()
            if not writes:
                return super().xRead(amount, offset)
            size = self._size(writes)
            buf = bytearray(super().xRead(amount, offset))
            buf.extend(bytes(amount - len(buf)))
            end = offset + amount
            for o, d in writes:
                lo, hi = max(o, offset), min(o + len(d), end)
                if lo < hi:
                    buf[lo - offset : hi - offset] = d[lo - o : hi - o]
            return bytes(buf[: max(0, min(amount, size - offset))])

    def xWrite(self, data: bytes, offset: int) -> None:  # noqa: N802
        vfs = self._vfs
        with vfs._lock:
            if not self._watched:
                if vfs.lost:
                    raise apsw.exception_for(apsw.SQLITE_IOERR_WRITE)
                super().xWrite(data, offset)
                return
            vfs._count("write")
            vfs._pending.setdefault(self._path, []).append((offset, bytes(data)))  # type: ignore[arg-type]

    def xSync(self, flags: int) -> None:  # noqa: N802
        vfs = self._vfs
        with vfs._lock:
            if not self._watched:
                if vfs.lost:
                    raise apsw.exception_for(apsw.SQLITE_IOERR_FSYNC)
                super().xSync(flags)
                return
            vfs._count("sync")
            for offset, data in vfs._pending.pop(self._path, ()):  # type: ignore[arg-type]
                super().xWrite(data, offset)
            super().xSync(flags)

    def _size(self, writes: list[tuple[int, bytes]]) -> int:
        real = super().xFileSize()
        return max([real, *(o + len(d) for o, d in writes)])

    def xFileSize(self) -> int:  # noqa: N802
        vfs = self._vfs
        with vfs._lock:
            if vfs.lost:
                raise apsw.exception_for(apsw.SQLITE_IOERR_FSTAT)
            writes = self._pending()
            return self._size(writes) if writes else super().xFileSize()

    def xTruncate(self, newsize: int) -> None:  # noqa: N802
        vfs = self._vfs
        with vfs._lock:
            if vfs.lost:
                raise apsw.exception_for(apsw.SQLITE_IOERR_TRUNCATE)
            writes = self._pending()
            if writes:
                kept = [(o, d[: newsize - o]) for o, d in writes if o < newsize]
                vfs._pending[self._path] = kept  # type: ignore[index]
            super().xTruncate(newsize)

    def xClose(self) -> None:  # noqa: N802
        if self._open:
            self._open = False
            with self._vfs._lock:
                self._vfs.open_files -= 1
        super().xClose()
