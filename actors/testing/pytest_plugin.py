"""pytest-trio fixtures for mobstore (enable with ``pytest_plugins = [__name__]``).

Fixtures:
    backend: a :class:`~mobstore.actors.testing.Backend`, parametrised ``memory`` / ``file``
        (file stores live in ``tmp_path``; ``durability="normal"`` keeps tests fast).
    store: an open store of that backend, closed after the test.
    clock: a settable fake wall clock (:class:`FakeClock`) used by ``backend`` and ``store``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

from .._store import Store
from ._backends import Backend, FileBackend, MemoryBackend


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
