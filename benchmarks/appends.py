"""The spine benchmark: concurrent durable appends, side by side with two baselines.

Workload: ``workers`` trio tasks, each appending ``ops`` events (a small JSON payload) to one
of ``mobs`` mobs (worker i writes mob i % mobs), on a file store with the given durability.
Measured in one run, on fresh files, in this order:

1. ``mobstore``: group commit on (the default).
2. ``mobstore, no group commit``: the same store, one transaction (one fsync) per append.
3. ``naive sqlite3 threads``: stdlib ``sqlite3``, ``workers`` threads, one ``BEGIN
   IMMEDIATE`` transaction per append (cursor = MAX+1 of the mob), WAL, same synchronous
   setting, busy timeout 30 s: what one writes without mobstore.

Each reports throughput and per-append latency (median, p99, max), then the ratios.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

import trio

from mobstore.actors import NewMobEvent, open_store

from ._stats import Result, naive_connect, naive_create, run_systems, run_tasks, run_threads, table

DEFAULTS = {"workers": 64, "ops": 500, "mobs": 16, "durability": "full"}


async def _mobstore(path: str, workers: int, ops: int, mobs: int, durability: str, group_commit: bool) -> Result:
    lat: list[float] = []
    clock = time.perf_counter
    async with open_store(path, durability=durability, group_commit=group_commit) as store:

        async def worker(i: int) -> None:
            events = store.mob(f"mob-{i % mobs}").events
            record = lat.append
            for j in range(ops):
                t = clock()
                await events.append(NewMobEvent("step_completed", {"worker": i, "n": j}))
                record(clock() - t)

        seconds = await run_tasks(worker, workers)
        whole = store.statistics()
        stats = whole.committer
    name = "mobstore" if group_commit else "mobstore, no group commit"
    return Result.of(
        name, lat, seconds, workers=workers, ops=ops, mobs=mobs, durability=durability,
        group_commit=group_commit, wal_batching=whole.wal_batching, mean_batch=round(stats.mean_batch, 1), commits=stats.commits,
        checkpoints=whole.checkpoints,
    )


def _naive(path: str, workers: int, ops: int, mobs: int, durability: str) -> Result:
    setup = naive_create(
        path,
        "CREATE TABLE IF NOT EXISTS events (mob_id TEXT, cursor INTEGER, ts REAL, kind TEXT,"
        " payload TEXT, PRIMARY KEY (mob_id, cursor))",
    )
    setup.commit()
    setup.close()
    lat: list[list[float]] = [[] for _ in range(workers)]
    import json

    def worker(i: int) -> None:
        con = naive_connect(path, durability)
        mob, record = f"mob-{i % mobs}", lat[i].append
        for j in range(ops):
            t = time.perf_counter()
            con.execute("BEGIN IMMEDIATE")
            (cur,) = con.execute("SELECT COALESCE(MAX(cursor), 0) + 1 FROM events WHERE mob_id = ?", (mob,)).fetchone()
            con.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                (mob, cur, time.time(), "step_completed", json.dumps({"worker": i, "n": j})),
            )
            con.execute("COMMIT")
            record(time.perf_counter() - t)
        con.close()

    seconds = run_threads(worker, workers)
    return Result.of(
        "naive sqlite3 threads", [x for w in lat for x in w], seconds,
        workers=workers, ops=ops, mobs=mobs, durability=durability,
    )


def run(
    *,
    workers: int = 64,
    ops: int = 500,
    mobs: int = 16,
    durability: str = "full",
    directory: str | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    group_commit: bool = True,
) -> list[Result]:
    """Run the three workloads on fresh files in ``directory`` (a temp dir by default).

    ``group_commit`` is the setting of the first (mobstore) row; the second row is always
    the store without group commit, the baseline."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="mobstore-bench-") as d:
        results = run_systems(
            d, progress, group_commit,
            lambda path, group: trio.run(_mobstore, path, workers, ops, mobs, durability, group),
            lambda path: _naive(path, workers, ops, mobs, durability),
        )
    return results


def main() -> None:  # pragma: no cover - `python -m mobstore.benchmarks.appends`
    results = run(progress=print)
    print(table(results))


if __name__ == "__main__":  # pragma: no cover
    main()
