"""Backends for contract tests: how to open (and reopen) a store of one kind."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Callable

from .._store import Store, open_store


class Backend:
    """Opens stores of one kind with fixed options. ``persistent`` backends keep data across
    :meth:`open` calls (a file); the in-memory one starts empty each time."""

    name = "abstract"
    persistent = False

    def __init__(self, *, clock: Callable[[], datetime] | None = None, **options: Any) -> None:
        self.clock = clock
        self.options = options

    @asynccontextmanager
    async def open(self, **overrides: Any) -> AsyncIterator[Store]:
        opts = {"clock": self.clock, **self.options, **overrides}
        async with open_store(self.path, **opts) as store:
            yield store

    @property
    def path(self) -> str | None:
        return None


class MemoryBackend(Backend):
    name = "memory"


class FileBackend(Backend):
    name = "file"
    persistent = True

    def __init__(self, directory: str | os.PathLike[str], **kw: Any) -> None:
        super().__init__(**kw)
        self._path = os.path.join(os.fspath(directory), "store.db")

    @property
    def path(self) -> str:
        return self._path
