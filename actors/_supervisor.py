"""The supervisor: starts actors lazily, restarts them, escalates, passivates.

Theory of operation
-------------------
Every actor lives in a :class:`~._kernel.Slot` keyed by ``"mob:<id>"``, ``"runtime:<id>"``
or ``"realm"``. :meth:`Supervisor.slot` returns the live slot for a key, creating it and
starting its supervision task in the store's nursery on first use.

The supervision task runs incarnations one after another:

* An incarnation that returns normally ends the slot: the mailbox was closed (store
  closing) or the actor passivated after ``idle_timeout`` without messages. A passivated slot
  is removed from the registry first, so the next call for that key starts a fresh actor that
  rebuilds whatever state it keeps (``Behaviour.recover``; today nothing needs a read).
* An incarnation that raises has crashed. Requests it had taken but not handed to the
  committer are answered with ``ActorCrashed`` (they were not applied; requests already with
  the committer get their true outcome). If the actor has already been restarted
  ``max_restarts`` times within ``restart_window`` seconds, this crash *escalates*: the slot is
  marked escalated, the requests it had taken, every queued request and every later call for
  that key get ``ActorCrashed(escalated=True)``, and the store's statistics name it, until
  ``Store.revive`` forgets the slot. Otherwise it
  sleeps an exponential backoff (``backoff_base * 2**(n-1)`` capped at ``backoff_max``, n =
  crashes in the window) and starts the next incarnation, which serves the queued requests
  in order.

Restart-intensity limits as in Erlang/OTP; unlike mobkit's fixed budget (SEMANTICS.md §8.4)
the window forgets old crashes, so a rare crash never accumulates into a shutdown.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs
import trio

from mobstore.storage import ActorCrashed, InvalidInput, StoreClosed

from ._committer import Committer
from ._kernel import ActorStatistics, Behaviour, CrashHook, Slot, run_incarnation


@attrs.frozen
class SupervisorConfig:
    """Tuning of supervision; every field can be passed to ``open_store`` by name."""

    mailbox_size: int = 256  #: bounded mailbox: a flooded actor makes its callers wait
    max_batch: int = 256  #: the most requests one actor hands to the committer at once
    idle_timeout: float | None = 300.0  #: seconds without messages before passivation
    backoff_base: float = 0.01  #: first restart delay, seconds; doubles per crash in the window
    backoff_max: float = 1.0  #: the longest restart delay, seconds
    max_restarts: int = 5  #: restarts allowed within restart_window; one more crash escalates
    restart_window: float = 10.0  #: seconds over which crashes are counted

    def __attrs_post_init__(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise InvalidInput(name, f"must be {rule}, got {getattr(self, name)!r}")

        def number(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        for name in ("mailbox_size", "max_batch"):
            v = getattr(self, name)
            need(type(v) is int and v >= 1, name, "an int >= 1")
        need(type(self.max_restarts) is int and self.max_restarts >= 0, "max_restarts", "an int >= 0")
        it = self.idle_timeout
        need(it is None or (number(it) and it > 0), "idle_timeout", "None or a number of seconds > 0")
        for name in ("backoff_base", "backoff_max"):
            v = getattr(self, name)
            need(number(v) and v >= 0, name, "a number of seconds >= 0")
        need(number(self.restart_window) and self.restart_window > 0, "restart_window", "a number of seconds > 0")


class Supervisor:
    """Owns every actor slot of a store."""

    def __init__(
        self,
        nursery: trio.Nursery,
        committer: Committer,
        factory: Callable[[str], Behaviour],
        config: SupervisorConfig,
        crash_hook: CrashHook | None = None,
    ) -> None:
        self._nursery = nursery
        self._committer = committer
        self._factory = factory
        self._config = config
        self.crash_hook = crash_hook
        self._slots: dict[str, Slot] = {}
        self._closing = False
        self._sweeper = trio.CancelScope()
        self.started = 0
        self.restarts = 0
        self.passivated = 0
        self.escalated: list[str] = []

    async def sweep_idle(self) -> None:
        """Passivate actors parked on an empty mailbox for ``idle_timeout`` (checked every
        quarter of it). Runs for the life of the store when ``idle_timeout`` is set."""
        timeout = self._config.idle_timeout
        if timeout is None:
            return
        with self._sweeper:
            while True:
                await trio.sleep(timeout / 4)
                self._sweep(trio.current_time() - timeout)

    def _sweep(self, horizon: float) -> None:
        """Passivate every actor idle since before ``horizon`` and parked in ``receive()``
        on an empty mailbox. Parked *right now* matters: a send hands its request straight
        to a parked receiver (the buffer stays empty and ``busy`` false until the actor
        runs), and cancelling then would cancel the actor later, in its wait for the
        commit, skipping ``committed`` (tail heads not advanced: waiters never woken). A
        handed-over request takes the actor off the channel's waiting list at once."""
        for slot in list(self._slots.values()):
            if (
                not slot.busy
                and slot.last_active <= horizon
                and slot.idle_scope is not None
                and (stats := slot.receive.statistics()).current_buffer_used == 0
                and stats.tasks_waiting_receive > 0
            ):
                slot.idle_scope.cancel()

    def slot(self, key: str) -> Slot:
        """The live slot for ``key``, started on first use. Synchronous.

        Raises StoreClosed once the store closes, and also when the store's system tasks
        have ended without a close (the committer crashed, a bug): a slot still registered
        but stopped has no actor and never gets one again.
        """
        slot = self._slots.get(key)
        if slot is None:
            if self._closing:
                raise StoreClosed()
            slot = Slot(key, self._config.mailbox_size)
            try:
                self._nursery.start_soon(self._supervise, slot, self._factory(key), name=f"mobstore actor {key}")
            except RuntimeError:  # the system nursery has ended: nothing can run any more
                raise StoreClosed("the store's system tasks have stopped") from None
            self._slots[key] = slot  # only once its actor is on its way
            self.started += 1
        elif slot.state == "stopped":
            raise StoreClosed("the store's system tasks have stopped")
        return slot

    async def _supervise(self, slot: Slot, behaviour: Behaviour) -> None:
        cfg = self._config
        crashes: deque[float] = deque()
        try:
            while True:
                try:
                    await run_incarnation(
                        slot,
                        behaviour,
                        self._committer,
                        max_batch=cfg.max_batch,
                        crash_hook=self.crash_hook,
                        passivate=self._passivate,
                    )
                    return
                except Exception as exc:  # noqa: BLE001 - any crash of actor code is supervised
                    now = trio.current_time()
                    crashes.append(now)
                    while crashes and crashes[0] < now - cfg.restart_window:
                        crashes.popleft()
                    escalate = len(crashes) > cfg.max_restarts
                    # Decided first, so that the requests this crash drops are told the truth:
                    # "retry it" only if the actor comes back.
                    self._answer_taken(slot, exc, escalated=escalate)
                    if escalate:
                        self._escalate(slot, exc)
                        return
                    slot.state = "backoff"
                    await trio.sleep(min(cfg.backoff_base * 2.0 ** min(len(crashes) - 1, 60), cfg.backoff_max))
                    slot.restarts += 1
                    self.restarts += 1
                    slot.state = "running"
                    behaviour = self._factory(slot.key)
        finally:
            if slot.state != "escalated":
                slot.state = "stopped"
            slot.send.close()  # nobody can queue into a slot with no actor (blocked senders wake)
            # Taken requests cannot be withdrawn by their callers, so they are always answered.
            self._answer_taken(slot, StoreClosed("the store closed before this request was committed"))
            self._answer_queued(slot, lambda: StoreClosed("the store closed before this request was taken"))
            slot.finished.set()

    @staticmethod
    def _answer_taken(slot: Slot, exc: BaseException, *, escalated: bool = False) -> None:
        taken, slot.taken = slot.taken, []
        for r in taken:
            slot.failed += 1
            r.fail(exc if isinstance(exc, StoreClosed) else ActorCrashed(slot.key, exc, escalated=escalated))

    def _escalate(self, slot: Slot, exc: BaseException) -> None:
        slot.state = "escalated"
        slot.escalation = exc
        self.escalated.append(slot.key)
        slot.send.close()
        self._answer_queued(slot, lambda: ActorCrashed(slot.key, exc, escalated=True))

    @staticmethod
    def _answer_queued(slot: Slot, error: Callable[[], BaseException]) -> None:
        while True:
            try:
                r = slot.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if r.take():
                slot.failed += 1
                r.fail(error())  # type: ignore[arg-type]
        slot.receive.close()

    def revive(self, key: str) -> bool:
        """Forget the escalated slot of ``key`` so that the next call starts a fresh actor.
        False (and nothing changes) if ``key`` is not escalated."""
        slot = self._slots.get(key)
        if slot is None or slot.state != "escalated":
            return False
        # The escalated slot answered everything it held and its mailbox is closed: a caller
        # blocked sending to it gets ClosedResourceError and looks the key up again.
        del self._slots[key]
        self.escalated.remove(key)
        return True

    def _passivate(self, slot: Slot) -> None:
        if self._slots.get(slot.key) is slot:
            del self._slots[slot.key]
        slot.send.close()
        slot.receive.close()
        self.passivated += 1

    # -- lifetime and introspection --------------------------------------------------------

    async def aclose(self) -> None:
        """Stop taking new work; let every actor drain its mailbox; wait for them all."""
        self._closing = True
        self._sweeper.cancel()
        slots = list(self._slots.values())
        for s in slots:
            s.send.close()
        for s in slots:
            await s.finished.wait()

    def actor_statistics(self) -> list[ActorStatistics]:
        return [s.statistics() for s in self._slots.values()]

    def get(self, key: str) -> Slot | None:
        return self._slots.get(key)
