"""I/O fault sweeps: fail every write (or sync...) of a scripted workload, one at a time.

``sweep_io_faults`` runs the script once through a :class:`FaultVFS` to count the
operations of the kind and to record the final state, then once per index on a fresh file
with the fault armed there, and checks for each:

* the caller of the step that hit the fault got a typed :class:`StoreIOError`
  (``WriteFailed``, ``ReadFailed``), nothing else;
* nothing of that step is visible (the snapshot equals the one before the step), also while
  a persistent fault keeps failing it;
* a mob actor whose request failed was restarted (it rebuilds its state from the database);
* once the fault clears, the step succeeds when retried and the script ends in exactly the
  state of the fault-free run; ``PRAGMA integrity_check`` is ok, and reopening the file with
  the real VFS shows the same state.

Steps are ``Step(name, fn, actor)``: ``await fn(store)`` performs one mutating call (the
same call every time: fixed ids, and the store clock is fixed to ``T0``); ``actor`` is the
key of the actor that serves it (``"mob:<id>"``, ``"realm"``, ``"runtime:<id>"``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs
import trio

from mobstore.storage import (
    InputLifecycleState,
    InputState,
    NewMobEvent,
    Profile,
    RunApplyBoundary,
    SessionDelta,
    StoreIOError,
    _config,
    _cursors,
    _events,
    _labels,
    _profiles,
    _run_reads,
    _runtime_store,
    _specs,
)

from .._store import Store, open_store
from ._vfs import Fault, FaultVFS
from ._workload import new_run, step_parts

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
Snapshot = Callable[[Store], Awaitable[Any]]


@attrs.frozen
class Step:
    """One mutating call of a scripted workload."""

    name: str
    fn: Callable[[Store], Awaitable[Any]]
    actor: str


@attrs.frozen
class FaultOutcome:
    """What one armed index did: the step it hit (``None``: it never fired), the error the
    caller saw, whether the actor restarted, and every problem found."""

    index: int
    step: str | None
    error: str | None
    restarted: bool
    problems: tuple[str, ...]


@attrs.frozen
class SweepReport:
    """The outcome of a fault sweep: one :class:`FaultOutcome` per operation index tried."""

    op: str
    error: str
    persistent: bool
    total: int  #: operations of the kind in the fault-free run
    outcomes: tuple[FaultOutcome, ...]

    @property
    def ok(self) -> bool:
        """True if no injected fault lost, tore or corrupted anything."""
        return all(not o.problems for o in self.outcomes)

    def problems(self) -> list[str]:
        """One line per problem found: ``"<op>#<index> (<step>): <what>"``."""
        return [f"{self.op}#{o.index} ({o.step}): {p}" for o in self.outcomes for p in o.problems]


async def integrity(store: Store) -> str:
    """``PRAGMA integrity_check`` of an open file store (``"ok"`` or the complaints)."""

    def check() -> str:
        with store._db.writer() as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        return "ok" if rows == ["ok"] else "; ".join(rows)

    return await trio.to_thread.run_sync(check)


async def sweep_io_faults(
    directory: str | os.PathLike[str],
    steps: Sequence[Step],
    snapshot: Snapshot,
    *,
    op: str = "write",
    error: str = "ioerr",
    persistent: bool = False,
    indices: Sequence[int] | None = None,
    durability: str = "full",
    **open_options: Any,
) -> SweepReport:
    """Fail operation ``op`` at every index (or at ``indices``) of ``steps``; see the module
    docstring. Returns a :class:`SweepReport` (``report.ok``, ``report.problems()``)."""
    directory = os.fspath(directory)
    opts = {"durability": durability, "clock": lambda: T0, "backoff_base": 0.0, "idle_timeout": None,
            "max_restarts": 100, **open_options}
    tag = f"{op}-{error}-{'p' if persistent else 't'}"
    with FaultVFS() as vfs:
        async with open_store(_fresh(directory, f"count-{tag}.db"), vfs=vfs.vfs_name, **opts) as store:
            vfs.reset()
            for s in steps:
                await s.fn(store)
            total = vfs.counts()[op]
            final = await snapshot(store)
    outcomes = []
    for i in indices if indices is not None else range(total):
        path = _fresh(directory, f"{tag}-{i}.db")
        outcomes.append(await _one(path, steps, snapshot, final, Fault(op, i, error, persistent), opts))
    return SweepReport(op, error, persistent, total, tuple(outcomes))


def _fresh(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return path


async def _one(path: str, steps: Sequence[Step], snapshot: Snapshot, final: Any, fault: Fault, opts: dict[str, Any]) -> FaultOutcome:
    problems: list[str] = []
    hit_step = err_name = None
    restarted = False
    with FaultVFS() as vfs:
        async with open_store(path, vfs=vfs.vfs_name, **opts) as store:
            vfs.reset()
            vfs.arm(fault)
            for s in steps:
                before = await snapshot(store)
                restarts = store.statistics().restarts
                try:
                    await s.fn(store)
                    continue
                except StoreIOError as exc:
                    hit_step, err_name = s.name, type(exc).__name__
                except Exception as exc:  # noqa: BLE001 - reported
                    problems.append(f"untyped error {type(exc).__name__}: {exc}")
                    hit_step = s.name
                if await snapshot(store) != before:
                    problems.append("the failed call is (partly) visible")
                if fault.persistent:
                    try:
                        await s.fn(store)
                        problems.append("the call succeeded while the fault persisted")
                    except StoreIOError:
                        if await snapshot(store) != before:
                            problems.append("the failed retry is (partly) visible")
                vfs.clear()
                try:
                    await s.fn(store)  # the disk is healthy again
                except Exception as exc:  # noqa: BLE001 - reported
                    problems.append(f"the retry after the fault cleared failed: {type(exc).__name__}: {exc}")
                restarted = store.statistics().restarts > restarts
                if s.actor.startswith("mob:") and not restarted:
                    problems.append(f"actor {s.actor} was not restarted after the I/O error")
            if not vfs.fired:
                hit_step = None
            if await snapshot(store) != final:
                problems.append("the final state differs from the fault-free run")
            if (check := await integrity(store)) != "ok":
                problems.append(f"integrity_check: {check}")
    async with open_store(path, **opts) as store:
        if await snapshot(store) != final:
            problems.append("after reopening, the state differs from the fault-free run")
    return FaultOutcome(fault.nth, hit_step, err_name, restarted, tuple(problems))


# -- the scripted workload used by mobstore's own sweeps (and the docs' example) -------------

RUN_ID = "11111111-1111-4111-8111-111111111111"
RT_RUN = "22222222-2222-4222-8222-222222222222"
INPUT_ID = "33333333-3333-4333-8333-333333333333"


def _run_step(k: int) -> Callable[[Store], Awaitable[Any]]:
    async def fn(store: Store) -> Any:
        mob = store.mob("m")
        if k == 0:
            return await mob.runs.create_run(new_run("m", RUN_ID))
        kind, parts = step_parts(k, RUN_ID)
        if kind == "commit":
            res = await mob.commit(*[getattr(mob.cmd, m)(*a) for m, a in parts])
            assert res.ok, res
            return res
        ((method, args),) = parts
        assert await getattr(mob.runs, method)(*args) is True
        return True

    return fn


def _boundary(n: int) -> Callable[[Store], Awaitable[Any]]:
    async def fn(store: Store) -> Any:
        session = {"version": 1, "id": "s", "messages": [{"n": i} for i in range(n)]}
        state = InputState(input_id=INPUT_ID, current_state=InputLifecycleState.ACCEPTED, created_at=T0)
        return await store.runtime("rt").commit_session_boundary(
            SessionDelta.from_session(session), RT_RUN, RunApplyBoundary.RUN_START, [INPUT_ID], [state]
        )

    return fn


def _ev(kind: str, **payload: Any) -> NewMobEvent:
    return NewMobEvent(kind, payload)


def scripted_steps() -> list[Step]:
    """A small script over every store family: events, atomic batches, specs, the run CAS
    family (the frame and loop wrappers included), labels, cursors, profiles, config, and a
    runtime boundary."""
    m = "mob:m"
    steps = [
        Step("append", lambda s: s.mob("m").events.append(_ev("a", i=1)), m),
        Step("append_batch", lambda s: s.mob("m").events.append_batch([_ev("b", i=2), _ev("b", i=3)]), m),
        # Two callers at once: the actor hands both over as one group, so the batch holds two
        # requests and takes the optimistic path (no savepoints). Identical events, so the
        # order the two land in does not change the final state.
        Step("two appends at once", lambda s: _at_once(s.mob("m").events.append(_ev("twin")),
                                                       s.mob("m").events.append(_ev("twin"))), m),
        Step("put_spec", lambda s: s.mob("m").spec.put_spec({"v": 1}, revision=0), m),
        Step("commit(spec+append)", lambda s: s.mob("m").commit(
            s.mob("m").cmd.put_spec({"v": 2}, revision=1), s.mob("m").cmd.append(_ev("spec", rev=2))), m),
    ]
    steps += [Step(f"run step {k}", _run_step(k), m) for k in range(10)]
    steps += [
        Step("labels.set", lambda s: s.mob("m").labels.set({"team": "a"}), m),
        Step("cursors.set", lambda s: s.mob("m").cursors.set(3, "c"), m),
        Step("profiles.create", lambda s: s.profiles.create("p", Profile("model-1")), "realm"),
        Step("profiles.update", lambda s: s.profiles.update("p", Profile("model-2"), 1), "realm"),
        Step("config.patch", lambda s: s.config.patch({"x": {"n": 1}}, expected_generation=0), "realm"),
        Step("commit_session_boundary", _boundary(2), "runtime:rt"),
        Step("append after all", lambda s: s.mob("m").events.append(_ev("z")), m),
    ]
    return steps


async def _at_once(*calls: Awaitable[Any]) -> list[Any]:
    """Await ``calls`` concurrently; re-raise the first error (a StoreIOError as itself)."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    async def one(i: int, call: Awaitable[Any]) -> None:
        try:
            results[i] = await call
        except Exception as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for i, call in enumerate(calls):
            nursery.start_soon(one, i, call)
    if errors:
        raise errors[0]
    return results


def _read_all(conn: Any) -> tuple[Any, ...]:
    return (
        _events.replay_all(conn, "m"),
        _events.last_cursor(conn, "m"),
        _specs.get_spec(conn, "m"),
        _run_reads.get_run(conn, RUN_ID, "m"),
        _labels.list_labels(conn, "m"),
        _cursors.list_cursors(conn, "m"),
        _profiles.list_profiles(conn),
        _config.get_config(conn, "{}"),
        _runtime_store.load_boundary_receipts(conn, "rt", RT_RUN),
        _runtime_store.load_session_snapshot(conn, "rt"),
        _runtime_store.load_input_states(conn, "rt"),
    )


async def scripted_snapshot(store: Store) -> Any:
    """Everything :func:`scripted_steps` can change, as plain comparable values, read in one
    read transaction (the public reads would do the same in eleven)."""
    return await store._read(_read_all)
