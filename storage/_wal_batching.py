"""WAL write batching: each durable commit reaches the kernel as one ``write`` instead of two
per page.

SQLite writes every WAL frame with two ``write`` calls (header, then page). A group commit
dirties tens of pages, and on the 2-core target each system call costs a few microseconds,
so before this shim those calls were most of a durable COMMIT's CPU (the fsync is the rest).
``_walbatch.c`` is a small SQLite VFS shim, built as an optional C extension at install
time, that gathers the writes of one commit into one buffer and writes it before the commit's
``xSync`` (see the C file for why that is safe). mobstore uses it for the writer connection
of file stores at ``durability="full"``.

It is optional: if the extension was not built (no C compiler or no ``sqlite3ext.h`` when
the package was installed) or cannot be loaded, stores open exactly as before, on SQLite's
default VFS, and :func:`status` says why. Nothing stored depends on it: a file written with
the shim is an ordinary SQLite file, and the same file opens with or without it.
"""

from __future__ import annotations

import threading

import apsw

#: The name the shim registers (process-wide, never as the default VFS).
VFS_NAME = "mobstore-walbatch"

_lock = threading.Lock()
_loaded: bool | None = None  # None: not tried yet
_reason = ""
_enabled = True
_stacked: set[str] = set()  # VFS names stack() registered


def _load() -> None:
    global _loaded, _reason
    try:
        from . import _walbatch  # type: ignore[attr-defined]  # the compiled extension
    except ImportError as exc:
        _loaded, _reason = False, f"the C extension was not built at install time ({exc})"
        return
    try:
        conn = apsw.Connection(":memory:")
        try:
            conn.enable_load_extension(True)
            # SQLITE_OK_LOAD_PERMANENTLY: the VFS stays registered after this connection closes.
            conn.load_extension(_walbatch.__file__, "sqlite3_walbatch_init")
        finally:
            conn.close()
    except (apsw.Error, AttributeError, OSError) as exc:
        _loaded, _reason = False, f"SQLite refused to load it: {type(exc).__name__}: {exc}"
        return
    _loaded, _reason = True, "active"


def set_enabled(flag: bool) -> bool:
    """Turn the shim on or off for stores opened from now on, in this process; returns the
    previous setting. For A/B measurements (``mobstore bench --wal-batching off``); an
    application turns it off per store with ``open_store(..., wal_batching=False)``."""
    global _enabled
    previous, _enabled = _enabled, bool(flag)
    return previous


def _ensure() -> bool:
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _load()
    return bool(_loaded)


def vfs_for(durability: str) -> str | None:
    """The VFS name for a file store's writer at ``durability``, or ``None`` for SQLite's
    default (durability ``"normal"``, turned off, or the shim is unavailable)."""
    if durability != "full" or not _enabled:
        return None
    return VFS_NAME if _ensure() else None


def stack(name: str, base: str) -> None:
    """Register the shim once more, as VFS ``name``, over the registered VFS ``base``.

    For crash tests: ``mobstore.actors.testing`` stacks it over its power-loss VFS, so that
    what a power cut leaves behind is checked with the shim's writes too. Close every
    connection of ``name`` before :func:`unstack` and before ``base`` goes away.

    Raises:
        RuntimeError: the shim is unavailable (see :func:`status`).
        ValueError: ``name`` is taken. LookupError: no VFS ``base``.
    """
    if not _ensure():
        raise RuntimeError(f"WAL batching is unavailable: {_reason}")
    from . import _walbatch  # type: ignore[attr-defined]

    _walbatch.stack(name, base)
    _stacked.add(name)


def is_shim(name: str | None) -> bool:
    """True if ``name`` is the shim's VFS or one :func:`stack` registered."""
    return name == VFS_NAME or name in _stacked


def unstack(name: str) -> None:
    """Unregister a VFS made by :func:`stack` (LookupError if there is none by that name)."""
    if not _ensure():
        raise RuntimeError(f"WAL batching is unavailable: {_reason}")
    from . import _walbatch  # type: ignore[attr-defined]

    _walbatch.unstack(name)
    _stacked.discard(name)


def status() -> str:
    """``"active"`` if the shim is built and loaded (it is used unless turned off), otherwise
    why not (for statistics and bug reports)."""
    _ensure()
    return _reason
