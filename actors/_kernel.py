"""The actor kernel: a mailbox, and the loop one incarnation of an actor runs.

An actor owns one entity (a mob, a runtime id, the realm). Its mailbox is a bounded trio
memory channel that belongs to the *slot*, not to the incarnation: when an incarnation
crashes, the requests still queued stay in the mailbox and the next incarnation serves them.

One loop turn: wait for a request, take every other request already waiting (up to
``max_batch``), hand them to the committer as one group (ownership passes synchronously), wait
until that group is committed, then let the behaviour update its in-memory state. Each request
is one message and one SAVEPOINT, so the mailbox order is the apply order and no lock is needed.

Crash semantics: requests the incarnation took but had not yet handed to the committer are
answered with ``ActorCrashed`` by the supervisor (they were not applied). Requests already
handed over are answered by the committer with their real outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs
import trio

from ._committer import Committer
from ._request import Request


class Behaviour(Protocol):
    """What makes an actor kind: how it restores its state, and how it follows commits."""

    async def recover(self) -> None:
        """Rebuild in-memory state from the database (at every (re)start)."""

    def committed(self, requests: list[Request]) -> None:
        """Called after a group was answered (successes and failures alike)."""


#: A crash hook: ``hook(actor_key, requests)`` runs before each group is handed to the
#: committer and may raise to simulate a crash there. ``None`` in production (one ``if``).
CrashHook = Callable[[str, list[Request]], None]


@attrs.frozen
class ActorStatistics:
    """A snapshot of one actor's counters (``Mob.statistics()``, ``Store.statistics()``)."""

    key: str
    state: str  #: "running", "backoff", "escalated", "stopped"
    queue_depth: int
    queue_peak: int
    handled: int  #: requests answered with a result
    failed: int  #: requests answered with an error (including ActorCrashed)
    restarts: int


class Slot:
    """The durable part of an actor: key, mailbox, counters, and the incarnation's in-flight
    requests."""

    def __init__(self, key: str, mailbox_size: int) -> None:
        self.key = key
        self.send, self.receive = trio.open_memory_channel[Request](mailbox_size)
        self.state = "running"
        self.taken: list[Request] = []
        self.peak = 0
        self.handled = 0
        self.failed = 0
        self.restarts = 0
        self.escalation: BaseException | None = None
        self.finished = trio.Event()
        self.busy = True  # False only while parked on the mailbox
        self.last_active = 0.0
        self.idle_scope: trio.CancelScope | None = None

    def statistics(self) -> ActorStatistics:
        depth = self.receive.statistics().current_buffer_used
        return ActorStatistics(self.key, self.state, depth, self.peak, self.handled, self.failed, self.restarts)



async def run_incarnation(
    slot: Slot,
    behaviour: Behaviour,
    committer: Committer,
    *,
    max_batch: int,
    crash_hook: CrashHook | None,
    passivate: Callable[[Slot], None],
) -> None:
    """Serve ``slot``'s mailbox until it is closed (returns) or idle (passivates, returns).

    Raises whatever the behaviour or the crash hook raises: the supervisor restarts it.

    Idleness is detected by the supervisor's sweeper, not by a timeout per turn (a cancel
    scope per turn costs as much as the rest of the turn): it cancels ``slot.idle_scope``
    when the actor has been parked on an empty mailbox for ``idle_timeout``.
    """
    slot.busy = True
    await behaviour.recover()
    while True:
        with trio.CancelScope() as scope:
            slot.idle_scope = scope
            if await _serve(slot, behaviour, committer, max_batch, crash_hook):
                return  # mailbox closed
        # The sweeper found us idle. Receiving is atomic under cancellation, so nothing was
        # taken; checking the mailbox and closing it are one synchronous step, so a sender
        # either got in before (serve on, in a fresh scope) or finds the mailbox closed and
        # starts a fresh actor.
        if slot.receive.statistics().current_buffer_used == 0:
            passivate(slot)
            return


async def _serve(
    slot: Slot, behaviour: Behaviour, committer: Committer, max_batch: int, crash_hook: CrashHook | None
) -> bool:
    receive = slot.receive
    # True when this turn follows a checkpoint of the actor's own (the start, or the wait for
    # the previous group): then a request already waiting is taken without `receive()`,
    # which would yield once more to the scheduler even with a request in hand (one task
    # switch per actor per group commit saved; the turn still has its checkpoint).
    checkpointed = True
    while True:
        slot.busy = False
        slot.last_active = trio.current_time()
        first: Request | None = None
        try:
            if checkpointed:
                try:
                    first = receive.receive_nowait()
                except trio.WouldBlock:
                    pass
            if first is None:
                first = await receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return True
        slot.busy = True
        batch = _drain(first, receive, max_batch)
        depth = len(batch)  # the deepest the mailbox was when the actor looked...
        if depth >= max_batch:  # ...including what a full batch left behind
            depth += receive.statistics().current_buffer_used
        if depth > slot.peak:
            slot.peak = depth
        if not batch:
            checkpointed = False
            continue
        checkpointed = True
        slot.taken = batch
        if crash_hook is not None:
            crash_hook(slot.key, batch)
        # Ownership passes to the committer synchronously; from here on it answers them.
        done = committer.submit(batch)
        slot.taken = []
        # Paces the actor (one group in flight) so `committed` sees results in order. (`busy`
        # is True here, and the sweeper cancels only an actor parked in receive() with
        # nothing handed to it, so this wait is never cancelled by passivation.)
        await done.wait()
        for r in batch:
            if r.error is None:
                slot.handled += 1
            else:
                slot.failed += 1
        behaviour.committed(batch)


def _drain(first: Request, receive: trio.MemoryReceiveChannel[Request], max_batch: int) -> list[Request]:
    batch = [first] if first.take() else []
    while len(batch) < max_batch:
        try:
            r = receive.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            break
        if r.take():
            batch.append(r)
    return batch
