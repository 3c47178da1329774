"""The ``Store`` facade and ``open_store``."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import attrs
import trio

from mobstore.storage import (
    ActorCrashed,
    Command,
    Database,
    InvalidInput,
    MobRun,
    StoreClosed,
    _run_reads,
    _specs,
)
from mobstore.storage._codec import check_id, check_utf8, encode_object
from mobstore.storage._config import Validator, validate_config
from mobstore.storage._run_records import run_id_text

from ._committer import Committer, CommitterStatistics
from ._consumer import Consumer, ConsumerStatistics
from ._config import ConfigRuntime
from ._kernel import ActorStatistics, Behaviour, CrashHook
from ._mob import Mob
from ._mob_actor import MobBehaviour
from ._realm import RealmProfiles
from ._request import Request
from ._runtime import Runtime
from ._supervisor import Supervisor, SupervisorConfig
from ._tail import Tail

T = TypeVar("T")


class _Idle:
    """The behaviour of actors that keep no in-memory state (yet)."""

    async def recover(self) -> None:
        await trio.lowlevel.checkpoint()

    def committed(self, requests: list[Request]) -> None:
        pass


@attrs.frozen
class StoreStatistics:
    """A snapshot of a store's counters (``store.statistics()``)."""

    path: str | None
    durability: str
    #: True when the writer writes the WAL through the batching shim (one ``write`` per
    #: commit; ``mobstore.storage._wal_batching``). False for in-memory stores, at
    #: ``durability="normal"``, with ``wal_batching=False``, or if the shim was not built.
    wal_batching: bool
    #: WAL checkpoints completed and failed (a failed one is retried after the next commit;
    #: failures mean a failing disk). Always 0 for in-memory stores.
    checkpoints: int
    checkpoint_failures: int
    actors_alive: int
    actors_started: int
    restarts: int
    passivated: int
    escalated: tuple[str, ...]  #: actors escalated now (not since revived), by key
    queue_depth: int  #: requests waiting in all mailboxes
    committer: CommitterStatistics
    actors: tuple[ActorStatistics, ...]
    consumers: tuple[ConsumerStatistics, ...] = ()


class Store:
    """An open store. Get one from :func:`open_store`; every method is safe to call from any
    task of the trio run that opened it."""

    def __init__(
        self,
        db: Database,
        nursery: trio.Nursery,
        committer: Committer,
        config: SupervisorConfig,
        crash_hook: CrashHook | None,
        realm: dict[str, Any] | None = None,
    ) -> None:
        self._db = db
        self._committer = committer
        self._closed = False
        self._tails: dict[str, Tail] = {}  # live tails of mob logs (subscriptions)
        self._consumers: dict[tuple[str, str], Consumer] = {}  # durable consumers: running, or failed
        self._supervisor = Supervisor(nursery, committer, self._behaviour, config, crash_hook)
        # The realm config's options from open_store (initial config, validator, realm and
        # instance ids): one ConfigRuntime for the store's life, so every store.config agrees.
        self._config = ConfigRuntime(self, **(realm or {}))

    def _behaviour(self, key: str) -> Behaviour:
        kind, _, ident = key.partition(":")
        if kind == "mob":
            return MobBehaviour(self, ident)
        return _Idle()

    # -- handles ---------------------------------------------------------------------------

    def mob(self, mob_id: str) -> Mob:
        """The handle of mob ``mob_id`` (cheap; its actor starts on first use)."""
        return Mob(self, check_id(mob_id, "mob_id"))

    def runtime(self, runtime_id: str) -> Runtime:
        """The handle of runtime ``runtime_id`` (its actor starts on first use)."""
        return Runtime(self, check_id(runtime_id, "runtime_id"))

    @property
    def profiles(self) -> RealmProfiles:
        """The realm's profiles (revision CAS), served by the ``"realm"`` actor."""
        return RealmProfiles(self)

    @property
    def config(self) -> ConfigRuntime:
        """The realm config (generation CAS), served by the ``"realm"`` actor; its initial
        value, validator and metadata are ``open_store``'s ``config``, ``config_validator``,
        ``realm_id`` and ``instance_id``."""
        return self._config

    async def get_run(self, run_id: uuid.UUID | str) -> MobRun | None:
        """The flow run ``run_id`` of any mob, or ``None``. Sees every acknowledged write.

        Raises:
            InvalidInput: ``run_id`` is not a UUID or its canonical string.
        """
        return await self._read(_run_reads.get_run, run_id_text(run_id), None)

    async def list_specs(self) -> list[str]:
        """The ids of the mobs that have a spec, sorted. Sees every acknowledged write."""
        return await self._read(_specs.list_specs)

    @property
    def path(self) -> str | None:
        """The store file, or ``None`` for an in-memory store."""
        return self._db.path

    def revive(self, actor: str) -> bool:
        """Give an escalated actor a fresh start; return whether it was escalated.

        ``actor`` is a key as ``store.statistics().escalated`` and ``ActorCrashed.actor`` name
        it (``"mob:<id>"``, ``"runtime:<id>"``, ``"realm"``). An escalated actor refuses every
        call with ``ActorCrashed(escalated=True)`` until it is revived (or the store reopened):
        the supervisor gave up on it, and deciding that the cause is gone (a full disk freed,
        a bad deploy rolled back) is the application's call, not a timer's. After ``revive``,
        the next call starts a new actor with its restart count at zero. Nothing stored is
        touched: an escalated actor had answered everything it took or queued. Synchronous; a
        key that is not escalated (running, passivated, never started) is left alone::

            for key in store.statistics().escalated:
                store.revive(key)

        Raises:
            InvalidInput: ``actor`` is not a str.
            StoreClosed: the store is closed.
        """
        if type(actor) is not str:
            raise InvalidInput("actor", f"must be an actor key such as 'mob:<id>', got {type(actor).__name__}")
        if self._closed:
            raise StoreClosed()
        return self._supervisor.revive(actor)

    # -- plumbing used by the handles ------------------------------------------------------

    async def _call(self, key: str, commands: Sequence[Command], *, single: bool = True) -> Any:
        """Send one message to ``key``'s actor and wait for its answer.

        Atomic with respect to cancellation: if this raises ``Cancelled``, nothing was
        applied; if it returns, everything was (see ``_request``).
        """
        if self._closed:
            raise StoreClosed()
        req = Request(commands, single=single)
        sup = self._supervisor
        while True:
            slot = sup.slot(key)
            if slot.state == "escalated":
                raise ActorCrashed(key, slot.escalation, escalated=True)
            try:
                try:
                    slot.send.send_nowait(req)
                except trio.WouldBlock:
                    await slot.send.send(req)  # backpressure: a full mailbox makes us wait
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                if self._closed:
                    raise StoreClosed() from None
                continue  # passivated or escalated meanwhile: look the slot up again
            return await req.wait()

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read function on a reader connection in a worker thread.

        Sees every write acknowledged before it was called. Cancellation waits for the read
        to finish (it is never abandoned mid-query).
        """
        if self._closed:
            raise StoreClosed()
        return await trio.to_thread.run_sync(partial(self._db.read, fn, *args))

    # -- introspection ---------------------------------------------------------------------

    def statistics(self) -> StoreStatistics:
        """Counters of the store: actors, restarts, queue depths, commits and batch sizes."""
        sup = self._supervisor
        actors = tuple(sup.actor_statistics())
        return StoreStatistics(
            path=self._db.path,
            durability=self._db.durability,
            wal_batching=self._db.wal_batching,
            checkpoints=self._db.checkpoints[0],
            checkpoint_failures=self._db.checkpoints[1],
            actors_alive=sum(1 for a in actors if a.state in ("running", "backoff")),
            actors_started=sup.started,
            restarts=sup.restarts,
            passivated=sup.passivated,
            escalated=tuple(sup.escalated),
            queue_depth=sum(a.queue_depth for a in actors),
            committer=self._committer.statistics(),
            actors=actors,
            consumers=tuple(c.statistics() for c in self._consumers.values()),
        )

    def _stopped(self) -> None:
        """The system tasks have ended: refuse every call from now on, wake every waiter."""
        self._closed = True
        self._supervisor._closing = True
        for tail in self._tails.values():
            tail.close()

    async def _aclose(self) -> None:
        # Order matters: refuse new calls, let actors hand over what they accepted, let the
        # committer commit it, then close the database (in a thread: it may checkpoint).
        # Durable consumers first: they persist their last position while the store still
        # takes writes.
        for consumer in list(self._consumers.values()):
            await consumer.stop()
        self._closed = True
        await self._supervisor.aclose()
        self._committer.close()
        self._stopped()


_TUNING = {f.name for f in attrs.fields(SupervisorConfig)}


def _realm_options(config: Any, validator: Any, realm_id: Any, instance_id: Any) -> dict[str, Any]:
    """Check ``open_store``'s realm config options before anything is opened."""
    if config is not None:
        encode_object(config, "config")  # plain JSON object, or InvalidInput naming the path
    if validator is not None and not callable(validator):
        raise InvalidInput("config_validator", f"must be a callable or None, got {type(validator).__name__}")
    for name, value in (("realm_id", realm_id), ("instance_id", instance_id)):
        if value is not None:
            if type(value) is not str:
                raise InvalidInput(name, f"must be a str or None, got {type(value).__name__}")
            check_utf8(value, name)
    return {"initial": config, "validator": validator, "realm_id": realm_id, "instance_id": instance_id}


@asynccontextmanager
async def open_store(
    path: str | os.PathLike[str] | None = None,
    *,
    durability: str = "full",
    clock: Callable[[], datetime] | None = None,
    group_commit: bool = True,
    readers: int = 2,
    page_size: int = 1024,
    vfs: str | None = None,
    wal_batching: bool = True,
    crash_hook: CrashHook | None = None,
    config: dict[str, Any] | None = None,
    config_validator: Validator | None = validate_config,
    realm_id: str | None = None,
    instance_id: str | None = None,
    **tuning: Any,
) -> AsyncIterator[Store]:
    """Open a store: a file at ``path``, or a private in-memory store when ``path`` is None.

    Example::

        async with open_store("agents.db") as store:
            ev = await store.mob("mob-a").events.append(NewMobEvent("meerkat_spawned"))

    Args:
        path: the SQLite file (created with its directories if missing).
        durability: ``"full"`` (fsync per commit; survives power loss) or ``"normal"``
            (survives a crash of the process; the last commits may be lost on power loss).
        clock: returns the current UTC time for timestamps (default: the wall clock). It is
            called from the commit thread.
        group_commit: commit every waiting request in one transaction (default). ``False``
            gives each request its own transaction (a baseline for benchmarks).
        readers: reader connections of a file store.
        page_size: SQLite page size of a new file (1024 by default: see ``Database.open``).
        vfs: a registered SQLite VFS name for the file (fault injection); ``None`` in production.
        wal_batching: at ``durability="full"``, hand each commit's WAL writes to the kernel as
            one ``write`` (a C shim built at install time; on by default when it was built,
            see ``statistics().wal_batching``). ``False`` uses SQLite's default VFS as is.
        crash_hook: fault injection (``mobstore.actors.testing``); ``None`` in production.
        config: the realm config before its first ``set`` or ``patch`` (default ``{}``):
            what ``store.config.get()`` returns at generation 0. Nothing is written until
            the first write; a stored config always wins over it.
        config_validator: checks every new realm config before it is stored (default
            :func:`mobstore.storage.validate_config`, upstream's rules; ``None``: none).
        realm_id, instance_id: reported in the realm config's metadata.
        **tuning: fields of :class:`SupervisorConfig` (``mailbox_size``, ``idle_timeout``...).

    On exit the store stops accepting calls (they raise ``StoreClosed``), commits everything
    it had accepted, and closes the file. This drain runs shielded from cancellation of the
    enclosing scope, so accepted work is never dropped because the caller was cancelled.

    Raises:
        StoreLocked: another open store owns the file.
        IncompatibleStore: the file is foreign or from a newer mobstore (it is not touched).
        InvalidInput: a bad option.
    """
    unknown = set(tuning) - _TUNING
    if unknown:
        raise InvalidInput("open_store options", f"unknown {sorted(unknown)}; known: {sorted(_TUNING)}")
    sup = SupervisorConfig(**tuning)
    if type(group_commit) is not bool:
        raise InvalidInput("group_commit", f"must be True or False, got {group_commit!r}")
    if crash_hook is not None and not callable(crash_hook):
        raise InvalidInput("crash_hook", f"must be a callable or None, got {type(crash_hook).__name__}")
    realm = _realm_options(config, config_validator, realm_id, instance_id)
    db = await trio.to_thread.run_sync(
        partial(
            Database.open, path, durability=durability, clock=clock, readers=readers,
            page_size=page_size, vfs=vfs, wal_batching=wal_batching,
        )
    )
    # The caller's block runs inside the system nursery (its tasks must outlive the block),
    # but what the block raises is caught there and re-raised after the nursery closed:
    # a caller's InvalidInput comes out as itself, not wrapped in an ExceptionGroup.
    raised: BaseException | None = None
    try:
        async with trio.open_nursery() as outer:
            system = trio.CancelScope(shield=True)
            committer = Committer(db, group_commit=group_commit, max_batch=max(1024, sup.max_batch))
            store_box: list[Store] = []

            async def system_tasks(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                # Actors and the committer run shielded: a cancelled caller scope does not
                # tear them down mid-drain; shutdown is explicit (Store._aclose).
                with system:
                    try:
                        async with trio.open_nursery() as nursery:
                            await nursery.start(committer.run)
                            store = Store(db, nursery, committer, sup, crash_hook, realm)
                            store_box.append(store)
                            nursery.start_soon(store._supervisor.sweep_idle)
                            task_status.started()
                    finally:
                        # The system tasks end at close, or early if the committer crashed
                        # (a bug): either way the store takes no more calls (StoreClosed).
                        if store_box:
                            store_box[0]._stopped()

            # Shielded: the system tasks are shielded, so once started they run until
            # _aclose; a cancellation landing in start() would skip the finally below and
            # leave the nursery waiting for them forever. Starting takes no I/O.
            with trio.CancelScope(shield=True):
                await outer.start(system_tasks)
            store = store_box[0]
            try:
                yield store
            except BaseException as exc:  # noqa: BLE001 - re-raised below, unwrapped
                raised = exc
            finally:
                with trio.CancelScope(shield=True):
                    await store._aclose()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(db.close)
    if raised is not None:
        try:
            raise raised
        finally:
            raised = None  # no reference cycle through the frame
