"""Cancel a call at its k-th checkpoint: the tool behind cancellation sweeps.

A trio call may be cancelled at any checkpoint it passes. To prove a call "atomic with
respect to cancellation" (it raises ``Cancelled`` and wrote nothing, or returns and wrote
everything) every checkpoint must be tried. :func:`call_cancelled_at` runs ``fn()`` in a
cancel scope and cancels that scope just before the calling task resumes for the k-th time
(a trio instrument counts the task's steps), so the ``Cancelled`` lands on the call's
(k+1)-th checkpoint; ``k=0`` cancels before the call starts. With ``count="all"`` the
instrument counts the steps of *every* task instead (the actor's, the committer's
callbacks...), so the cancellation also lands while the caller is parked: while its request
is still queued, just after the actor took it, while it commits. A sweep tries k = 0, 1, 2,
... on a fresh state each time, until ``cancel_issued`` is false (the call finished first).

What to check after each k is the caller's business: for a mobstore call, that the state is
either exactly as before (cancelled) or exactly as after an uncancelled call (returned), and
that the actor still serves the next call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio


@attrs.frozen
class CancelOutcome:
    """One try: the checkpoint index ``k``, whether the call completed (returned or raised
    something other than ``Cancelled``), its result or exception, and whether the cancel was
    issued at all (``False``: the call finished before its k-th resume)."""

    k: int
    completed: bool
    result: Any
    error: BaseException | None
    cancel_issued: bool


class _CancelAtStep(trio.abc.Instrument):
    def __init__(self, task: trio.lowlevel.Task | None, k: int, scope: trio.CancelScope) -> None:
        self.task = task
        self.k = k
        self.scope = scope
        self.steps = 0
        self.issued = False

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.task is None or task is self.task:
            self.steps += 1
            if self.steps == self.k:
                self.issued = True
                self.scope.cancel()


async def call_cancelled_at(k: int, fn: Callable[[], Awaitable[Any]], *, count: str = "task") -> CancelOutcome:
    """Run ``fn()`` and cancel it at its checkpoint number ``k`` (``count="task"``) or at the
    k-th task step of the whole run (``count="all"``); see the module docstring. Exceptions
    other than ``Cancelled`` are returned in the outcome, not raised."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k!r}")
    if count not in ("task", "all"):
        raise ValueError(f"count must be 'task' or 'all', got {count!r}")
    task = trio.lowlevel.current_task() if count == "task" else None
    result: Any = None
    error: BaseException | None = None
    completed = False
    with trio.CancelScope() as scope:
        probe = _CancelAtStep(task, k, scope)
        if k == 0:
            probe.issued = True
            scope.cancel()
        trio.lowlevel.add_instrument(probe)
        try:
            try:
                result = await fn()
            except trio.Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - returned to the caller
                error = exc
            completed = True
        finally:
            trio.lowlevel.remove_instrument(probe)
    return CancelOutcome(k, completed, result, error, probe.issued)
