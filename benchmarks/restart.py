"""Restart-to-ready time: how long until a mob answers again after its actor crashed, and
after the whole store was closed and reopened.

Each system gets a fresh file holding ``mobs`` mobs x ``events`` events (small JSON payloads,
written in batches of 1,000) and ``runs`` flow runs per mob with two frames each, built
untimed. Then, on that file:

1. ``actor crash``: ``workers`` trio tasks, task i owning mobs i, i + workers, ... (so
   ``workers <= mobs``). One operation: crash the actor of the task's next mob (a crash hook,
   as ``mobstore.actors.testing.CrashPoints`` installs, raises ``InjectedCrash`` when the
   actor hands over the next append; that append is answered with ``ActorCrashed``, not
   applied), then retry the append. (``workers`` above ``mobs`` is lowered to ``mobs``.) Latency: from the crash to the retried append being
   acknowledged (durable), i.e. the supervisor's restart, the new incarnation's recovery from
   the database, and one commit. ``ops`` operations per task. Supervision: ``backoff``
   seconds of restart delay (default 0: the mechanism alone; the store's own default is
   0.01 s, doubling per crash within 10 s), never escalating.
2. ``reopen``: ``reopens`` times: open the store, append one event to every mob at once
   (``mobs`` tasks), close it. Latency: from the start of the open to the last mob's first
   append being acknowledged; the close (a WAL checkpoint) is outside it but inside the
   wall time.

Systems, each on its own file, in this order:

* ``mobstore``: group commit on (with ``group_commit=False``: off, named ``mobstore (group
  commit off)``).
* ``mobstore, no group commit``: ``open_store(..., group_commit=False)``.
* ``naive sqlite3 threads``: stdlib ``sqlite3`` on an events table of the same size (WAL,
  the same synchronous setting, busy timeout 30 s). Actor crash = a worker thread drops its
  connection and restarts: connect, ``BEGIN IMMEDIATE``, read the mob's ``MAX(cursor)``,
  insert one event, ``COMMIT`` (``workers`` threads). Reopen = connect, then for each mob in
  turn ``BEGIN IMMEDIATE``, ``MAX(cursor)``, insert, ``COMMIT``; close.

Rows: ``<system>: actor crash`` and ``<system>: reopen``; latency percentiles are
restart-to-ready times, the throughput column is restarts per second (wall time of the
whole loop, crashes or open + appends + close included). :func:`render` prints one table
per scenario, rows named by system.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence

import attrs
import trio

from mobstore.actors import ActorCrashed, FrameSnapshot, KernelState, MobRun, NewMobEvent, open_store
from mobstore.actors.testing import InjectedCrash

from ._stats import Result, naive_connect, naive_create, run_tasks, run_threads, table

DEFAULTS = {
    "workers": 4, "ops": 50, "mobs": 16, "events": 5_000, "runs": 2, "reopens": 20, "backoff": 0.0,
    "durability": "full",
}
_BATCH = 1_000
_SCENARIOS = ("actor crash", "reopen")


class _CrashOnDemand:
    """A crash hook: crashes the actor of an armed key once, and notes when."""

    def __init__(self) -> None:
        self.armed: set[str] = set()
        self.crashed_at: dict[str, float] = {}
        self.fired = 0

    def __call__(self, key: str, _requests: object) -> None:
        if key in self.armed:
            self.armed.discard(key)
            self.crashed_at[key] = time.perf_counter()
            self.fired += 1
            raise InjectedCrash(key, self.fired)


def _event(n: int) -> NewMobEvent:
    return NewMobEvent("step_completed", {"step": f"s{n}", "n": n})


async def _populate(path: str, mobs: int, events: int, runs: int, durability: str) -> None:
    async with open_store(path, durability=durability) as store:
        for m in range(mobs):
            mob = store.mob(f"mob-{m}")
            for start in range(0, events, _BATCH):
                await mob.events.append_batch([_event(n) for n in range(start, min(events, start + _BATCH))])
            for _ in range(runs):
                run = await mob.runs.create_run(MobRun.pending(mob_id=mob.mob_id, flow_id="flow"))
                for f in ("root", "step-1"):
                    await mob.runs.cas_frame_state(run.run_id, f, None, FrameSnapshot(KernelState("Running")))


async def _mobstore_crash(path: str, workers: int, ops: int, mobs: int, backoff: float, durability: str,
                          group_commit: bool) -> tuple[list[float], float]:
    hook, lat, clock = _CrashOnDemand(), [], time.perf_counter
    tuning = {"backoff_base": backoff, "max_restarts": 1 << 30}
    async with open_store(path, durability=durability, group_commit=group_commit, crash_hook=hook, **tuning) as store:
        owned = [[f"mob-{m}" for m in range(i, mobs, workers)] for i in range(workers)]

        async def task(i: int) -> None:
            for k in range(ops):
                mob = store.mob(owned[i][k % len(owned[i])])
                hook.armed.add(mob._key)
                try:
                    await mob.events.append(_event(-1))
                except ActorCrashed:
                    pass
                else:
                    raise AssertionError(f"the actor of {mob.mob_id} did not crash")
                await mob.events.append(_event(k))
                lat.append(clock() - hook.crashed_at[mob._key])

        for m in range(mobs):  # every actor started (and recovered) before the first crash
            await store.mob(f"mob-{m}").events.last_cursor()
        seconds = await run_tasks(task, workers)
    return lat, seconds


async def _mobstore_reopen(path: str, mobs: int, reopens: int, durability: str,
                           group_commit: bool) -> tuple[list[float], float]:
    lat, clock = [], time.perf_counter
    t0 = clock()
    for k in range(reopens):
        t = clock()
        async with open_store(path, durability=durability, group_commit=group_commit) as store:
            async with trio.open_nursery() as nursery:
                for m in range(mobs):
                    nursery.start_soon(store.mob(f"mob-{m}").events.append, _event(k))
            lat.append(clock() - t)
    return lat, clock() - t0


async def _mobstore(path: str, *, workers: int, ops: int, mobs: int, events: int, runs: int, reopens: int,
                    backoff: float, durability: str, group_commit: bool, name: str) -> list[Result]:
    await _populate(path, mobs, events, runs, durability)
    settings = dict(system=name, workers=workers, mobs=mobs, events=events, runs=runs, durability=durability,
                    group_commit=group_commit)
    lat, seconds = await _mobstore_crash(path, workers, ops, mobs, backoff, durability, group_commit)
    crash = Result.of(f"{name}: actor crash", lat, seconds, scenario="actor crash", ops=ops, backoff=backoff,
                      **settings)
    lat, seconds = await _mobstore_reopen(path, mobs, reopens, durability, group_commit)
    return [crash, Result.of(f"{name}: reopen", lat, seconds, scenario="reopen", reopens=reopens, **settings)]


# -- the naive baseline -------------------------------------------------------------------


def _naive_append(con: sqlite3.Connection, mob: str, n: int) -> None:
    con.execute("BEGIN IMMEDIATE")
    (cur,) = con.execute("SELECT COALESCE(MAX(cursor), 0) + 1 FROM events WHERE mob_id = ?", (mob,)).fetchone()
    con.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                (mob, cur, time.time(), "step_completed", json.dumps({"step": f"s{n}", "n": n})))
    con.execute("COMMIT")


def _naive_populate(path: str, mobs: int, events: int, runs: int) -> None:
    con = naive_create(
        path,
        "CREATE TABLE events (mob_id TEXT, cursor INTEGER, ts REAL, kind TEXT, payload TEXT,"
        " PRIMARY KEY (mob_id, cursor));"
        "CREATE TABLE frames (run_id TEXT, frame_id TEXT, state TEXT, PRIMARY KEY (run_id, frame_id));",
    )
    now = time.time()
    for m in range(mobs):
        con.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
            [(f"mob-{m}", n + 1, now, "step_completed", json.dumps({"step": f"s{n}", "n": n})) for n in range(events)],
        )
        con.executemany("INSERT INTO frames VALUES (?, ?, ?)",
                        [(f"run-{m}-{r}", f, '{"phase":"Running","fields":{}}') for r in range(runs) for f in ("root", "step-1")])
    con.commit()
    con.close()


def _naive(path: str, *, workers: int, ops: int, mobs: int, events: int, runs: int, reopens: int,
           durability: str, **_: object) -> list[Result]:
    _naive_populate(path, mobs, events, runs)
    name = "naive sqlite3 threads"
    settings = dict(system=name, workers=workers, mobs=mobs, events=events, runs=runs, durability=durability)
    lat: list[list[float]] = [[] for _ in range(workers)]

    def worker(i: int) -> None:
        owned = [f"mob-{m}" for m in range(i, mobs, workers)]
        con = naive_connect(path, durability)
        for k in range(ops):
            t = time.perf_counter()
            con.close()  # the crash: the thread's connection and state are gone
            con = naive_connect(path, durability)
            _naive_append(con, owned[k % len(owned)], k)
            lat[i].append(time.perf_counter() - t)
        con.close()

    seconds = run_threads(worker, workers)
    crash = Result.of(f"{name}: actor crash", [x for w in lat for x in w], seconds, scenario="actor crash",
                      ops=ops, **settings)
    reopen_lat, t0 = [], time.perf_counter()
    for k in range(reopens):
        t = time.perf_counter()
        con = naive_connect(path, durability)
        for m in range(mobs):
            _naive_append(con, f"mob-{m}", k)
        reopen_lat.append(time.perf_counter() - t)
        con.close()
    reopen = Result.of(f"{name}: reopen", reopen_lat, time.perf_counter() - t0, scenario="reopen",
                       reopens=reopens, **settings)
    return [crash, reopen]


def run(
    *,
    workers: int = 4,
    ops: int = 50,
    mobs: int = 16,
    events: int = 5_000,
    runs: int = 2,
    reopens: int = 20,
    backoff: float = 0.0,
    durability: str = "full",
    directory: str | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    group_commit: bool = True,
) -> list[Result]:
    """Both scenarios for the three systems, each on a fresh file in ``directory`` (a temp
    dir by default). Returns the actor-crash rows (mobstore first), then the reopen rows."""
    if workers < 1 or mobs < 1:
        raise ValueError(f"workers and mobs must be >= 1, got {workers} and {mobs}")
    workers = min(workers, mobs)  # a task owns at least one mob
    opts = dict(workers=workers, ops=ops, mobs=mobs, events=events, runs=runs, reopens=reopens,
                backoff=backoff, durability=durability)
    with tempfile.TemporaryDirectory(dir=directory, prefix="mobstore-bench-") as d:
        rows = []
        for k, group in enumerate((group_commit, False)):
            name = "mobstore, no group commit" if k else "mobstore" if group else "mobstore (group commit off)"
            progress(f"{name}: populate, crash actors, reopen ...")
            path = os.path.join(d, f"mobstore-{k}.db")
            rows.append(trio.run(lambda: _mobstore(path, **opts, group_commit=group, name=name)))  # noqa: B023
        progress("naive sqlite3 threads: populate, restart threads, reopen ...")
        rows.append(_naive(os.path.join(d, "naive.db"), **opts))
    return [r[i] for i in range(len(_SCENARIOS)) for r in rows]


def render(results: Sequence[Result]) -> str:
    """One table per scenario (restart-to-ready latency; ops/s = restarts per second)."""
    out = []
    for scenario in _SCENARIOS:
        rows = [attrs.evolve(r, name=r.settings.get("system", r.name))
                for r in results if r.settings.get("scenario") == scenario]
        if rows:
            out.append(f"{scenario} -> ready (ops/s = restarts per second)\n{table(rows)}")
    return "\n\n".join(out)


def main() -> None:  # pragma: no cover - `python -m mobstore.benchmarks.restart`
    parser = argparse.ArgumentParser(prog="python -m mobstore.benchmarks.restart", description=__doc__.split("\n")[0])
    for key, value in DEFAULTS.items():
        if key != "durability":
            parser.add_argument(f"--{key}", type=type(value), default=value)
    parser.add_argument("--durability", choices=["full", "normal"], default=DEFAULTS["durability"])
    args = parser.parse_args()
    print(render(run(**vars(args), progress=print)))


if __name__ == "__main__":  # pragma: no cover
    main()
