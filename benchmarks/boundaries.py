"""The runtime-store benchmark: concurrent durable session boundaries, beside two baselines.

Workload: ``workers`` trio tasks, each committing ``ops`` session boundaries of its own run
in runtime ``i % runtimes``. A boundary writes the session snapshot (a small session of
``messages`` messages, growing by one message per boundary up to that size), a receipt
(sequence allocated in the transaction, SHA-256 conversation digest) and ``inputs`` input
states, in one transaction; file stores with the given durability. Measured in one run, on
fresh files, in this order:

1. ``mobstore``: ``runtime.commit_session_boundary`` with group commit on (the default).
2. ``mobstore, no group commit``: the same store, one transaction (one fsync) per boundary.
3. ``naive sqlite3 threads``: stdlib ``sqlite3``, ``workers`` threads, one ``BEGIN
   IMMEDIATE`` transaction per boundary (sequence = MAX + 1 of the run, digest computed in
   the thread, snapshot upsert, receipt insert, input-state upserts), WAL, same synchronous
   setting, busy timeout 30 s: what one writes without mobstore.

Each reports throughput and per-boundary latency (median, p99, max), then the ratios.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import trio

from mobstore.actors import InputState, SessionDelta, open_store, uuid7

from ._stats import Result, naive_connect, naive_create, naive_digest, run_systems, run_tasks, run_threads, table

DEFAULTS = {"workers": 64, "ops": 200, "runtimes": 16, "inputs": 2, "messages": 8, "durability": "full"}
_T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _session(worker: int, j: int, messages: int) -> dict[str, Any]:
    msgs = [
        {"role": "user" if k % 2 == 0 else "assistant", "content": f"message {k} of boundary {j} from worker {worker}"}
        for k in range(min(j + 1, messages))
    ]
    return {"version": 1, "id": f"session-{worker}", "messages": msgs, "metadata": {}, "usage": {"input_tokens": j}}


async def _mobstore(path: str, workers: int, ops: int, runtimes: int, inputs: int, messages: int,
                    durability: str, group_commit: bool) -> Result:
    lat: list[float] = []
    clock = time.perf_counter
    async with open_store(path, durability=durability, group_commit=group_commit) as store:

        async def worker(i: int) -> None:
            rt = store.runtime(f"runtime-{i % runtimes}")
            run, record = uuid.uuid4(), lat.append
            for j in range(ops):
                t = clock()
                ids = [uuid7() for _ in range(inputs)]
                states = [InputState(input_id=x, current_state="applied", created_at=_T0) for x in ids]
                delta = SessionDelta.from_session(_session(i, j, messages))
                await rt.commit_session_boundary(delta, run, "run_checkpoint", ids, states)
                record(clock() - t)

        seconds = await run_tasks(worker, workers)
        whole = store.statistics()
        stats = whole.committer
    name = "mobstore" if group_commit else "mobstore, no group commit"
    return Result.of(
        name, lat, seconds, workers=workers, ops=ops, runtimes=runtimes, inputs=inputs, messages=messages,
        durability=durability, group_commit=group_commit, wal_batching=whole.wal_batching,
        mean_batch=round(stats.mean_batch, 1), commits=stats.commits,
        checkpoints=whole.checkpoints,
    )


_NAIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (runtime_id TEXT PRIMARY KEY, snapshot BLOB);
CREATE TABLE IF NOT EXISTS receipts (runtime_id TEXT, run_id TEXT, sequence INTEGER, receipt TEXT,
    PRIMARY KEY (runtime_id, run_id, sequence));
CREATE TABLE IF NOT EXISTS input_states (runtime_id TEXT, input_id TEXT, state TEXT,
    PRIMARY KEY (runtime_id, input_id));
"""


def _naive(path: str, workers: int, ops: int, runtimes: int, inputs: int, messages: int, durability: str) -> Result:
    setup = naive_create(path, _NAIVE_SCHEMA)
    setup.commit()
    setup.close()
    lat: list[list[float]] = [[] for _ in range(workers)]

    def worker(i: int) -> None:
        con = naive_connect(path, durability)
        rid, run, record = f"runtime-{i % runtimes}", str(uuid.uuid4()), lat[i].append
        for j in range(ops):
            t = time.perf_counter()
            session = _session(i, j, messages)
            snapshot = json.dumps(session, separators=(",", ":")).encode()
            digest = naive_digest(session["messages"])
            ids = [uuid7() for _ in range(inputs)]
            con.execute("BEGIN IMMEDIATE")
            (seq,) = con.execute(
                "SELECT COALESCE(MAX(sequence) + 1, 0) FROM receipts WHERE runtime_id = ? AND run_id = ?", (rid, run)
            ).fetchone()
            receipt = {"run_id": run, "boundary": "run_checkpoint", "contributing_input_ids": ids,
                       "conversation_digest": digest, "message_count": len(session["messages"]), "sequence": seq}
            con.execute("INSERT INTO receipts VALUES (?, ?, ?, ?)", (rid, run, seq, json.dumps(receipt)))
            con.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?)", (rid, snapshot))
            con.executemany(
                "INSERT OR REPLACE INTO input_states VALUES (?, ?, ?)",
                [(rid, x, json.dumps({"input_id": x, "current_state": "applied", "last_run_id": run,
                                      "last_boundary_sequence": seq})) for x in ids],
            )
            con.execute("COMMIT")
            record(time.perf_counter() - t)
        con.close()

    seconds = run_threads(worker, workers)
    return Result.of(
        "naive sqlite3 threads", [x for w in lat for x in w], seconds,
        workers=workers, ops=ops, runtimes=runtimes, inputs=inputs, messages=messages, durability=durability,
    )


def run(
    *,
    workers: int = 64,
    ops: int = 200,
    runtimes: int = 16,
    inputs: int = 2,
    messages: int = 8,
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
            lambda path, group: trio.run(_mobstore, path, workers, ops, runtimes, inputs, messages, durability, group),
            lambda path: _naive(path, workers, ops, runtimes, inputs, messages, durability),
        )
    return results


def main() -> None:  # pragma: no cover - `python -m mobstore.benchmarks.boundaries`
    results = run(progress=print)
    print(table(results))


if __name__ == "__main__":  # pragma: no cover
    main()
