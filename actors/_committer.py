"""The committer: the store's one writer, with group commit.

Theory of operation
-------------------
Actors hand the committer *groups* of requests (everything one actor took from its mailbox
in one go). The committer loop takes every group that is waiting, from all actors, and
applies them in ONE transaction in a worker thread (``trio.to_thread.run_sync`` around
``Database.apply``: one thread hop per batch, never one per request; the trio loop never
blocks on the disk or on fsync). Inside the transaction each request has its own SAVEPOINT,
so a failed CAS or a bad command is rolled back alone. Callers are answered only after
``COMMIT`` has returned, so an acknowledged write is durable per the durability setting.

While one batch is in the thread, new groups pile up; they form the next batch. That is
the whole trick: under load each fsync pays for many requests, and with one writer nothing
else ever waits for a lock. Groups are never split across batches, and batches are applied
in arrival order, so each actor's mailbox order is the apply order.

Rejected alternatives: ``apsw.Connection.as_async()`` would hop to its thread once per
statement; a per-actor transaction would pay one fsync per actor per round; a timer-based
flush would add latency when idle. This design adds none: an idle store commits at once.

With ``group_commit=False`` each request is its own transaction (the baseline that the
benchmarks compare against); everything else is identical.
"""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import Any

import attrs
import trio

from mobstore.storage import Database, StoreClosed

from ._request import Request


@attrs.frozen
class CommitterStatistics:
    """Counters of the committer, since the store opened."""

    batches: int  #: worker-thread round trips
    commits: int  #: COMMITs executed
    requests: int  #: requests applied (successful or not)
    failed: int  #: requests answered with an error
    max_batch: int  #: the most requests in one batch
    queued: int  #: requests waiting for the next batch now

    @property
    def mean_batch(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


class _Group:
    __slots__ = ("requests", "done")

    def __init__(self, requests: list[Request]) -> None:
        self.requests = requests
        self.done = trio.Event()


class Committer:
    """The group-commit writer. Run :meth:`run` in a nursery; hand it work with :meth:`submit`."""

    def __init__(self, db: Database, *, group_commit: bool = True, max_batch: int = 1024) -> None:
        self._db = db
        self._group = group_commit
        self._max_batch = max_batch
        self._waiting: deque[_Group] = deque()
        self._inflight: list[_Group] = []
        self._queued = 0
        self._wakeup = trio.Event()
        self._closing = False
        self._stopped = False
        self._batches = self._commits = self._requests = self._failed = self._max_seen = 0

    def submit(self, requests: list[Request]) -> trio.Event:
        """Take ownership of ``requests`` (synchronously) and return an event set when all
        of them are answered. From here on the committer answers every one of them, also if
        the submitting actor dies or the store closes."""
        group = _Group(requests)
        if self._stopped:
            for r in requests:
                r.fail(StoreClosed("the store closed before this request was committed"))
            group.done.set()
            return group.done
        self._waiting.append(group)
        self._queued += len(requests)
        self._wakeup.set()
        return group.done

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The writer loop; returns after :meth:`close` once everything submitted is answered."""
        task_status.started()
        try:
            while True:
                if not self._waiting:
                    if self._closing:
                        return
                    self._wakeup = trio.Event()
                    await self._wakeup.wait()
                    continue
                groups = self._inflight = self._take()
                requests = [r for g in groups for r in g.requests]
                # Runs in a worker thread; not abandoned on cancel, so a batch is always seen
                # through to COMMIT (or rollback) and its callers are answered.
                commits = await trio.to_thread.run_sync(partial(self._db.apply, requests, group=self._group))
                self._batches += 1
                self._commits += commits
                self._requests += len(requests)
                self._max_seen = max(self._max_seen, len(requests))
                for r in requests:
                    if r.error is not None:
                        self._failed += 1
                    r.finish()
                for g in groups:
                    g.done.set()
                self._inflight = []
        finally:
            # Whatever ends this loop (close, or a bug), every request handed over is answered:
            # a caller whose request was taken cannot be cancelled, so it must never hang.
            self._stopped = True
            for g in [*self._inflight, *self._waiting]:
                for r in g.requests:
                    r.fail(StoreClosed("the store's committer stopped before this request was answered"))
                g.done.set()
            self._waiting.clear()
            self._inflight = []

    def _take(self) -> list[_Group]:
        groups = [self._waiting.popleft()]
        n = len(groups[0].requests)
        while self._waiting and n + len(self._waiting[0].requests) <= self._max_batch:
            g = self._waiting.popleft()
            n += len(g.requests)
            groups.append(g)
        self._queued -= n
        return groups

    def close(self) -> None:
        """Stop after answering everything already submitted."""
        self._closing = True
        self._wakeup.set()

    def statistics(self) -> CommitterStatistics:
        return CommitterStatistics(
            self._batches, self._commits, self._requests, self._failed, self._max_seen, self._queued
        )
