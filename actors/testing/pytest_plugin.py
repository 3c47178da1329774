"""pytest-trio fixtures for mobstore (enable with ``pytest_plugins = [__name__]``).

Fixtures:
    backend: a :class:`~mobstore.actors.testing.Backend`, parametrised ``memory`` / ``file``
        (file stores live in ``tmp_path``; ``durability="normal"`` keeps tests fast).
    store: an open store of that backend, closed after the test.
    clock: a settable fake wall clock (:class:`FakeClock`) used by ``backend`` and ``store``.
    store_path: a store file path in ``tmp_path`` (not created).
    fault_vfs: a registered :class:`~mobstore.actors.testing.FaultVFS`, unregistered after
        the test: ``open_store(store_path, vfs=fault_vfs.vfs_name)``.
    crash_points: a :class:`~mobstore.actors.testing.CrashPoints` (seed 0, disarmed until you
        set ``at`` or ``probability``): ``open_store(..., crash_hook=crash_points)``.
    history: a fresh :class:`~mobstore.actors.testing.History`.
    kill9: ``kill9(seed=0, durability="full")`` gives a
        :class:`~mobstore.actors.testing.Kill9Harness` on a file in ``tmp_path``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest

from .._store import Store
from ._backends import Backend, FileBackend, MemoryBackend
from ._crashpoints import CrashPoints
from ._harness import Kill9Harness
from ._history import History
from ._vfs import FaultVFS


class FakeClock:
    """A wall clock for tests: returns ``now``; :meth:`advance` moves it forward."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest, tmp_path, clock: FakeClock) -> Backend:
    if request.param == "memory":
        return MemoryBackend(clock=clock)
    return FileBackend(tmp_path, clock=clock, durability="normal")


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with backend.open() as s:
        yield s


@pytest.fixture
def store_path(tmp_path) -> str:
    return os.path.join(os.fspath(tmp_path), "store.db")


@pytest.fixture
def fault_vfs() -> Iterator[FaultVFS]:
    vfs = FaultVFS()
    try:
        yield vfs
    finally:
        vfs.clear()
        if vfs.open_files == 0:  # a store still open (a failed test) keeps it registered
            vfs.close()


@pytest.fixture
def crash_points() -> CrashPoints:
    return CrashPoints(seed=0)


@pytest.fixture
def history() -> History:
    return History()


@pytest.fixture
def kill9(tmp_path) -> Callable[..., Kill9Harness]:
    def make(seed: int = 0, durability: str = "full", **options: object) -> Kill9Harness:
        return Kill9Harness(os.path.join(os.fspath(tmp_path), f"kill9-{seed}-{durability}.db"),
                            seed=seed, durability=durability, **options)  # type: ignore[arg-type]

    return make
