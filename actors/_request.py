"""A request: one message to an actor, and the way its answer gets back to the caller.

Theory of operation
-------------------
A call is ``send`` into the actor's bounded mailbox, then a park until the committer answers.
The request moves through these states, each move made synchronously (between two
checkpoints), so no interleaving can see a half-made move::

    QUEUED --(actor takes it)--> TAKEN --(committer answers)--> DONE
       \\--(caller cancelled)--> WITHDRAWN   (the actor drops it unseen)

Cancellation is *atomic*, like a trio primitive: if the call raises ``Cancelled``, nothing
of it was written; if it returns, all of it was. While the request is QUEUED, cancelling the
caller withdraws it. Once TAKEN it is on its way into a transaction and cannot be recalled,
so the cancellation *fails* (as ``trio.to_thread.run_sync`` does for a running thread): the
caller keeps waiting, gets the real answer, and the cancellation is delivered at its next
checkpoint. The wait is bounded by one group commit.

Why the low-level ``wait_task_rescheduled`` and not a ``trio.Event`` or a reply channel: the
abort callback is the only place that can decide "withdraw or keep waiting" atomically, and
parking the task directly is the cheapest reply trio offers (no channel, no event object).

The committer may answer before the caller parks (a caller that was blocked in ``send``
resumes only after the actor took its request), so the answer is stored first and the task
rescheduled only if it is parked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import outcome
import trio

from mobstore.storage import Command, MobStoreError

QUEUED, TAKEN, DONE, WITHDRAWN = "queued", "taken", "done", "withdrawn"


class Request:
    """One message: commands applied all-or-nothing in one SAVEPOINT (a storage ``Unit``)."""

    __slots__ = ("commands", "results", "error", "state", "single", "_task", "_outcome")

    def __init__(self, commands: Sequence[Command], *, single: bool) -> None:
        self.commands = commands
        self.results: list[Any] | None = None
        self.error: BaseException | None = None
        self.state = QUEUED
        self.single = single
        self._task: trio.lowlevel.Task | None = None
        self._outcome: outcome.Outcome | None = None

    # -- the answering side (actor, committer, supervisor): synchronous ----------------------

    def take(self) -> bool:
        """Mark as taken by the actor; False if the caller withdrew it (drop it)."""
        if self.state is WITHDRAWN:
            return False
        self.state = TAKEN
        return True

    def finish(self) -> None:
        """Answer with ``results``/``error`` as the committer set them."""
        if self.error is not None:
            self.reply(outcome.Error(self.error))
        elif self.single:
            self.reply(outcome.Value(self.results[0] if self.results else None))
        else:
            self.reply(outcome.Value(self.results))

    def fail(self, error: MobStoreError) -> None:
        """Answer with ``error`` (the request was not applied); a no-op if answered already."""
        if self.state is DONE or self.state is WITHDRAWN:
            return
        self.error = error  # so that the counters see a failure
        self.reply(outcome.Error(error))

    def reply(self, result: outcome.Outcome) -> None:
        if self.state is DONE or self.state is WITHDRAWN:
            return
        self.state = DONE
        self._outcome = result
        if self._task is not None:
            task, self._task = self._task, None
            trio.lowlevel.reschedule(task, result)

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        # Called by trio when the parked caller is cancelled: withdraw if still queued,
        # otherwise refuse (the request is on its way into a transaction).
        if self.state is QUEUED:
            self.state = WITHDRAWN
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED
        return trio.lowlevel.Abort.FAILED

    # -- the calling side ------------------------------------------------------------------

    async def wait(self) -> Any:
        """Park until answered; see the module docstring for cancellation."""
        if self._outcome is None:
            self._task = trio.lowlevel.current_task()
            return await trio.lowlevel.wait_task_rescheduled(self._abort)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return self._outcome.unwrap()
