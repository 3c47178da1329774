"""The committer: the store's one writer, with group commit, on a thread of its own.

Theory of operation
-------------------
Actors hand the committer *groups* of requests (everything one actor took from its mailbox
in one go). A dedicated writer thread takes every group that is waiting, from all actors, and
applies them in ONE transaction (``Database.apply``); inside it each request has its own
SAVEPOINT (or, optimistically, none until one fails), so a failed CAS or a bad command is
rolled back alone. The thread then hands the whole batch back to the trio loop with one
``TrioToken.run_sync_soon`` call, and the loop answers the callers. Callers are answered only
after ``COMMIT`` has returned, so an acknowledged write is durable per the durability setting.

A WAL checkpoint, when due, runs on the same thread right after a batch's answers were
handed over, not inside the COMMIT of the batch that crossed the threshold (which would make
its callers wait for it): see ``mobstore.storage._checkpoint``.

While one batch commits, new groups pile up; they form the next batch, which the thread
starts the moment the previous COMMIT returns. Under load each fsync pays for many requests,
and with one writer nothing ever waits for a database lock. Groups are never split across
batches and batches are applied in arrival order, so each actor's mailbox order is the apply
order.

How the trio loop stays off the disk: the loop only appends to a deque under a
``threading.Lock`` that the writer thread holds just long enough to swap the deque out (never
during I/O), and receives results through the trio token. Disk work and fsync happen only on
the writer thread.

Rejected alternatives, measured on the 2-core target: a trio task that calls
``trio.to_thread.run_sync`` once per batch (the first version) left the disk idle while that
task waited in the run queue behind the callers it had just woken, about half of the time;
``apsw.Connection.as_async()`` hops to its thread once per statement; a per-actor transaction
pays one fsync per actor per round; a timer-based flush adds latency when idle. This design
adds none: an idle store commits at once.

With ``group_commit=False`` each request is its own transaction (the baseline that the
benchmarks compare against); everything else is identical.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import attrs
import trio

from mobstore.storage import Database, StoreClosed

from ._request import TAKEN, Request


@attrs.frozen
class CommitterStatistics:
    """Counters of the committer, since the store opened."""

    batches: int  #: batches applied by the writer thread
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


def _closed_error() -> StoreClosed:
    return StoreClosed("the store's committer stopped before this request was committed")


class Committer:
    """The group-commit writer. Run :meth:`run` in a nursery; hand it work with :meth:`submit`."""

    def __init__(self, db: Database, *, group_commit: bool = True, max_batch: int = 1024) -> None:
        self._db = db
        self._group = group_commit
        self._max_batch = max_batch
        # Shared with the writer thread, guarded by _lock: the waiting groups and the flags.
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._waiting: deque[_Group] = deque()
        self._closing = False
        # Trio side only.
        self._stopped = False
        self._finished = trio.Event()
        self._crash: BaseException | None = None
        self._batches = self._commits = self._requests = self._failed = self._max_seen = 0

    def submit(self, requests: list[Request]) -> trio.Event:
        """Take ownership of ``requests`` (synchronously) and return an event set when all
        of them are answered. From here on the committer answers every one of them, also if
        the submitting actor dies or the store closes."""
        group = _Group(requests)
        if self._stopped:
            self._fail([group])
            return group.done
        with self._lock:
            self._waiting.append(group)
            self._work.notify()
        return group.done

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start the writer thread; return once it stopped after :meth:`close` and every
        submitted request was answered. Re-raises a crash of the writer loop (a bug)."""
        token = trio.lowlevel.current_trio_token()
        thread = threading.Thread(target=self._writer, args=(token,), name="mobstore-committer", daemon=True)
        thread.start()
        task_status.started()
        try:
            await self._finished.wait()
        finally:
            if not self._finished.is_set():
                # Cancelled (the store is being torn down): stop the thread after its batch.
                self.close()
                with trio.CancelScope(shield=True):
                    await self._finished.wait()
        if self._crash is not None:
            raise self._crash

    # -- the writer thread -----------------------------------------------------------------

    def _writer(self, token: trio.lowlevel.TrioToken) -> None:
        groups: list[_Group] = []
        try:
            while True:
                with self._lock:
                    while not self._waiting and not self._closing:
                        self._work.wait()
                    if not self._waiting:
                        break
                    groups = self._take()
                requests = [r for g in groups for r in g.requests]
                commits = self._db.apply(requests, group=self._group)
                token.run_sync_soon(self._deliver, groups, commits)
                groups = []
                # After the answers are on their way: a due WAL checkpoint runs while the loop
                # serves those callers and collects the next batch (``storage._checkpoint``).
                self._db.checkpoint_if_due()
        except BaseException as exc:  # noqa: BLE001 - reported to the trio side, re-raised there
            token.run_sync_soon(self._stop, exc, groups)
            return
        token.run_sync_soon(self._stop, None, [])

    def _take(self) -> list[_Group]:
        # Everything that waits, in whole groups. (Splitting the waiting work in halves to
        # overlap the loop and the disk was measured: smaller batches pay the fixed cost of a
        # COMMIT more often and lose more than the overlap wins.)
        limit = self._max_batch
        groups = [self._waiting.popleft()]
        n = len(groups[0].requests)
        while self._waiting and n + len(self._waiting[0].requests) <= limit:
            g = self._waiting.popleft()
            n += len(g.requests)
            groups.append(g)
        return groups

    # -- back on the trio loop -------------------------------------------------------------

    def _deliver(self, groups: list[_Group], commits: int) -> None:
        # Runs as a trio "run_sync_soon" callback: it must never raise (that would crash
        # trio.run), so a failure here is recorded and ends the committer like a crash.
        try:
            n = 0
            for g in groups:
                for r in g.requests:
                    n += 1
                    if r.error is not None:
                        self._failed += 1
                    r.finish()
                g.done.set()
            self._batches += 1
            self._commits += commits
            self._requests += n
            self._max_seen = max(self._max_seen, n)
        except BaseException as exc:  # noqa: BLE001
            self._fail(groups)
            self._crash = self._crash or exc
            self.close()

    def _stop(self, crash: BaseException | None, inflight: list[_Group]) -> None:
        self._stopped = True
        self._crash = self._crash or crash
        with self._lock:
            left = list(self._waiting)
            self._waiting.clear()
        self._fail(inflight + left)
        self._finished.set()

    def _fail(self, groups: list[_Group]) -> None:
        for g in groups:
            for r in g.requests:
                if r.state is TAKEN:  # not answered yet
                    self._failed += 1
                    r.fail(_closed_error())
            g.done.set()

    def close(self) -> None:
        """Stop after committing and answering everything already submitted."""
        with self._lock:
            self._closing = True
            self._work.notify()

    def statistics(self) -> CommitterStatistics:
        with self._lock:
            queued = sum(len(g.requests) for g in self._waiting)
        return CommitterStatistics(
            self._batches, self._commits, self._requests, self._failed, self._max_seen, queued
        )
